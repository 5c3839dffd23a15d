"""The watchdog against a real NVIDIA GPU, through the real NVML; skipped where there is none.

Workers are real processes that take GPU memory with `cudaMalloc` (through PyTorch, CuPy or
libcuda itself: `bench/gpu_check.py --child`) and keep the SMs busy. The supervisor and the
watchdog run as real daemons (tests/support/rig.py); one test runs the whole product with the
brain. Run on a GPU machine with `python -m pytest tests/real/gpu -v` (see bench/README.md).

Each test also runs as `standin`, everywhere: the same daemons and assertions, with the
stand-in NVML in front of the real one and a worker that puts itself on the stand-in GPU.
That keeps these tests working between the rare runs on a real GPU.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import psutil
import pytest

from aura.runtime.fsutil import read_json, read_jsonl
from tests.support.harness import REPO, Project, wait_for
from tests.support.rig import GIB, Rig, gpu_state, install_fake_nvml, rolling_averages

GPU_CHECK = REPO / "bench" / "gpu_check.py"
ALLOCATORS = ("torch", "cupy", "ctypes")
CUDA_START_S = 180  # importing PyTorch and creating a CUDA context can be slow on a cold machine
LIMIT_GB = 1.0
OVER_MIB = 3072  # over LIMIT_GB with room for the CUDA context
UNDER_MIB = 512
POLICY = {
    "AURA_WORKER_RESOURCE_POLL_SECONDS": "0.5",
    "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS": "2",
    "AURA_WORKER_RESOURCE_VIOLATION_STRIKES": "3",
    "AURA_WORKER_MAX_GPU_UTIL_PERCENT": "0",
    "AURA_WORKER_MAX_GPU_MEMORY_PERCENT": "0",
    "AURA_WORKER_MAX_GPU_MEMORY_GB": "0",
}


def _gpu_count() -> tuple[int, str]:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount(), ""
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:  # noqa: BLE001 - any failure means: no GPU to test on
        return 0, f"{type(exc).__name__}: {exc}"


def nvml_pids() -> set[int]:
    """Every pid with memory on any GPU, straight from NVML."""
    import pynvml

    pynvml.nvmlInit()
    try:
        return {
            p.pid
            for i in range(pynvml.nvmlDeviceGetCount())
            for p in pynvml.nvmlDeviceGetComputeRunningProcesses(pynvml.nvmlDeviceGetHandleByIndex(i))
        }
    finally:
        pynvml.nvmlShutdown()


def _allocator() -> str:
    """The first way to take GPU memory that this Python has (libcuda through ctypes always remains)."""
    from bench.gpu_check import _can_try

    return next(a for a in ALLOCATORS if not _can_try(a))


STANDIN_CHILD = """\
import json, os, sys, time
folder, mib, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
os.makedirs(folder, exist_ok=True)
tmp = os.path.join(folder, ".%d.tmp" % os.getpid())
with open(tmp, "w") as fh:
    json.dump({"bytes": (mib + 300) << 20, "sm": 100}, fh)  # + what a CUDA context takes
os.replace(tmp, os.path.join(folder, str(os.getpid())))
time.sleep(seconds)
"""
GPUS, WHY_NOT = _gpu_count()


class Gpu:
    """The GPU a test runs against: the machine's own, or the stand-in."""

    def __init__(self, kind: str, tmp: Path):
        self.kind = kind
        self.tmp = tmp
        self.procs = tmp / "nvml_state.json.procs"

    def install(self, env: dict[str, str]) -> None:
        """Point processes started with `env` at this GPU."""
        env.update(POLICY)
        if self.kind == "standin":
            install_fake_nvml(self.tmp, env, gpu_state())

    def child_argv(self, mib: int, seconds: float = 120.0) -> list[str]:
        """A worker that holds `mib` MiB of GPU memory and keeps the GPU busy for `seconds`."""
        if self.kind == "standin":
            script = self.tmp / "standin_child.py"
            script.write_text(STANDIN_CHILD)
            return [sys.executable, str(script), str(self.procs), str(mib), str(seconds)]
        return [sys.executable, str(GPU_CHECK), "--child", _allocator(), "--mib", str(mib), "--seconds", str(seconds)]

    def pids(self) -> set[int]:
        """Every pid that holds GPU memory now."""
        if self.kind == "standin":
            return {int(n) for n in os.listdir(self.procs) if n.isdigit() and _running(int(n))}
        return nvml_pids()


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(params=["nvml", "standin"])
def gpu(request: pytest.FixtureRequest, tmp_path: Path) -> Gpu:
    if request.param == "nvml" and GPUS == 0:
        pytest.skip(f"no NVIDIA GPU through NVML here ({WHY_NOT or 'no devices'})")
    return Gpu(request.param, tmp_path)


@pytest.fixture
def gpu_rig(rig: Rig, gpu: Gpu) -> Rig:
    gpu.install(rig.p.env)
    return rig


def seen_on_gpu(rig: Rig, wid: str, at_least_gib: float) -> dict:
    """The worker's first usage record that shows at least `at_least_gib` of GPU memory."""

    def check() -> dict | None:
        use = rig.usage(wid)
        if use is None and rig.exited(wid):
            pytest.fail(f"the worker exited before it held GPU memory: {rig.exited(wid)}")
        return use if use and (use.get("gpu_mem_bytes") or 0) >= at_least_gib * GIB else None

    return wait_for(check, CUDA_START_S, interval=0.2, what=f"the watchdog to see {at_least_gib} GiB on the GPU")


def test_watchdog_reads_the_gpu_through_nvml(gpu_rig: Rig) -> None:
    gpu_rig.start("watchdog", "supervisor")
    gpu = gpu_rig.call("watchdog", "status")["gpu"]
    assert gpu["available"] is True and gpu["source"] == "nvml", gpu


