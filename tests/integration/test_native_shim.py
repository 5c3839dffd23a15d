"""The native shim (supervisor/nativeshim.c) with real processes, as the default shim where a C
compiler is at hand: spawned by the supervisor's fork server (by the supervisor itself where a start
cannot go through the server), in a session of its own, it survives a kill -9 of the supervisor,
records its worker's exit while the supervisor is dead, and is re-adopted; what it does not do itself
it hands to the Python shim by exec (a worker that cannot be executed, children the worker
registered, a kill during that hand-over); and it holds far less memory than a Python shim."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from aura.runtime.exitfile import RESERVE_BYTES
from aura.runtime.fsutil import read_json
from aura.supervisor import nativeshim
from tests.support.harness import gone, wait_for
from tests.support.rig import Rig

pytestmark = pytest.mark.skipif(nativeshim.find().path is None, reason="the native shim cannot be built here")

WAIT_THEN_EXIT = """import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
sys.exit(int(sys.argv[2]))
"""

REGISTER_CHILD = """import json, os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
with open(os.path.join(os.environ["AURA_TASK_DIR"], "process.json"), "w") as fh:
    json.dump({"managed_subprocesses": [{"pid": child.pid, "kind": "job"}]}, fh)
open(sys.argv[1], "w").write(str(child.pid))
"""


def _native(rig: Rig, rec: dict, parent: str = "aura-forkserver") -> psutil.Process:
    """The worker's shim: the native program, in a session of its own, a child of `parent` (the
    supervisor's fork server; "supervisor": the supervisor itself)."""
    launch = read_json(rig.p.paths.worker_dir(rec["worker_id"]) / "launch.json")
    assert launch["native"] is True
    shim = psutil.Process(rec["shim_pid"])
    assert shim.name() == "aura-shim" and shim.exe().startswith(str(nativeshim.SOURCE.parent))
    supervisor = rig.p.daemon_pid("supervisor")
    if parent == "supervisor":
        assert shim.ppid() == supervisor
    else:
        server = psutil.Process(shim.ppid())
        assert server.name() == parent and server.ppid() == supervisor
    assert os.getsid(shim.pid) == shim.pid and os.getsid(rec["worker_pid"]) == rec["worker_pid"]
    return shim


def test_native_shims_outlive_the_supervisor_record_the_exit_and_are_readopted(rig: Rig, tmp_path: Path) -> None:
    rig.start("supervisor")
    ends_early, ends_late = tmp_path / "early", tmp_path / "late"
    early = rig.spawn("early", WAIT_THEN_EXIT, str(ends_early), "7")
    late = rig.spawn("late", WAIT_THEN_EXIT, str(ends_late), "0")
    shims = [_native(rig, rec) for rec in (early, late)]

    rig.p.kill9("supervisor")
    assert all(s.is_running() for s in shims)
    ends_early.touch()
    exit_file = rig.p.paths.worker_dir("early") / "exit.json"
    record = wait_for(lambda: read_json(exit_file), 20, what="the exit record written with no supervisor")
    assert record["exit_code"] == 7 and record["signal"] is None and record["duration_s"] > 0
    reserve = exit_file.parent / "exit.reserve"
    assert not reserve.exists() and exit_file.stat().st_size == RESERVE_BYTES  # written into the reserve
    os.replace(exit_file, reserve)  # as a machine that went down before the rename reached the disk leaves it
    assert rig.indexed_live() == {"early", "late"}  # nobody took the end in yet

    rig.start("supervisor")
    rig.readopted_after_down("early", 7, "late", ends_late)


def test_a_worker_that_cannot_run_is_explained_by_the_python_shim(rig: Rig, tmp_path: Path) -> None:
    rig.start("supervisor")
    missing = str(tmp_path / "no-such-program")
    rec = rig.call("supervisor", "spawn", {"worker_id": "w", "task_id": "w", "backend": "shell", "argv": [missing]})
    rig.p.remember()
    assert rec["state"] == "exited" and rec["exit"]["error"] == f"executable not found: {missing}"
    assert rec["outcome"] == "failed"


