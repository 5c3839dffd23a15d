"""Chaos run: kill -9 a random daemon every few seconds while shell workers run and finish,
then count what was lost.

    python bench/chaos.py                  # 3 minutes of kills, then drain and check
    python bench/chaos.py --duration 60 --seed 7 --json out.json

A task file is fed with new checklist items as the old ones finish, so 4 to 8 workers are
always running; each item's command appends one line to a ledger, so a task that ran twice
(or never) shows. After the kills stop, the run must drain: every task completed. Then:
kills done, workers started, workers with an exit record, workers orphaned, records lost,
tasks lost or run twice, state files that fail to parse, the longest time without a
watchdog sample. Everything but the counts of kills and workers must be zero; the exit
status says whether it was.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aura.brain.state import read_state  # noqa: E402
from aura.ipc.client import Client, DaemonUnavailable, RemoteError  # noqa: E402
from aura.runtime.fsutil import read_json  # noqa: E402
from aura.runtime.paths import DAEMONS  # noqa: E402
from aura.runtime.records import WorkerRecords  # noqa: E402
from bench import chaos_git  # noqa: E402
from tests.support.harness import Project, TimedOut, alive, wait_for  # noqa: E402

CHAOS_ENV = {
    "AURA_MAX_CONCURRENT_TASKS": "6",
    "AURA_CYCLE_INTERVAL": "1",
    "AURA_WORKER_RESOURCE_POLL_SECONDS": "0.5",
    "AURA_WORKER_MAX_SYSTEM_MEMORY_GB": "4",  # enforcement on, with a limit no worker here reaches
    "AURA_RESTART_MAX": "20",
    "AURA_RESTART_WINDOW_SECONDS": "10",  # the backoff grows with restarts in the window; keep it short
}
LEDGER = "chaos-ledger.txt"
GAP_ALLOWANCE_S = 5.0  # a watchdog kill may stop sampling for one poll plus its restart; never longer


@dataclass
class ChaosConfig:
    duration_s: float = 180.0
    kill_every_s: tuple[float, float] = (2.0, 4.0)
    concurrency: int = 6
    seed: int | None = None
    drain_timeout_s: float = 180.0
    restart_timeout_s: float = 30.0
    keep: bool = False
    git: bool = False  # the project is a git repository (git mode), and the brain is killed during merges


@dataclass
class ChaosReport:
    seed: int
    duration_s: float
    kills: int = 0
    kills_by_daemon: dict[str, int] = field(default_factory=dict)
    restart_s_max: float = 0.0
    daemons_not_restarted: int = 0
    workers_started: int = 0
    workers_with_exit_record: int = 0
    workers_orphaned: int = 0
    worker_records_lost: int = 0
    spawns_never_started: int = 0
    spawns_interrupted: int = 0
    live_index_left: int = 0
    tasks: int = 0
    tasks_lost: int = 0
    tasks_run_twice: int = 0
    state_files_checked: int = 0
    state_files_unparsable: int = 0
    journal_lines_unparsable: int = 0
    temp_files_left: int = 0
    watchdog_samples_seen: int = 0
    longest_enforcement_gap_s: float = 0.0
    enforcement_gaps_over_bound: int = 0
    enforcement_gap_bound_s: float = 0.0
    drained: bool = False
    processes_left_behind: int = 0
    git: bool = False
    brain_kills_in_merge: int = 0
    git_tasks_not_merged: int = 0
    git_tasks_merged_twice: int = 0
    git_user_tree_changed: int = 0
    git_left_behind: int = 0
    kill_log: list[dict] = field(default_factory=list)
    long_gaps: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    MUST_BE_ZERO = (
        "daemons_not_restarted",
        "workers_orphaned",
        "worker_records_lost",
        "spawns_never_started",
        "live_index_left",
        "tasks_lost",
        "tasks_run_twice",
        "state_files_unparsable",
        "journal_lines_unparsable",
        "enforcement_gaps_over_bound",
        "processes_left_behind",
        "git_tasks_not_merged",
        "git_tasks_merged_twice",
        "git_user_tree_changed",
        "git_left_behind",
    )

    def failures(self) -> list[str]:
        bad = [f"{k} = {getattr(self, k)}" for k in self.MUST_BE_ZERO if getattr(self, k)]
        if self.workers_with_exit_record != self.workers_started:
            bad.append(f"{self.workers_started - self.workers_with_exit_record} started workers have no exit record")
        if not self.drained:
            bad.append("the run did not drain (not every task completed) after the kills stopped")
        return bad

    @property
    def ok(self) -> bool:
        return not self.failures()


# -- the parts of a chaos run ---------------------------------------------------------------------------


class TaskFeeder:
    """Keeps the task file a few items ahead of the workers, so workers keep starting and finishing."""

    def __init__(self, project: Project, rng: random.Random, ahead: int, git: bool = False):
        self.p = project
        self.rng = rng
        self.ahead = ahead
        self.items: list[str] = []
        # in git mode the work lands on the integration branch, and a ledger in the repository would
        # conflict in every merge: it lives beside it
        self.ledger = ledger_path(project, git)
        self.out = project.paths.integration_dir / "out" if git else project.root / "out"

    def item(self, i: int) -> str:
        nap = self.rng.choice((0.3, 0.6, 1.0, 1.5, 2.5))
        return (
            f'- [ ] chaos item {i} `mkdir -p out && sleep {nap} && echo "{i} $AURA_WORKER_ID" >> {self.ledger} '
            f"&& touch out/{i}.done` creates `out/{i}.done`"
        )

    def done(self) -> int:
        try:
            return len(os.listdir(self.out))
        except FileNotFoundError:
            return 0

    def top_up(self) -> None:
        want = self.done() + self.ahead
        if len(self.items) >= want:
            return
        while len(self.items) < want:
            self.items.append(self.item(len(self.items)))
        self.p.write_task("# Chaos\n\n" + "\n".join(self.items) + "\n")


def ledger_path(project: Project, git: bool) -> Path:
    return project.root.parent / LEDGER if git else project.root / LEDGER


class SampleWatcher(threading.Thread):
    """Asks the watchdog for its last sample time ten times a second, across its restarts."""

    def __init__(self, project: Project):
        super().__init__(daemon=True)
        self.endpoint = project.paths.endpoint("watchdog")
        self.samples: set[float] = set()
        self.stop_event = threading.Event()

    def run(self) -> None:
        client = Client(self.endpoint, "watchdog", timeout=0.5, retries=0)
        try:
            while not self.stop_event.is_set():
                try:
                    t = client.call("status").get("last_sample_at")
                    if t:
                        self.samples.add(float(t))
                except (DaemonUnavailable, RemoteError):
                    pass
                self.stop_event.wait(0.1)
        finally:
            client.close()

    def gaps(self, since: float, until: float) -> list[tuple[float, float]]:
        """Every (start, length) without a sample inside [since, until]."""
        times = [since, *sorted(t for t in self.samples if since <= t <= until), until]
        return [(a, b - a) for a, b in zip(times, times[1:], strict=False)]


class Killer:
    """kill -9 one random daemon at a time, and wait for its peers to bring it back before the next."""

    def __init__(self, project: Project, cfg: ChaosConfig, rng: random.Random, report: ChaosReport):
        self.p = project
        self.cfg = cfg
        self.rng = rng
        self.report = report

    def wait_all_up(self) -> dict[str, int] | None:
        try:
            return wait_for(self.p.all_up, self.cfg.restart_timeout_s, "all three daemons", interval=0.05)
        except TimedOut:
            down = [n for n in DAEMONS if not self.p.daemon_pid(n)]
            self.report.daemons_not_restarted += len(down)
            self.report.problems.append(f"not restarted within {self.cfg.restart_timeout_s:g}s: {', '.join(down)}")
            return None

    def kill_one(self) -> bool:
        pids = self.wait_all_up()
        if pids is None:
            return False
        name = "brain" if self.cfg.git and self.rng.random() < 0.5 else self.rng.choice(DAEMONS)
        pid = pids[name]
        created = self.p.pidfile(name).get("create_time")
        if not alive(pid, created):
            return True  # it went away by itself; the next round will see
        in_merge = self.cfg.git and name == "brain" and self.wait_for_a_merge()
        os.kill(pid, signal.SIGKILL)
        t, at = time.monotonic(), time.time()
        self.report.brain_kills_in_merge += int(in_merge)
        self.report.kills += 1
        self.report.kills_by_daemon[name] = self.report.kills_by_daemon.get(name, 0) + 1
        try:  # SIGKILL is delivered asynchronously: see it dead before asking whether all are back
            wait_for(lambda: not alive(pid, created), 10, f"{name} pid {pid} to die", interval=0.005)
        except TimedOut:
            self.report.problems.append(f"{name} pid {pid} survived SIGKILL for 10 s")
        back = self.wait_all_up()
        took = round(time.monotonic() - t, 3)
        self.report.kill_log.append({"at": round(at, 3), "daemon": name, "pid": pid, "back_after_s": took})
        if back is None:
            return False
        self.report.restart_s_max = max(self.report.restart_s_max, took)
        return True

    def wait_for_a_merge(self, up_to_s: float = 3.0) -> bool:
        """Git mode: aim a brain kill at a merge in progress (the window a merge hook widens)."""
        end = time.monotonic() + up_to_s
        while time.monotonic() < end:
            if chaos_git.merging_now(self.p.paths.state_dir):
                return True
            time.sleep(0.01)
        return False


class PidTracker:
    """Remembers every shim and worker once its start report appears (reads each report once)."""

    def __init__(self, project: Project):
        self.p = project
        self.done: set[str] = set()

    def scan(self) -> None:
        for name in DAEMONS:
            self.p.daemon_pid(name)
        for wdir in self.p.worker_dirs():
            if wdir.name in self.done:
                continue
            started = read_json(wdir / "launch.json")
            if isinstance(started, dict):
                for key in ("shim", "worker"):
                    self.p.pids.add(started.get(f"{key}_pid"), started.get(f"{key}_create_time"))
                self.done.add(wdir.name)


# -- the checks at the end ------------------------------------------------------------------------------------


def _live_index_left(p: Project, settle_s: float = 5.0) -> list[str]:
    """The live index once none runs: an entry goes when its worker's end is on disk, which the
    supervisor's flusher thread may still be writing as the brain hears of the last end."""
    deadline = time.monotonic() + settle_s
    while (left := WorkerRecords(p.paths).live_ids() or []) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def check_workers(p: Project, report: ChaosReport) -> None:
    left = _live_index_left(p)
    report.live_index_left = len(left)
    if left:
        report.problems.append(f"the live index still names {', '.join(left[:5])} after the run drained")
    for wdir in p.worker_dirs():
        rec = read_json(wdir / "record.json") or {}
        started = read_json(wdir / "launch.json") or {}
        exit_rec = read_json(wdir / "exit.json")
        if started.get("worker_pid"):
            report.workers_started += 1
            if isinstance(exit_rec, dict):
                report.workers_with_exit_record += 1
            elif alive(started["worker_pid"], started.get("worker_create_time")):
                report.workers_orphaned += 1
                report.problems.append(f"worker {wdir.name} (pid {started['worker_pid']}) runs with no exit record")
        elif "never started" in str((rec.get("exit") or {}).get("error")):
            report.spawns_interrupted += 1  # the supervisor died before the shim existed; recorded as such
        elif not started.get("error"):
            report.spawns_never_started += 1
            report.problems.append(f"worker {wdir.name}: a record ({rec.get('state')}) but no launch")
        if rec.get("outcome") == "lost" or rec.get("state") == "orphaned":
            report.worker_records_lost += 1
            report.problems.append(
                f"worker {wdir.name}: {rec.get('state')}/{rec.get('outcome')}: {(rec.get('exit') or {}).get('error')}"
            )


