"""Aura's own figures: event latency, the watchdog's cost and reaction, spawn/reap at scale,
daemon memory, and the brain's input tokens per cycle.

Each section starts its own throwaway project, so one section's workers never skew
another's numbers, and stops every process it caused by PID.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from aura.runtime.fsutil import read_json, read_jsonl
from aura.runtime.paths import DAEMONS
from tests.support.harness import REPO, Project, wait_for

from . import driver
from .rivals import read_ends, rounds_median, summary_scale, worker_script
from .stats import summary

IDLE_TASK = "# Idle\n\n- [ ] wait `sleep 3600`\n"
DONE_TASK = "# Nothing to run\n\n- [x] already done `true`\n"
HOG = (
    "import time, sys; b = bytearray({mb} * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); "
    "open(sys.argv[1], 'w').write(repr(time.time())); time.sleep(120)"
)


class PeakRss:
    """Samples the resident memory of some processes in a thread and keeps each one's peak."""

    def __init__(self, pids: Callable[[], dict[str, list[int]]], interval: float = 0.1):
        self.pids = pids
        self.interval = interval
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for label, pids in self.pids().items():
                total = 0
                for pid in pids:
                    try:
                        total += psutil.Process(pid).memory_info().rss
                    except psutil.NoSuchProcess:
                        continue
                self.peak[label] = max(self.peak.get(label, 0), total)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def daemon_rss(p: Project) -> dict[str, int]:
    out = {}
    for name in DAEMONS:
        pid = p.daemon_pid(name)
        if pid:
            out[name] = psutil.Process(pid).memory_info().rss
    return out


# -- control plane ------------------------------------------------------------------------------------


def control_project() -> Project:
    """A project with one running worker, so `aura ps` has a row to show (as the rivals' `status` does)."""
    p = Project.temporary()
    p.write_task(IDLE_TASK)
    p.up()
    wait_for(lambda: any((d / "launch.json").exists() for d in p.worker_dirs()), 30, "the idle worker")
    return p


def round_trips(p: Project, n: int) -> dict:
    """ping and list on one client connection, one request after another."""
    adapter = driver.AuraAdapter(p.paths.endpoint("supervisor"))
    try:
        return {"light": driver.round_trips(adapter.light, n), "listing": driver.round_trips(adapter.listing, n)}
    finally:
        adapter.close()


# -- event latency -------------------------------------------------------------------------------------


def event_latency(items: int, concurrency: int = 4) -> dict:
    """A worker's exit (the shim's `ended_at`, taken right after waitpid) to the supervisor's
    `worker_exited` event and to the brain's `task_status` event for that task."""
    with Project.temporary({"AURA_MAX_CONCURRENT_TASKS": str(concurrency)}) as p:
        lines = [f"- [ ] item {i} `sleep {0.2 + (i % 4) * 0.07:.2f}`" for i in range(items)]
        p.write_task("# Event latency\n\n" + "\n".join(lines) + "\n")
        p.up()
        brain = p.client("brain")
        wait_for(
            lambda: ((brain.call("status") or {}).get("run") or {}).get("finished"),
            60 + items,
            "the run to finish",
            interval=0.25,
        )
        p.remember()
        return _latencies(p)


def _latencies(p: Project) -> dict:
    exits: dict[str, tuple[str, float]] = {}
    for wdir in p.worker_dirs():
        rec, ex = read_json(wdir / "record.json") or {}, read_json(wdir / "exit.json") or {}
        if ex.get("ended_at") and rec.get("task_id"):
            exits[rec["worker_id"]] = (rec["task_id"], ex["ended_at"])
    sup = {
        e["data"]["worker_id"]: e["ts"]
        for e in read_jsonl(p.paths.journal("supervisor"))
        if e.get("kind") == "worker_exited"
    }
    done = {}
    for e in read_jsonl(p.paths.journal("brain")):
        d = e.get("data") or {}
        if e.get("kind") == "task_status" and d.get("old") == "in_progress" and d.get("task_id") not in done:
            done[d["task_id"]] = e["ts"]
    to_sup = [sup[w] - end for w, (_, end) in exits.items() if w in sup]
    to_brain = [done[t] - end for t, end in exits.values() if t in done]
    return {
        "workers": len(exits),
        "exit_to_supervisor_event_ms": summary(to_sup, 1000, 2),
        "exit_to_brain_task_status_ms": summary(to_brain, 1000, 2),
    }


