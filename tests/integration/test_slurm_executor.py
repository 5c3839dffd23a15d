"""Workers as Slurm jobs on a real private one-node cluster (tests/support/slurm.py): submitted with
sbatch, queued then running, ended by their exit records or by Slurm's word, killed through scancel,
adopted again after a kill -9 of the supervisor, and unharmed by a restart of slurmctld."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.harness import Project, wait_for
from tests.support.slurmrun import RUN_S, by_title, finished, slurm_project


def test_workers_run_as_slurm_jobs_and_end_with_their_exit_records(project: Project, slurm_cluster: Any) -> None:
    p = slurm_project(project, slurm_cluster)
    p.write_task(
        "# Jobs\n\n"
        + "".join(f"- [ ] job {i} `echo {i} >> ledger.txt`\n" for i in range(4))
        + "- [ ] exits 3 `exit 3`\n- [ ] killed by a signal `kill -9 $$`\n"
    )
    said = p.up().stdout
    assert "probe job" in said and "wrote into" in said, said
    st = wait_for(lambda: finished(p), RUN_S, what="the run to finish")
    tasks = by_title(st)
    assert [tasks[f"job {i}"]["status"] for i in range(4)] == ["completed"] * 4
    assert sorted((p.root / "ledger.txt").read_text().split()) == ["0", "1", "2", "3"]  # each ran once
    workers = p.workers()
    assert all(w.get("executor") == "slurm" and w.get("job_id") for w in workers.values())
    for wid, w in workers.items():
        assert (p.paths.worker_dir(wid) / "exit.json").exists(), wid
        assert slurm_cluster.job(str(w["job_id"]))["JobName"].endswith(wid)
    three = workers[f"{tasks['exits 3']['id']}-1"]
    assert three["outcome"] == "failed" and three["exit"]["exit_code"] == 3
    signalled = workers[f"{tasks['killed by a signal']['id']}-1"]
    assert signalled["exit"]["signal"] == 9 and signalled["outcome"] == "killed"
    ps = p.aura("ps", "-a").stdout
    assert "JOB" in ps and f"{three['job_id']}@" in ps


def test_a_kill_goes_through_scancel_and_a_job_that_ends_without_a_record_gets_slurms_word(
    project: Project, slurm_cluster: Any
) -> None:
    p = slurm_project(project, slurm_cluster, AURA_KILL_GRACE_SECONDS="2")
    p.write_task("# Long\n\n- [ ] long `sleep 120`\n")
    p.up()
    wid = wait_for(lambda: next((w for w, r in p.workers().items() if r.get("state") == "running"), None), 60)
    job = str(p.workers()[wid]["job_id"])
    reply = p.client("supervisor").call("kill", {"worker_id": wid, "reason": "test kill"})
    assert reply["killed"] is True
    rec = wait_for(lambda: p.workers()[wid] if p.workers()[wid].get("state") == "exited" else None, 60)
    assert rec["outcome"] == "killed", rec
    slurm_cluster.wait_state(job, "CANCELLED", "COMPLETED", "FAILED")
    p.aura("down")  # the retry, queued or starting, goes too
    wait_for(lambda: slurm_cluster.queue() == [], 30, what="no job left in the queue")


def test_a_job_cancelled_while_queued_ends_its_attempt_with_slurms_reason(project: Project, slurm_cluster: Any) -> None:
    p = slurm_project(project, slurm_cluster, AURA_SLURM_PROBE_SECONDS="3")
    hold = slurm_cluster.sbatch("#!/bin/sh\nsleep 60\n", "--exclusive")  # the node is busy: Aura's job waits
    p.write_task("# Waits\n\n- [ ] waits `true`\n")
    said = p.up()
    assert "still queued after 3s" in said.stdout + said.stderr  # the probe could not run: said, not fatal
    wid = wait_for(lambda: next((w for w, r in p.workers().items() if r.get("state") == "queued"), None), 60)
    job = str(p.workers()[wid]["job_id"])
    wait_for(lambda: p.workers()[wid].get("slurm_reason"), 30, what="Slurm's reason in the record")
    assert "queued:" in p.aura("ps").stdout
    slurm_cluster.run("scancel", job)
    rec = wait_for(lambda: p.workers()[wid] if p.workers()[wid].get("state") == "exited" else None, 60)
    assert "CANCELLED" in rec["exit"]["error"] and "no exit record" in rec["exit"]["error"]
    slurm_cluster.run("scancel", hold)


def test_jobs_finish_and_are_adopted_once_after_a_kill_9_of_the_supervisor_and_a_slurmctld_restart(
    project: Project, slurm_cluster: Any
) -> None:
    p = slurm_project(project, slurm_cluster)
    p.write_task("# Survive\n\n" + "".join(f"- [ ] s{i} `sleep 4; echo s{i} >> ledger.txt`\n" for i in range(4)))
    p.up()
    wait_for(lambda: any(r.get("state") == "running" for r in p.workers().values()), 60)
    p.kill9("supervisor")
    slurm_cluster.restart_controller()
    st = wait_for(lambda: finished(p), RUN_S, what="the run to finish after the kills")
    assert all(t["status"] == "completed" for t in st["tasks"].values())
    assert sorted((p.root / "ledger.txt").read_text().split()) == ["s0", "s1", "s2", "s3"]  # none ran twice
    assert len(p.workers()) == 4 and all((Path(p.paths.worker_dir(w)) / "exit.json").exists() for w in p.workers())


def test_aura_up_refuses_when_slurm_cannot_take_jobs(project: Project, tmp_path: Path) -> None:
    project.env.update(AURA_EXECUTOR="slurm", PATH=str(tmp_path))  # no Slurm command at all
    project.write_task("# X\n\n- [ ] x `true`\n")
    proc = project.aura("up", "-d", "task.md", check=False)
    assert proc.returncode != 0 and "`sbatch` is not installed" in proc.stderr and "Traceback" not in proc.stderr


def test_the_time_budget_of_a_slurm_worker_starts_when_it_runs_and_ends_it_through_scancel(
    project: Project, slurm_cluster: Any
) -> None:
    p = slurm_project(project, slurm_cluster, AURA_TASK_BUDGET="0.1", AURA_KILL_GRACE_SECONDS="2")
    p.write_task("# Too long\n\n- [ ] too long `sleep 120`\n")
    p.up()
    wid = wait_for(lambda: next(iter(p.workers()), None), 60)
    rec = wait_for(lambda: p.workers()[wid] if p.workers()[wid].get("state") == "exited" else None, 60)
    assert rec["outcome"] == "timed_out", rec
    assert rec["deadline"] == rec["started_at"] + 6.0  # from the start on the node, not the submission
    slurm_cluster.wait_state(str(rec["job_id"]), "CANCELLED", "COMPLETED", "FAILED")
