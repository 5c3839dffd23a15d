"""What Slurm does to a job behind Aura's back: a node that fails under a running worker, a job put
back in the queue (requeued), and a job preempted by one of a higher partition. With the real private
one-node cluster, the real daemons and the local planner; nothing stands in for Slurm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aura.runtime import slurm
from aura.supervisor.executors.slurm import job_name
from tests.support.harness import Project, wait_for
from tests.support.rig import Rig
from tests.support.slurm import cluster, require_slurm
from tests.support.slurmrun import RUN_S, by_title, finished, slurm_project, state, use_cluster

# The first attempt writes its line and waits to be stopped; a later attempt finds the marker and ends.
# It waits as `exec sleep`, so the signal Slurm sends ends the worker itself: a shell waiting on a
# sleep that Slurm's signal reaches first would end with status 143 and no signal.
ONCE_THEN_WAIT = (
    "if [ -f first ]; then echo again >> ledger.txt; else touch first; echo run >> ledger.txt; exec sleep 300; fi"
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
        slurm.wait_state(job, "PREEMPTED")
        assert rec["exit"]["slurm_state"] == "PREEMPTED" and "preempted" in rec["note"], rec
        assert rec["exit"]["signal"] == 15 and rec["outcome"] == "killed"  # the shim recorded Slurm's SIGTERM
        slurm.wait_state(urgent, "COMPLETED")
        st = wait_for(lambda: finished(p), RUN_S, what="the task's next attempt once the urgent job is done")
        assert by_title(st)["preempted"]["status"] == "completed"
        assert (p.root / "ledger.txt").read_text().split() == ["run", "again"]
        p.aura("down")


# -- bad input and the queue: refused at start, refused at submission, too long in the queue, lost answers --


def test_aura_up_refuses_a_partition_slurm_refuses_in_one_line(project: Project, slurm_cluster: Any) -> None:
    p = slurm_project(project, slurm_cluster, AURA_SLURM_PARTITION="nosuch")
    p.write_task("# X\n\n- [ ] x `true`\n")
    proc = p.aura("up", "-d", "task.md", check=False)
    said = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(said) == 1 and "probe job was refused" in said[0], proc.stderr
    assert "nosuch" in said[0] and "Traceback" not in proc.stderr and p.all_up() is None


def test_a_job_sbatch_refuses_fails_its_start_with_sbatchs_words_and_the_task_waits_to_retry(
    project: Project, slurm_cluster: Any
) -> None:
    # a local run; the one task asks for Slurm, whose partition is wrong: no probe, so sbatch refuses at spawn
    p = slurm_project(project, slurm_cluster, AURA_EXECUTOR="local", AURA_SLURM_PARTITION="nosuch")
    p.write_task("# X\n\n- [ ] x `echo x >> ledger.txt` on slurm\n")
    p.up()
    task = wait_for(
        lambda: next((t for t in state(p).get("tasks", {}).values() if "nosuch" in t.get("reason", "")), None),
        40,
        what="sbatch's words in the task's reason",
    )
    assert "could not submit its slurm job: sbatch failed" in task["reason"] and "retrying" in task["reason"], task
    assert task["status"] == "pending" and task["retry_at"] > task["updated_at"]  # not lost: it waits to retry
    assert not (p.root / "ledger.txt").exists() and slurm_cluster.queue() == []


def test_a_job_too_long_in_the_queue_is_cancelled_and_a_lost_answer_is_found_by_name(
    rig: Rig, slurm_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_cluster(rig, slurm_cluster, AURA_SLURM_QUEUE_TIMEOUT="3")
    rig.start("watchdog", "supervisor")
    # a submission whose answer the supervisor never heard: the job is there, under the worker's name
    name = job_name(rig.p.root, "lost")
    earlier = slurm_cluster.sbatch("#!/bin/sh\nsleep 60\n", f"--job-name={name}")
    rig.call(
        "supervisor",
        "spawn",
        {
            "worker_id": "lost",
            "task_id": "lost",
            "backend": "shell",
            "executor": "slurm",
            "argv": ["/bin/sh", "-c", "sleep 60"],
        },
        timeout=30,
    )
    assert str(rig.worker("lost")["job_id"]) == earlier and len(slurm_cluster.queue()) == 1, "not submitted twice"
    rig.call("supervisor", "kill", {"worker_id": "lost", "reason": "test over"})
    slurm_cluster.wait_state(earlier, "CANCELLED")
    # the node taken whole by another job: the worker's job waits past AURA_SLURM_QUEUE_TIMEOUT
    hold = slurm_cluster.sbatch("#!/bin/sh\nsleep 60\n", "--exclusive")
    slurm_cluster.wait_state(hold, "RUNNING")
    rig.call(
        "supervisor",
        "spawn",
        {
            "worker_id": "waits",
            "task_id": "waits",
            "backend": "shell",
            "executor": "slurm",
            "argv": ["/bin/sh", "-c", "true"],
        },
        timeout=30,
    )
    rec = wait_for(lambda: rig.exited("waits"), 30, what="the queue timeout")
    assert "still queued after 3s" in rec["exit"]["error"] and "AURA_SLURM_QUEUE_TIMEOUT" in rec["exit"]["error"]
    slurm_cluster.wait_state(str(rec["job_id"]), "CANCELLED")
    # a signal for a job that already ended, or that Slurm forgot, is no error: a plain False
    for key, value in slurm_cluster.env.items():
        monkeypatch.setenv(key, value)
    assert slurm.cancel(earlier, "KILL") is False and slurm.cancel("99999999", "KILL") is False
    slurm_cluster.run("scancel", hold)
