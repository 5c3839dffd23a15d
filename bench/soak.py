"""A long run's cost: thousands of one-line tasks, 8 at a time, through the local planner.

    python -m bench.soak                      # 5,000 tasks (about 15 minutes on 2 busy cores)
    python -m bench.soak --tasks 1500         # fewer
    python -m bench.soak --profile DIR        # also py-spy the brain and the supervisor (py-spy on PATH)

Throughput is counted per window of 500 completed tasks (from the brain's `task_status` events),
so a cost that grows with the tree shows as a falling rate; daemon memory (RSS) is sampled at the
start, at each window's end and at the end; the brain's bytes written (its /proc io counters) are
divided by the status changes it made.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aura.brain.state import ROOT  # noqa: E402
from aura.runtime.fsutil import read_json, read_jsonl  # noqa: E402
from aura.runtime.paths import DAEMONS  # noqa: E402
from aura.runtime.vocab import COMPLETED, IN_PROGRESS, PENDING  # noqa: E402
from tests.support.harness import Project, wait_for  # noqa: E402

from .driver import round_trips  # noqa: E402

WINDOW = 500
CONCURRENCY = 8


def soak(tasks: int, profile: Path | None = None) -> dict:
    """Run `tasks` one-line shell tasks to the end; throughput per window, memory, bytes per change."""
    # restarts: the supervisor is killed six times at the end (`restart_cost`), past the default limit
    env = {"AURA_MAX_CONCURRENT_TASKS": str(CONCURRENCY), "AURA_CYCLE_INTERVAL": "5", "AURA_RESTART_MAX": "20"}
    with Project.temporary(env) as p:
        lines = [f"- [ ] item {i} `true`" for i in range(tasks)]
        p.write_task("# Soak\n\n" + "\n".join(lines) + "\n")
        p.up()
        pids = wait_for(p.all_up, 30, "the daemons")
        rss_start = _rss(pids)
        io_start = _io(pids["brain"])
        spies = _spy(pids, profile) if profile else []
        samples: list[tuple[float, dict[str, int]]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_sample, args=(pids, samples, stop), daemon=True)
        sampler.start()
        t0 = time.time()
        try:
            wait_for(lambda: _finished(p), 120 + tasks, "the soak to finish", interval=1.0)
        finally:
            stop.set()
            sampler.join()
            for spy in spies:
                spy.send_signal(2)
                spy.wait(60)
        took = time.time() - t0
        rss_end = _rss(pids)
        io_end = _io(pids["brain"])
        p.remember()
        start_read = start_read_cost(p.paths)
        restart = restart_cost(p)
        events = [e for e in read_jsonl(p.paths.journal("brain")) if e.get("kind") == "task_status"]
        state_bytes = (p.paths.state_dir / "state.json").stat().st_size
    changes = len(events)
    written = {k: io_end[k] - io_start[k] for k in io_end}
    return {
        "tasks": tasks,
        "concurrency": CONCURRENCY,
        "seconds": round(took, 1),
        "windows": _windows(events, samples),
        "rss_start": rss_start,
        "rss_end": rss_end,
        "status_changes": changes,
        "brain_bytes_written_per_change": {k: round(v / max(1, changes)) for k, v in written.items()},
        "state_json_bytes": state_bytes,
        "supervisor_start_read": start_read,
        "supervisor_restart": restart,
        "save_cost": save_cost(),
        "tree_cost": tree_cost(),
    }


def save_cost(sizes: tuple[int, ...] = (500, 5000), runs: int = 20, store_class: Any = None) -> dict:
    """One status change saved, in process, on trees of `sizes` finished tasks shaped like the soak's:
    median milliseconds and the bytes passed to write(2) (the journal line, or the files rewritten).
    The change is the one a run makes most: a running task completes. `reopened_bytes` is the rarer
    change to a task that had ended (a retry asked for by hand), which is written whole."""
    from aura.brain.state import StateStore, add_task, new_task

    out = {}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="aura-save-cost-") as tmp:
            store = (store_class or StateStore)(Path(tmp))
            state = store.load().state
            for i in range(n):
                add_task(state, new_task(f"T{i:06d}", f"item {i} `true`", **_finished_fields(f"T{i:06d}")))
            running = [f"R{r:06d}" for r in range(runs)]
            for tid in running:
                add_task(state, new_task(tid, f"item {tid} `true`", **{**_finished_fields(tid), "status": IN_PROGRESS}))
            store.save(state)
            times, written = [], []
            for tid in running:
                times_one, bytes_one = _save_one(store, state, tid, {"status": COMPLETED, "finished_at": time.time()})
                times.append(times_one)
                written.append(bytes_one)
            _, reopened = _save_one(store, state, "T000000", {"status": PENDING, "reason": "retry asked for"})
        out[str(n)] = {
            "ms": round(1000 * statistics.median(times), 3),
            "bytes": int(statistics.median(written)),
            "reopened_bytes": reopened,
        }
    return out


def start_read_cost(paths: Any, runs: int = 5) -> dict:
    """What a restarted supervisor reads of the soak's registry (every worker folder it made), in
    process, median milliseconds: `index`, the records the live index names and the latest ended
    ones (a start in the boot the index was set in); `every_record`, each folder's record (the
    first start in a boot). Run once the soak has ended: no worker is live, the index is empty."""
    from aura.supervisor.registry import Registry
    from aura.supervisor.states import KEEP_EXITED

    registry = Registry(paths)

    def every_record() -> None:
        registry.boot_mark.unlink(missing_ok=True)
        registry.records_at_start(KEEP_EXITED)

    return {
        "workers": len(registry.ids()),
        "every_record_ms": _median_ms(every_record, runs),
        "index_ms": _median_ms(functools.partial(registry.records_at_start, KEEP_EXITED), runs),
    }


def restart_cost(p: Project, runs: int = 3) -> dict:
    """The supervisor killed with SIGKILL at the soak's end and started again by its peers, `runs`
    times each way: median milliseconds from the new process's start to its serving (its pid file
    marked running once it took its workers back; 10 ms ticks), `index` as it starts, `every_record` with the
    mark of the boot removed, so that it reads every record as at the first start after a boot."""
    from aura.runtime.records import LIVE_INDEX_BOOT

    out: dict[str, Any] = {"workers": len(p.worker_dirs())}
    for way in ("index", "every_record"):
        took = []
        for _ in range(runs):
            if way == "every_record":
                (p.paths.run_dir / LIVE_INDEX_BOOT).unlink(missing_ok=True)
            old = p.kill9("supervisor")
            back = functools.partial(_serving_again, p, old)
            rec = wait_for(back, 60, "the supervisor started again", interval=0.05)
            took.append(_age_when_marked(rec))
        out[f"{way}_ms"] = round(1000 * statistics.median(took), 1)
    return out


def _age_when_marked(rec: dict) -> float:
    """Seconds from the pid file's process start to its `updated_at`, both on the kernel's clock
    since boot: a start time worked out from /proc/stat's boot time, a whole second, may be off by
    up to a second against the wall clock."""
    from aura.watchdog.sampler import start_ticks

    ticks = start_ticks(int(rec["pid"]))
    if ticks is None:
        raise RuntimeError(f"the supervisor (pid {rec['pid']}) ended as it was timed")
    started = ticks / os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as fh:
        uptime = float(fh.read().split()[0])
    return float(rec["updated_at"]) - (time.time() - uptime) - started


def _serving_again(p: Project, old_pid: int) -> dict | None:
    rec = p.pidfile("supervisor")
    fresh = rec.get("state") == "running" and rec.get("pid") != old_pid
    return rec if fresh and rec.get("create_time") and rec.get("updated_at") else None


def tree_cost(sizes: tuple[int, ...] = (5000, 50000), runs: int = 5) -> dict:
    """What the brain still does over the whole tree, in process, on trees of `sizes` ended tasks
    (median milliseconds): `sweep`, the lazy flush each second finding changes no save was told of
    (bounded: open, settling and SWEEP settled tasks); `counts`, each cycle; `stall`, the stall
    check's signature, at most each second; `progress`, progress.md rendered at each persist; and
    `fold`, the snapshot written once the journal holds an eighth of it."""
    from aura.brain import progress, stall
    from aura.brain.state import StateStore, add_task, counts, new_task

    out = {}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="aura-tree-cost-") as tmp:
            store = StateStore(Path(tmp))
            state = store.load().state
            for i in range(n):
                add_task(state, new_task(f"T{i:06d}", f"item {i} `true`", **_finished_fields(f"T{i:06d}")))
            store.flush(state)
            out[str(n)] = {
                "sweep": _median_ms(functools.partial(store.flush, state, lazily=True), runs),
                "counts": _median_ms(functools.partial(counts, state), runs),
                "stall": _median_ms(functools.partial(stall.signature, state), runs),
                "progress": _median_ms(functools.partial(progress.render, state, []), runs),
                "fold": _fold_ms(store, state, runs),
            }
    return out


def _fold_ms(store: Any, state: dict, runs: int) -> float:
    """A flush that folds a one-line journal: the whole tree compared and streamed to state.json."""
    times = []
    for i in range(runs):
        state["tasks"]["T000000"]["reason"] = f"evidence checked again ({i})"
        store.save(state, {"T000000"})
        t0 = time.perf_counter()
        store.flush(state)
        times.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(times), 2)


def _median_ms(call: Any, runs: int) -> float:
    return round(1000 * statistics.median(round_trips(call, runs, warmup=0)), 2)


def _save_one(store: Any, state: dict, tid: str, change: dict) -> tuple[float, int]:
    """Seconds and bytes written to save one task's change."""
    task = state["tasks"][tid]
    task.update(change, reason=change.get("reason") or f"evidence checked for {tid}", updated_at=time.time())
    before = _written()
    t0 = time.perf_counter()
    try:
        store.save(state, {tid})
    except TypeError:  # a store whose save takes the tree alone
        store.save(state)
    return time.perf_counter() - t0, _written() - before