# -- watchdog ---------------------------------------------------------------------------------------------


def watchdog_cpu(workers: int, seconds: float, poll_s: float) -> dict:
    """CPU used by each daemon while the watchdog samples `workers` idle workers every `poll_s`."""
    env = {
        "AURA_MAX_CONCURRENT_TASKS": str(workers),
        "AURA_WORKER_RESOURCE_POLL_SECONDS": str(poll_s),
        "AURA_CYCLE_INTERVAL": "300",
        # the start check refuses a window shorter than two polls
        "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS": f"{max(2.0, 2 * poll_s):g}",
    }
    with Project.temporary(env) as p:
        lines = [f"- [ ] sleeper {i} `sleep 3600`" for i in range(workers)]
        p.write_task("# Watch\n\n" + "\n".join(lines) + "\n")
        p.up()
        wd = p.client("watchdog")
        wait_for(
            lambda: wd.call("status").get("workers_watched") == workers, 60, f"{workers} watched workers", interval=0.2
        )
        time.sleep(max(2 * poll_s, 1.0))
        procs = {n: psutil.Process(p.daemon_pid(n)) for n in DAEMONS}  # type: ignore[arg-type]
        before = {n: sum(pr.cpu_times()[:2]) for n, pr in procs.items()}
        t0 = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - t0
        cpu = {n: round(100 * (sum(pr.cpu_times()[:2]) - before[n]) / wall, 3) for n, pr in procs.items()}
        st = wd.call("status")
        p.remember()
        return {
            "workers": workers,
            "poll_s": poll_s,
            "seconds": round(wall, 1),
            "cpu_percent_of_one_core": cpu,
            "last_sample_cost_ms": st.get("last_sample_cost_ms"),
            "max_sample_gap_s": st.get("max_sample_gap_s"),
        }


def detect_and_kill(runs: int, poll_s: float = 0.5, window_s: float = 2.0, strikes: int = 3) -> dict:
    """A worker that holds 300 MB against a 0.2 GB limit: from the moment it holds the memory to the
    watchdog's kill record, and to its exit, against the configured window plus strikes x poll."""
    env = {
        "AURA_WORKER_MAX_SYSTEM_MEMORY_GB": "0.2",
        "AURA_WORKER_RESOURCE_POLL_SECONDS": str(poll_s),
        "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS": str(window_s),
        "AURA_WORKER_RESOURCE_VIOLATION_STRIKES": str(strikes),
        "AURA_WORKER_RESOURCE_COOLDOWN_SECONDS": "0",
        "AURA_CYCLE_INTERVAL": "300",
    }
    detect, killed = [], []
    with Project.temporary(env) as p:
        p.write_task(DONE_TASK)
        p.up()
        sup = p.client("supervisor", timeout=30)
        for i in range(runs):
            mark = p.root / f"hog-{i}.allocated"
            rec = sup.call(
                "spawn",
                {
                    "worker_id": f"hog-{i}",
                    "task_id": "hog",
                    "backend": "shell",
                    "budget_s": 0,
                    "argv": [sys.executable, "-c", HOG.format(mb=300), str(mark)],
                },
            )
            p.remember()
            wdir = p.paths.worker_dir(rec["worker_id"])
            ex = wait_for(lambda wdir=wdir: read_json(wdir / "exit.json"), 60, "the hog to be killed", interval=0.05)
            kill = read_json(p.paths.watchdog_dir / "kills" / f"{rec['worker_id']}.json") or {}
            allocated = float(mark.read_text()) if mark.exists() else None
            if allocated is None or not kill:
                raise RuntimeError(f"hog {i} was not killed by the watchdog: exit {ex}, kill record {kill}")
            detect.append(kill["killed_at"] - allocated)
            killed.append(ex["ended_at"] - allocated)
    bound = window_s + strikes * poll_s
    return {
        "runs": runs,
        "poll_s": poll_s,
        "window_s": window_s,
        "strikes": strikes,
        "bound_s": bound,
        "detect_s": summary(detect, 1, 3),
        "killed_s": summary(killed, 1, 3),
        "detect_over_bound": round(max(detect) / bound, 3),
    }


