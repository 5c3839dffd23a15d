"""Aura's other features with workers on Slurm: git mode (each attempt's worktree in the shared data
folder, run as a job, merged), and jobs a worker registers, kept by its shim on the node. With the real
private one-node cluster and the real daemons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.gitrepos import GIT_ENV, git, make_repo
from tests.support.harness import Project, wait_for
from tests.support.rig import Rig
from tests.support.slurmrun import RUN_S, by_title, finished, slurm_project, spawn_on_slurm, use_cluster
from tests.support.workloads import REGISTERING_WORKER


def test_git_mode_runs_each_attempt_as_a_job_in_its_own_worktree_and_merges_it(
    project: Project, slurm_cluster: Any
) -> None:
    p = slurm_project(project, slurm_cluster, AURA_GIT="on")
    p.env.update(GIT_ENV)
    make_repo(p.root)
    p.write_task("# Git\n\n- [ ] one `echo one > one.txt`\n- [ ] two `echo two > two.txt`\n")
    p.up()
    st = wait_for(lambda: finished(p), RUN_S, what="both tasks to be merged")
    tasks = by_title(st)
    assert [tasks[name]["status"] for name in ("one", "two")] == ["completed"] * 2
    for rec in p.workers().values():  # the attempts' worktrees are in the data folder, which the nodes share
        assert rec["executor"] == "slurm" and Path(rec["cwd"]).is_relative_to(p.paths.data / "git" / "attempts"), rec
    branch = st["git"]["branch"]
    assert git(p.root, "show", f"{branch}:one.txt") == "one" and git(p.root, "show", f"{branch}:two.txt") == "two"
    assert not (p.root / "one.txt").exists()  # the user's checkout is left alone


def test_a_job_a_slurm_worker_registers_keeps_its_task_running_until_it_ends(rig: Rig, slurm_cluster: Any) -> None:
    use_cluster(rig, slurm_cluster)
    rig.start("watchdog", "supervisor")
    release, pids_file = rig.tmp / "release", rig.tmp / "pids"
    spawn_on_slurm(rig, "trainer", REGISTERING_WORKER, str(release), "1", str(pids_file), "exit")
    note = wait_for(lambda: rig.worker("trainer").get("managed"), 30, what="the supervisor to note the kept job")
    pids = json.loads(pids_file.read_text())
    assert note["worker_exit"] == {"exit_code": 0, "signal": None}
    assert [c["pid"] for c in note["children"]] == [pids["job"]]
    worker = rig.worker("trainer")
    assert worker["state"] == "running" and slurm_cluster.job(str(worker["job_id"]))["JobState"] == "RUNNING"
    release.touch()
    done = wait_for(lambda: rig.exited("trainer"), 30, what="the worker's exit record")
    assert done["outcome"] == "succeeded" and done["exit"]["managed"]["children"][0]["exit_code"] == 3
    slurm_cluster.wait_state(str(worker["job_id"]), "COMPLETED")


def test_down_keep_workers_leaves_the_jobs_running_and_the_next_up_adopts_them(
    project: Project, slurm_cluster: Any
) -> None:
    p = slurm_project(project, slurm_cluster)
    p.write_task("# Keep\n\n- [ ] kept `sleep 8; echo kept >> ledger.txt`\n")
    p.up()
    wid = wait_for(lambda: next((w for w, r in p.workers().items() if r.get("state") == "running"), None), 60)
    job = str(p.workers()[wid]["job_id"])
    p.aura("down", "--keep-workers")
    assert p.all_up() is None and slurm_cluster.job(job)["JobState"] == "RUNNING"
    p.up()
    st = wait_for(lambda: finished(p), RUN_S, what="the adopted job's task to finish")
    assert by_title(st)["kept"]["status"] == "completed"
    assert (p.root / "ledger.txt").read_text().split() == ["kept"] and list(p.workers()) == [wid]