def _finished_fields(tid: str) -> dict:
    return {
        "status": COMPLETED,
        "attempts": 1,
        "spawns": 1,
        "kind": "command",
        "command": "true",
        "artifacts": [],
        "executor": None,
        "reason": "evidence checked",
        "evidence": f"worker {tid}-1 exited 0 (outcome succeeded)",
        "worker_id": f"{tid}-1",
        "workers": [f"{tid}-1"],
        "started_at": time.time(),
        "finished_at": time.time(),
    }


def _written() -> int:
    """Bytes this process has passed to write(2) so far."""
    return int(getattr(psutil.Process().io_counters(), "write_chars", 0))


def _finished(p: Project) -> bool:
    state = read_json(p.paths.state_dir / "state.json") or {}
    return bool((state.get("run") or {}).get("finished"))


def _rss(pids: dict[str, int]) -> dict[str, int]:
    out = {}
    for name in DAEMONS:
        try:
            out[name] = psutil.Process(pids[name]).memory_info().rss
        except (psutil.NoSuchProcess, KeyError):
            continue
    return out


def _io(pid: int) -> dict[str, int]:
    """What the brain wrote: through write() calls (chars) and to the disk (bytes)."""
    try:
        io = psutil.Process(pid).io_counters()
    except (psutil.NoSuchProcess, AttributeError):
        return {"write_chars": 0, "write_bytes": 0}
    return {"write_chars": getattr(io, "write_chars", 0), "write_bytes": io.write_bytes}


