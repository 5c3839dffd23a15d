"""The maintenance commands (clean-workspaces, cleanup, restart, token-stats, cache-stats,
changelog-overview) on folders laid out as Aura writes them: real runs where the point is what
runs, files written by Aura's own writers elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from aura.brain.changelog import TaskFileChangelog
from aura.brain.costs import CostBook
from aura.brain.model_client import Usage
from aura.brain.state import StateStore, add_task, new_state, new_task
from aura.runtime.config import load_config
from aura.runtime.fsutil import atomic_write_json, read_json
from aura.runtime.paths import ProjectPaths
from tests.support.harness import Project, wait_for

DAY = 86400


def _age_worker(project: Project, wid: str, task_id: str, days: float) -> None:
    """Make a finished worker and its workspace look `days` old (its exit time and file times)."""
    old = time.time() - days * DAY
    wdir = project.paths.worker_dir(wid)
    exit_rec = read_json(wdir / "exit.json")
    exit_rec["ended_at"] = old
    atomic_write_json(wdir / "exit.json", exit_rec)
    for folder in (wdir, project.paths.task_dir(task_id)):
        for p in [*folder.rglob("*"), folder]:
            os.utime(p, (old, old), follow_symlinks=False)


def _task_ids(project: Project) -> dict[str, str]:
    """Task title word -> task id, from the brain's state."""
    state = read_json(project.paths.state_dir / "state.json")
    return {t["title"].split()[0]: tid for tid, t in state["tasks"].items() if tid != "ROOT"}


def test_clean_workspaces_keeps_running_workers_and_removes_old_finished_ones(project: Project) -> None:
    project.write_task("# Two\n\n- [ ] quick `true`\n- [ ] wait `sleep 60`\n")
    project.up()
    wait_for(
        lambda: len(_task_ids(project)) == 2 if (project.paths.state_dir / "state.json").exists() else False,
        what="two tasks",
    )
    ids = _task_ids(project)
    quick, wait = ids["quick"], ids["wait"]

    def worker_of(task_id: str, key: str) -> dict | None:
        return next((w for w in project.workers().values() if w["task_id"] == task_id and w.get(key)), None)

    qw = wait_for(lambda: worker_of(quick, "exit_file"), what="the quick worker to finish")["worker_id"]
    ww = wait_for(lambda: worker_of(wait, "worker_pid"), what="the waiting worker to start")["worker_id"]

    # the default (dry run) lists but removes nothing
    out = project.aura("clean-workspaces", "--all").stdout
    assert qw in out and "dry run" in out
    assert ww not in out.split("kept")[0], "a running worker was listed for removal"
    assert f"kept worker {ww}: running" in out
    assert project.paths.worker_dir(qw).is_dir() and project.paths.task_dir(quick).is_dir()

    # young folders stay; the age comes from AURA_TASK_CLEANUP_AGE unless --age says otherwise
    _age_worker(project, qw, quick, 8)
    project.env["AURA_TASK_CLEANUP_AGE"] = "30"
    out = project.aura("clean-workspaces", "--no-dry-run").stdout
    assert "nothing to remove" in out and project.paths.worker_dir(qw).is_dir()
    del project.env["AURA_TASK_CLEANUP_AGE"]
    out = project.aura("clean-workspaces", "--no-dry-run").stdout  # default 7 days
    assert "freed" in out
    assert not project.paths.worker_dir(qw).exists() and not project.paths.task_dir(quick).exists()
    assert project.paths.worker_dir(ww).is_dir() and project.paths.task_dir(wait).is_dir()
    assert project.daemon_pid("supervisor"), "the run was disturbed"

    # daemons down, worker alive, task marked finished: judged from disk, the worker still stays
    project.remember()
    project.aura("down", "--keep-workers")
    state = read_json(project.paths.state_dir / "state.json")
    state["tasks"][wait]["status"] = "completed"
    atomic_write_json(project.paths.state_dir / "state.json", state)
    out = project.aura("clean-workspaces", "--all", "--no-dry-run").stdout
    assert f"kept worker {ww}: running (shim pid" in out
    assert f"kept workspace {wait}: worker {ww} is not finished" in out
    assert (project.paths.worker_dir(ww) / "launch.json").is_file() and project.paths.task_dir(wait).is_dir()


