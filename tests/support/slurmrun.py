"""Aura runs on the tests' private Slurm cluster (tests/support/slurm.py): a project or a rig pointed at
it, and what the Slurm tests read back from a run. Shared by the Slurm test modules and the bench."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from aura.runtime.fsutil import read_json
from tests.support.harness import Project, wait_for
from tests.support.rig import Rig
from tests.support.slurm import SlurmCluster

RUN_S = 90


def slurm_project(project: Project, cluster: SlurmCluster, **env: str) -> Project:
    project.env.update(cluster.env)
    project.env.update(
        AURA_EXECUTOR="slurm",
        AURA_LAYER2_BACKEND="shell",
        AURA_GIT="off",
        AURA_MAX_CONCURRENT_TASKS="4",
        AURA_WORKER_MAX_CPU_PERCENT="0",  # one CPU each: the two-CPU node runs two jobs at a time
    )
    project.env.update(env)
    return project


def state(p: Project) -> dict:
    return read_json(p.paths.state_dir / "state.json") or {}


def finished(p: Project) -> dict | None:
    st = state(p)
    return st if (st.get("run") or {}).get("finished") else None


def by_title(st: dict) -> dict[str, dict]:
    return {str(t.get("title", "")).split(" `")[0]: t for t in st["tasks"].values()}


def use_cluster(rig: Rig, cluster: Any, **settings: str) -> Path:
    """Point the project's daemons at the cluster; the controller's log, as its config names it."""
    rig.p.env.update(SLURM_CONF=str(cluster.conf), PATH=cluster.env["PATH"], AURA_EXECUTOR="slurm", **settings)
    return slurmctld_log(str(cluster.conf))


def slurmctld_log(conf: str) -> Path:
    """The cluster's controller log, as its config names it."""
    found = re.search(r"^SlurmctldLogFile=(\S+)", Path(conf).read_text(), re.M)
    assert found, f"{conf} names no SlurmctldLogFile"
    return Path(found.group(1))


def spawn_on_slurm(rig: Rig, wid: str, body: str, *argv: str) -> dict:
    """Spawn a shell worker as a Slurm job and wait until its shim reports from the node."""
    args = {"worker_id": wid, "task_id": wid, "backend": "shell", "executor": "slurm"}
    rig.call("supervisor", "spawn", {**args, "argv": [sys.executable, rig.script(wid, body), *argv]}, timeout=30)
    rec = wait_for(
        lambda: (r := rig.worker(wid)).get("state") != "queued" and r, 60, what=f"{wid}'s job to start on its node"
    )
    rig.p.remember()
    assert rec["state"] == "running" and rec["executor"] == "slurm" and rec["job_id"], rec
    return rec
