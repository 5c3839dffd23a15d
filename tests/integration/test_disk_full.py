"""A full or nearly full disk under the data folder: real daemons, a real 6 MB tmpfs as the data folder,
real shell workers that fill it.

Why: a worker that fills the data folder's file system must not leave a run that cannot stop
(`aura down` dying with a traceback), that makes no progress (the brain's cycle dying with its
save), that loses exit records, or that says nothing about the disk. Mounting needs root (as here and in CI); elsewhere
these tests skip and say why."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from aura.runtime.exitfile import RESERVE_BYTES
from aura.runtime.fsutil import read_json, read_jsonl
from aura.runtime.paths import DAEMONS, ProjectPaths
from aura.runtime.peers import lock_is_held
from tests.support.harness import Project, wait_for
from tests.support.rig import Rig

MB = 1024 * 1024
MARKER = "bytes of output dropped here"


# -- a small file system as the data folder ------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A real 6 MB tmpfs (set up before the project, so it is unmounted after the project's processes stop)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "data"
    mnt.mkdir()
    got = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", str(mnt)],
        check=False,
        capture_output=True,
        text=True,
    )
    if got.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {got.stderr.strip()}")
    yield mnt
    for args in (["umount", str(mnt)], ["umount", "-l", str(mnt)]):
        if subprocess.run(args, capture_output=True, check=False).returncode == 0:
            break


@pytest.fixture
def disk_project(small_disk: Path, project: Project) -> Project:
    """The project with its data folder on the small disk (`AURA_DATA_DIR`)."""
    project.env["AURA_DATA_DIR"] = str(small_disk)
    project.paths = ProjectPaths.for_root(project.root, data_dir=small_disk)
    return project


@pytest.fixture
def disk_rig(disk_project: Project, tmp_path: Path) -> Any:
    r = Rig(disk_project, tmp_path)
    yield r
    r.stop()


def free(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def fill(folder: Path, leave: int = 0) -> Path:
    """A file taking the free space of `folder`'s file system, all of it or all but `leave` bytes."""
    path = folder / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    chunk = b"\0" * 65536
    try:
        while True:
            want = free(folder) - leave
            if want <= 0:
                break
            os.write(fd, chunk[: min(len(chunk), want)])
    except OSError:
        pass  # full
    finally:
        os.close(fd)
    return path


def journal(project: Project, name: str) -> list[dict]:
    return read_jsonl(project.paths.journal(name))


def tracebacks(project: Project) -> list[str]:
    """Log and stdio files of the daemons that hold a Python traceback."""
    out = []
    for path in project.paths.logs_dir.glob("*"):
        text = path.read_text(errors="replace")
        if "Traceback (most recent call last)" in text or '"trace"' in text:
            out.append(f"{path.name}: {text[-1500:]}")
    return out


def writer(rig: Rig, wid: str, chunk: int, every: float, total: int, first: str = "first line") -> dict:
    """A worker that writes numbered lines to its stdout, `chunk` bytes every `every` seconds, up to
    `total` bytes."""
    body = f"""
import sys, time
out = sys.stdout.buffer
out.write(b{first!r} + b"\\n")
n, written = 0, 0
while written < {total}:
    block = b"".join(b"line %09d\\n" % (n + i) for i in range({chunk} // 15))
    n += {chunk} // 15
    out.write(block)
    out.flush()
    written += len(block)
    time.sleep({every})
"""
    return rig.spawn(wid, body)


# -- a: `aura down` on a full disk ----------------------------------------------------------------------


def test_down_stops_everything_on_a_full_disk_and_the_state_files_stay_valid(disk_project: Project) -> None:
    p = disk_project
    p.env.update(AURA_MIN_DISK_FREE_MB="1")
    p.write_task("# Wait\n\n- [ ] Wait a minute `sleep 60`\n")
    p.up()
    wait_for(
        lambda: any(w.get("state") == "running" and w.get("worker_pid") for w in p.workers().values()),
        30,
        what="the worker to run",
    )
    p.remember()
    fill(p.paths.data)
    assert free(p.paths.data) < 64 * 1024
    down = p.aura("down", check=False, timeout=90)
    out = down.stdout + down.stderr
    assert down.returncode == 0, out
    assert "Traceback" not in out, out
    for name in DAEMONS:
        assert f"{name:<10} stopped" in out, out
    time.sleep(2.0)  # no keeper may have started a stopped peer again
    assert p.survivors() == [], f"still running: {p.survivors()}"
    assert not any(lock_is_held(p.paths.lockfile(n)) for n in DAEMONS)
    state = json.loads((p.paths.state_dir / "state.json").read_text())
    assert any(t.get("title", "").startswith("Wait") for t in state["tasks"].values())
    assert json.loads(p.paths.launch_file.read_text())["desired"] == "down"
    for name in DAEMONS:
        assert json.loads(p.paths.pidfile(name).read_text())["state"] == "stopped"


