"""What Slurm does to a job behind Aura's back: a node that fails under a running worker, a job put
back in the queue (requeued), and a job preempted by one of a higher partition. With the real private
one-node cluster, the real daemons and the local planner; nothing stands in for Slurm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.harness import Project, wait_for
from tests.support.slurm import cluster, require_slurm
from tests.support.slurmrun import RUN_S, by_title, finished, slurm_project

# The first attempt writes its line and waits to be stopped; a later attempt finds the marker and ends.
ONCE_THEN_WAIT = (
    "if [ -f first ]; then echo again >> ledger.txt; else touch first; echo run >> ledger.txt; sleep 300; fi"
)


def running_worker(p: Project) -> str:
    return wait_for(
        lambda: next((w for w, r in p.workers().items() if r.get("state") == "running"), None),
        60,
        what="a worker running on the node",
    )


def exited(p: Project, wid: str) -> dict:
    return wait_for(lambda: (r := p.workers()[wid]).get("state") == "exited" and r, 60, what=f"{wid} to end")


def test_a_node_that_fails_under_a_worker_ends_it_with_slurms_word_and_the_task_runs_again(
    project: Project, slurm_cluster: Any
) -> None:
    p = slurm_project(project, slurm_cluster, AURA_KILL_GRACE_SECONDS="2")
    p.write_task(f"# Node\n\n- [ ] survives its node `{ONCE_THEN_WAIT}`\n")
    p.up()
    wid = running_worker(p)
    job = str(p.workers()[wid]["job_id"])
    slurm_cluster.run("scontrol", "update", "NodeName=localhost", "State=DOWN", "Reason=aura-test")
    try:
        rec = exited(p, wid)
        assert slurm_cluster.job(job)["JobState"] == "NODE_FAIL"  # --no-requeue: Slurm did not queue it again
    finally:
        # ReturnToService=2 may have brought it back already: then Slurm refuses the RESUME
        slurm_cluster.run("scontrol", "update", "NodeName=localhost", "State=RESUME", check=False)
    assert rec["exit"]["slurm_state"] == "NODE_FAIL" and "its node failed" in rec["note"], rec
    assert rec["outcome"] in ("killed", "failed"), rec
    st = wait_for(lambda: finished(p), RUN_S, what="the task's next attempt to finish on the resumed node")
    assert by_title(st)["survives its node"]["status"] == "completed"
    assert (p.root / "ledger.txt").read_text().split() == ["run", "again"]


def test_a_requeued_job_is_cancelled_so_its_worker_never_runs_twice(project: Project, slurm_cluster: Any) -> None:
    # --requeue lets Slurm put the running job back in its queue, as a site's preemption or node failure would
    p = slurm_project(project, slurm_cluster, AURA_KILL_GRACE_SECONDS="2", AURA_SLURM_ARGS="--requeue")
    p.write_task(f"# Requeue\n\n- [ ] requeued `{ONCE_THEN_WAIT}`\n")
    p.up()
    wid = running_worker(p)
    job = str(p.workers()[wid]["job_id"])
    slurm_cluster.run("scontrol", "requeue", job)
    rec = exited(p, wid)
    assert rec["exit"]["slurm_state"] == "REQUEUED" and "not run twice" in rec["note"], rec
    slurm_cluster.wait_state(job, "CANCELLED")
    st = wait_for(lambda: finished(p), RUN_S, what="the task's next attempt to finish")
    assert by_title(st)["requeued"]["status"] == "completed"
    assert (p.root / "ledger.txt").read_text().split() == ["run", "again"]  # the requeued job ran no second time
    assert len(p.workers()) == 2


def test_a_preempted_job_keeps_slurms_word_beside_the_shims_record_and_the_task_runs_again(
    project: Project, tmp_path: Path
) -> None:
    require_slurm()
    preempting = {"PreemptType": "preempt/partition_prio", "PreemptMode": "CANCEL"}
    with cluster(
        tmp_path / "cluster",
        settings=preempting,
        partition={"PriorityTier": "1"},
        more_partitions={"urgent": {"PriorityTier": "10"}},
    ) as slurm:
        p = slurm_project(project, slurm, AURA_KILL_GRACE_SECONDS="2")
        p.write_task(f"# Preempt\n\n- [ ] preempted `{ONCE_THEN_WAIT}`\n")
        p.up()
        wid = running_worker(p)
        job = str(p.workers()[wid]["job_id"])
        urgent = slurm.sbatch("#!/bin/sh\nsleep 3\n", "--partition=urgent", "--exclusive")
        rec = exited(p, wid)
        assert slurm.job(job)["JobState"] == "PREEMPTED"
        assert rec["exit"]["slurm_state"] == "PREEMPTED" and "preempted" in rec["note"], rec
        assert rec["exit"]["signal"] == 15 and rec["outcome"] == "killed"  # the shim recorded Slurm's SIGTERM
        slurm.wait_state(urgent, "COMPLETED")
        st = wait_for(lambda: finished(p), RUN_S, what="the task's next attempt once the urgent job is done")
        assert by_title(st)["preempted"]["status"] == "completed"
        assert (p.root / "ledger.txt").read_text().split() == ["run", "again"]
        p.aura("down")
