"""The chaos run, short: kill -9 random daemons while workers run, then count what was lost.
Plus tests of the races that a long run under load exposes.

The short run takes about a minute; `python bench/chaos.py` is the long one (3 minutes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aura.runtime import peers
from aura.runtime.config import load_config
from aura.runtime.fsutil import atomic_write_json, read_json
from aura.runtime.paths import ProjectPaths
from aura.supervisor.main import SHIM
from bench.chaos import ChaosConfig, print_report, run_chaos
from tests.support.harness import Project, alive, wait_for


@pytest.mark.timeout(420)
def test_short_chaos_run_loses_nothing() -> None:
    """~40 s of kill -9 every 1.5-3 s with 6 workers at a time, then drain: every figure but the
    counts of kills and workers must be zero."""
    lines: list[str] = []
    report = run_chaos(
        ChaosConfig(duration_s=40, kill_every_s=(1.5, 3.0), concurrency=6, drain_timeout_s=120), log=lines.append
    )
    print_report(report, log=lines.append)
    text = "\n".join(lines)
    assert report.kills >= 8, text
    assert report.workers_started >= 20 and report.tasks >= 20, text
    assert report.ok, text


@pytest.mark.timeout(420)
def test_short_chaos_run_in_git_mode_merges_each_task_once_with_brain_kills_inside_merges() -> None:
    """The same run on a git repository: brain kills aimed at merges; every completed task merged into the
    integration branch exactly once, the user's tree untouched, nothing left after clean-workspaces."""
    lines: list[str] = []
    report = run_chaos(
        ChaosConfig(duration_s=25, kill_every_s=(1.5, 3.0), concurrency=4, drain_timeout_s=120, git=True),
        log=lines.append,
    )
    print_report(report, log=lines.append)
    text = "\n".join(lines)
    assert report.brain_kills_in_merge >= 2 and report.tasks >= 10, text
    assert report.ok, text


# -- regressions ----------------------------------------------------------------------------------------


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **kw: self.lines.append((event, kw))


def _keeper(tmp_path: Path, argv: list[str]) -> tuple[peers.PeerKeeper, ProjectPaths]:
    """A PeerKeeper for the brain, in a fake supervisor, with a launch spec whose brain is `argv`."""
    paths = ProjectPaths.for_root(tmp_path)
    paths.run_dir.mkdir(parents=True)
    paths.logs_dir.mkdir(parents=True)
    spec = {
        "desired": "up",
        "started_at": time.time(),
        "cwd": str(tmp_path),
        "env": {},
        "daemons": {"brain": {"argv": argv}},
    }
    paths.launch_file.write_text(json.dumps(spec))
    cfg = load_config(tmp_path, environ={"AURA_RESTART_MAX": "5", "AURA_RESTART_WINDOW_SECONDS": "60"})
    daemon = SimpleNamespace(
        cfg=cfg,
        paths=paths,
        name="supervisor",
        stopping=False,
        log=_Log(),
        publish=lambda *a, **kw: None,
        call_every=lambda *a, **kw: None,
    )
    return peers.PeerKeeper(daemon, ["brain"]), paths  # type: ignore[arg-type]


def _started(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen]:
    started: list[subprocess.Popen] = []
    real = peers.start_daemon

    def record(spec: dict, name: str, stdio: Path) -> subprocess.Popen:
        child = real(spec, name, stdio)
        started.append(child)
        return child

    monkeypatch.setattr(peers, "start_daemon", record)
    return started


def _stop(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)


