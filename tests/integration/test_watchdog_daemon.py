"""The watchdog as a real daemon, with the supervisor, in a temporary project.

Workers are real processes that hold memory (or, through a stand-in NVML library the
watchdog imports as `pynvml`, GPU memory and utilisation). Windows are small (poll 0.2 s,
window 1 s, 3 strikes; see tests/support/harness.py's FAST_ENV). Every test stops what it started by PID:
the daemons through `aura down` and then by PID, the workers by the PIDs in the registry.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from datetime import datetime
from typing import Any

import pytest

from aura.ipc.client import Client, RemoteError
from aura.runtime.fsutil import read_json, read_jsonl
from tests.support.harness import Project, wait_for
from tests.support.rig import GIB, Rig, gpu_state, rolling_averages, set_gpu
from tests.support.workloads import UNMET_RAM_RESERVE_GB

LIMIT_GB = 0.2
HOG_MB = 300  # over LIMIT_GB

HOG = """\
import sys, time
b = bytearray(int(sys.argv[1]) * 1024 * 1024)
b[::4096] = b"x" * len(b[::4096])  # touch every page, so it is resident
time.sleep(120)
"""

SPIKE = """\
import os, sys, time
go, release = sys.argv[1], sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.02)
b = bytearray(300 * 1024 * 1024)
b[::4096] = b"x" * len(b[::4096])
while not os.path.exists(release):
    time.sleep(0.02)
del b
time.sleep(120)
"""

PARENT = """\
import os, subprocess, sys, time
pidfile, go = sys.argv[1], sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.02)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(pidfile + ".tmp", "w") as fh:
    fh.write(str(child.pid))