def _write_worker(paths: ProjectPaths, wid: str, task_id: str, *, exited: bool, pid: int | None = None) -> Path:
    """A worker folder with the files the supervisor (record.json) and the shim (launch.json,
    exit.json) write."""
    wdir = paths.worker_dir(wid)
    wdir.mkdir(parents=True)
    task_dir = paths.task_dir(task_id)
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / "output.txt").write_text("x" * 5000)
    created = psutil.Process(pid).create_time() if pid else 1.0
    launch = {
        "shim_pid": pid or 999999,
        "shim_create_time": created,
        "worker_pid": pid or 999999,
        "worker_create_time": created,
        "pgid": pid or 999999,
        "started_at": time.time() - 20 * DAY,
    }
    atomic_write_json(wdir / "launch.json", launch)
    rec = {
        "worker_id": wid,
        "task_id": task_id,
        "task_dir": str(task_dir),
        "backend": "shell",
        "created_at": time.time() - 20 * DAY,
        "state": "exited" if exited else "running",
        **launch,
    }
    atomic_write_json(wdir / "record.json", rec)
    if exited:
        atomic_write_json(wdir / "exit.json", {"exit_code": 0, "signal": None, "ended_at": time.time() - 20 * DAY})
    old = time.time() - 20 * DAY
    for folder in (wdir, task_dir):
        for p in [*folder.rglob("*"), folder]:
            os.utime(p, (old, old))
    return wdir


def _dirs(paths: ProjectPaths) -> None:
    """The data folders `aura up` makes (not the socket folder: the tests' CLI computes its own)."""
    for folder in (paths.state_dir, paths.run_dir, paths.workers_dir, paths.workspace_dir, paths.events_dir):
        folder.mkdir(parents=True, exist_ok=True)


def test_clean_workspaces_from_disk_guards_live_processes_and_unfinished_tasks(project: Project) -> None:
    paths = project.paths
    _dirs(paths)
    state = new_state("m", str(project.root / "task.md"))
    for tid, status in (("Tdone", "completed"), ("Tlive", "completed"), ("Tpend", "pending"), ("Tfail", "failed")):
        add_task(state, {**new_task(tid, tid), "status": status})
    atomic_write_json(paths.state_dir / "state.json", state)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_worker(paths, "Tdone-1", "Tdone", exited=True)
        _write_worker(paths, "Tlive-1", "Tlive", exited=False, pid=sleeper.pid)
        _write_worker(paths, "Tpend-1", "Tpend", exited=True)
        _write_worker(paths, "Tdead-1", "Tgone", exited=False)  # no exit.json, process gone: not known to be done
        paths.task_dir("Tfail").mkdir(parents=True)
        out = project.aura("clean-workspaces", "--age", "1", "--no-dry-run").stdout
        assert "kept worker Tlive-1: running (shim pid" in out
        assert "kept workspace Tlive: worker Tlive-1 is not finished" in out
        assert "kept worker Tpend-1: task Tpend is pending" in out and "kept workspace Tpend: task is pending" in out
        assert "kept worker Tdead-1: not finished (no exit.json)" in out
        assert not paths.worker_dir("Tdone-1").exists() and not paths.task_dir("Tdone").exists()
        assert paths.task_dir("Tfail").exists(), "a fresh workspace went despite --age"
        for kept in (
            paths.worker_dir("Tlive-1"),
            paths.task_dir("Tlive"),
            paths.worker_dir("Tpend-1"),
            paths.task_dir("Tpend"),
            paths.worker_dir("Tdead-1"),
        ):
            assert kept.is_dir(), kept
        assert "Total: 2 folder(s)" in out  # Tdone's worker folder and workspace
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_restart_keeps_the_old_run_aside_and_starts_a_new_one(project: Project, monkeypatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)  # as in the CLI's environment (tests/support/harness.py)
    project.write_task("# Quick\n\n- [ ] quick `true`\n")
    project.up()
    wait_for(
        lambda: ((project.status().get("brain") or {}).get("run") or {}).get("finished"),
        30,
        what="the first run to finish",
    )
    old_state = read_json(project.paths.state_dir / "state.json")
    brain_pid = project.daemon_pid("brain")

    bad = project.aura("restart", "missing.md", check=False)
    assert bad.returncode != 0 and "does not exist" in bad.stderr
    assert project.daemon_pid("brain") == brain_pid and not list(project.paths.data.glob("state.restart-*"))

    refused = project.aura("cleanup", "--force", check=False)  # the daemons run: nothing may go
    assert refused.returncode != 0 and "already running" in refused.stderr
    assert project.paths.runtime_dir.is_dir()

    before = time.time()
    out = project.aura("restart", "-d", "task.md").stdout
    assert "previous run is kept in" in out
    archives = list(project.paths.data.glob("state.restart-*"))
    assert len(archives) == 1
    kept = read_json(archives[0] / "state.json")
    assert kept["created_at"] == old_state["created_at"] and kept["run"]["finished"]
    old_workers = [p.name for p in (archives[0] / "previous-run" / "workers").iterdir()]
    assert old_workers and (archives[0] / "previous-run" / "workspace").is_dir()

    wait_for(
        lambda: ((project.status().get("brain") or {}).get("run") or {}).get("finished"),
        30,
        what="the new run to finish",
    )
    new = read_json(project.paths.state_dir / "state.json")
    assert new["created_at"] > old_state["created_at"]
    assert project.daemon_pid("brain") != brain_pid
    # the new run ran its own worker (the old records, with the same ids, are out of the way)
    exits = [read_json(p / "exit.json") for p in project.paths.workers_dir.iterdir()]
    assert exits and all(e and e["ended_at"] >= before for e in exits)

    # a clean `aura down` removes the socket folder itself; the one a crashed run leaves behind
    # is listed by cleanup and removed only with --force
    project.aura("down")
    assert not project.paths.runtime_dir.exists()
    project.paths.runtime_dir.mkdir(mode=0o700)
    (project.paths.runtime_dir / "brain.sock").touch()
    listed = project.aura("cleanup").stdout
    assert str(project.paths.runtime_dir) in listed and project.paths.runtime_dir.is_dir()
    project.aura("cleanup", "--force")
    assert not project.paths.runtime_dir.exists()


