"""Stopping and restarting, the hostile way: output pipes that close, stop signals to a
foreground `aura up`, a daemon frozen with SIGSTOP, a slow start under load, a run whose
keeper gave up on a daemon, the runtime folder after `aura down`. Real daemons, real
signals, real shell pipelines, long-running shell workers."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from aura.runtime.fsutil import read_json
from tests.support.harness import Project, wait_for

LONG_TASK = "# Long\n\n- [ ] long `sleep 600`\n"


def _running_worker(p: Project) -> dict:
    return wait_for(
        lambda: next((w for w in p.workers().values() if w.get("worker_pid")), None), 30, what="a running worker"
    )


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _shell(p: Project, pipeline: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """Run `pipeline` in bash, `aura` standing for this project's CLI; exit status of its first command."""
    aura = f"{shlex.quote(sys.executable)} -m aura.cli"
    proc = subprocess.run(
        ["/bin/bash", "-c", pipeline.replace("aura ", aura + " ") + "; exit ${PIPESTATUS[0]}"],
        cwd=p.root,
        env=p.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    p.remember()
    return proc


def _peers(p: Project, keeper: str) -> dict:
    return (read_json(p.paths.run_dir / f"{keeper}.peers.json") or {}).get("peers") or {}


def _log_events(p: Project, daemon: str, event: str) -> list[dict]:
    path = p.paths.logfile(daemon)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == event:
            out.append(rec)
    return out


# -- 6: a closed output pipe ---------------------------------------------------------------------------------


def test_down_piped_into_head_still_stops_daemons_and_workers(project: Project) -> None:
    project.write_task(LONG_TASK)
    project.up()
    worker = _running_worker(project)
    project.remember()
    proc = _shell(project, "aura down | head -1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Stopping Aura in") and proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr
    assert project.survivors() == [], f"left running after `aura down | head -1` (worker pid {worker['worker_pid']})"


def test_up_detached_piped_into_head_still_starts_all_three(project: Project) -> None:
    project.write_task(LONG_TASK)
    proc = _shell(project, "aura up -d task.md | head -1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and "Traceback" not in proc.stderr
    assert all(project.daemon_pid(n) for n in ("supervisor", "watchdog", "brain")), project.status()
    _running_worker(project)


# -- 7: SIGTERM / SIGHUP to a foreground `aura up` ----------------------------------------------------------------


@pytest.mark.parametrize("sig,code,words", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP")])
def test_foreground_up_stops_everything_on_sigterm_and_sighup(
    project: Project, sig: int, code: int, words: str
) -> None:
    project.write_task(LONG_TASK)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aura.cli", "up", "task.md"],
        cwd=project.root,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        while not any("started (pid" in ln for ln in lines):  # the worker's start event
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line, "aura up ended early:\n" + "".join(lines)
            lines.append(line)
        worker = _running_worker(project)
        project.remember()
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, out
    assert f"{words}: stopping Aura and its workers" in out and "supervisor stopped" in out, out
    assert project.survivors() == [], out
    assert not _alive(worker["worker_pid"])
    rec = project.workers()[worker["worker_id"]]
    assert rec["state"] == "exited" and rec["outcome"] == "killed"


# -- 8: a hung daemon is replaced ---------------------------------------------------------------------------------

HOG = (
    "sleep 4; python3 -c \"import time; b = bytearray(300 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); "
    'time.sleep(60)"'
)


def test_a_stopped_watchdog_is_killed_replaced_and_enforces_again(project: Project) -> None:
    project.env.update(
        AURA_PEER_HANG_SECONDS="3", AURA_WORKER_MAX_SYSTEM_MEMORY_GB="0.2", AURA_MAX_CONCURRENT_TASKS="2"
    )
    project.write_task(f"# Hang\n\n- [ ] long `sleep 600`\n- [ ] hog `{HOG}`\n")
    project.up()
    worker = _running_worker(project)
    old = project.pidfile("watchdog")
    os.kill(old["pid"], signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        new = wait_for(
            lambda: project.daemon_pid("watchdog") not in (None, old["pid"]) and project.daemon_pid("watchdog"),
            30,
            what="a new watchdog",
        )
        replaced_after = time.monotonic() - stopped_at
    finally:
        if _alive(old["pid"]):
            os.kill(old["pid"], signal.SIGCONT)
    assert not _alive(old["pid"]), "the hung watchdog was killed, not left stopped"
    assert new != old["pid"] and replaced_after >= 3.0
    # the new watchdog enforces: the hog that grew while the old one was frozen is killed
    wait_for(lambda: any((project.paths.watchdog_dir / "kills").glob("*.json")), 40, what="a kill by the new watchdog")
    info = _peers(project, "supervisor")["watchdog"]
    assert info["count"] == 1 and len(info["restarts"]) == 1, info  # counted against AURA_RESTART_MAX
    assert "did not answer pings for" in info["last_reason"]
    out = project.aura("status").stdout
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("watchdog"))
    assert "running" in line and "restarted 1x: did not answer pings for" in line, out
    assert _alive(worker["worker_pid"]), "the worker outlived the watchdog's replacement"


def test_a_brain_running_a_long_acceptance_command_keeps_answering_and_is_not_replaced(
    project: Project, serve: Any
) -> None:
    """The other side: a daemon busy for longer than AURA_PEER_HANG_SECONDS in work of its own
    (here the brain running an acceptance command) still answers pings and is left alone."""
    from tests.support.llm import NO_OP, tool_step, use_llm

    server = serve(
        {
            "steps": [
                tool_step(
                    "decompose_task",
                    parent_task_id="ROOT",
                    subtasks=[
                        {
                            "id": "CHECK",
                            "description": "check",
                            "accept_commands": ["touch begun && sleep 6 && touch checked"],
                        }
                    ],
                ),
                tool_step(
                    "update_task_tree", task_id="CHECK", new_status="completed", reason="checked", evidence="accept"
                ),
            ],
            "default": NO_OP,
        }
    )
    use_llm(project, server, AURA_PEER_HANG_SECONDS="2")
    project.write_task("# Slow check\n\nCheck slowly.\n")
    project.up()
    brain = project.daemon_pid("brain")
    wait_for(lambda: (project.root / "begun").exists(), 40, what="the acceptance command to start")
    started = time.monotonic()
    st = project.status()
    assert time.monotonic() - started < 4.0 and not st["brain"].get("from_disk"), "the live brain answered"
    wait_for(lambda: (project.root / "checked").exists(), 30, what="the acceptance command to end")
    assert project.daemon_pid("brain") == brain
    assert not _log_events(project, "supervisor", "peer_hung")


# -- 9: a slow start is not taken for a crash -----------------------------------------------------------------------

SLOW_BRAIN = """\
import os, sys, time
if sys.argv[1:2] == ["brain"] and os.environ.get("SLOW_BRAIN_START"):
    time.sleep(float(os.environ["SLOW_BRAIN_START"]))  # a loaded machine: the brain takes its lock late
"""


def test_a_brain_slow_to_take_its_lock_during_up_is_not_started_twice(project: Project, tmp_path: Path) -> None:
    hook = tmp_path / "slowstart"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW_BRAIN)
    project.env["PYTHONPATH"] = os.pathsep.join((str(hook), project.env["PYTHONPATH"]))
    project.env["SLOW_BRAIN_START"] = "3"
    project.write_task(LONG_TASK)
    project.up()
    _running_worker(project)
    time.sleep(1.5)  # three more keeper checks
    assert not _log_events(project, "supervisor", "peer_restarted")
    assert not _log_events(project, "brain", "already_running")
    assert not (_peers(project, "supervisor").get("brain") or {}).get("restarts")


# -- 10: a keeper gave up: `aura up` starts the missing daemon ------------------------------------------------------


def test_up_after_a_keeper_gave_up_starts_the_missing_daemon_and_keeps_the_workers(project: Project) -> None:
    project.env.update(AURA_RESTART_MAX="1", AURA_RESTART_WINDOW_SECONDS="120")
    project.write_task(LONG_TASK)
    project.write_task("# Other\n\n- [ ] other `true`\n", name="other.md")
    project.up()
    worker = _running_worker(project)
    supervisor = project.daemon_pid("supervisor")
    first = project.kill9("brain")
    wait_for(lambda: project.daemon_pid("brain") not in (None, first), 30, what="the brain's one restart")
    project.kill9("brain")
    wait_for(
        lambda: (_peers(project, "supervisor").get("brain") or {}).get("gave_up"), 30, what="the keeper to give up"
    )

    st = project.aura("status", check=False)
    assert st.returncode == 3 and "brain      DOWN (gave up restarting it" in st.stdout
    assert "`aura up task.md` starts the missing daemons" in st.stdout, st.stdout

    other = project.aura("up", "-d", "other.md", check=False)
    assert other.returncode != 0 and "runs part of another task" in other.stderr, other.stderr
    assert "Traceback" not in other.stderr and project.daemon_pid("brain") is None

    up = project.aura("up", "-d", "task.md")
    assert "starting the brain" in up.stdout, up.stdout
    assert project.daemon_pid("brain") and project.daemon_pid("supervisor") == supervisor
    assert _alive(worker["worker_pid"]), "the worker kept running"
    wait_for(lambda: project.status()["brain"].get("cycles"), 20, what="a cycle of the new brain")
    assert len(project.workers()) == 1, "the running worker was kept, not started again"
    assert project.aura("status").returncode == 0
    wait_for(
        lambda: not (_peers(project, "supervisor").get("brain") or {}).get("gave_up"),
        10,
        what="the keeper to take the brain back (its next check)",
    )


# -- 11: no socket folder left behind ------------------------------------------------------------------------------


def test_a_clean_down_removes_the_runtime_folder(project: Project) -> None:
    project.write_task(LONG_TASK)
    project.up()
    runtime = project.paths.runtime_dir
    assert runtime.is_dir() and any(runtime.iterdir())
    project.aura("down")
    assert not runtime.exists(), f"left behind: {sorted(p.name for p in runtime.iterdir())}"
    project.up()  # and the next start makes it again
    assert runtime.is_dir() and all(project.daemon_pid(n) for n in ("supervisor", "watchdog", "brain"))


def test_restart_piped_into_head_still_stops_moves_aside_and_starts(project: Project) -> None:
    """The other commands that change state finish too (here `aura restart`, which stops the run,
    moves it aside and starts a new one)."""
    project.write_task(LONG_TASK)
    project.up()
    old_worker = _running_worker(project)
    old_brain = project.daemon_pid("brain")
    proc = _shell(project, "aura restart -d task.md | head -1")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert not _alive(old_worker["worker_pid"])
    assert len(list(project.paths.data.glob("state.restart-*"))) == 1
    assert all(project.daemon_pid(n) for n in ("supervisor", "watchdog", "brain"))
    assert project.daemon_pid("brain") != old_brain