def check_tasks(p: Project, items: int, report: ChaosReport, git: bool = False) -> None:
    runs: dict[int, int] = {}
    try:
        for line in ledger_path(p, git).read_text().splitlines():
            m = re.match(r"(\d+) ", line)
            if m:
                runs[int(m.group(1))] = runs.get(int(m.group(1)), 0) + 1
    except FileNotFoundError:
        pass
    state = read_state(p.paths.state_dir) or {}
    statuses = {t.get("title", ""): t.get("status") for t in (state.get("tasks") or {}).values()}
    report.tasks = items
    for i in range(items):
        status = next((s for title, s in statuses.items() if title.startswith(f"chaos item {i} `")), None)
        count = runs.get(i, 0)
        if count == 0 or status != "completed":
            report.tasks_lost += 1
            report.problems.append(f"item {i}: ran {count} times, status {status}")
        elif count > 1:
            report.tasks_run_twice += 1
            report.problems.append(f"item {i}: ran {count} times")


def check_files(p: Project, report: ChaosReport) -> None:
    """Every JSON state file must parse; every journal line too; leftover temp files are counted."""
    for path in p.paths.data.rglob("*"):
        if not path.is_file():
            continue
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            report.temp_files_left += 1
        elif ".corrupt-" in path.name:  # a reader found it unreadable and kept it aside
            report.state_files_unparsable += 1
            report.problems.append(f"kept aside as corrupt: {path.relative_to(p.root)}")
        elif path.suffix == ".json" or path.name.endswith(".json.bak"):
            report.state_files_checked += 1
            try:
                json.loads(path.read_bytes())
            except ValueError:
                report.state_files_unparsable += 1
                report.problems.append(f"unparsable: {path.relative_to(p.root)}")
        elif path.suffix == ".jsonl":
            for n, line in enumerate(path.read_bytes().splitlines(), 1):
                try:
                    json.loads(line)
                except ValueError:
                    report.journal_lines_unparsable += 1
                    report.problems.append(f"torn line {n} of {path.relative_to(p.root)}")