def test_worker_over_its_gpu_memory_ceiling_is_killed_at_the_last_strike(gpu_rig: Rig, gpu: Gpu) -> None:
    gpu_rig.p.env["AURA_WORKER_MAX_GPU_MEMORY_GB"] = str(LIMIT_GB)
    gpu_rig.start("watchdog", "supervisor")
    rec = gpu_rig.spawn_argv("gpuhog", gpu.child_argv(OVER_MIB))
    kill = wait_for(lambda: gpu_rig.kill_record("gpuhog"), CUDA_START_S, interval=0.2, what="the GPU memory kill")
    print("kill record:", {k: v for k, v in kill.items() if k != "samples"})
    print("samples (t, gpu_mem_gb):", [(round(s["t"], 2), s["gpu_mem_gb"]) for s in kill["samples"]])
    assert kill["limit"] == "AURA_WORKER_MAX_GPU_MEMORY_GB" and kill["metric"] == "gpu_mem_gb"
    assert kill["strikes"] == 3 and kill["pid"] == rec["worker_pid"]
    assert max(s["gpu_mem_gb"] for s in kill["samples"]) >= OVER_MIB / 1024
    # replay the window: the last three samples, and only they, were strikes
    replay = rolling_averages(kill["samples"], "gpu_mem_gb", kill["window_s"])
    last3 = replay[-3:]
    assert [t for t, _, _ in last3] == [s["t"] for s in kill["strike_averages"]]
    assert all(n >= 2 and avg > LIMIT_GB for _, avg, n in last3)
    if len(replay) > 3:
        _, avg, n = replay[-4]
        assert n < 2 or avg <= LIMIT_GB
    done = wait_for(lambda: gpu_rig.exited("gpuhog"), 30, what="the worker's exit")
    assert done["kill"]["reason_code"] == "resource" and done["exit"]["signal"] == signal.SIGTERM
    # the memory went back to the GPU: NVML no longer lists the worker
    wait_for(lambda: rec["worker_pid"] not in gpu.pids(), 30, what="the worker's GPU memory to be freed")


def test_worker_under_its_gpu_memory_ceiling_is_not_killed(gpu_rig: Rig, gpu: Gpu) -> None:
    gpu_rig.p.env["AURA_WORKER_MAX_GPU_MEMORY_GB"] = str(LIMIT_GB * 8)
    gpu_rig.start("watchdog", "supervisor")
    gpu_rig.spawn_argv("careful", gpu.child_argv(UNDER_MIB))
    use = seen_on_gpu(gpu_rig, "careful", UNDER_MIB / 1024)  # seen, so "not killed" means something
    print("usage:", use)
    gpu_rig.samples_after(use["sampled_at"], 12)  # three windows
    assert gpu_rig.kill_record("careful") is None and gpu_rig.logged("worker_resource_kill") == []
    assert gpu_rig.worker("careful")["state"] == "running"
    assert gpu_rig.usage("careful")["strikes"] == {}


def test_worker_over_its_gpu_utilisation_ceiling_is_killed(gpu_rig: Rig, gpu: Gpu) -> None:
    gpu_rig.p.env["AURA_WORKER_MAX_GPU_UTIL_PERCENT"] = "30"
    gpu_rig.start("watchdog", "supervisor")
    gpu_rig.spawn_argv("spinner", gpu.child_argv(UNDER_MIB))
    use = seen_on_gpu(gpu_rig, "spinner", UNDER_MIB / 1024)
    if use["gpu_util_percent"] is None:
        notes = gpu_rig.call("watchdog", "usage")["gpu"]["notes"]
        pytest.skip(f"per-process GPU utilisation is not reported here: {notes}")
    kill = wait_for(lambda: gpu_rig.kill_record("spinner"), 60, interval=0.2, what="the GPU utilisation kill")
    print("samples (t, gpu_util_percent):", [(round(s["t"], 2), s["gpu_util_percent"]) for s in kill["samples"]])
    assert kill["limit"] == "AURA_WORKER_MAX_GPU_UTIL_PERCENT" and kill["strikes"] == 3
    assert all(s["average"] > 30 for s in kill["strike_averages"])


def test_brain_retries_once_then_blocks_with_a_fix_subtask(project: Project, gpu: Gpu) -> None:
    gpu.install(project.env)
    project.env["AURA_WORKER_MAX_GPU_MEMORY_GB"] = str(LIMIT_GB)
    command = " ".join(gpu.child_argv(OVER_MIB))
    project.write_task(f"# GPU escalation\n\n- [ ] gpuhog `{command}`\n")
    project.up()
    wait_for(
        lambda: ((project.status().get("brain") or {}).get("run") or {}).get("finished"),
        2 * CUDA_START_S,
        interval=0.5,
        what="the run to finish",
    )
    state = read_json(project.paths.state_dir / "state.json")
    task = next(t for t in state["tasks"].values() if t.get("title", "").startswith("gpuhog"))
    history = [
        d["new"]
        for d in read_jsonl(project.paths.state_dir / "decisions.jsonl")
        if d.get("kind") == "status" and d["task_id"] == task["id"]
    ]
    print("task:", task["status"], task.get("reason"), "history:", history)
    assert task["status"] == "blocked" and task["resource_kills"] == 2
    assert history == ["in_progress", "pending", "in_progress", "blocked"]
    fix = state["tasks"][task["id"] + ".fix"]
    assert [k["limit"] for k in fix["violations"]] == ["AURA_WORKER_MAX_GPU_MEMORY_GB"] * 2
    assert all(max(s["gpu_mem_gb"] for s in k["samples"]) > LIMIT_GB for k in fix["violations"])
