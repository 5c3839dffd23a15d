"""A request to the real watchdog daemon with an argument its operation does not declare is refused
in one line, and changes nothing, instead of being quietly ignored."""

from __future__ import annotations

from typing import Any

import pytest

from aura.ipc.client import RemoteError


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