def test_down_stops_every_daemon_first_when_not_even_launch_json_can_be_rewritten(disk_project: Project) -> None:
    """No room at all to say "down" to the peer keepers (launch.json already compact, the disk full):
    every daemon is asked to stop before any is waited for, so none restarts another."""
    p = disk_project
    p.env.update(AURA_MIN_DISK_FREE_MB="1")
    p.write_task("# Wait\n\n- [ ] Wait a minute `sleep 60`\n")
    p.up()
    wait_for(lambda: any(w.get("state") == "running" for w in p.workers().values()), 30, what="the worker to run")
    p.remember()
    spec = json.loads(p.paths.launch_file.read_text())
    p.paths.launch_file.write_text(json.dumps(spec, sort_keys=True, separators=(",", ":")))  # no slack left
    fill(p.paths.data)
    down = p.aura("down", check=False, timeout=90)
    out = down.stdout + down.stderr
    assert down.returncode == 0 and "Traceback" not in out, out
    assert "asking every daemon to stop at once" in out, out
    time.sleep(2.0)
    assert p.survivors() == [], f"still running: {p.survivors()}"
    assert json.loads(p.paths.launch_file.read_text())["desired"] == "up"  # unchanged, and still valid


# -- b: free space on the data folder is a reserve --------------------------------------------------------


def test_the_watchdog_reports_the_low_disk_and_stops_the_worker_filling_it(disk_rig: Rig) -> None:
    p = disk_rig.p
    p.env.update(AURA_MIN_DISK_FREE_MB="3", AURA_WORKER_MAX_OUTPUT_MB="0")
    disk_rig.start("supervisor", "watchdog")
    assert disk_rig.call("watchdog", "hello")["disk"]["low"] is False
    quiet = disk_rig.spawn_argv("quiet", ["sleep", "60"])
    writer(disk_rig, "trickle", chunk=1500, every=0.2, total=300 * 1024)  # about 7 KB/s: not the one
    writer(disk_rig, "filler", chunk=256 * 1024, every=0.1, total=20 * MB)
    done = wait_for(lambda: disk_rig.exited("filler"), 30, what="the filling worker to be stopped")
    assert done["outcome"] == "disk_low", done
    assert done["kill"]["reason_code"] == "disk_low" and "AURA_MIN_DISK_FREE_MB" in done["kill"]["reason"]
    record = disk_rig.kill_record("filler")
    assert record["growth_bytes"] > 0 and record["free_bytes"] < 3 * MB
    assert disk_rig.worker(quiet["worker_id"])["state"] == "running"  # it wrote nothing: not the victim
    assert disk_rig.worker("trickle")["state"] == "running"
    text = Path(done["output"]).read_text()
    assert text.startswith("first line\n") and MARKER in text and text.endswith("\n")
    kinds = [e["kind"] for e in journal(p, "watchdog")]
    assert "disk_low" in kinds and "worker_resource_killed" in kinds
    wait_for(
        lambda: "disk_ok" in [e["kind"] for e in journal(p, "watchdog")],
        10,
        what="disk_ok once the output was cut down",
    )
    status = disk_rig.call("watchdog", "status")["disk"]
    assert status["low"] is False and status["reserve_mb"] == 3
    assert disk_rig.call("watchdog", "usage")["disk"]["path"] == str(p.paths.data)


def test_a_spawn_is_refused_while_the_disk_is_below_its_reserve(disk_rig: Rig) -> None:
    p = disk_rig.p
    p.env.update(AURA_MIN_DISK_FREE_MB="3")
    disk_rig.start("supervisor", "watchdog")
    filler = fill(p.paths.data, leave=2 * MB)
    from aura.ipc.client import RemoteError

    with pytest.raises(RemoteError) as refused:
        disk_rig.spawn_argv("late", ["true"])
    assert refused.value.code == "reserve_short" and "AURA_MIN_DISK_FREE_MB" in refused.value.message
    filler.unlink()
    assert disk_rig.spawn_argv("later", ["true"])["state"] == "running"