def watchdog_overhead_script(quick: bool) -> dict:
    """The sampling-cost bench another engineer owns (bench/watchdog_overhead.py), run as it is."""
    script = REPO / "bench" / "watchdog_overhead.py"
    if not script.exists():
        return {"available": False, "reason": "bench/watchdog_overhead.py is not in this tree yet"}
    with tempfile.TemporaryDirectory(prefix="aura-wd-overhead-") as tmp:
        out_json = Path(tmp) / "overhead.json"
        argv = [sys.executable, str(script), "--json", str(out_json)]
        if quick:
            argv += ["--sizes", "10,50", "--samples", "10"]
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=REPO)
        except subprocess.TimeoutExpired:
            return {"available": False, "reason": "bench/watchdog_overhead.py ran past 900 s"}
        data = read_json(out_json)
    if out.returncode != 0 or not isinstance(data, dict):
        return {
            "available": False,
            "reason": f"bench/watchdog_overhead.py exited {out.returncode}: {out.stderr.strip()[-300:]}",
        }
    return {"available": True, **data}


# -- scale ---------------------------------------------------------------------------------------------------


class AuraScale:
    """Aura's side of the scale section: one project, up for all the rounds, each round a new
    group of N shell workers started through the supervisor, released together and reaped. The
    caller runs the rounds, between the rivals' (bench/run.py interleaves them)."""

    def __init__(self) -> None:
        self.project = Project.temporary(
            {
                "AURA_WORKER_RESOURCE_POLL_SECONDS": "10",
                "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS": "20",
                "AURA_CYCLE_INTERVAL": "300",
            }
        )
        self.rounds: dict[str, list[dict]] = {}
        self.out: dict[str, Any] = {"runs": {}, "rss_idle": {}, "rss_peak": {}, "shim_memory": {}}

    def __enter__(self) -> AuraScale:
        p = self.project
        try:
            p.write_task(DONE_TASK)
            p.up()
            time.sleep(1.0)
            self.out["rss_idle"] = daemon_rss(p)
        except BaseException:
            p.cleanup()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.project.cleanup()

    def round(self, n: int) -> None:
        """One round of N workers; the first round of each N also measures the shims' memory."""
        done = self.rounds.setdefault(str(n), [])
        p, group = self.project, f"s{n}r{len(done)}"
        folder = p.root / f"scale-{group}"
        folder.mkdir()
        fifo, ends, script = worker_script(folder)
        adapter = driver.AuraAdapter(p.paths.endpoint("supervisor"), group, ["/bin/sh", str(script)])
        shims: dict[str, int] = {}
        measure = functools.partial(lambda into: into.update(shim_memory(p, group)), shims) if not done else None
        try:
            with PeakRss(lambda: _aura_pids(p, group)) as peak:
                raw = driver.scale(adapter, n, str(fifo), on_running=measure)
        finally:
            adapter.close()
            p.remember()
        done.append(summary_scale(raw, read_ends(ends)))
        if shims:
            self.out["shim_memory"][str(n)] = shims
        top = self.out["rss_peak"].setdefault(str(n), {})
        for label, rss in peak.peak.items():
            top[label] = max(top.get(label, 0), rss)

    def result(self) -> dict:
        """Each N's figures as the median of its rounds, every round kept."""
        self.out["runs"] = {n: rounds_median(done) for n, done in self.rounds.items()}
        return self.out


def _aura_pids(p: Project, group: str) -> dict[str, list[int]]:
    pids: dict[str, list[int]] = {n: [pid] for n in DAEMONS if (pid := p.daemon_pid(n))}
    shims = []
    for wdir in p.paths.workers_dir.glob(f"{group}-*"):
        started = read_json(wdir / "launch.json") or {}
        if started.get("shim_pid") and not (wdir / "exit.json").exists():
            shims.append(started["shim_pid"])
    pids["shims"] = shims + _fork_servers(pids.get("supervisor", []))
    return pids