def check_gaps(watcher: SampleWatcher, since: float, until: float, poll_s: float, report: ChaosReport) -> None:
    gaps = watcher.gaps(since, until)
    report.watchdog_samples_seen = len(gaps) - 1
    report.longest_enforcement_gap_s = round(max(g for _, g in gaps), 3)
    report.enforcement_gap_bound_s = poll_s + GAP_ALLOWANCE_S
    report.long_gaps = [{"at": round(a, 3), "gap_s": round(g, 3)} for a, g in gaps if g > 2 * poll_s + 1.0]
    report.enforcement_gaps_over_bound = sum(1 for _, g in gaps if g > report.enforcement_gap_bound_s)
    for a, g in gaps:
        if g > report.enforcement_gap_bound_s:
            kills = [k for k in report.kill_log if a - 10 <= k["at"] <= a + g]
            report.problems.append(
                f"no watchdog sample for {g:.2f}s from {time.strftime('%H:%M:%S', time.localtime(a))}"
                f"; kills around it: {kills}"
            )


# -- the run -----------------------------------------------------------------------------------------------------


def run_chaos(cfg: ChaosConfig, log: Any = print) -> ChaosReport:
    seed = cfg.seed if cfg.seed is not None else random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    report = ChaosReport(seed=seed, duration_s=cfg.duration_s, git=cfg.git)
    env = dict(CHAOS_ENV, AURA_MAX_CONCURRENT_TASKS=str(cfg.concurrency))
    if cfg.git:
        env.update(chaos_git.GIT_ENV, AURA_GIT="on")
    p = Project.temporary(env, keep=cfg.keep)
    watcher = SampleWatcher(p)
    try:
        user_head = chaos_git.make_repo(p.root) if cfg.git else ""
        feeder = TaskFeeder(p, rng, 3 * cfg.concurrency, git=cfg.git)
        tracker, killer = PidTracker(p), Killer(p, cfg, rng, report)
        feeder.top_up()
        p.up()
        watcher.start()
        log(
            f"chaos: seed {seed}, {cfg.duration_s:g}s of kills every {cfg.kill_every_s[0]:g}-{cfg.kill_every_s[1]:g}s, "
            f"{cfg.concurrency} workers at a time; project {p.root}"
        )
        since = time.time()
        _kill_loop(cfg, rng, feeder, tracker, killer)
        log(f"chaos: {report.kills} kills done; draining")
        report.drained = _drain(p, feeder, tracker, killer, cfg.drain_timeout_s)
        until = time.time()
        watcher.stop_event.set()
        watcher.join()
        tracker.scan()
        check_workers(p, report)
        check_tasks(p, len(feeder.items), report, git=cfg.git)
        check_files(p, report)
        check_gaps(watcher, since, until, float(CHAOS_ENV["AURA_WORKER_RESOURCE_POLL_SECONDS"]), report)
        if cfg.git:
            check_git(p, len(feeder.items), user_head, report)
    finally:
        watcher.stop_event.set()
        left = p.cleanup()
        report.processes_left_behind = len(left)
        if left:
            report.problems.append(f"processes still running after `aura down`, killed by PID: {left}")
        if cfg.keep:
            log(f"chaos: project kept at {p.root}")
    return report