def test_a_slow_starting_peer_is_not_started_again_before_it_takes_its_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load a restarted daemon can need more than the first backoff (0.5 s) to take its
    lock. A keeper that started a second and a third copy meanwhile would count each as a restart
    (they exit at once, "already running"): one crash would use up to 3 of the 5 restarts allowed
    per minute, the backoff would double each time, and two crashes in a minute could make the
    keeper give up on a daemon for good (and with it, for the watchdog, enforcement)."""
    keeper, _ = _keeper(tmp_path, [sys.executable, "-c", "import time; time.sleep(30)"])
    started = _started(monkeypatch)
    try:
        keeper.check()
        assert len(started) == 1
        deadline = time.monotonic() + 2.0  # four backoffs of the first restart
        while time.monotonic() < deadline:
            keeper.check()
            time.sleep(0.1)
        assert len(started) == 1, "a second copy was started while the first was still starting"
        assert len(keeper.history["brain"]) == 1
    finally:
        _stop(started)


def test_a_peer_that_never_takes_its_lock_is_stopped_and_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of the fix: a copy hung before its lock for longer than the start grace is
    killed by PID (not left behind) and a new one is started."""
    monkeypatch.setattr(peers, "START_GRACE", 0.5)
    keeper, _ = _keeper(tmp_path, [sys.executable, "-c", "import time; time.sleep(30)"])
    started = _started(monkeypatch)
    try:
        keeper.check()
        time.sleep(1.2)
        keeper.check()
        assert len(started) == 2
        started[0].wait(timeout=5)
        assert not alive(started[0].pid, None)
    finally:
        _stop(started)


def _interrupted_spawn(project: Project, wid: str, created_ago: float) -> Path:
    """The registry as a supervisor killed mid-spawn leaves it: a `starting` record, no launch record."""
    wdir = project.paths.worker_dir(wid)
    task_dir = project.root / "work"
    task_dir.mkdir(exist_ok=True)
    atomic_write_json(
        wdir / "record.json",
        {
            "worker_id": wid,
            "task_id": "ghost",
            "backend": "shell",
            "argv": ["/bin/sh", "-c", "true"],
            "cwd": str(project.root),
            "task_dir": str(task_dir),
            "output": str(task_dir / "out.txt"),
            "error_log": str(task_dir / "err.txt"),
            "budget_s": 0,
            "limits": {},
            "meta": {},
            "created_at": time.time() - created_ago,
            "state": "starting",
        },
    )
    return wdir


def _record(project: Project, wid: str) -> dict:
    return read_json(project.paths.worker_dir(wid) / "record.json") or {}


def test_a_shim_still_starting_when_the_supervisor_restarts_is_adopted_not_lost(project: Project) -> None:
    """The supervisor can be killed between saving a `starting` record and its shim writing its
    start report (launch.json). A shim that is slow to start under load goes on to run the
    worker, so the next supervisor must wait for the report: calling the worker lost at once
    would leave a lost record for a worker that runs, and a brain that starts the task twice."""
    project.write_task("# Nothing\n\n- [x] done `true`\n")
    wdir = _interrupted_spawn(project, "ghost-1", created_ago=0.0)
    project.up()  # the new supervisor adopts the registry as it finds it
    ledger = project.root / "ledger.txt"
    shim = subprocess.Popen(
        [
            sys.executable,
            "-I",
            SHIM,
            "--dir",
            str(wdir),
            "--cwd",
            str(project.root),
            "--stdout",
            str(wdir / "out.txt"),
            "--stderr",
            str(wdir / "err.txt"),
            "--grace",
            "1",
            "--",
            "/bin/sh",
            "-c",
            f"sleep 1; echo ran >> {ledger}",
        ],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        rec = wait_for(
            lambda: (r := _record(project, "ghost-1")).get("state") == "exited" and r,
            30,
            what="the adopted worker's exit",
        )
        project.remember()
        assert rec["outcome"] == "succeeded", rec
        assert ledger.read_text() == "ran\n"
    finally:
        shim.wait(timeout=30)


def test_a_spawn_that_never_launched_is_recorded_as_never_started_not_lost(project: Project) -> None:
    """The other case of the same interruption: killed before the shim existed. Nothing ran, and
    the record says so (a spawn failure), instead of a lost worker whose shim "ended"."""
    project.write_task("# Nothing\n\n- [x] done `true`\n")
    _interrupted_spawn(project, "ghost-2", created_ago=60.0)
    project.up()
    rec = wait_for(
        lambda: (r := _record(project, "ghost-2")).get("state") == "exited" and r,
        30,
        what="the interrupted spawn to be settled",
    )
    assert rec["outcome"] != "lost", rec
    assert "never started" in (rec.get("exit") or {}).get("error", ""), rec
