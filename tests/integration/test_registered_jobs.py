"""Jobs a worker registers in its process.json outlive it; nothing else it leaves does.

Real supervisor and watchdog daemons (tests/support/rig.py), real worker processes. A worker
starts a "training job" (a child that writes a log until it is released), registers it, starts
a stray child it does not register, and exits.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from aura.runtime.pidfile import is_alive, start_time
from aura.supervisor import jobs
from tests.support.harness import wait_for
from tests.support.rig import Rig
from tests.support.workloads import REGISTERING_WORKER as WORKER


def start(rig: Rig, wid: str, own_session: bool, then: str = "exit") -> tuple[dict, dict, Path]:
    release = rig.tmp / f"{wid}.release"
    pids_file = rig.tmp / f"{wid}.pids"
    rec = rig.spawn(wid, WORKER, str(release), "1" if own_session else "0", str(pids_file), then)
    pids = json.loads(wait_for(lambda: pids_file.exists() and pids_file.read_text(), 20, what="the worker's pids"))
    for pid in pids.values():
        rig.p.seen.setdefault(pid, start_time(pid))
    return rec, pids, release


@pytest.mark.parametrize("own_session", [True, False], ids=["own-session", "same-group"])
def test_registered_job_outlives_the_worker_and_the_task_runs_until_it_ends(rig: Rig, own_session: bool) -> None:
    rig.start("watchdog", "supervisor")
    rec, pids, release = start(rig, "trainer", own_session)
    # the worker exits 0; the stray child is stopped, the registered job runs on
    note = wait_for(lambda: rig.worker("trainer").get("managed"), 20, what="the supervisor to note the kept job")
    assert note["worker_exit"] == {"exit_code": 0, "signal": None}
    assert [(c["pid"], c["kind"]) for c in note["children"]] == [(pids["job"], "training")]
    wait_for(lambda: not is_alive(pids["stray"], rig.p.seen[pids["stray"]]), 10, what="the stray child to be stopped")
    assert is_alive(pids["job"], rig.p.seen[pids["job"]])
    worker = rig.worker("trainer")
    assert worker["state"] == "running" and "deadline" not in worker
    assert Path(f"/proc/{worker['shim_pid']}/comm").read_text().strip() == "aura-shim"  # out of `pkill python`'s reach
    usage = wait_for(lambda: (u := rig.usage("trainer")) and u["nprocs"] >= 1 and u, 10, what="a sample of the job")
    assert usage["rss_bytes"] > 0  # the watchdog still samples the job through the shim's tree
    log = Path(rec["task_dir"]) / "train_progress.log"
    size = log.stat().st_size
    wait_for(lambda: log.stat().st_size > size, 10, what="the job's log to grow")
    # released: the job exits 3, and only now does the worker's exit record appear
    release.touch()
    done = wait_for(lambda: rig.exited("trainer"), 20, what="the worker's exit record")
    assert done["outcome"] == "succeeded" and done["exit"]["exit_code"] == 0
    kids = done["exit"]["managed"]["children"]
    assert [(k["pid"], k["exit_code"]) for k in kids] == [(pids["job"], 3)]
    assert done["exit"]["ended_at"] >= kids[0]["ended_at"] > done["exit"]["managed"]["worker_ended_at"]
    assert done["exit"]["managed"]["stopped_by_request"] is False


def test_a_kill_while_registered_jobs_run_stops_the_registered_job(rig: Rig) -> None:
    rig.start("watchdog", "supervisor")
    _, pids, _ = start(rig, "trainer", own_session=True)
    wait_for(lambda: rig.worker("trainer").get("managed"), 20, what="the kept job")
    reply = rig.call("supervisor", "kill", {"worker_id": "trainer", "reason": "test"})
    assert reply["killed"] is True
    done = wait_for(lambda: rig.exited("trainer"), 20, what="the worker's exit")
    assert done["exit"]["managed"]["stopped_by_request"] is True
    assert not is_alive(pids["job"], rig.p.seen[pids["job"]])
    assert done["kill"]["reason"] == "test"


def test_a_resource_kill_keeps_nothing_even_a_registered_job_in_another_session(rig: Rig) -> None:
    rig.p.env["AURA_WORKER_MAX_SYSTEM_MEMORY_GB"] = "0.2"
    rig.start("watchdog", "supervisor")
    _, pids, _ = start(rig, "hog", own_session=True, then="hog")
    wait_for(lambda: rig.kill_record("hog"), 30, what="the watchdog's kill")
    done = wait_for(lambda: rig.exited("hog"), 20, what="the worker's exit")
    assert "managed" not in done["exit"] and done["kill"]["reason_code"] == "resource"
    wait_for(lambda: not is_alive(pids["job"], rig.p.seen[pids["job"]]), 10, what="the registered job to be stopped")


def test_without_a_registry_everything_left_behind_is_stopped(rig: Rig) -> None:
    rig.start("watchdog", "supervisor")
    body = WORKER.replace(
        'with open(os.path.join(task_dir, "process.json"), "w") as fh:\n'
        '    json.dump({"managed_subprocesses": [entry]}, fh)\n',
        "",
    )
    assert body != WORKER
    release, pids_file = rig.tmp / "r", rig.tmp / "p"
    rig.spawn("plain", body, str(release), "1", str(pids_file), "exit")
    pids = json.loads(wait_for(lambda: pids_file.exists() and pids_file.read_text(), 20, what="pids"))
    done = wait_for(lambda: rig.exited("plain"), 20, what="the worker's exit")
    assert "managed" not in done["exit"] and done["exit"]["leftovers_stopped"] >= 2
    for pid in pids.values():
        assert start_time(pid) is None or not is_alive(pid, None)


# -- reading process.json ---------------------------------------------------------------------------


def test_registry_reads_the_original_aliases_and_skips_garbage(tmp_path: Path) -> None:
    (tmp_path / "process.json").write_text(
        json.dumps(
            {
                "child_processes": [
                    {"pid": 10, "start_time": "2026-01-01T00:00:00Z", "progress_log": "/x.log"},
                    {"pid": "11", "started_at": 1700000000, "kind": "eval", "monitor_path": "/y.log"},
                    {"pid": "nope"},
                    "junk",
                    12,
                ]
            }
        )
    )
    regs = jobs.read_registered(tmp_path)
    assert [(r.pid, r.kind, r.log_path) for r in regs] == [(10, "", "/x.log"), (11, "eval", "/y.log"), (12, "", None)]
    assert regs[0].started_at == 1767225600.0 and regs[1].started_at == 1700000000.0
    (tmp_path / "process.json").write_text("{not json")
    assert jobs.read_registered(tmp_path) == []
    assert jobs.read_registered(tmp_path / "missing") == []


def test_only_live_descendants_started_when_they_say_are_kept() -> None:
    now = time.time()
    starts = {100: now, 101: now, 102: now - 3600}
    regs = [
        jobs.RegisteredJob(100, started_at=now + 5),
        jobs.RegisteredJob(101),  # no start time: taken on trust
        jobs.RegisteredJob(102, started_at=now),  # a reused pid: started an hour earlier
        jobs.RegisteredJob(os.getpid(), started_at=now),  # not a descendant: never kept
        jobs.RegisteredJob(100),
    ]  # listed twice
    kept = jobs.keep(regs, tree={100, 101, 102, 103}, start_of=starts.get)
    assert [k.pid for k in kept] == [100, 101] and kept[0].create_time == now
    assert jobs.subtrees([1], {1: [2, 3], 3: [4]}) == {1, 2, 3, 4}


def test_a_registered_pid_that_is_not_the_workers_own_is_not_kept_and_exit_json_says_so(rig: Rig) -> None:
    rig.start("watchdog", "supervisor")
    body = (
        "import json, os\n"
        'entries = [{"pid": os.getppid(), "kind": "shim"}, {"pid": 1, "kind": "init"}]\n'
        'with open(os.path.join(os.environ["AURA_TASK_DIR"], "process.json"), "w") as fh:\n'
        '    json.dump({"managed_subprocesses": entries}, fh)\n'
    )
    rig.spawn("liar", body)
    done = wait_for(lambda: rig.exited("liar"), 20, what="the worker's exit")
    assert "managed" not in done["exit"] and done["outcome"] == "succeeded"
    assert [(r["pid"] == 1, r["kind"]) for r in done["exit"]["registered_not_kept"]] == [
        (False, "shim"),
        (True, "init"),
    ]
    assert "not a live descendant" in done["exit"]["registered_not_kept"][0]["why"]