os.replace(pidfile + ".tmp", pidfile)
time.sleep(120)
"""

# -- memory: the window, the strikes, the kill record -------------------------------------------------------


def test_worker_over_memory_limit_is_killed_at_the_last_strike_with_its_samples(rig: Rig) -> None:
    rig.p.env["AURA_WORKER_MAX_SYSTEM_MEMORY_GB"] = str(LIMIT_GB)
    rig.start("watchdog", "supervisor")
    rec = rig.spawn("hog", HOG, str(HOG_MB))
    kill = wait_for(lambda: rig.kill_record("hog"), 20, what="the kill record")
    assert kill["limit"] == "AURA_WORKER_MAX_SYSTEM_MEMORY_GB" and kill["threshold"] == LIMIT_GB
    assert kill["strikes"] == 3 and len(kill["strike_averages"]) == 3
    assert kill["pid"] == rec["worker_pid"] and kill["pgid"] == rec["pgid"]
    # replay the window over the recorded samples: the last three samples, and only they, were strikes
    replay = rolling_averages(kill["samples"], "rss_gb", kill["window_s"])
    last3 = replay[-3:]
    assert [t for t, _, _ in last3] == [s["t"] for s in kill["strike_averages"]]
    assert [a for _, a, _ in last3] == pytest.approx([s["average"] for s in kill["strike_averages"]], abs=1e-3)
    assert all(n >= 2 and a > LIMIT_GB for _, a, n in last3)
    if len(replay) > 3:  # the sample before the run: too few samples in its window, or under the limit
        _, avg, n = replay[-4]
        assert n < 2 or avg <= LIMIT_GB
    assert last3[-1][0] <= kill["killed_at"]
    # the worker ended by the watchdog's SIGTERM, and the supervisor knows why
    done = wait_for(lambda: rig.exited("hog"), 20, what="the worker's exit")
    assert done["kill"]["reason_code"] == "resource" and done["kill"]["limit"] == "AURA_WORKER_MAX_SYSTEM_MEMORY_GB"
    assert done["exit"]["signal"] == signal.SIGTERM
    line = rig.logged("worker_resource_kill")
    assert len(line) == 1 and line[0]["worker"] == "hog" and line[0]["strikes"] == 3
    assert line[0]["average"] > LIMIT_GB and line[0]["threshold"] == LIMIT_GB


def test_a_short_spike_over_the_limit_is_not_killed(rig: Rig) -> None:
    rig.p.env["AURA_WORKER_MAX_SYSTEM_MEMORY_GB"] = str(LIMIT_GB)
    rig.start("watchdog", "supervisor")
    go, release = rig.tmp / "go", rig.tmp / "release"
    rig.spawn("spiky", SPIKE, str(go), str(release))
    first = wait_for(lambda: rig.usage("spiky"), 20, what="the first sample of the worker")["sampled_at"]
    rig.samples_after(first, 6)  # a full window of quiet samples
    go.touch()
    seen = wait_for(
        lambda: (u := rig.usage("spiky")) and u["rss_bytes"] > LIMIT_GB * GIB and u,
        20,
        what="the watchdog to see the spike",
    )
    release.touch()
    wait_for(lambda: rig.usage("spiky")["rss_bytes"] < LIMIT_GB * GIB / 2, 20, what="the memory to be freed")
    rig.samples_after(seen["sampled_at"], 10)  # two windows after the spike
    assert rig.kill_record("spiky") is None and rig.logged("worker_resource_kill") == []
    assert rig.worker("spiky")["state"] == "running"
    assert rig.usage("spiky")["strikes"] == {}


def test_dry_run_kills_nothing_and_logs_what_it_would_kill(rig: Rig) -> None:
    rig.p.env.update(AURA_WORKER_MAX_SYSTEM_MEMORY_GB=str(LIMIT_GB), AURA_WORKER_RESOURCE_GUARD="dry-run")
    rig.start("watchdog", "supervisor")
    rig.spawn("hog", HOG, str(HOG_MB))
    would = wait_for(
        lambda: len(rig.logged("would_kill")) >= 2 and rig.logged("would_kill"), 20, what="two would_kill lines"
    )
    assert would[0]["worker"] == "hog" and would[0]["strikes"] == 3 and would[0]["average"] > LIMIT_GB
    assert "AURA_WORKER_MAX_SYSTEM_MEMORY_GB" in would[0]["reason"]
    events = [e for e in read_jsonl(rig.p.paths.journal("watchdog")) if e["kind"] == "resource_violation"]
    assert events and events[0]["data"]["dry_run"] is True and events[0]["data"]["worker_id"] == "hog"
    assert rig.worker("hog")["state"] == "running"
    assert not list((rig.p.paths.watchdog_dir / "kills").glob("*.json"))
    assert rig.logged("worker_resource_kill") == []


# -- limits at run time, per task, and at spawn time ----------------------------------------------------------


def test_aura_limits_changes_the_policy_at_run_time_and_logs_it(rig: Rig) -> None:
    rig.start("watchdog", "supervisor")
    rig.spawn("hog", HOG, str(HOG_MB))
    wait_for(lambda: (u := rig.usage("hog")) and u["rss_bytes"] > LIMIT_GB * GIB, 20, what="the hog's memory")
    shown = rig.p.aura("limits").stdout
    assert "AURA_WORKER_MAX_SYSTEM_MEMORY_GB=0.0\n" in shown and "AURA_WORKER_RESOURCE_GUARD=on" in shown
    bad = rig.p.aura("limits", "AURA_WORKER_MAX_SYSTEM_MEMORY_GB=-3", check=False)
    assert bad.returncode != 0 and ">= 0" in bad.stderr
    assert rig.logged("limits_changed") == []
    out = rig.p.aura("limits", f"AURA_WORKER_MAX_SYSTEM_MEMORY_GB={LIMIT_GB}").stdout
    assert f"AURA_WORKER_MAX_SYSTEM_MEMORY_GB: 0.0 -> {LIMIT_GB}" in out
    changed = rig.logged("limits_changed")
    assert len(changed) == 1
    assert changed[0]["changed"] == {"AURA_WORKER_MAX_SYSTEM_MEMORY_GB": {"old": 0.0, "new": LIMIT_GB}}
    assert f"AURA_WORKER_MAX_SYSTEM_MEMORY_GB={LIMIT_GB}  (changed at run time)" in rig.p.aura("limits").stdout
    kill = wait_for(lambda: rig.kill_record("hog"), 20, what="a kill under the new limit")
    assert kill["threshold"] == LIMIT_GB and kill["strikes"] == 3


def test_per_task_override_applies_to_one_worker_only(rig: Rig) -> None:
    rig.start("watchdog", "supervisor")
    rig.spawn("strict", HOG, str(HOG_MB), limits={"AURA_WORKER_MAX_SYSTEM_MEMORY_GB": LIMIT_GB})
    rig.spawn("loose", HOG, str(HOG_MB))
    kill = wait_for(lambda: rig.kill_record("strict"), 20, what="the strict worker's kill")
    assert kill["threshold"] == LIMIT_GB and kill["overrides"] == {"AURA_WORKER_MAX_SYSTEM_MEMORY_GB": LIMIT_GB}
    logged = rig.logged("worker_limits")
    assert [r["worker"] for r in logged] == ["strict"]
    rig.samples_after(kill["killed_at"], 10)
    loose = rig.usage("loose")
    assert loose["rss_bytes"] > LIMIT_GB * GIB and loose["strikes"] == {}
    assert loose["limits"]["AURA_WORKER_MAX_SYSTEM_MEMORY_GB"] == 0.0
    assert rig.kill_record("loose") is None and rig.worker("loose")["state"] == "running"


def test_preflight_refusal_reaches_the_spawn_caller(rig: Rig) -> None:
    rig.p.env["AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB"] = str(UNMET_RAM_RESERVE_GB)
    rig.start("watchdog", "supervisor")
    with pytest.raises(RemoteError) as err:
        rig.spawn("refused", HOG, "1")
    assert err.value.code == "reserve_short"
    assert "AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB" in err.value.message and "GB of RAM free" in err.value.message
    assert not (rig.p.paths.workers_dir / "refused").exists()
    assert [r["worker"] for r in rig.logged("spawn_refused", "supervisor")] == ["refused"]
    with pytest.raises(RemoteError, match="bad per-task limits") as bad:
        rig.spawn("typo", HOG, "1", limits={"AURA_WORKER_MAX_RAM_GB": 1})
    assert bad.value.code == "spawn_refused"


def test_per_task_reserve_refuses_that_spawn_only_and_a_down_watchdog_does_not_block(rig: Rig) -> None:
    rig.start("watchdog", "supervisor")
    with pytest.raises(RemoteError, match="AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB"):
        rig.spawn("picky", HOG, "1", limits={"AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB": UNMET_RAM_RESERVE_GB})
    rig.spawn("plain", HOG, "1")
    rig.stop_daemon("watchdog")
    rig.spawn("unchecked", HOG, "1", limits={"AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB": UNMET_RAM_RESERVE_GB})
    skipped = rig.logged("preflight_skipped", "supervisor")
    assert [r["worker"] for r in skipped] == ["unchecked"] and "watchdog" in skipped[0]["reason"]


def test_spawns_sent_together_are_preflighted_together_and_a_refusal_refuses_only_its_own(rig: Rig) -> None:
    rig.start("watchdog", "supervisor")
    sup = Client(rig.p.pidfile("supervisor")["endpoint"], "supervisor", timeout=30.0, retries=0)
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]

    def spawn(wid: str, **extra: Any) -> tuple[str, dict]:
        return "spawn", {"worker_id": wid, "task_id": wid, "backend": "shell", "argv": argv, **extra}

    try:
        picky = {"AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB": UNMET_RAM_RESERVE_GB}
        a, refused, b, again = sup.call_many([spawn("a"), spawn("picky", limits=picky), spawn("b"), spawn("a")])
        assert a["state"] == b["state"] == "running" and not a.get("existing")
        assert isinstance(refused, RemoteError) and refused.code == "reserve_short"
        assert again["existing"] and again["worker_id"] == "a"  # one worker, however often it is asked for
        assert sorted(p.name for p in rig.p.paths.workers_dir.iterdir()) == ["a", "b"]
        assert wait_for(lambda: rig.worker("a")["worker_pid"], 10) == a["worker_pid"]
        dog = rig.procs["watchdog"].pid
        os.kill(dog, signal.SIGSTOP)  # a watchdog that does not answer holds a batch once, not once per spawn
        try:
            unchecked = sup.call_many([spawn(f"u{i}") for i in range(6)])
        finally:
            os.kill(dog, signal.SIGCONT)
        assert [w["state"] for w in unchecked] == ["running"] * 6
    finally:
        sup.close()
        rig.p.remember()
    skipped = rig.logged("preflight_skipped", "supervisor")
    assert [r["worker"] for r in skipped] == [f"u{i}" for i in range(6)]
    # the first round may hold only the first spawn; the rest arrive while it is asked and go in the next
    # batch: two timeouts of 1 s at most, where one each would spread the six over 5 s
    at = [datetime.fromisoformat(r["timestamp"]).timestamp() for r in skipped]
    assert max(at) - min(at) < 1.5, "the six were asked one after another (a timeout each)"


def test_a_short_reserve_makes_the_task_wait_without_using_attempts_until_it_is_met(project: Project) -> None:
    """A reserve that is short now is not a failed attempt: the task waits (the reason says for
    what), retries within seconds, and starts as attempt 1 once `aura limits` lowers the reserve."""
    project.env.update(AURA_CYCLE_INTERVAL="300", AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB=str(UNMET_RAM_RESERVE_GB))
    project.write_task("# Refused\n\n- [ ] quick `true`\n")
    project.up()

    def task() -> dict:
        state = read_json(project.paths.state_dir / "state.json")
        return next(t for t in state["tasks"].values() if t.get("command") == "true")

    wait_for(lambda: task().get("waits", 0) >= 2, 30, what="two refused starts, seconds apart")
    waiting = task()
    assert waiting["status"] == "pending" and not waiting.get("workers") and waiting.get("attempts", 0) == 0
    assert waiting["reason"].startswith("attempt 1 waits for resources: resource preflight refused the spawn")
    assert "AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB" in waiting["reason"] and "trying again in" in waiting["reason"]
    assert "waits for resources" in project.aura("status").stdout

    project.aura("limits", "AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB=0")
    st = wait_for(
        lambda: (s := project.status()) and ((s.get("brain") or {}).get("run") or {}).get("finished") and s,
        30,
        what="the run to finish once the reserve is met",
    )
    done = task()
    assert done["status"] == "completed" and done["workers"] == [f"{done['id']}-1"], done
    assert st["brain"]["counts"].get("blocked", 0) == 0


# -- escalation: retry once smaller, then blocked with a resource-fix subtask --------------------------------


def test_second_resource_kill_blocks_the_task_and_the_fix_subtask_carries_both_kills(project: Project) -> None:
    project.env["AURA_WORKER_MAX_SYSTEM_MEMORY_GB"] = str(LIMIT_GB)
    hog = f"import time; b = bytearray({HOG_MB} * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); time.sleep(120)"
    project.write_task(f'# Escalate\n\n- [ ] hog `python3 -c "{hog}"`\n')
    project.up()
    wait_for(
        lambda: ((project.status().get("brain") or {}).get("run") or {}).get("finished"), 90, what="the run to finish"
    )
    state = read_json(project.paths.state_dir / "state.json")
    task = next(t for t in state["tasks"].values() if t.get("title", "").startswith("hog"))
    assert task["status"] == "blocked" and task["resource_kills"] == 2
    assert task["reason"] == "killed by the watchdog twice; needs a resource fix"
    history = [
        d
        for d in read_jsonl(project.paths.state_dir / "decisions.jsonl")
        if d.get("kind") == "status" and d["task_id"] == task["id"]
    ]
    assert [d["new"] for d in history] == ["in_progress", "pending", "in_progress", "blocked"]
    assert history[1]["reason"].startswith("killed by the watchdog: rss_gb averaged")
    assert "retry once with smaller settings" in history[1]["reason"]
    fix = state["tasks"][task["id"] + ".fix"]
    assert fix["kind"] == "resource_fix" and fix["parent"] == task["id"] and fix["fix_for"] == task["id"]
    kills = fix["violations"]
    assert [k["worker_id"] for k in kills] == [f"{task['id']}-1", f"{task['id']}-2"]
    for k in kills:
        assert k["limit"] == "AURA_WORKER_MAX_SYSTEM_MEMORY_GB" and k["strikes"] == 3
        assert k["samples"] and all(s["average"] > LIMIT_GB for s in k["strike_averages"])
        assert max(s["rss_gb"] for s in k["samples"]) > LIMIT_GB
    assert "killed twice" in fix["description"] and "kill 2" in fix["description"]
    # the fix is for the Layer 2 backend (shell in these tests, which cannot run a prompt): blocked, with why,
    # and never spawned to fail
    assert fix["attempts"] == 0 and fix["status"] == "blocked" and not fix["workers"]
    assert "not started" in fix["reason"] and "AURA_LAYER2_BACKEND=shell runs only commands" in fix["reason"]


# -- placement -------------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity and at least two CPUs",
)
def test_cpu_ceiling_pins_workers_to_distinct_cores_and_children_inherit(rig: Rig) -> None:
    allowed = os.sched_getaffinity(0)
    rig.p.env["AURA_WORKER_MAX_CPU_PERCENT"] = "50"
    rig.start("watchdog", "supervisor")
    want = max(1, len(allowed) // 2)
    go = rig.tmp / "go"
    pinned = [rig.spawn(f"w{i}", PARENT, str(rig.tmp / f"child{i}"), str(go)) for i in (1, 2)]
    free = rig.spawn("free", PARENT, str(rig.tmp / "child3"), str(go), limits={"AURA_WORKER_MAX_CPU_PERCENT": 0})
    cpus = [set(w["cpus"]) for w in pinned]
    assert [len(c) for c in cpus] == [want, want] and not cpus[0] & cpus[1]
    for w, c in zip(pinned, cpus, strict=True):
        assert os.sched_getaffinity(w["worker_pid"]) == c
    assert "cpus" not in free and os.sched_getaffinity(free["worker_pid"]) == allowed
    go.touch()  # each worker now starts a child, which inherits its affinity
    for i, c in ((1, cpus[0]), (2, cpus[1]), (3, allowed)):
        child = int(
            wait_for(
                lambda i=i: (rig.tmp / f"child{i}").exists() and (rig.tmp / f"child{i}").read_text(),
                20,
                what=f"child {i}",
            )
        )
        rig.p.seen.setdefault(child, None)
        assert os.sched_getaffinity(child) == c
    assert [r["worker"] for r in rig.logged("worker_pinned", "supervisor")] == ["w1", "w2"]


# -- GPU, through the stand-in NVML ---------------------------------------------------------------------------


def _gpu_tree(rig: Rig) -> tuple[dict, int]:
    """A worker with one child: (its record, the child's pid)."""
    go = rig.tmp / "go"
    rec = rig.spawn("gpu", PARENT, str(rig.tmp / "child"), str(go))
    go.touch()
    child = int(
        wait_for(
            lambda: (rig.tmp / "child").exists() and (rig.tmp / "child").read_text(), 20, what="the worker's child"
        )
    )
    rig.p.seen.setdefault(child, None)
    return rec, child


@pytest.mark.parametrize(
    "limit,value,metric",
    [
        ("AURA_WORKER_MAX_GPU_MEMORY_GB", "2", "gpu_mem_gb"),
        ("AURA_WORKER_MAX_GPU_UTIL_PERCENT", "50", "gpu_util_percent"),
    ],
)
def test_gpu_use_summed_over_the_worker_tree_is_killed_after_the_strikes(
    rig: Rig, limit: str, value: str, metric: str
) -> None:
    state_file = rig.fake_gpu(gpu_state())
    rig.p.env[limit] = value
    rig.start("watchdog", "supervisor")
    assert rig.call("watchdog", "status")["gpu"]["source"] == "nvml"
    rec, child = _gpu_tree(rig)
    rig.samples_after(wait_for(lambda: rig.usage("gpu"), 20, what="a sample")["sampled_at"], 6)
    assert rig.usage("gpu")["strikes"] == {} and rig.kill_record("gpu") is None
    # each process alone is under the limit, the tree is over it; pid 1 (not the worker's) uses a lot
    set_gpu(
        state_file,
        gpu_state(
            compute=[(rec["worker_pid"], int(1.2 * GIB)), (child, int(1.3 * GIB)), (1, 50 * GIB)],
            util=[(rec["worker_pid"], 30), (child, 40), (1, 100)],
        ),
    )
    kill = wait_for(lambda: rig.kill_record("gpu"), 20, what="the GPU kill")
    assert kill["limit"] == limit and kill["strikes"] == 3 and kill["metric"] == metric
    expected = 2.5 if metric == "gpu_mem_gb" else 70.0
    assert max(s[metric] for s in kill["samples"]) == pytest.approx(expected, rel=1e-3)
    done = wait_for(lambda: rig.exited("gpu"), 20, what="the worker's exit")
    assert done["kill"]["limit"] == limit


def test_gpu_free_memory_reserve_refuses_a_spawn(rig: Rig) -> None:
    rig.fake_gpu(gpu_state(used=79 * GIB))
    rig.p.env["AURA_WORKER_MIN_GPU_MEMORY_FREE_GB"] = "4"
    rig.start("watchdog", "supervisor")
    with pytest.raises(RemoteError) as err:
        rig.spawn("big", HOG, "1")
    assert err.value.code == "reserve_short"
    assert "1.00 GiB free on GPU 0 < reserve 4 GiB" in err.value.message
    assert "AURA_WORKER_MIN_GPU_MEMORY_FREE_GB" in err.value.message


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="nvidia-smi here would be used as the fallback")
def test_without_nvml_gpu_checks_are_off_and_memory_limits_still_work(rig: Rig) -> None:
    rig.fake_gpu(gpu_state(init_error=9))  # NVML_ERROR_DRIVER_NOT_LOADED
    rig.p.env.update(AURA_WORKER_MAX_GPU_MEMORY_GB="1", AURA_WORKER_MAX_SYSTEM_MEMORY_GB=str(LIMIT_GB))
    rig.start("watchdog", "supervisor")
    gpu = rig.call("watchdog", "status")["gpu"]
    assert gpu["available"] is False and "Driver Not Loaded" in gpu["reason"]
    off = rig.logged("gpu_checks_off")
    assert len(off) == 1 and "Driver Not Loaded" in off[0]["reason"]
    rig.spawn("hog", HOG, str(HOG_MB))
    kill = wait_for(lambda: rig.kill_record("hog"), 20, what="the memory kill")
    assert kill["limit"] == "AURA_WORKER_MAX_SYSTEM_MEMORY_GB"
    assert all(s["gpu_mem_gb"] is None and s["gpu_util_percent"] is None for s in kill["samples"])
    assert rig.call("watchdog", "ping")["pong"] is True
