"""What running workers as Slurm jobs costs: submit-to-running latency, `aura ps` with N Slurm workers,
and stopping them all through scancel. On a private one-node cluster (tests/support/slurm.py) whose
partition oversubscribes its CPUs (`OverSubscribe=FORCE:16`), so N jobs run at once on 2 cores.

    python -m bench.slurmcost                 # 32 workers, 20 runs of `aura ps`
    python -m bench.slurmcost --workers 8 --runs 5 --json out.json

Latency of each worker, from its `spawn` request to the supervisor: to `sbatch`'s answer (the
request's reply, the worker `queued`), to its shim's start on the node (`started_at` in its start
report), and to the supervisor reporting it `running` (its `list`, asked every 20 ms). A real
cluster adds its scheduler's cycle (`SchedulerParameters`); the private one schedules at once.
Needs root and Debian's slurm-wlm and munge; elsewhere the figures say why they are missing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aura.ipc.client import Client  # noqa: E402
from bench.stats import summary  # noqa: E402
from tests.support.harness import Project, wait_for  # noqa: E402
from tests.support.slurm import cluster, unavailable_reason  # noqa: E402

DONE_TASK = "# Nothing to run\n\n- [x] already done `true`\n"
SETTINGS = {
    "AURA_EXECUTOR": "slurm",
    "AURA_LAYER2_BACKEND": "shell",
    "AURA_GIT": "off",
    "AURA_CYCLE_INTERVAL": "300",
    "AURA_WORKER_MAX_CPU_PERCENT": "0",
    "AURA_WORKER_MAX_SYSTEM_MEMORY_GB": "0.1",  # --mem=103M each: 32 fit the node's memory
    "AURA_SLURM_PROBE_SECONDS": "30",
    "AURA_KILL_GRACE_SECONDS": "2",
}
LIST_EVERY_S = 0.02


def measure(workers: int = 32, ps_runs: int = 20) -> dict[str, Any]:
    why = unavailable_reason()
    if why is not None:
        return {"available": False, "why": why}
    with tempfile.TemporaryDirectory(prefix="aura-bench-slurm-") as tmp:
        with cluster(Path(tmp) / "cluster", partition={"OverSubscribe": "FORCE:16"}) as slurm:
            with Project.temporary({**slurm.env, **SETTINGS}) as p:
                p.write_task(DONE_TASK)
                p.up()
                return {"available": True, "workers": workers, **_run(p, slurm, workers, ps_runs)}


def _run(p: Project, slurm: Any, n: int, ps_runs: int) -> dict[str, Any]:
    client = Client(p.paths.endpoint("supervisor"), "supervisor", timeout=60.0, retries=0)
    try:
        asked: dict[str, float] = {}
        queued: dict[str, float] = {}
        for i in range(n):
            wid = f"j-{i}"
            asked[wid] = time.time()
            spec = {"worker_id": wid, "task_id": "j", "backend": "shell", "executor": "slurm", "budget_s": 0}
            client.call("spawn", {**spec, "argv": ["/bin/sh", "-c", "sleep 900"]})
            queued[wid] = time.time()
        seen = _wait_running(client, list(asked), timeout=120.0 + n)
        p.remember()
        records = {w["worker_id"]: w for w in client.call("list", {"worker_ids": list(asked)})}
    finally:
        client.close()
    ps = _time_command(p.aura_argv("ps"), p, ps_runs)
    t = time.perf_counter()
    p.aura("down")
    down_s = time.perf_counter() - t
    wait_for(lambda: slurm.queue() == [], 60, what="every job gone from the queue")
    return {
        "submit_ms": summary([queued[w] - asked[w] for w in asked], 1000, 1),
        "to_node_start_ms": summary([float(records[w]["started_at"]) - asked[w] for w in asked], 1000, 1),
        "to_running_ms": summary([seen[w] - asked[w] for w in asked], 1000, 1),
        "all_running_s": round(max(seen.values()) - min(asked.values()), 2),
        "ps_ms": ps,
        "down_s": round(down_s, 2),
    }


def _wait_running(client: Client, ids: list[str], timeout: float) -> dict[str, float]:
    """When the supervisor first reported each worker running."""
    seen: dict[str, float] = {}
    end = time.monotonic() + timeout
    while len(seen) < len(ids):
        if time.monotonic() > end:
            raise TimeoutError(f"{len(ids) - len(seen)} of {len(ids)} Slurm workers not running after {timeout:g}s")
        listed = client.call("list", {"worker_ids": [w for w in ids if w not in seen]})
        now = time.time()  # after the answer: never earlier than the change it reports
        for rec in listed:
            if rec.get("state") == "running":
                seen[rec["worker_id"]] = now
            elif rec.get("state") == "exited":
                raise RuntimeError(f"{rec['worker_id']} ended before it ran: {rec.get('exit')}")
        time.sleep(LIST_EVERY_S)
    return seen


def _time_command(argv: list[str], p: Project, runs: int, warmup: int = 2) -> dict:
    took: list[float] = []
    for i in range(warmup + runs):
        t = time.perf_counter()
        proc = subprocess.run(argv, cwd=p.root, env=p.env, stdin=subprocess.DEVNULL, capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"aura ps exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-300:]}")
        if i >= warmup:
            took.append(time.perf_counter() - t)
    return summary(took, 1000, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slurmcost", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--runs", type=int, default=20, help="timed runs of `aura ps`")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    result = measure(args.workers, args.runs)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
