"""The private one-node Slurm cluster the Slurm executor's tests run against (tests/support/slurm.py):
the real sbatch, squeue, scancel and scontrol work against it, a controller restart keeps a running
job, and stopping it leaves none of its processes behind. Skipped where Slurm is not installed,
failed instead under CI=true."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import psutil
import pytest

from tests.support.harness import alive, wait_for
from tests.support.slurm import MUNGE, Munge, SlurmCluster, require_slurm


def job_pid(cluster: SlurmCluster, name: str) -> tuple[int, float]:
    """The PID a job wrote to jobs/NAME, with its start time."""
    path = cluster.path("jobs") / name
    text = wait_for(lambda: path.exists() and path.read_text().strip(), 20, what=f"{path} to be written")
    pid = int(text)
    return pid, psutil.Process(pid).create_time()


def test_a_batch_job_runs_and_writes_its_file(slurm_cluster: SlurmCluster) -> None:
    out = slurm_cluster.path("jobs") / "hello.txt"
    job = slurm_cluster.sbatch(f"echo hello from $SLURM_JOB_ID > {out}\n")
    assert job.isdigit()
    record = slurm_cluster.wait_state(job, "COMPLETED", "FAILED")
    assert record["JobState"] == "COMPLETED", record
    assert record["ExitCode"] == "0:0"
    assert out.read_text() == f"hello from {job}\n"


def test_a_job_that_exits_3_ends_failed_with_its_exit_code(slurm_cluster: SlurmCluster) -> None:
    job = slurm_cluster.sbatch("exit 3\n")
    slurm_cluster.wait_state(job, "COMPLETED", "FAILED")
    shown = slurm_cluster.run("scontrol", "show", "job", job).stdout
    assert "JobState=FAILED" in shown
    assert "ExitCode=3:0" in shown


def test_squeue_json_lists_a_running_job(slurm_cluster: SlurmCluster) -> None:
    job = slurm_cluster.sbatch("exec sleep 300\n", "-J", "aura-json")
    slurm_cluster.wait_state(job, "RUNNING")
    listed = json.loads(slurm_cluster.run("squeue", "--json").stdout)["jobs"]
    ours = [entry for entry in listed if str(entry["job_id"]) == job]
    assert len(ours) == 1, listed
    assert ours[0]["job_state"] == "RUNNING"
    assert ours[0]["name"] == "aura-json"
    assert ours[0]["nodes"] == "localhost"


def test_scancel_stops_a_sleeping_job(slurm_cluster: SlurmCluster) -> None:
    job = slurm_cluster.sbatch("echo $$ > sleeper.pid\nexec sleep 300\n")
    slurm_cluster.wait_state(job, "RUNNING")
    pid, created = job_pid(slurm_cluster, "sleeper.pid")
    assert alive(pid, created)
    slurm_cluster.run("scancel", job)
    assert slurm_cluster.wait_state(job, "CANCELLED")["JobState"] == "CANCELLED"
    wait_for(lambda: not alive(pid, created), 20, what=f"the job's sleep (pid {pid}) to end")


def test_a_controller_restart_keeps_a_running_job(slurm_cluster: SlurmCluster) -> None:
    go, done = slurm_cluster.path("jobs") / "go", slurm_cluster.path("jobs") / "done.txt"
    job = slurm_cluster.sbatch(f"echo $$ > waiter.pid\nwhile [ ! -e {go} ]; do sleep 0.1; done\necho done > {done}\n")
    slurm_cluster.wait_state(job, "RUNNING")
    pid, created = job_pid(slurm_cluster, "waiter.pid")
    old = slurm_cluster.pid("slurmctld")
    assert old is not None
    helpers = [(child.pid, child.create_time()) for child in psutil.Process(old).children()]

    slurm_cluster.restart_controller()

    assert slurm_cluster.pid("slurmctld") not in (None, old)
    assert not alive(old, None)
    assert not [pid for pid, created in helpers if alive(pid, created)], "the old slurmscriptd survived"
    assert slurm_cluster.run("squeue", "-h", "-j", job, "-o", "%T").stdout.strip() == "RUNNING"
    assert alive(pid, created)
    go.touch()
    assert slurm_cluster.wait_state(job, "COMPLETED", "FAILED")["JobState"] == "COMPLETED"
    assert done.read_text() == "done\n"


def test_stop_leaves_no_process_of_the_cluster(tmp_path: Path) -> None:
    require_slurm()
    cluster = SlurmCluster(tmp_path / "own").start()
    try:
        job = cluster.sbatch("exec sleep 300\n")
        cluster.wait_state(job, "RUNNING")
        munged = MUNGE.proc.pid if MUNGE.proc is not None else None
        # Slurm calls the job RUNNING before slurmd has its step and the job's process going
        wait_for(lambda: {"slurmstepd", "sleep"} <= _names(cluster), 30, what="the job's step and process")
        seen = {proc.pid: (proc.name(), proc.create_time()) for proc in cluster.processes()}
        names = sorted(name for name, _ in seen.values())
        assert {"slurmctld", "slurmd", "slurmstepd", "sleep"} <= set(names), names
        assert cluster.pid("slurmctld") in seen and cluster.pid("slurmd") in seen
    finally:
        cluster.stop()
    left = {pid: name for pid, (name, created) in seen.items() if alive(pid, created)}
    assert left == {}
    assert cluster.processes() == []
    if munged is not None and MUNGE.users == 0:
        assert not alive(munged, None), "the munged these tests started outlived its last cluster"


def test_a_munged_started_here_serves_every_user_and_stops_with_the_last() -> None:
    require_slurm()
    with tempfile.TemporaryDirectory(prefix="aura-munge-") as folder:
        Path(folder).chmod(0o755)  # munged runs as user munge and checks every folder on the way
        munge = Munge(Path(folder) / "munge" / "socket")
        assert not munge.answers()
        munge.acquire(Path(folder) / "munged.out")
        assert munge.proc is not None
        pid, created = munge.proc.pid, psutil.Process(munge.proc.pid).create_time()
        assert psutil.Process(pid).username() == "munge"
        assert munge.answers()
        munge.acquire(Path(folder) / "munged.out")
        assert munge.proc is not None and munge.proc.pid == pid  # the second user gets the same munged
        munge.release()
        assert alive(pid, created) and munge.answers()
        munge.release()
        assert not alive(pid, created)
        assert not munge.answers()


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_missing_slurm_skips_or_fails_under_ci(ci: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", ci)
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome, match="Slurm is not installed.*sbatch"):
        require_slurm()


def _names(cluster: SlurmCluster) -> set[str]:
    out = set()
    for proc in cluster.processes():
        try:
            out.add(proc.name())
        except psutil.Error:  # ended since it was listed
            continue
    return out