def _sample(pids: dict[str, int], out: list, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        out.append((time.time(), _rss(pids)))


def _spy(pids: dict[str, int], folder: Path) -> list[subprocess.Popen]:
    exe = shutil.which("py-spy")
    if exe is None:
        raise SystemExit("--profile needs py-spy on PATH (pip install py-spy into your own environment)")
    folder.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [exe, "record", "--pid", str(pids[n]), "--format", "raw", "--rate", "50", "-o", str(folder / f"{n}.txt")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in ("brain", "supervisor")
    ]


def _windows(events: list[dict], samples: list[tuple[float, dict[str, int]]]) -> list[dict]:
    """Tasks per second over each run of WINDOW completions, from the first start, with the RSS then."""
    tasks = [e for e in events if (e.get("data") or {}).get("task_id") != ROOT]
    starts = [e["ts"] for e in tasks if e["data"].get("new") == IN_PROGRESS]
    done = sorted(e["ts"] for e in tasks if e["data"].get("new") == COMPLETED)
    if not starts or not done:
        return []
    out = []
    begin = min(starts)
    for i in range(0, len(done), WINDOW):
        chunk = done[i : i + WINDOW]
        end = chunk[-1]
        rss = next((r for t, r in samples if t >= end), samples[-1][1] if samples else {})
        out.append({"tasks": len(chunk), "per_s": round(len(chunk) / max(1e-6, end - begin), 2), "rss": rss})
        begin = end
    return out


def render(res: dict) -> str:
    mb = 1024 * 1024
    lines = [
        f"soak: {res['tasks']} tasks at concurrency {res['concurrency']}, {res['seconds']} s",
        "window  tasks/s  brain MB  supervisor MB",
    ]
    for n, w in enumerate(res["windows"], 1):
        rss = w["rss"]
        lines.append(f"{n:6}  {w['per_s']:7}  {rss.get('brain', 0) / mb:8.1f}  {rss.get('supervisor', 0) / mb:13.1f}")
    for label in ("rss_start", "rss_end"):
        lines.append(f"{label}: " + ", ".join(f"{k} {v / mb:.1f} MB" for k, v in res[label].items()))
    per = res["brain_bytes_written_per_change"]
    lines.append(
        f"status changes {res['status_changes']}; brain wrote per change: {per['write_chars']} B (write calls), "
        f"{per['write_bytes']} B (to disk); state.json {res['state_json_bytes']} B"
    )
    for n, c in res["save_cost"].items():
        lines.append(
            f"one status change saved on a tree of {n} tasks: {c['ms']} ms, {c['bytes']} B written "
            f"({c.get('reopened_bytes', '-')} B to reopen an ended task)"
        )
    for n, c in (res.get("tree_cost") or {}).items():
        lines.append(f"over a tree of {n} ended tasks, ms: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Aura's soak: throughput per 500 tasks, daemon memory.")
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--profile", type=Path, help="write py-spy raw profiles of the brain and supervisor here")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    res = soak(args.tasks, args.profile)
    print(render(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
