"""The fork server (supervisor/forkserver.py) with real processes, with the shims it starts: native
ones spawned, and under AURA_SHIM=python the Python shims it forks (where the native shim cannot be
built). A shim it started lives in a session of its own, survives a kill -9 of the fork server and of
the supervisor, records its worker's exit while the supervisor is dead, and is re-adopted by the
next supervisor; a dead fork server is replaced at the next start."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from aura.supervisor import nativeshim
from tests.support.harness import gone, wait_for
from tests.support.rig import Rig

WAIT_THEN_EXIT = """import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
sys.exit(int(sys.argv[2]))
"""


def _fork_server(rig: Rig) -> psutil.Process:
    sup = psutil.Process(rig.p.daemon_pid("supervisor") or -1)
    return wait_for(
        lambda: next((c for c in sup.children() if c.name() == "aura-forkserver"), None), 10, what="the fork server"
    )


def _forked_by(rec: dict, server: psutil.Process) -> None:
    shim = psutil.Process(rec["shim_pid"])
    assert shim.ppid() == server.pid and shim.name() == "aura-shim"
    assert os.getsid(shim.pid) == shim.pid and os.getsid(rec["worker_pid"]) == rec["worker_pid"]  # own sessions


NATIVE = pytest.param(
    "native", marks=pytest.mark.skipif(nativeshim.find().path is None, reason="the native shim cannot be built here")
)


@pytest.mark.parametrize("shim", ["python", NATIVE])
def test_shims_outlive_the_fork_server_and_the_supervisor_and_are_readopted(
    rig: Rig, tmp_path: Path, shim: str
) -> None:
    rig.p.env["AURA_SHIM"] = shim
    rig.start("supervisor")
    first = _fork_server(rig)
    ends_early, ends_late = tmp_path / "early", tmp_path / "late"
    early = rig.spawn("early", WAIT_THEN_EXIT, str(ends_early), "7")
    late = rig.spawn("late", WAIT_THEN_EXIT, str(ends_late), "0")
    for rec in (early, late):
        _forked_by(rec, first)

    first.send_signal(signal.SIGKILL)
    wait_for(lambda: gone(first.pid), 10, what="the fork server to die")
    again = rig.spawn_argv("again", ["true"])  # started by a new fork server
    second = _fork_server(rig)
    assert second.pid != first.pid and again["state"] == "running"

    rig.p.kill9("supervisor")
    wait_for(lambda: gone(second.pid), 10, what="the fork server to end with its supervisor")
    assert all(psutil.pid_exists(r["shim_pid"]) for r in (early, late))
    ends_early.touch()
    wait_for(lambda: (rig.p.workers()["early"].get("exit_file") or {}).get("exit_code") == 7, 20, what="exit record")

    rig.start("supervisor")
    rig.readopted_after_down("early", 7, "late", ends_late)


def _loaded_ctypes(server: psutil.Process) -> bool:
    """Has the server loaded the Python shim's code (which loads ctypes, a C extension in its maps)?"""
    return any("_ctypes" in (m.path or "") for m in server.memory_maps(grouped=True))


@pytest.mark.parametrize("shim", ["python", NATIVE])
def test_the_server_loads_the_python_shim_only_where_it_forks_one(rig: Rig, shim: str) -> None:
    rig.p.env["AURA_SHIM"] = shim
    rig.start("supervisor")
    server = _fork_server(rig)
    rec = rig.spawn_argv("w", ["sleep", "60"])
    _forked_by(rec, server)
    assert _loaded_ctypes(server) == (shim == "python")  # a server spawning native shims stays small