def check_git(p: Project, items: int, user_head: str, report: ChaosReport) -> None:
    state = read_state(p.paths.state_dir) or {}
    chaos_git.check_merges(p.root, state, items, report)
    chaos_git.check_user_tree(p.root, user_head, report)
    p.aura("down", check=False)
    p.aura("clean-workspaces", "--all", "--no-dry-run", check=False)
    chaos_git.check_left_behind(p.root, str((state.get("git") or {}).get("branch")), report)


def _kill_loop(cfg: ChaosConfig, rng: random.Random, feeder: TaskFeeder, tracker: PidTracker, killer: Killer) -> None:
    end = time.monotonic() + cfg.duration_s
    next_kill = time.monotonic() + rng.uniform(*cfg.kill_every_s)
    while time.monotonic() < end:
        feeder.top_up()
        tracker.scan()
        if time.monotonic() >= next_kill:
            if not killer.kill_one():
                return
            next_kill = time.monotonic() + rng.uniform(*cfg.kill_every_s)
        time.sleep(0.1)


def _drain(p: Project, feeder: TaskFeeder, tracker: PidTracker, killer: Killer, timeout: float) -> bool:
    if killer.wait_all_up() is None:
        return False
    brain = p.client("brain", timeout=5)

    def finished() -> bool:
        tracker.scan()
        if feeder.done() < len(feeder.items):
            return False
        try:
            return bool(((brain.call("status") or {}).get("run") or {}).get("finished"))
        except (DaemonUnavailable, RemoteError):
            return False

    try:
        wait_for(finished, timeout, "every task to complete", interval=0.25)
        return True
    except TimedOut:
        return False


