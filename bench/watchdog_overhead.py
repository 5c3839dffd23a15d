#!/usr/bin/env python3
"""Cost of watching: the watchdog's own CPU and time per sample as the workers grow.

Starts worker process trees (a `sh` root per worker with children, as a shell worker that
starts helpers looks), writes registry records for them in a temporary project, and drives
the watchdog's real sampling code (`Sampling.once`, in this process, in
dry-run so nothing is killed but every limit is evaluated) at a fixed interval. Reports,
for each size and load: CPU seconds and wall time per sample, per sampled process, and the
watchdog's CPU % at the default poll interval (10 s) and at 1 s.

"idle" trees sleep; in "busy" trees every process spins (at nice 19, so the sampler gets
the CPU it would get on a box whose workers are busy but not starved of it by priority).
"slurm" workers run on another node: no local process, a record with `executor: slurm` and the
`usage.json` its shim would write there, replaced with a new sample before each pass (outside
the timing), so the pass reads and judges each node's figures as it does in a Slurm run.

    python bench/watchdog_overhead.py                      # sizes 10,50,200, every load
    python bench/watchdog_overhead.py --sizes 200 --samples 50 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aura.runtime.config import Config  # noqa: E402
from aura.runtime.fsutil import atomic_write_json  # noqa: E402
from aura.runtime.paths import ProjectPaths  # noqa: E402
from aura.runtime.pidfile import start_time  # noqa: E402
from aura.runtime.usagehistory import FLUSH_S  # noqa: E402
from aura.watchdog.main import WatchdogDaemon  # noqa: E402
from aura.watchdog.sampler import tree_pids  # noqa: E402

PER_TREE = 5  # processes per worker tree: the root and four children


def tree_command(children: int, busy: bool) -> list[str]:
    """A `sh` root that starts `children` sleepers or spinners and waits for them."""
    child = "sh -c 'while :; do :; done'" if busy else "sleep 100000"
    script = " ".join(f"{child} &" for _ in range(children)) + " wait"
    cmd = ["sh", "-c", script]
    return ["nice", "-n", "19", *cmd] if busy else cmd


def start_trees(total: int, busy: bool) -> list[subprocess.Popen]:
    """`total` processes in trees of PER_TREE, each tree its own session (killed by its pgid)."""
    trees = []
    for _ in range(max(1, total // PER_TREE)):
        trees.append(
            subprocess.Popen(
                tree_command(PER_TREE - 1, busy),
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        )
    return trees


def wait_populated(trees: list[subprocess.Popen], total: int, timeout: float = 30.0) -> int:
    """Until every tree has started its children; returns how many processes there are."""
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = sum(len(tree_pids(t.pid)) for t in trees)
        if count >= total:
            return count
        time.sleep(0.05)
    return count


def stop_trees(trees: list[subprocess.Popen]) -> None:
    """Kill each tree by the process group this script created for it, then reap the roots."""
    for t in trees:
        try:
            os.killpg(t.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for t in trees:
        t.wait()


def write_records(paths: ProjectPaths, trees: list[subprocess.Popen]) -> None:
    """Registry records as the supervisor writes them (the root plays the worker, no shim)."""
    for i, t in enumerate(trees):
        wid = f"bench-{i}"
        task_dir = paths.task_dir(wid)
        task_dir.mkdir(parents=True, exist_ok=True)
        for name in ("output.txt", "error.log"):  # the watchdog stats each worker's output files
            (task_dir / name).write_bytes(b"x" * 4096)
        atomic_write_json(
            paths.workers_dir / wid / "record.json",
            {
                "worker_id": wid,
                "task_id": wid,
                "backend": "shell",
                "state": "running",
                "limits": {},
                "worker_pid": t.pid,
                "worker_create_time": start_time(t.pid),
                "pgid": t.pid,
                "created_at": time.time(),
                "output": str(task_dir / "output.txt"),
                "error_log": str(task_dir / "error.log"),
            },
        )


def write_slurm_records(paths: ProjectPaths, workers: int) -> list[Path]:
    """Records of Slurm workers as the supervisor writes them, their pids the node's (none here)."""
    found = []
    for i in range(workers):
        wid = f"bench-{i}"
        task_dir = paths.task_dir(wid)
        task_dir.mkdir(parents=True, exist_ok=True)
        for name in ("output.txt", "error.log"):
            (task_dir / name).write_bytes(b"x" * 4096)
        folder = paths.workers_dir / wid
        atomic_write_json(
            folder / "record.json",
            {
                "worker_id": wid,
                "task_id": wid,
                "backend": "shell",
                "state": "running",
                "limits": {},
                "executor": "slurm",
                "job_id": str(1000 + i),
                "node": "node1",
                "worker_pid": 4_000_000 + i,
                "pgid": 4_000_000 + i,
                "created_at": time.time(),
                "output": str(task_dir / "output.txt"),
                "error_log": str(task_dir / "error.log"),
            },
        )
        found.append(folder / "usage.json")
    return found


def node_samples(paths: list[Path]) -> Callable[[], None]:
    """What the shims do between two passes: each replaces its worker's usage.json with a new sample."""

    def write() -> None:
        for path in paths:
            sample = {"sampled_at": time.time(), "host": "node1", "every": 1.0, "cpu_percent": 3.0}
            sample.update(rss_bytes=50 * 1024**2, nprocs=PER_TREE, ncpu=64, mem_total_bytes=512 * 1024**3)
            tmp = path.with_name("usage.json.tmp")
            tmp.write_text(json.dumps(sample))
            os.replace(tmp, path)

    return write