def test_cleanup_lists_then_removes_stale_leftovers_only(project: Project) -> None:
    paths = project.paths
    _dirs(paths)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(dead.pid).create_time()
    dead.wait()
    atomic_write_json(paths.pidfile("brain"), {"pid": dead.pid, "create_time": created, "state": "running"})
    atomic_write_json(paths.pidfile("watchdog"), {"pid": dead.pid, "create_time": created, "state": "stopped"})
    old_ts = int(time.time() - 10 * DAY)
    old_corrupt = paths.state_dir / f"state.json.corrupt-{old_ts}"
    new_corrupt = paths.state_dir / f"state.json.corrupt-{int(time.time())}"
    for p in (old_corrupt, new_corrupt):
        p.write_text("{broken")
    tmp = paths.state_dir / ".state.json.4242.3.tmp"
    tmp.write_text("{")
    os.utime(tmp, (old_ts, old_ts))
    keep = [paths.pidfile("watchdog"), new_corrupt, paths.state_dir / "state.json.bak"]
    keep[-1].write_text("{}")

    listed = project.aura("cleanup").stdout
    for p in (paths.pidfile("brain"), old_corrupt, tmp):
        assert str(p) in listed and p.exists()
    for p in keep:
        assert str(p) not in listed
    assert "nothing was deleted" in listed
    project.aura("cleanup", "--force")
    for p in (paths.pidfile("brain"), old_corrupt, tmp):
        assert not p.exists(), p
    for p in keep:
        assert p.exists(), p
    assert "nothing left over" in project.aura("cleanup").stdout


PRICE_ENV = {
    "AURA_TOKEN_PRICE_CACHE_HIT": "0.1",
    "AURA_TOKEN_PRICE_CACHE_MISS": "1.0",
    "AURA_TOKEN_PRICE_OUTPUT": "2.0",
    "AURA_WORKER_TOKEN_PRICE_CACHE_MISS": "3.0",
}


