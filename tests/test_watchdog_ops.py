"""The watchdog's requests are operation modules (aura.watchdog.ops): each declares its arguments,
says its request and reply, and a request with an argument it does not take is refused in one line
instead of being quietly ignored. Against a real watchdog daemon."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from aura.ipc.client import RemoteError
from aura.runtime import ops

WATCHDOG_OPS = ("usage", "limits", "set_limits", "preflight", "status")


def test_each_request_of_the_watchdog_is_one_operation_module() -> None:
    importlib.import_module("aura.watchdog.ops")
    found = {op.name: op for op in ops.operations("watchdog") if op.daemon == "watchdog"}
    assert sorted(found) == sorted(WATCHDOG_OPS)
    for name, op in found.items():
        assert op.handler.__module__ == f"aura.watchdog.ops.{name}"
        assert op.summary.startswith(f"{name}:") and op.wire("Request") and op.wire("Reply")
    assert [a.name for a in found["preflight"].args] == ["worker_id", "task_id", "limits"]  # what the supervisor sends
    assert [a.name for a in found["set_limits"].args] == ["values", "by"]


def test_a_misspelt_argument_is_refused_and_changes_nothing(rig: Any) -> None:
    rig.start("watchdog")
    before = rig.call("watchdog", "limits")
    with pytest.raises(RemoteError) as refused:
        rig.call("watchdog", "set_limits", {"values": {"AURA_WORKER_MAX_CPU_PERCENT": "50"}, "who": "me"})
    assert refused.value.code == "bad_args"
    assert "`set_limits` takes no argument `who`" in refused.value.message and "\n" not in refused.value.message
    assert rig.call("watchdog", "limits") == before
    with pytest.raises(RemoteError) as singular:
        rig.call("watchdog", "usage", {"worker_id": "w1"})  # the argument is `worker_ids`
    assert "takes no argument `worker_id`" in singular.value.message
    assert rig.call("watchdog", "usage", {"worker_ids": ["w1"]})["workers"] == {}
    reply = rig.call("watchdog", "set_limits", {"values": {"AURA_WORKER_MAX_CPU_PERCENT": "50"}, "by": "test"})
    assert reply["changed"]["AURA_WORKER_MAX_CPU_PERCENT"]["new"] == 50.0
