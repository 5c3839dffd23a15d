"""The watchdog's policy in one process: windows and strikes per limit, the one victim a
reserve shortfall is charged to, dry-run, cool-down, per-task overrides, run-time changes,
preflight answers, and the sampling code's bookkeeping (CPU from deltas, registry view).

Signals are recorded instead of sent: the sampling pass's `evaluate` is fed hand-made samples."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import aura.watchdog.kills as wkills
import aura.watchdog.main as wmain
import aura.watchdog.workers as wworkers
from aura.ipc.envelope import BadArgs
from aura.runtime.config import Config
from aura.runtime.fsutil import atomic_write_json, read_json
from aura.runtime.paths import ProjectPaths
from aura.runtime.records import WorkerRecords
from aura.supervisor.registry import Registry
from aura.watchdog.policy import (
    LIMITS,
    MIN_SAMPLES,
    Policy,
    WorkerWindow,
    check_task_limits,
    guard_mode,
    reserve_victim,
)
from aura.watchdog.sampler import NCPU, ProcStat, TreeSample, TreeTracker, read_tree, start_ticks
from aura.watchdog.workers import RegistryView, Watched
from tests.support.workloads import UNMET_RAM_RESERVE_GB

GB = 1024**3
STEP = 0.2  # seconds between hand-made samples (the poll interval)
BASE = {
    "AURA_WORKER_RESOURCE_POLL_SECONDS": "0.2",
    "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS": "1",
    "AURA_WORKER_RESOURCE_VIOLATION_STRIKES": "3",
    "AURA_WORKER_RESOURCE_COOLDOWN_SECONDS": "0",
    **{key: "0" for key in LIMITS},
}


def policy(**limits: float) -> Policy:
    values = {**BASE, "AURA_WORKER_RESOURCE_GUARD": "1", **{k: str(v) for k, v in limits.items()}}
    return Policy.from_values(values)


# -- pure policy --------------------------------------------------------------------------------------------


def test_window_needs_min_samples_then_counts_consecutive_strikes_and_resets() -> None:
    pol = policy(AURA_WORKER_MAX_SYSTEM_MEMORY_GB=1)
    win = WorkerWindow()
    limits = pol.limits
    seen = []
    for i, rss in enumerate([2, 2, 2, 0, 0, 2, 2, 2, 2]):
        over = win.add(i * STEP, {"rss_gb": float(rss)}, limits, pol)
        seen.append((win.strikes.get("AURA_WORKER_MAX_SYSTEM_MEMORY_GB", 0), bool(over)))
    # the first sample is alone in its window (a strike needs MIN_SAMPLES); every later window average
    # stays above 1 GB (the two zeros are diluted by the twos around them), so the strikes go on
    assert MIN_SAMPLES == 2
    assert seen == [
        (0, False),
        (1, False),
        (2, False),
        (3, True),
        (4, True),
        (5, True),
        (6, True),
        (7, True),
        (8, True),
    ]


def test_window_drops_old_samples_so_a_short_spike_fades() -> None:
    pol = policy(AURA_WORKER_MAX_SYSTEM_MEMORY_GB=1)
    pol.window_s = 0.25  # the current sample and the one before
    win = WorkerWindow()
    strikes = []
    for i, rss in enumerate([2, 2, 2, 0, 0, 2, 2, 2, 0]):
        assert win.add(i * STEP, {"rss_gb": float(rss)}, pol.limits, pol) == []
        strikes.append(win.strikes.get("AURA_WORKER_MAX_SYSTEM_MEMORY_GB", 0))
    assert strikes == [0, 1, 2, 0, 0, 0, 1, 2, 0]
    assert len(win.samples) == 2 and win.averages()["rss_gb"] == pytest.approx(1.0)


def test_every_limit_counts_its_own_strikes() -> None:
    pol = policy(
        AURA_WORKER_MAX_CPU_PERCENT=50, AURA_WORKER_MAX_SYSTEM_MEMORY_GB=1, AURA_WORKER_MAX_SYSTEM_MEMORY_PERCENT=90
    )
    win = WorkerWindow()
    over = []
    for i in range(4):
        over = win.add(i * STEP, {"cpu_percent": 90.0, "rss_gb": 3.0, "mem_percent": 10.0}, pol.limits, pol)
    assert {v.key for v in over} == {"AURA_WORKER_MAX_CPU_PERCENT", "AURA_WORKER_MAX_SYSTEM_MEMORY_GB"}
    assert win.strikes["AURA_WORKER_MAX_CPU_PERCENT"] == win.strikes["AURA_WORKER_MAX_SYSTEM_MEMORY_GB"] == 3
    assert win.strikes.get("AURA_WORKER_MAX_SYSTEM_MEMORY_PERCENT", 0) == 0
    rss = next(v for v in over if v.key == "AURA_WORKER_MAX_SYSTEM_MEMORY_GB")
    assert [round(a, 3) for _, a in rss.run] == [3.0, 3.0, 3.0] and rss.severity == pytest.approx(3.0)


def test_zero_disables_a_limit_and_missing_metrics_never_strike() -> None:
    pol = policy(AURA_WORKER_MAX_GPU_MEMORY_GB=1)
    win = WorkerWindow()
    for i in range(6):
        assert win.add(i * STEP, {"rss_gb": 500.0, "gpu_mem_gb": None}, pol.limits, pol) == []
    assert not any(win.strikes.values())


def test_reserve_is_a_floor_struck_when_below() -> None:
    pol = policy(AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB=4)
    win = WorkerWindow()
    over = []
    for i in range(4):
        over = win.add(i * STEP, {"system_free_gb": 1.0}, pol.limits, pol)
    assert [v.key for v in over] == ["AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB"]
    assert "below the reserve of 4GB" in over[0].describe() and over[0].severity == pytest.approx(4.0)


def test_running_sums_match_a_fresh_average_after_many_samples() -> None:
    pol = policy()
    win = WorkerWindow()
    values = [((i * 7919) % 97) / 7.0 for i in range(500)]
    for i, v in enumerate(values):
        win.add(i * STEP, {"cpu_percent": v, "gpu_util_percent": None}, pol.limits, pol)
    kept = [v for i, v in enumerate(values) if (len(values) - 1 - i) * STEP <= pol.window_s + 1e-9]
    assert len(win.samples) == len(kept)
    assert win.averages() == {"cpu_percent": pytest.approx(sum(kept) / len(kept))}


def test_guard_modes() -> None:
    assert [guard_mode(v) for v in ("1", "on", "dry-run", "DRY_RUN", "0", "off", "")] == [
        "on",
        "on",
        "dry-run",
        "dry-run",
        "off",
        "off",
        "off",
    ]


def test_per_task_limits_are_checked_and_merged_over_the_global_ones() -> None:
    pol = policy(AURA_WORKER_MAX_SYSTEM_MEMORY_GB=8, AURA_WORKER_MAX_CPU_PERCENT=80)
    mine = pol.for_worker({"AURA_WORKER_MAX_SYSTEM_MEMORY_GB": "2"})
    assert mine["AURA_WORKER_MAX_SYSTEM_MEMORY_GB"] == 2.0 and mine["AURA_WORKER_MAX_CPU_PERCENT"] == 80.0
    assert pol.limits["AURA_WORKER_MAX_SYSTEM_MEMORY_GB"] == 8.0  # the global policy is untouched
    unchecked = pol.for_worker({"AURA_WORKER_MAX_SYSTEM_MEMORY_GB": "nan", "AURA_WORKER_MAX_CPU_PERCENT": -5})
    assert unchecked == pol.limits  # malformed overrides (spawned while the watchdog was down) fall back
    assert check_task_limits({"AURA_WORKER_MAX_SYSTEM_MEMORY_GB": "2", "AURA_WORKER_MAX_CPU_PERCENT": 0}) == []
    problems = check_task_limits(
        {"AURA_WORKER_MAX_RAM": 1, "AURA_WORKER_MAX_CPU_PERCENT": "lots", "AURA_WORKER_MAX_GPU_MEMORY_GB": -1}
    )
    assert len(problems) == 3
    assert "'AURA_WORKER_MAX_RAM' is not a per-task limit" in problems[0] and "expected a number" in problems[1]
    assert ">= 0" in problems[2]


def test_reserve_victim_is_the_biggest_worker_above_the_floor_only() -> None:
    assert reserve_victim({"a": 5, "b": 9, "c": 1}, floor=4) == "b"
    assert reserve_victim({"a": 3, "b": 2}, floor=4) is None
    assert reserve_victim({}, floor=0) is None


# -- the daemon's policy, fed by hand ---------------------------------------------------------------------


class Dog:
    """A WatchdogDaemon (never run) whose signals are recorded, fed hand-made samples."""

    def __init__(self, root: Path, sent: list[tuple[int, int]], **cfg: Any):
        paths = ProjectPaths.for_root(root)
        paths.ensure()
        config = Config()
        for key, value in {**BASE, **{k: str(v) for k, v in cfg.items()}}.items():
            config.set(key, value, "test")
        self.d = wmain.WatchdogDaemon(paths, config)
        self.sent = sent
        self.t = 0.0

    def feed(self, workers: dict[str, float], limits: dict[str, dict] | None = None) -> None:
        """One sample at the next step: worker id -> RSS in GB (each worker's pgid is its index + 1000)."""
        self.t += STEP
        samples = {}
        for i, (wid, rss_gb) in enumerate(sorted(workers.items())):
            if wid not in self.d.watched:
                rec = {
                    "worker_id": wid,
                    "task_id": f"task-{wid}",
                    "worker_pid": 1000 + i,
                    "pgid": 1000 + i,
                    "limits": (limits or {}).get(wid, {}),
                }
                self.d.watched[wid] = Watched(rec)
            samples[wid] = TreeSample(t=self.t, pids=[], cpu_percent=0.0, rss_bytes=int(rss_gb * GB), nprocs=1)
            self.d.watched[wid].sample = samples[wid]
        self.d.sampling.evaluate(samples, None, self.t)

    def kill_record(self, wid: str) -> dict | None:
        return read_json(self.d.paths.watchdog_dir / "kills" / f"{wid}.json")

    def log(self) -> list[dict]:
        path = self.d.paths.logfile("watchdog")
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def make_dog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    sent: list[tuple[int, int]] = []
    alive: set[int] = set()

    def fake_signal(pgid: int | None, sig: int) -> bool:
        if sig == 0:
            return pgid in alive
        sent.append((pgid, sig))
        if sig == signal.SIGKILL:
            alive.discard(pgid)
        return True

    monkeypatch.setattr(wkills, "signal_group", fake_signal)
    monkeypatch.setattr(wkills, "group_alive", lambda pgid: pgid in alive)
    made: list[Dog] = []

    def make(**cfg: Any) -> Dog:
        dog = Dog(tmp_path / f"p{len(made)}", sent, **cfg)
        dog.alive = alive  # type: ignore[attr-defined]
        made.append(dog)
        return dog

    yield make
    for dog in made:
        dog.d.ctx.destroy(linger=0)


def test_kill_at_the_last_strike_with_the_samples_behind_it(make_dog: Callable[..., Dog]) -> None:
    dog = make_dog(AURA_WORKER_MAX_SYSTEM_MEMORY_GB=1)
    for _ in range(3):
        dog.feed({"w": 2.0})
        assert dog.sent == [] and dog.kill_record("w") is None
    dog.feed({"w": 2.0})
    assert dog.sent == [(1000, signal.SIGTERM)]
    rec = dog.kill_record("w")
    assert rec is not None
    assert rec["limit"] == "AURA_WORKER_MAX_SYSTEM_MEMORY_GB" and rec["strikes"] == 3 and rec["threshold"] == 1.0
    assert [s["average"] for s in rec["strike_averages"]] == [2.0, 2.0, 2.0]
    assert [s["rss_gb"] for s in rec["samples"]] == [2.0] * 4  # the first strike's window and every strike
    assert rec["task_id"] == "task-w" and rec["pgid"] == 1000 and rec["dry_run"] is False
    kill_lines = [r for r in dog.log() if r["event"] == "worker_resource_kill"]
    assert len(kill_lines) == 1 and kill_lines[0]["average"] == 2.0 and kill_lines[0]["strikes"] == 3


def test_reserve_shortfall_is_charged_to_one_victim(make_dog: Callable[..., Dog]) -> None:
    dog = make_dog(AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB=UNMET_RAM_RESERVE_GB)
    for _ in range(4):
        dog.feed({"small": 0.05, "mid": 0.5, "big": 1.0})
    assert dog.sent == [(1000, signal.SIGTERM)]  # "big" sorts first: pgid 1000
    assert dog.kill_record("big")["limit"] == "AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB"
    for wid in ("small", "mid"):
        assert not dog.d.watched[wid].window.strikes.get("AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB")


def test_reserve_spares_workers_too_small_to_matter(make_dog: Callable[..., Dog]) -> None:
    dog = make_dog(AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB=UNMET_RAM_RESERVE_GB)
    for _ in range(6):
        dog.feed({"a": 0.05, "b": 0.1})
    assert dog.sent == []


def test_reserve_of_a_task_counts_when_its_worker_is_the_victim(make_dog: Callable[..., Dog]) -> None:
    dog = make_dog()  # no global reserve
    key = "AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB"
    own = {"big": {key: 10**6}, "mid": {key: 0}}
    for _ in range(4):
        dog.feed({"mid": 0.5, "big": 1.0}, limits=own)
    assert dog.sent == [(1000, signal.SIGTERM)]
    assert dog.kill_record("big")["limit"] == "AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB"


def test_one_victim_at_a_time_the_worst_first(make_dog: Callable[..., Dog]) -> None:
    dog = make_dog(AURA_WORKER_MAX_SYSTEM_MEMORY_GB=1)
    dog.alive.update({1000, 1001})  # type: ignore[attr-defined]
    for _ in range(4):
        dog.feed({"a": 1.5, "b": 3.0})
    assert dog.sent == [(1001, signal.SIGTERM)]  # b is 3x over, a 1.5x
    for _ in range(3):  # a keeps striking, but b's kill is still pending (its group is alive)
        dog.feed({"a": 1.5})
    assert dog.sent == [(1001, signal.SIGTERM)]
    dog.alive.discard(1001)  # type: ignore[attr-defined]
    dog.d.kills.finish()
    dog.feed({"a": 1.5})
    assert dog.sent == [(1001, signal.SIGTERM), (1000, signal.SIGTERM)]


def test_cooldown_holds_the_next_kill(make_dog: Callable[..., Dog]) -> None:
    dog = make_dog(AURA_WORKER_MAX_SYSTEM_MEMORY_GB=1, AURA_WORKER_RESOURCE_COOLDOWN_SECONDS=3600)
    for _ in range(4):
        dog.feed({"a": 1.5, "b": 3.0})
    dog.d.kills.finish()  # b's group is gone at once
    assert dog.d.kills.pending == {}
    for _ in range(5):
        dog.feed({"a": 1.5})
    assert dog.sent == [(1001, signal.SIGTERM)]
    dog.d.kills.cooldown_until = 0.0  # the cool-down is over
    dog.feed({"a": 1.5})
    assert dog.sent[-1] == (1000, signal.SIGTERM)


def test_sigkill_follows_when_the_group_outlives_the_grace(make_dog: Callable[..., Dog]) -> None:
    dog = make_dog(AURA_WORKER_MAX_SYSTEM_MEMORY_GB=1)
    dog.alive.add(1000)  # type: ignore[attr-defined]
    for _ in range(4):
        dog.feed({"w": 2.0})
    _, pgid = dog.d.kills.pending["w"]
    dog.d.kills.pending["w"] = (time.monotonic() - 1, pgid)  # the grace period is over
    dog.d.kills.finish()
    assert dog.sent == [(1000, signal.SIGTERM), (1000, signal.SIGKILL)]


def test_dry_run_kills_nothing_and_logs_what_it_would_kill(make_dog: Callable[..., Dog]) -> None:
    dog = make_dog(AURA_WORKER_MAX_SYSTEM_MEMORY_GB=1, AURA_WORKER_RESOURCE_GUARD="dry-run")
    for _ in range(7):
        dog.feed({"w": 2.0})
    assert dog.sent == [] and dog.kill_record("w") is None and dog.d.kills.pending == {}
    would = [r for r in dog.log() if r["event"] == "would_kill"]
    assert len(would) == 2  # samples 4 and 7: the 3rd strike, then the strikes start over
    assert would[0]["worker"] == "w" and would[0]["average"] == 2.0
    assert "AURA_WORKER_MAX_SYSTEM_MEMORY_GB" in would[0]["reason"]


def test_guard_off_samples_but_never_acts(make_dog: Callable[..., Dog]) -> None:
    dog = make_dog(AURA_WORKER_MAX_SYSTEM_MEMORY_GB=1, AURA_WORKER_RESOURCE_GUARD="0")
    for _ in range(6):
        dog.feed({"w": 2.0})
    assert dog.sent == [] and not [r for r in dog.log() if r["event"] == "would_kill"]
    assert dog.d.handlers()["usage"]({})["workers"]["w"]["rss_bytes"] == 2 * GB


def test_per_task_override_applies_to_its_worker_only(make_dog: Callable[..., Dog]) -> None:
    dog = make_dog()  # no global memory limit
    over = {"a": {"AURA_WORKER_MAX_SYSTEM_MEMORY_GB": "1"}}
    for _ in range(4):
        dog.feed({"a": 2.0, "b": 2.0}, limits=over)
    assert dog.sent == [(1000, signal.SIGTERM)]
    assert dog.kill_record("a")["overrides"] == {"AURA_WORKER_MAX_SYSTEM_MEMORY_GB": "1"}
    usage = dog.d.handlers()["usage"]({})["workers"]
    assert usage["a"]["limits"]["AURA_WORKER_MAX_SYSTEM_MEMORY_GB"] == 1.0
    assert usage["b"]["limits"]["AURA_WORKER_MAX_SYSTEM_MEMORY_GB"] == 0.0 and usage["b"]["strikes"] == {}


def test_run_time_change_is_validated_logged_persisted_and_reaches_every_worker(make_dog: Callable[..., Dog]) -> None:
    dog = make_dog()
    over = {"a": {"AURA_WORKER_MAX_SYSTEM_MEMORY_GB": "5"}}
    dog.feed({"a": 2.0, "b": 2.0}, limits=over)
    with pytest.raises(BadArgs, match="unknown limit"):
        dog.d.handlers()["set_limits"]({"values": {"AURA_WORKER_MAX_RAM": "1"}})
    with pytest.raises(BadArgs, match=">= 0"):
        dog.d.handlers()["set_limits"]({"values": {"AURA_WORKER_MAX_SYSTEM_MEMORY_GB": "-1"}})
    with pytest.raises(BadArgs, match="expected a number"):
        dog.d.handlers()["set_limits"]({"values": {"AURA_WORKER_MAX_SYSTEM_MEMORY_GB": "lots"}})
    assert dog.d.policy.limits["AURA_WORKER_MAX_SYSTEM_MEMORY_GB"] == 0.0
    reply = dog.d.handlers()["set_limits"]({"values": {"AURA_WORKER_MAX_SYSTEM_MEMORY_GB": "1"}, "by": "test"})
    assert reply["changed"] == {"AURA_WORKER_MAX_SYSTEM_MEMORY_GB": {"old": 0.0, "new": 1.0}}
    changed = [r for r in dog.log() if r["event"] == "limits_changed"]
    assert len(changed) == 1 and changed[0]["by"] == "test"
    for _ in range(3):
        dog.feed({"a": 2.0, "b": 2.0}, limits=over)
    assert dog.sent == [(1001, signal.SIGTERM)]  # b, under the new global limit; a keeps its own 5 GB
    # a watchdog started again on this project keeps the change
    again = wmain.WatchdogDaemon(dog.d.paths, dog.d.cfg)
    try:
        assert again.policy.limits["AURA_WORKER_MAX_SYSTEM_MEMORY_GB"] == 1.0
        assert again.handlers()["limits"]({})["overrides"] == {"AURA_WORKER_MAX_SYSTEM_MEMORY_GB": "1"}
    finally:
        again.ctx.destroy(linger=0)


def test_preflight_answers(make_dog: Callable[..., Dog]) -> None:
    dog = make_dog(AURA_WORKER_MAX_CPU_PERCENT=50)
    ok = dog.d.handlers()["preflight"]({"limits": {"AURA_WORKER_MAX_CPU_PERCENT": 25}})
    assert ok["ok"] is True and ok["limits"]["AURA_WORKER_MAX_CPU_PERCENT"] == 25.0
    refused = dog.d.handlers()["preflight"]({"limits": {"AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB": UNMET_RAM_RESERVE_GB}})
    assert refused["ok"] is False and refused["short"] is True  # it may pass later
    assert "AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB" in refused["reason"] and "GB of RAM free" in refused["reason"]
    bad = dog.d.handlers()["preflight"]({"limits": {"AURA_WORKER_MAX_RAM": 1}})
    assert bad["ok"] is False and "bad per-task limits" in bad["reason"] and not bad.get("short")
    dog.d.policy.mode = "off"
    assert (
        dog.d.handlers()["preflight"]({"limits": {"AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB": UNMET_RAM_RESERVE_GB}})["ok"]
        is True
    )


# -- sampling bookkeeping ----------------------------------------------------------------------------------


def test_cpu_percent_comes_from_cpu_time_deltas() -> None:
    tracker = TreeTracker()
    first = tracker.sample(
        {10: ProcStat(cpu_s=5.0, rss=100, start=1), 11: ProcStat(cpu_s=1.0, rss=50, start=2)}, now=100.0
    )
    assert first.cpu_percent == 0.0 and first.rss_bytes == 150 and first.nprocs == 2
    second = tracker.sample(
        {10: ProcStat(cpu_s=5.5, rss=100, start=1), 11: ProcStat(cpu_s=1.5, rss=50, start=2)}, now=101.0
    )
    assert second.cpu_percent == pytest.approx(round(100.0 * 1.0 / NCPU, 2))


def test_a_reused_pid_is_not_read_as_a_cpu_delta() -> None:
    tracker = TreeTracker()
    tracker.sample({10: ProcStat(cpu_s=500.0, rss=1, start=1)}, now=100.0)
    # pid 10 is now another process, started long ago: its CPU time is not this worker's
    later = tracker.sample({10: ProcStat(cpu_s=900.0, rss=1, start=2)}, now=101.0)
    assert later.cpu_percent == 0.0


@pytest.fixture
def tree() -> Any:
    """A parent with two sleeping children, killed by its pgid (this test's own session). The pids are
    printed once each kid said it runs: read from /proc just past its exec, a child had no resident
    memory yet in 22 of 200 tries here."""
    kid = "import time; print('up', flush=True); time.sleep(60)"
    code = (
        "import subprocess, sys, time\n"
        f"kids = [subprocess.Popen([sys.executable, '-c', {kid!r}], stdout=subprocess.PIPE) for _ in range(2)]\n"
        "[k.stdout.readline() for k in kids]\n"
        "print(' '.join(str(k.pid) for k in kids), flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    kids = [int(x) for x in proc.stdout.readline().split()]
    yield proc, kids
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


def test_read_tree_reads_the_whole_tree_and_guards_the_root_against_reuse(tree: Any) -> None:
    proc, kids = tree
    stats = read_tree(proc.pid)
    assert stats is not None and set(stats) == {proc.pid, *kids}
    assert all(s.rss > 0 and s.threads >= 1 for s in stats.values())
    below = read_tree(proc.pid, include_root=False, root_start=start_ticks(proc.pid))
    assert below is not None and set(below) == set(kids)
    assert read_tree(proc.pid, root_start=(start_ticks(proc.pid) or 0) + 1) is None


def test_watched_worker_falls_back_from_a_dead_shim_to_the_worker(tree: Any) -> None:
    proc, kids = tree
    from aura.runtime.pidfile import start_time

    rec = {
        "worker_id": "w",
        "shim_pid": kids[0],
        "shim_create_time": start_time(kids[0]),
        "worker_pid": proc.pid,
        "worker_create_time": start_time(proc.pid),
    }
    w = Watched(rec)
    w.resolve_root()
    assert w.root is not None and w.root[0] == kids[0] and w.root[2] is False
    os.kill(kids[0], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while read_tree(kids[0]) is not None and time.monotonic() < deadline:
        time.sleep(0.02)  # the parent has not reaped it yet: it reads as gone once a zombie
    stats = w.read()
    assert stats is not None and proc.pid in stats and w.root[0] == proc.pid


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProjectPaths:
    """A project whose registry view trusts every mtime at once (no racy window to wait out)."""
    monkeypatch.setattr(wworkers, "RACY_NS", 0)
    made = ProjectPaths.for_root(tmp_path)
    made.ensure()
    return made


def test_registry_view_rereads_only_changed_records_and_forgets_ended_ones(
    paths: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = RegistryView(WorkerRecords(paths))
    rec = {"worker_id": "w1", "state": "running", "worker_pid": os.getpid()}
    atomic_write_json(paths.workers_dir / "w1" / "record.json", rec)
    first = view.live()["w1"]
    assert view.live()["w1"] is first  # unchanged file: the same object, nothing re-read
    atomic_write_json(paths.workers_dir / "w1" / "record.json", {**rec, "limits": {"x": 1}})
    assert view.live()["w1"]["limits"] == {"x": 1}
    atomic_write_json(paths.workers_dir / "w1" / "record.json", {**rec, "state": "exited"})
    assert view.live() == {}
    reads: list[str] = []
    monkeypatch.setattr(wworkers, "read_json", lambda p: reads.append(str(p)) or None)
    atomic_write_json(paths.workers_dir / "w1" / "record.json", rec)  # an ended worker never comes back
    assert view.live() == {} and reads == []


def test_registry_view_reads_only_the_workers_the_supervisor_indexed_live(
    paths: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry(paths)
    for i in range(200):  # the folders of a long run's ended workers
        atomic_write_json(paths.workers_dir / f"old{i}" / "record.json", {"worker_id": f"old{i}", "state": "exited"})
    stray = {"worker_id": "stray", "state": "running", "worker_pid": os.getpid()}
    atomic_write_json(paths.workers_dir / "stray" / "record.json", stray)  # a live record no index names
    live = {"worker_id": "w/1", "state": "starting", "worker_pid": os.getpid()}
    registry.save(live)
    assert (registry.live_index).is_dir() and os.listdir(registry.live_index) == ["w_1"]
    reads: list[str] = []
    real_read = wworkers.read_json
    monkeypatch.setattr(wworkers, "read_json", lambda p: reads.append(Path(p).parent.name) or real_read(p))
    view = RegistryView(WorkerRecords(paths))
    assert list(view.live()) == ["w_1"] and reads == ["w_1"]  # neither the 200 ended folders nor the stray

    registry.save_later({**live, "state": "exited", "outcome": "succeeded"})  # its end, in the flusher's thread
    assert registry.flusher.drain()
    assert os.listdir(registry.live_index) == [] and view.live() == {}

    registry.reindex(["stray"])  # start-up: the index set from the records, whatever was left in it
    assert os.listdir(registry.live_index) == ["stray"] and list(view.live()) == ["stray"]

    os.unlink(registry.live_index / "stray")
    os.rmdir(registry.live_index)
    assert list(view.live()) == ["stray"]  # no index (a registry from before it): every folder is looked at