def shim_memory(p: Project, group: str) -> dict[str, int]:
    """The shims' memory while all N run: resident (RSS, shared pages counted in each) and
    proportional (PSS, shared pages split between their sharers), the fork server's included."""
    out = {"rss": 0, "pss": 0, "processes": 0}
    for pid in _aura_pids(p, group)["shims"]:
        try:
            full = psutil.Process(pid).memory_full_info()
        except psutil.Error:
            continue
        out["rss"] += full.rss
        out["pss"] += full.pss
        out["processes"] += 1
    return out


def _fork_servers(supervisor: list[int]) -> list[int]:
    """The supervisor's fork server: the shims' pages it shares are part of their cost."""
    out = []
    for pid in supervisor:
        try:
            out += [c.pid for c in psutil.Process(pid).children() if "--fork-server" in c.cmdline()]
        except psutil.Error:
            continue
    return out


# -- brain tokens --------------------------------------------------------------------------------------------


def brain_tokens(cycles: int) -> dict:
    """Input tokens per brain cycle on the bundled example task, from the scripted server's records."""
    try:
        import aura.brain.llm_planner  # noqa: F401
    except Exception as exc:  # not written yet, or broken: say so rather than guess
        return {"available": False, "reason": f"aura/brain/llm_planner.py is not usable: {type(exc).__name__}: {exc}"}
    from aura.scripted_server import ScriptedServer

    records: list[dict] = []
    with ScriptedServer({"default": {"text": "Nothing to change this cycle."}}) as srv:
        env = {
            "AURA_PLANNER": "llm",
            "AURA_API_KEY": "bench",
            "AURA_API_BASE_URL": srv.url,
            "AURA_API_PROVIDER": "anthropic",
            "AURA_CYCLE_INTERVAL": "300",
        }
        with Project.temporary(env) as p:
            (p.root / "task.md").write_text((REPO / "tasks" / "example.md").read_text())
            p.up()
            brain = p.client("brain", timeout=30)
            done = 0
            for _ in range(cycles):
                wait_for(
                    lambda done=done: (brain.call("status").get("cycles") or 0) > done,
                    120,
                    "a brain cycle",
                    interval=0.2,
                )
                done = brain.call("status").get("cycles") or 0
                brain.call("wake", {"reason": "bench"})
            p.remember()
            cycle_ends = [e["ts"] for e in read_jsonl(p.paths.journal("brain")) if e.get("kind") == "cycle_done"]
        records = [
            r
            for r in srv.requests
            if str(r.get("path", "")).startswith("/v1/messages") and "count_tokens" not in str(r.get("path"))
        ]
    return _tokens_per_cycle(records, cycle_ends)


def _tokens_per_cycle(records: list[dict], cycle_ends: list[float]) -> dict:
    per_cycle: dict[int, dict[str, int]] = {}
    for rec in records:
        usage = (rec.get("reply") or {}).get("usage") or {}
        idx = next((i for i, end in enumerate(cycle_ends) if rec.get("time", 0) <= end), len(cycle_ends))
        slot = per_cycle.setdefault(idx, {"requests": 0, "input": 0, "cache_read": 0, "cache_write": 0})
        slot["requests"] += 1
        slot["input"] += int(usage.get("input_tokens") or 0)
        slot["cache_read"] += int(usage.get("cache_read_input_tokens") or 0)
        slot["cache_write"] += int(usage.get("cache_creation_input_tokens") or 0)
    totals = [c["input"] + c["cache_read"] + c["cache_write"] for c in per_cycle.values()]
    return {
        "available": bool(per_cycle),
        "model_requests": len(records),
        "cycles_with_requests": len(per_cycle),
        "input_tokens_per_cycle": summary(totals, 1, 0),
        "per_cycle": [per_cycle[k] for k in sorted(per_cycle)],
        "reason": "" if per_cycle else "the llm planner made no model request",
    }


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)