# -- c: each worker's output is capped ----------------------------------------------------------------------


def test_output_over_the_cap_stops_the_worker_and_keeps_head_and_tail(rig: Rig) -> None:
    rig.p.env.update(AURA_WORKER_MAX_OUTPUT_MB="1")
    rig.start("supervisor", "watchdog")
    writer(rig, "chatty", chunk=128 * 1024, every=0.05, total=40 * MB)
    done = wait_for(lambda: rig.exited("chatty"), 30, what="the chatty worker to be stopped")
    assert done["outcome"] == "output_limit", done
    assert "AURA_WORKER_MAX_OUTPUT_MB" in done["kill"]["reason"]
    out = Path(done["output"])
    text = out.read_text()
    assert out.stat().st_size < 1 * MB
    assert text.startswith("first line\nline 000000000\n")
    marker = next(line for line in text.splitlines() if MARKER in line)
    dropped = int(marker.split("[aura: ", 1)[1].split(" ", 1)[0])
    assert dropped > 0 and done["output_trimmed"]["dropped"]["output.txt"] == dropped
    last = [line for line in text.splitlines() if line.startswith("line ")][-1]
    assert int(last.split()[1]) * 15 > 1 * MB  # the tail: lines written after the cap was passed
    assert rig.kill_record("chatty")["reason_code"] == "output_limit"
    assert rig.call("watchdog", "limits")["limits"]["AURA_WORKER_MAX_OUTPUT_MB"] == 1


def test_the_output_cap_can_be_changed_at_run_time(rig: Rig) -> None:
    rig.start("supervisor", "watchdog")
    reply = rig.call(
        "watchdog", "set_limits", {"values": {"AURA_WORKER_MAX_OUTPUT_MB": "2", "AURA_MIN_DISK_FREE_MB": "50"}}
    )
    assert reply["changed"]["AURA_WORKER_MAX_OUTPUT_MB"] == {"old": 1024.0, "new": 2.0}
    assert rig.call("watchdog", "status")["disk"]["reserve_mb"] == 50
    from aura.ipc.client import RemoteError

    with pytest.raises(RemoteError) as bad:
        rig.call("watchdog", "set_limits", {"values": {"AURA_WORKER_MAX_OUTPUT_MB": "-1"}})
    assert "AURA_WORKER_MAX_OUTPUT_MB" in bad.value.message


# -- d: the brain pauses while space is short --------------------------------------------------------------


def test_the_brain_starts_nothing_while_the_disk_is_low_says_so_and_resumes_by_itself(
    disk_project: Project, tmp_path: Path
) -> None:
    p = disk_project
    notes = tmp_path / "notes.txt"
    p.env.update(AURA_MIN_DISK_FREE_MB="3", AURA_NOTIFY_COMMAND=f'echo "$AURA_EVENT|$AURA_MESSAGE" >> {notes}')
    p.write_task("# Say hi\n\n- [ ] Say hi `echo hi > hi.txt` creates `hi.txt`\n")
    filler = fill(p.paths.data, leave=2 * MB)
    p.up()
    wait_for(lambda: notes.exists() and "disk_low|" in notes.read_text(), 20, what="the disk_low notification")
    time.sleep(3.0)  # a cycle or more: still nothing started
    assert not any(p.paths.workers_dir.iterdir())
    status = p.aura("status").stdout
    assert "Disk     LOW" in status and "no new workers start" in status, status
    brain = p.status()["brain"]
    assert brain["disk"]["paused"] and brain["counts"]["pending"] == 1
    filler.unlink()
    wait_for(lambda: p.status()["brain"].get("run", {}).get("finished"), 30, what="the run to finish")
    assert (p.root / "hi.txt").read_text() == "hi\n"
    text = notes.read_text()
    assert "disk_ok|" in text and text.index("disk_low|") < text.index("disk_ok|")
    assert "Disk     LOW" not in p.aura("status").stdout