def _recorded_usage(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three brain calls and one worker, written by Aura's own cost book."""
    paths = project.paths
    _dirs(paths)
    monkeypatch.setenv("AURA_HOME", project.env["HOME"] + "/.aura")  # not this user's global config
    cfg = load_config(project.root, environ=PRICE_ENV)
    book = CostBook(paths.state_dir, cfg)
    state = new_state("m")
    book.record_call(
        state,
        source="run_cycle",
        cycle=1,
        model="m1",
        provider="p",
        usage=Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=0, cache_write_tokens=500),
    )
    book.record_call(
        state,
        source="run_cycle",
        cycle=2,
        model="m1",
        provider="p",
        usage=Usage(input_tokens=500, output_tokens=50, cache_read_tokens=1500),
    )
    book.record_call(
        state, source="review_cycle", cycle=3, model="m1", provider="p", usage=Usage(input_tokens=200, output_tokens=20)
    )
    book.ingest_workers(
        state,
        {
            "T1-1": {
                "task_id": "T1",
                "state": "exited",
                "progress": {
                    "model": "wm",
                    "input_tokens": 10,
                    "output_tokens": 5,
                    "cache_read_tokens": 1000,
                    "total_cost_usd": 0.5,
                },
            }
        },
    )
    state.setdefault("llm", {}).update(model_cycles=3, skipped_total=4)
    StateStore(paths.state_dir).save(state)


def test_token_stats_per_source_with_hit_rate_and_saved_cost(project: Project, monkeypatch) -> None:
    project.env.update(PRICE_ENV)
    _recorded_usage(project, monkeypatch)
    s = json.loads(project.aura("token-stats", "--json").stdout)
    run = s["sources"]["brain/run_cycle"]
    assert run["calls"] == 2 and run["input_tokens"] == 1500 and run["cache_read_tokens"] == 1500
    assert run["hit_rate"] == pytest.approx(1500 / 3500, abs=1e-4)
    assert run["saved_usd"] == pytest.approx(1500 * (1.0 - 0.1) / 1e6)
    assert s["sources"]["brain/review_cycle"]["calls"] == 1
    worker = s["sources"]["worker/wm"]
    assert worker["calls"] == 1 and worker["saved_usd"] == pytest.approx(1000 * (3.0 - 0.1) / 1e6)
    assert s["total"]["calls"] == 4 and s["brain_calls"] == 3 and s["skipped_cycles"] == 4
    assert s["workers_reported_usd"] == 0.5
    text = project.aura("token-stats").stdout
    assert "brain/run_cycle" in text and "worker/wm" in text and "4 skipped it" in text


def test_cache_stats_and_neither_imports_the_model_sdk(project: Project, monkeypatch) -> None:
    project.env.update(PRICE_ENV)
    _recorded_usage(project, monkeypatch)
    c = json.loads(project.aura("cache-stats", "--json").stdout)
    assert c["total"]["cache_read_tokens"] == 2500 and c["total"]["cache_write_tokens"] == 500
    assert c["total"]["hit_rate"] == pytest.approx(2500 / (1700 + 10 + 2500 + 500), abs=1e-4)
    assert "FROM-CACHE" in project.aura("cache-stats").stdout
    code = (
        "import sys\nfrom aura.cli import cli\nfor cmd in ('token-stats', 'cache-stats', 'changelog-overview'):\n"
        "    try:\n        cli([cmd], prog_name='aura')\n    except SystemExit:\n        pass\n"
        "print('SDK', 'anthropic' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=project.root, env=project.env, capture_output=True, text=True, timeout=60
    )
    assert "SDK False" in proc.stdout, proc.stdout + proc.stderr


def test_changelog_overview_aggregates_runs_and_writes_the_file(project: Project) -> None:
    paths = project.paths
    _dirs(paths)
    task = project.write_task("# Goal\n\n- [ ] one\n")
    # an earlier run that `aura restart` kept aside
    archive = paths.data / "state.restart-20250101-000000"
    archive.mkdir()
    old = new_state("Goal", str(task))
    TaskFileChangelog(archive).check(old, 1)
    atomic_write_json(archive / "state.json", old)
    # the current run: first version, then a change the llm planner has not replanned yet
    state = new_state("Goal", str(task))
    log = TaskFileChangelog(paths.state_dir)
    log.check(state, 1)
    task.write_text("# Goal\n\n- [ ] one\n- [ ] two\n")
    log.check(state, 2)
    state["llm"] = {}
    atomic_write_json(paths.state_dir / "state.json", state)

    out = project.aura("changelog-overview").stdout
    assert "current run: 2 version(s), 1 change(s), 1 processed, 1 waiting" in out
    assert "state.restart-20250101-000000: 1 version(s), 0 change(s), 1 processed, 0 waiting" in out
    md = (paths.data / "changelog_overview.md").read_text()
    assert "| current run |" in md and "1 requirement line(s) added" in md
    assert "Total: 3 version(s) in 2 run(s), 2 processed, 1 waiting" in md