def make_watchdog(root: Path) -> WatchdogDaemon:
    paths = ProjectPaths.for_root(root)
    paths.ensure()
    cfg = Config()
    cfg.set("AURA_WORKER_RESOURCE_GUARD", "dry-run", "bench")
    cfg.set(
        "AURA_WORKER_RESOURCE_POLL_SECONDS", "1", "bench"
    )  # a window must hold two polls; measure() drives sampling
    cfg.set("AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS", "2", "bench")
    cfg.set("AURA_WORKER_MAX_SYSTEM_MEMORY_GB", "64", "bench")
    cfg.set("AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB", "0.01", "bench")
    return WatchdogDaemon(paths, cfg)


def measure(
    dog: WatchdogDaemon, samples: int, interval: float, between: Callable[[], None] = lambda: None
) -> dict[str, float]:
    """Drive the sampling pass at `interval`; CPU and wall time of each call (not of `between`).
    The usage history's flush runs on its own timer in the daemon: timed apart, every FLUSH_S."""
    cpu, wall, nprocs, flush = [], [], [], []
    flush_every = max(1, round(FLUSH_S / interval))
    between()
    dog.sampling.once()  # the first sample reads every record and builds the trackers
    for i in range(samples):
        time.sleep(interval)
        between()
        c0, w0 = time.process_time(), time.perf_counter()
        dog.sampling.once()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        nprocs.append(sum(w.sample.nprocs for w in dog.watched.values() if w.sample))
        if (i + 1) % flush_every == 0:
            c0 = time.process_time()
            dog.history.flush(time.time(), lambda wid: None)
            flush.append(time.process_time() - c0)
    procs = max(1, round(statistics.median(nprocs)))
    cpu_med, wall_med = statistics.median(cpu), statistics.median(wall)
    figures = {
        "cpu_ms_per_sample": 1000 * cpu_med,
        "wall_ms_per_sample": 1000 * wall_med,
        "wall_ms_p90": 1000 * sorted(wall)[int(0.9 * (len(wall) - 1))],
        "cpu_us_per_proc": 1e6 * cpu_med / procs,
        "wall_us_per_proc": 1e6 * wall_med / procs,
        "cpu_percent_at_10s_poll": 100 * cpu_med / 10.0,
        "cpu_percent_at_1s_poll": 100 * cpu_med / 1.0,
        "history_flush_cpu_ms": 1000 * statistics.median(flush) if flush else 0.0,
    }
    return {
        "sampled_procs": procs,
        "workers": len(dog.watched),
        "samples": samples,
        **{k: round(v, 4) for k, v in figures.items()},
    }


def run_slurm_case(total: int, samples: int, interval: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="aura-wd-bench-") as tmp:
        dog = make_watchdog(Path(tmp))
        try:
            usage = write_slurm_records(dog.paths, max(1, total // PER_TREE))
            result = measure(dog, samples, interval, node_samples(usage))
        finally:
            dog.ctx.destroy(linger=0)
    return {"processes": total, "load": "slurm", "started_procs": 0, **result}


def run_case(total: int, busy: bool, samples: int, interval: float) -> dict[str, Any]:
    trees = start_trees(total, busy)
    try:
        found = wait_populated(trees, total)
        with tempfile.TemporaryDirectory(prefix="aura-wd-bench-") as tmp:
            dog = make_watchdog(Path(tmp))
            try:
                write_records(dog.paths, trees)
                result = measure(dog, samples, interval)
            finally:
                dog.ctx.destroy(linger=0)
    finally:
        stop_trees(trees)
    return {"processes": total, "load": "busy" if busy else "idle", "started_procs": found, **result}


def print_table(rows: list[dict[str, Any]]) -> None:
    header = [
        "procs",
        "load",
        "workers",
        "cpu ms/sample",
        "wall ms/sample",
        "wall p90",
        "cpu us/proc",
        "wall us/proc",
        "CPU% @10s",
        "CPU% @1s",
        "history flush ms",
    ]
    lines = [header]
    for r in rows:
        lines.append(
            [
                str(r["sampled_procs"]),
                r["load"],
                str(r["workers"]),
                f"{r['cpu_ms_per_sample']:.2f}",
                f"{r['wall_ms_per_sample']:.2f}",
                f"{r['wall_ms_p90']:.2f}",
                f"{r['cpu_us_per_proc']:.1f}",
                f"{r['wall_us_per_proc']:.1f}",
                f"{r['cpu_percent_at_10s_poll']:.3f}",
                f"{r['cpu_percent_at_1s_poll']:.2f}",
                f"{r['history_flush_cpu_ms']:.2f}",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(c.rjust(widths[i]) for i, c in enumerate(line)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,50,200", help="total processes per case (comma-separated)")
    ap.add_argument("--loads", default="idle,busy,slurm", help="idle, busy, slurm (comma-separated)")
    ap.add_argument("--samples", type=int, default=40, help="measured samples per case")
    ap.add_argument("--interval", type=float, default=0.2, help="seconds between samples")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)
    logging.getLogger("aura.watchdog.gpu").setLevel(logging.ERROR)  # "no GPU here" is not a result
    rows = []
    for load in [x.strip() for x in args.loads.split(",") if x.strip()]:
        for size in [int(x) for x in args.sizes.split(",") if x.strip()]:
            if load == "slurm":
                rows.append(run_slurm_case(size, args.samples, args.interval))
            else:
                rows.append(run_case(size, load == "busy", args.samples, args.interval))
    print_table(rows)
    report = {
        "host": platform.node(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "interval_s": args.interval,
        "per_tree": PER_TREE,
        "cases": rows,
    }
    text = json.dumps(report, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
