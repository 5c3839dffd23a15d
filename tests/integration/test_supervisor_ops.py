"""The supervisor's requests (spawn, kill, list, get) are operation modules (aura.supervisor.ops), each
with its arguments declared, so a misspelt argument is refused instead of quietly ignored.

Why: an ignored argument is a silent change of meaning (a `budget_minutes` that the supervisor never
read ran the worker on the default budget). The declared arguments must cover every caller, or a
real request would now be refused: the brain's spawn spec is checked against them here."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

import aura.supervisor.ops  # noqa: F401  (registers the operations)
from aura.brain.workerspec import spawn_spec
from aura.ipc.client import RemoteError
from aura.runtime.config import Config
from aura.runtime.ops import operations
from aura.supervisor.main import SupervisorDaemon
from tests.support.harness import Project, wait_for
from tests.support.workers import Supervisor

NAMES = ("spawn", "kill", "list", "get")


@pytest.fixture
def sup(project: Project) -> Any:
    s = Supervisor(project)
    yield s
    s.stop()


def test_each_supervisor_request_is_one_module_with_its_wire_message() -> None:
    found = {op.name: op for op in operations("supervisor")}
    assert SupervisorDaemon.ops_package == "aura.supervisor.ops"
    for name in NAMES:
        op = found[name]
        assert op.daemon == "supervisor" and op.handler.__module__ == f"aura.supervisor.ops.{name}"
        assert op.wire("Request").startswith("{") and op.wire("Reply"), name


def test_the_brains_spawn_spec_uses_only_declared_arguments(tmp_path: Path) -> None:
    declared = {a.name for a in next(op for op in operations("supervisor") if op.name == "spawn").args}
    cfg = Config()
    command = spawn_spec({"id": "T1", "command": "make", "artifacts": ["out/x"]}, cfg, tmp_path, tmp_path / "T1")
    agent = spawn_spec({"id": "T2", "limits": {"AURA_WORKER_MAX_CPU_PERCENT": "50"}}, cfg, tmp_path, tmp_path / "T2")
    sent = {"worker_id", "task_id", "task_dir", "max_budget_usd", "resume_session", "prompt"}  # added by BrainCore
    assert set(command) | set(agent) | sent <= declared


def test_a_misspelt_argument_is_refused_with_its_name_and_starts_nothing(sup: Supervisor) -> None:
    sup.start()
    argv = [sys.executable, "-c", "pass"]
    with pytest.raises(RemoteError) as refused:
        sup.call("spawn", {"task_id": "t", "backend": "shell", "argv": argv, "budget_minutes": 1})
    assert refused.value.code == "bad_args"
    assert "`spawn` takes no argument `budget_minutes`" in refused.value.message
    assert sup.call("list") == []
    with pytest.raises(RemoteError) as refused:
        sup.call("list", {"include_exitted": False})
    assert refused.value.code == "bad_args" and "include_exitted" in refused.value.message

    rec = sup.spawn(
        task_id="t", worker_id="t-1", backend="shell", argv=[sys.executable, "-c", "import time; time.sleep(30)"]
    )
    with pytest.raises(RemoteError) as refused:
        sup.call("kill", {"worker_id": "t-1", "reasn": "typo"})
    assert refused.value.code == "bad_args" and "`kill` takes no argument `reasn`" in refused.value.message
    assert sup.get("t-1")["state"] == "running" and not sup.get("t-1").get("kill")
    narrow = sup.call("list", {"worker_ids": ["t-1"], "fields": ["state", "worker_pid", "no_such_field"]})
    assert narrow == [{"worker_id": "t-1", "state": "running", "worker_pid": rec["worker_pid"]}]
    assert sup.call("list", {"worker_ids": ["t-1"], "fields": ["env"]}) == [{"worker_id": "t-1"}]  # never given out
    assert sup.call("kill", {"worker_id": rec["worker_id"], "reason": "test"})["killed"] is True
    assert sup.wait_exited("t-1")["outcome"] == "killed"


def _process_state(pid: int) -> str:
    """The one-letter state of /proc/PID/stat ("" once the process is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_worker_whose_process_ended_shows_exiting_until_its_end_is_recorded(sup: Supervisor, tmp_path: Path) -> None:
    sup.start()
    go = tmp_path / "go"
    code = f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)\nraise SystemExit(3)"
    rec = sup.spawn(task_id="t", worker_id="t-1", backend="shell", argv=[sys.executable, "-c", code])
    assert sup.get("t-1")["state"] == "running"
    os.kill(rec["shim_pid"], signal.SIGSTOP)  # the shim cannot reap its worker nor write the exit record
    try:
        go.touch()
        wait_for(lambda: _process_state(rec["worker_pid"]) == "Z", 20, what="the worker to end under its stopped shim")
        assert sup.get("t-1")["state"] == "exiting"
        assert sup.call("list", {"include_exited": False, "fields": ["state"]}) == [
            {"worker_id": "t-1", "state": "exiting"}
        ]
        assert sup.record("t-1")["state"] == "running"  # shown, never recorded: the shim's record decides the end
    finally:
        os.kill(rec["shim_pid"], signal.SIGCONT)
    ended = sup.wait_exited("t-1")
    assert ended["state"] == "exited" and ended["outcome"] == "failed" and ended["exit"]["exit_code"] == 3
