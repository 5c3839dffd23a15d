"""Resource enforcement for workers on a Slurm cluster: the watchdog cannot see a node's processes,
so it judges a Slurm worker by the samples its shim writes on the node (`usage.json`) and stops it
through `scancel`. With the real private one-node cluster (the `slurm_cluster` fixture), the real
supervisor and watchdog, and a real memory hog run as a Slurm job."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from typing import Any

from aura.runtime.fsutil import read_json
from tests.support.harness import wait_for
from tests.support.rig import GIB, Rig
from tests.support.slurmrun import spawn_on_slurm, use_cluster

LIMIT_GB = 0.2
HOG_MB = 300  # over LIMIT_GB

HOG = """\
import sys, time
b = bytearray(int(sys.argv[1]) * 1024 * 1024)
b[::4096] = b"x" * len(b[::4096])  # touch every page, so it is resident
time.sleep(120)
"""


def aura_ps(rig: Rig, *options: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "aura.cli", "--project", str(rig.p.root), "ps", *options],
        env=rig.p.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def column(table: str, wid: str, name: str) -> str:
    """One cell of `aura ps`'s table (its columns are padded to the header's positions)."""
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("WORKER"))
    row = next(line for line in lines if line.startswith(wid + " "))
    start = header.index(name)
    return row[start:].split()[0]


def test_a_memory_hog_on_slurm_is_killed_by_the_watchdog_from_node_samples_through_scancel(
    rig: Rig, slurm_cluster: Any
) -> None:
    log = use_cluster(
        rig,
        slurm_cluster,
        AURA_WORKER_MAX_SYSTEM_MEMORY_GB=str(LIMIT_GB),
        AURA_WORKER_RESOURCE_POLL_SECONDS="0.5",
        AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS="2",
        AURA_KILL_GRACE_SECONDS="3",
    )
    rig.start("watchdog", "supervisor")
    rec = spawn_on_slurm(rig, "hog", HOG, str(HOG_MB))
    job = str(rec["job_id"])
    folder = rig.p.paths.worker_dir("hog")
    job_script = (folder / "job.sh").read_text()
    assert "--sample-every 0.5 " in job_script
    seen = wait_for(
        lambda: (u := rig.usage("hog")) and u.get("rss_bytes", 0) > LIMIT_GB * GIB and u,
        30,
        what="the watchdog to see the hog's memory from the node",
    )
    assert seen["host"] == rec["node"] and seen["nprocs"] == 1
    node_sample = read_json(folder / "usage.json")
    assert node_sample is not None and node_sample["rss_bytes"] > LIMIT_GB * GIB
    kill = wait_for(lambda: rig.kill_record("hog"), 30, what="the kill record")
    assert kill["limit"] == "AURA_WORKER_MAX_SYSTEM_MEMORY_GB" and kill["strikes"] == 3
    assert kill["executor"] == "slurm" and kill["job_id"] == job and kill["node"] == rec["node"]
    assert all(s["rss_gb"] > LIMIT_GB for s in kill["samples"][-3:])
    done = wait_for(lambda: rig.exited("hog"), 60, what="the worker's exit")
    assert done["outcome"] == "killed", done
    assert done["kill"]["reason_code"] == "resource" and done["kill"]["limit"] == "AURA_WORKER_MAX_SYSTEM_MEMORY_GB"
    assert done["exit"]["signal"] == signal.SIGTERM  # the shim forwarded the TERM from Slurm and recorded it
    # the stop went through Slurm: the controller logged the request for this job
    assert f"REQUEST_KILL_JOB JobId={job} " in log.read_text()
    line = rig.logged("worker_resource_kill")
    assert len(line) == 1 and line[0]["via"] == "scancel" and line[0]["job_id"] == job


def test_aura_ps_shows_a_slurm_workers_cpu_and_memory(rig: Rig, slurm_cluster: Any) -> None:
    use_cluster(rig, slurm_cluster, AURA_WORKER_RESOURCE_POLL_SECONDS="0.5")
    rig.start("watchdog", "supervisor")
    spawn_on_slurm(rig, "holder", HOG, "150")
    wait_for(lambda: (u := rig.usage("holder")) and u.get("rss_bytes", 0) > 150 * 1024**2, 30, what="a node sample")
    row = next(w for w in json.loads(aura_ps(rig, "--json"))["workers"] if w["worker_id"] == "holder")
    assert row["usage"]["rss_bytes"] > 150 * 1024**2 and "cpu_percent" in row["usage"]
    assert row["usage"]["host"] == row["node"]
    table = aura_ps(rig)
    assert re.fullmatch(r"\d+\.\d", column(table, "holder", "CPU%")), table
    assert re.fullmatch(r"1[5-9]\d\.\dM", column(table, "holder", "RSS")), table
    rig.call("supervisor", "kill", {"worker_id": "holder", "reason": "test over"})
    wait_for(lambda: rig.exited("holder"), 60, what="the worker's end")


DEAF_HOG = """\
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
b = bytearray(int(sys.argv[1]) * 1024 * 1024)
b[::4096] = b"x" * len(b[::4096])
time.sleep(120)
"""


def test_a_hog_that_ignores_sigterm_is_killed_through_scancel_after_the_grace(rig: Rig, slurm_cluster: Any) -> None:
    log = use_cluster(
        rig,
        slurm_cluster,
        AURA_WORKER_MAX_SYSTEM_MEMORY_GB=str(LIMIT_GB),
        AURA_WORKER_RESOURCE_POLL_SECONDS="0.5",
        AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS="2",
        AURA_KILL_GRACE_SECONDS="2",
    )
    rig.start("watchdog", "supervisor")
    job = str(spawn_on_slurm(rig, "deaf", DEAF_HOG, str(HOG_MB))["job_id"])
    kill = wait_for(lambda: rig.kill_record("deaf"), 30, what="the kill record")
    assert kill["job_id"] == job
    sigkill = wait_for(lambda: rig.logged("worker_sigkill"), 30, what="the KILL after the grace")
    assert sigkill[0]["worker"] == "deaf" and sigkill[0]["job_id"] == job
    # Slurm's KILL cancels the job: its last SIGKILL comes after the cluster's KillWait (30 s by default),
    # and until the job has ended the watchdog judges the worker no more
    done = wait_for(lambda: rig.exited("deaf"), 90, what="the worker's end")
    assert done["outcome"] == "killed" and done["kill"]["limit"] == "AURA_WORKER_MAX_SYSTEM_MEMORY_GB", done
    assert done["exit"]["slurm_state"] == "CANCELLED" and done["exit"]["signal"] == signal.SIGKILL
    assert log.read_text().count(f"REQUEST_KILL_JOB JobId={job} ") == 2  # TERM, then KILL
    assert len(rig.logged("worker_resource_kill")) == 1 and len(rig.logged("worker_sigkill")) == 1