def test_the_brain_keeps_cycling_on_a_full_disk_and_saves_once_space_is_back(disk_project: Project) -> None:
    p = disk_project
    p.env.update(AURA_MIN_DISK_FREE_MB="0")
    p.write_task("# Nothing to do but wait\n\n- [ ] Wait `sleep 120`\n")
    p.up()
    wait_for(lambda: (p.status()["brain"].get("counts") or {}).get("in_progress") == 1, 30, what="the task to start")
    filler = fill(p.paths.data)
    cycles = p.status()["brain"]["cycles"]
    wait_for(lambda: p.status()["brain"]["cycles"] >= cycles + 3, 20, what="more cycles on the full disk")
    saved = json.loads((p.paths.state_dir / "state.json").read_text())  # the last good one, still valid
    brain = p.status()["brain"]
    assert saved["total_cycles"] < brain["cycles"] and any(
        t["status"] == "in_progress" for t in saved["tasks"].values()
    )
    assert brain["disk"]["save_error"] and brain["disk"]["paused"], brain["disk"]
    assert json.loads((p.paths.state_dir / "state.json").read_text())["total_cycles"] == saved["total_cycles"]
    filler.unlink()
    wait_for(
        lambda: (read_json(p.paths.state_dir / "state.json") or {}).get("total_cycles", 0) > saved["total_cycles"],
        20,
        what="the state to be saved again",
    )
    assert p.status()["brain"]["disk"]["save_error"] is None
    log = p.paths.logfile("brain").read_text()
    assert "callback_failed" not in log and "planner_failed" not in log
    assert tracebacks(p) == []


# -- e: exit records on a full disk ----------------------------------------------------------------------------

FLOOD = "yes | head -c 8000000 > /dev/stdout; exit 7"


def test_an_exit_record_that_hits_a_full_disk_is_written_into_its_reserve(disk_rig: Rig) -> None:
    p = disk_rig.p
    p.env.update(AURA_MIN_DISK_FREE_MB="0", AURA_WORKER_MAX_OUTPUT_MB="0")
    disk_rig.start("supervisor", "watchdog")
    disk_rig.spawn_argv("flood", ["/bin/sh", "-c", FLOOD])
    done = wait_for(lambda: disk_rig.exited("flood"), 30, what="the flooding worker to end")
    assert free(p.paths.data) < 64 * 1024  # the disk is still full
    assert done["outcome"] == "failed" and done["exit"]["exit_code"] == 7, done
    exit_file = p.paths.worker_dir("flood") / "exit.json"
    assert read_json(exit_file)["exit_code"] == 7
    assert exit_file.stat().st_size == RESERVE_BYTES  # the reserve's blocks, renamed
    assert not (p.paths.worker_dir("flood") / "exit.reserve").exists()


def test_an_exit_record_that_cannot_be_written_at_all_comes_from_the_shims_exit_status(disk_rig: Rig) -> None:
    p = disk_rig.p
    p.env.update(AURA_MIN_DISK_FREE_MB="0", AURA_WORKER_MAX_OUTPUT_MB="0")
    disk_rig.start("supervisor", "watchdog")
    reserve = p.paths.worker_dir("gone") / "exit.reserve"
    disk_rig.spawn_argv("gone", ["/bin/sh", "-c", f"rm -f {reserve}; {FLOOD}"])
    done = wait_for(lambda: disk_rig.exited("gone"), 30, what="the worker to end")
    assert not (p.paths.worker_dir("gone") / "exit.json").exists()
    assert done["outcome"] == "failed" and done["exit"]["exit_code"] == 7, done
    assert done["exit"]["recovered_from"] == "shim exit status" and "file system is full" in done["note"]


def test_a_spawn_on_a_full_disk_fails_with_a_reason_that_names_the_disk(disk_rig: Rig) -> None:
    p = disk_rig.p
    p.env.update(AURA_MIN_DISK_FREE_MB="0")
    disk_rig.start("supervisor", "watchdog")
    fill(p.paths.data)
    from aura.ipc.client import RemoteError

    try:
        rec = disk_rig.call(
            "supervisor",
            "spawn",
            {"worker_id": "late", "task_id": "late", "backend": "shell", "argv": ["true"]},
            timeout=30.0,
        )
    except RemoteError as exc:
        reason = f"{exc.code}: {exc.message}"
    else:
        assert rec["state"] == "exited", rec
        reason = str(rec["exit"].get("error"))
    assert "disk is full" in reason or "file system is full" in reason, reason
    assert "the shim did not report a launch" not in reason or "full" in reason