def test_registered_children_are_kept_through_the_hand_over_and_a_kill_reaches_them(rig: Rig, tmp_path: Path) -> None:
    rig.start("supervisor")
    told = tmp_path / "child.pid"
    rig.spawn("w", REGISTER_CHILD, str(told))
    child = int(wait_for(lambda: told.exists() and told.read_text(), 20, what="the registered child"))
    managed = wait_for(lambda: read_json(rig.p.paths.worker_dir("w") / "managed.json"), 20, what="managed.json")
    assert [c["pid"] for c in managed["children"]] == [child]  # the Python shim took over and kept it
    shim = psutil.Process(rig.worker("w")["shim_pid"])
    assert shim.name() == "aura-shim" and "shim.py" in " ".join(shim.cmdline())  # same pid, now Python
    assert psutil.pid_exists(child) and rig.worker("w")["state"] == "running"

    shim.send_signal(signal.SIGTERM)  # a kill: the shim stops the kept child too
    done = wait_for(lambda: rig.exited("w"), 20, what="the worker's end")
    assert done["exit"]["managed"]["stopped_by_request"] is True
    wait_for(lambda: gone(child), 10, what="the registered child to be stopped")


def test_a_native_shim_holds_a_small_fraction_of_a_python_one(rig: Rig) -> None:
    rig.start("supervisor")
    rec = rig.spawn_argv("w", ["sleep", "60"])
    shim = _native(rig, rec)
    time.sleep(0.2)
    private = shim.memory_full_info().uss
    assert private < 1 << 20, f"the native shim holds {private} bytes of its own"


def test_a_native_shim_removed_while_running_leaves_the_python_shims_to_start_workers(rig: Rig) -> None:
    rig.start("supervisor")
    first = rig.spawn_argv("first", ["sleep", "60"])
    built = Path(psutil.Process(first["shim_pid"]).exe())
    aside = built.with_name(built.name + ".aside")
    os.replace(built, aside)  # as a cleaner of __pycache__ folders would
    try:
        second = rig.spawn_argv("second", ["sleep", "60"])
    finally:
        os.replace(aside, built)
    launch = read_json(rig.p.paths.worker_dir("second") / "launch.json")
    assert "native" not in launch and psutil.Process(second["shim_pid"]).name() == "aura-shim"
    assert [e["error"] for e in rig.logged("native_shim_failed", "supervisor")]


def test_a_start_the_system_refuses_fails_alone_and_the_native_shim_stays(rig: Rig) -> None:
    rig.start("supervisor")
    too_long = "x" * 200_000  # one argument over the kernel's limit for a single string
    rec = rig.call(
        "supervisor", "spawn", {"worker_id": "w", "task_id": "w", "backend": "shell", "argv": ["echo", too_long]}
    )
    rig.p.remember()
    assert rec["state"] == "exited" and "Argument list too long" in rec["exit"]["error"]
    after = rig.spawn_argv("after", ["sleep", "60"])
    _native(rig, after)
    assert not rig.logged("native_shim_failed", "supervisor")


def test_the_fork_server_reaps_an_ended_native_shim_and_the_end_is_recorded(rig: Rig, tmp_path: Path) -> None:
    rig.start("supervisor")
    release = tmp_path / "go"
    rec = rig.spawn("w", WAIT_THEN_EXIT, str(release), "3")
    shim = _native(rig, rec)
    release.touch()
    wait_for(lambda: gone(shim.pid), 20, what="the shim to be reaped")  # a zombie still answers signal 0
    done = wait_for(lambda: rig.exited("w"), 20, what="the worker's end")
    assert done["exit"]["exit_code"] == 3 and done["outcome"] == "failed"


def test_a_start_too_big_for_the_fork_server_is_spawned_by_the_supervisor(rig: Rig, tmp_path: Path) -> None:
    rig.start("supervisor")
    big = {f"AURA_TEST_BIG_{i}": "x" * 100_000 for i in range(3)}  # more than one message on the server's socket
    release = tmp_path / "go"
    rec = rig.spawn("w", WAIT_THEN_EXIT, str(release), "0", env=big)
    shim = _native(rig, rec, parent="supervisor")
    release.touch()
    done = wait_for(lambda: rig.exited("w"), 20, what="the worker's end")
    assert done["exit"]["exit_code"] == 0 and done["outcome"] == "succeeded"
    wait_for(lambda: gone(shim.pid), 10, what="the supervisor to reap its shim")
    after = rig.spawn_argv("after", ["sleep", "60"])
    _native(rig, after)  # the next start goes through the server again