def print_report(report: ChaosReport, log: Any = print) -> None:
    rows = [
        ("kills done", f"{report.kills} ({', '.join(f'{k} {v}' for k, v in sorted(report.kills_by_daemon.items()))})"),
        ("longest kill-to-all-three-back", f"{report.restart_s_max:.2f} s"),
        ("daemons not restarted", report.daemons_not_restarted),
        ("workers started", report.workers_started),
        ("workers whose exit record is present", report.workers_with_exit_record),
        ("workers orphaned (running, no record)", report.workers_orphaned),
        ("worker records lost (outcome lost)", report.worker_records_lost),
        ("spawns recorded but never started, unexplained", report.spawns_never_started),
        ("spawns cut off by a supervisor kill, recorded as never started (info)", report.spawns_interrupted),
        ("live index entries left once the run drained", report.live_index_left),
        ("tasks", report.tasks),
        ("tasks lost", report.tasks_lost),
        ("tasks run twice", report.tasks_run_twice),
        ("state files checked / failed to parse", f"{report.state_files_checked} / {report.state_files_unparsable}"),
        ("journal lines failed to parse", report.journal_lines_unparsable),
        ("atomic-write temp files left behind (info)", report.temp_files_left),
        ("watchdog samples seen", report.watchdog_samples_seen),
        ("longest time with no watchdog sample", f"{report.longest_enforcement_gap_s:.2f} s"),
        (f"enforcement gaps over {report.enforcement_gap_bound_s:g} s", report.enforcement_gaps_over_bound),
        ("run drained after the kills", "yes" if report.drained else "NO"),
        ("processes left behind after `aura down`", report.processes_left_behind),
    ]
    if report.git:
        rows += [
            ("git: brain kills inside a merge", report.brain_kills_in_merge),
            ("git: completed tasks not merged", report.git_tasks_not_merged),
            ("git: tasks merged more than once", report.git_tasks_merged_twice),
            ("git: user's branch, HEAD or edit changed", report.git_user_tree_changed),
            ("git: worktrees and attempt branches left after clean-workspaces", report.git_left_behind),
        ]
    width = max(len(k) for k, _ in rows)
    log(f"chaos run, seed {report.seed}, {report.duration_s:g} s of kills")
    for k, v in rows:
        log(f"  {k:<{width}}  {v}")
    for problem in report.problems[:30]:
        log(f"  ! {problem}")
    log("RESULT: " + ("all zero" if report.ok else "FAILED: " + "; ".join(report.failures())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="kill -9 random Aura daemons while workers run; count what was lost")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of kills (default 180)")
    parser.add_argument(
        "--every",
        type=float,
        nargs=2,
        default=(2.0, 4.0),
        metavar=("MIN", "MAX"),
        help="seconds between kills, drawn uniformly (default 2 4)",
    )
    parser.add_argument("--workers", type=int, default=6, help="workers at a time, 4 to 8 (default 6)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the project folder for inspection")
    parser.add_argument("--git", action="store_true", help="the project is a git repository (git mode)")
    args = parser.parse_args(argv)
    cfg = ChaosConfig(
        duration_s=args.duration,
        kill_every_s=tuple(args.every),
        concurrency=args.workers,
        seed=args.seed,
        keep=args.keep,
        git=args.git,
    )
    report = run_chaos(cfg)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=1) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
