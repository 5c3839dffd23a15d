#!/usr/bin/env python3
"""Real-GPU check of aura.watchdog.gpu: does GpuSampler see a busy child's memory and SM use?

Starts a child that allocates GPU memory and keeps the SMs busy, with the first of these
that works: PyTorch, CuPy, a small CUDA program built with nvcc, or libcuda through ctypes
(the driver JIT-compiles a spin kernel from inline PTX). Then samples with GpuSampler (NVML),
compares with `nvidia-smi --query-compute-apps=pid,used_memory`, also runs the sampler's
nvidia-smi fallback, and prints one JSON object.

Exit status: 0 when GpuSampler saw the child's pid with memory > 0; 1 when it did not;
2 when no child could be started. Usage:
  python3 bench/gpu_check.py [--backends torch,cupy,nvcc,ctypes] [--each] [--mib 1024]
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aura.watchdog.gpu import MIB, GpuSampler, tree_usage  # noqa: E402

BACKENDS = ("torch", "cupy", "nvcc", "ctypes")
READY_TIMEOUT_S = 150.0
SPIN_ITERS = 2_000_000  # per thread per launch: a few ms of dependent FMAs

# ---------------------------------------------------------------- children (run with --child)

SPIN_CU = r"""
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <cuda_runtime.h>

__global__ void spin(float* out, unsigned iters) {
    float x = 1.0f;
    for (unsigned i = 0; i < iters; ++i) x = fmaf(x, 0.9999999f, 0.001f);
    if (threadIdx.x == 0) out[blockIdx.x] = x;
}

int main(int argc, char** argv) {
    size_t bytes = (size_t)atoll(argv[1]) << 20;
    double seconds = atof(argv[2]);
    unsigned iters = (unsigned)atol(argv[3]);
    char* buf = 0;
    if (cudaMalloc(&buf, bytes) != cudaSuccess) { fprintf(stderr, "cudaMalloc failed\n"); return 2; }
    cudaMemset(buf, 1, bytes);
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    spin<<<sms * 4, 256>>>((float*)buf, 1000);
    if (cudaDeviceSynchronize() != cudaSuccess) { fprintf(stderr, "kernel failed\n"); return 3; }
    printf("READY nvcc\n");
    fflush(stdout);
    time_t end = time(0) + (time_t)seconds;
    while (time(0) < end) { spin<<<sms * 4, 256>>>((float*)buf, iters); cudaDeviceSynchronize(); }
    return 0;
}
"""

SPIN_PTX = b"""
.version 6.0
.target sm_50
.address_size 64

.visible .entry spin(
    .param .u64 out,
    .param .u32 iters
)
{
    .reg .pred %p<2>;
    .reg .b32 %r<4>;
    .reg .f32 %f<2>;
    .reg .b64 %rd<3>;

    ld.param.u64 %rd1, [out];
    ld.param.u32 %r1, [iters];
    mov.u32 %r2, 0;
    mov.f32 %f1, 0f3F800000;
$L_loop:
    fma.rn.f32 %f1, %f1, 0f3F7FFFFE, 0f3A83126F;
    add.u32 %r2, %r2, 1;
    setp.lt.u32 %p1, %r2, %r1;
    @%p1 bra $L_loop;
    cvta.to.global.u64 %rd2, %rd1;
    st.global.f32 [%rd2], %f1;
    ret;
}
"""


def _ready(backend: str) -> None:
    print(f"READY {backend}", flush=True)


def child_torch(mib: int, seconds: float) -> None:
    import torch

    hold = torch.ones(mib * MIB, dtype=torch.uint8, device="cuda")
    a = torch.randn(4096, 4096, device="cuda")
    b = torch.randn_like(a)
    torch.cuda.synchronize()
    _ready("torch")
    end = time.time() + seconds
    while time.time() < end:
        a = (a @ b).clamp_(-1, 1)
        torch.cuda.synchronize()
    del hold


def child_cupy(mib: int, seconds: float) -> None:
    import cupy as cp

    hold = cp.ones(mib * MIB, dtype=cp.uint8)
    a = cp.random.standard_normal((4096, 4096), dtype=cp.float32)
    b = cp.random.standard_normal((4096, 4096), dtype=cp.float32)
    cp.cuda.Device().synchronize()
    _ready("cupy")
    end = time.time() + seconds
    while time.time() < end:
        a = cp.clip(a @ b, -1, 1)
        cp.cuda.Device().synchronize()
    del hold


def _cu(lib: Any, name: str, *args: Any) -> None:
    rc = getattr(lib, name)(*args)
    if rc != 0:
        raise RuntimeError(f"{name} failed: CUresult {rc}")


def child_ctypes(mib: int, seconds: float) -> None:
    """Driver API only: primary context, cuMemAlloc, and a PTX spin kernel."""
    lib = ctypes.CDLL("libcuda.so.1")
    _cu(lib, "cuInit", ctypes.c_uint(0))
    dev = ctypes.c_int()
    _cu(lib, "cuDeviceGet", ctypes.byref(dev), ctypes.c_int(0))
    ctx = ctypes.c_void_p()
    _cu(lib, "cuDevicePrimaryCtxRetain", ctypes.byref(ctx), dev)
    _cu(lib, "cuCtxSetCurrent", ctx)
    nbytes = ctypes.c_size_t(mib * MIB)
    ptr = ctypes.c_uint64()
    _cu(lib, "cuMemAlloc_v2", ctypes.byref(ptr), nbytes)
    _cu(lib, "cuMemsetD8_v2", ptr, ctypes.c_ubyte(1), nbytes)
    sms = ctypes.c_int()
    _cu(lib, "cuDeviceGetAttribute", ctypes.byref(sms), ctypes.c_int(16), dev)  # MULTIPROCESSOR_COUNT
    mod = ctypes.c_void_p()
    _cu(lib, "cuModuleLoadData", ctypes.byref(mod), ctypes.c_char_p(SPIN_PTX))
    fn = ctypes.c_void_p()
    _cu(lib, "cuModuleGetFunction", ctypes.byref(fn), mod, ctypes.c_char_p(b"spin"))
    out, iters = ctypes.c_uint64(ptr.value), ctypes.c_uint32(1000)
    params = (ctypes.c_void_p * 2)(ctypes.addressof(out), ctypes.addressof(iters))
    grid, one = ctypes.c_uint(max(sms.value, 1) * 4), ctypes.c_uint(1)

    def launch() -> None:
        _cu(
            lib,
            "cuLaunchKernel",
            fn,
            grid,
            one,
            one,
            ctypes.c_uint(256),
            one,
            one,
            ctypes.c_uint(0),
            ctypes.c_void_p(),
            params,
            ctypes.c_void_p(),
        )
        _cu(lib, "cuCtxSynchronize")

    launch()
    _ready("ctypes")
    iters.value = SPIN_ITERS
    end = time.time() + seconds
    while time.time() < end:
        launch()


CHILDREN = {"torch": child_torch, "cupy": child_cupy, "ctypes": child_ctypes}

# ---------------------------------------------------------------- parent side


def _can_try(backend: str) -> str:
    """Empty when the backend looks usable here, else why it is skipped."""
    if backend in ("torch", "cupy"):
        return "" if importlib.util.find_spec(backend) else f"{backend} not importable"
    if backend == "nvcc":
        return "" if shutil.which("nvcc") else "nvcc not found"
    return ""


def _child_cmd(backend: str, mib: int, seconds: float, workdir: Path) -> list[str]:
    """The command for one backend; builds the CUDA program for nvcc."""
    if backend != "nvcc":
        return [sys.executable, __file__, "--child", backend, "--mib", str(mib), "--seconds", str(seconds)]
    src, exe = workdir / "spin.cu", workdir / "spin"
    src.write_text(SPIN_CU)
    res = subprocess.run(["nvcc", "-O2", "-o", str(exe), str(src)], capture_output=True, text=True, timeout=180)
    if res.returncode != 0:
        raise RuntimeError(f"nvcc failed: {(res.stderr or res.stdout).strip()[-400:]}")
    return [str(exe), str(mib), str(seconds), str(SPIN_ITERS)]


def _wait_ready(proc: subprocess.Popen[str], timeout_s: float, err_path: Path) -> str:
    """Empty once the child prints READY; else why not (exit, timeout) with its stderr tail."""
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if lines.get(timeout=0.5).startswith("READY"):
                return ""
        except queue.Empty:
            if proc.poll() is not None:
                break
    _stop(proc)
    err = err_path.read_text(errors="replace")
    state = f"exited {proc.returncode}" if proc.returncode is not None else "timed out"
    return f"child {state}: {err.strip()[-600:]}"


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_child(backend: str, mib: int, seconds: float, workdir: Path) -> tuple[subprocess.Popen[str] | None, str]:
    """A running, ready child, or None and why."""
    skip = _can_try(backend)
    if skip:
        return None, skip
    err_path = workdir / f"{backend}.stderr"
    try:
        cmd = _child_cmd(backend, mib, seconds, workdir)
        with open(err_path, "w") as err:  # a file, so a chatty child never blocks on a full pipe
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    why = _wait_ready(proc, READY_TIMEOUT_S, err_path)
    return (None, why) if why else (proc, "")


def smi_apps() -> dict[int, int] | str:
    """pid -> MiB from nvidia-smi, the reference; a string when it cannot run."""
    try:
        res = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    apps: dict[int, int] = {}
    for line in res.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            apps[int(parts[0])] = apps.get(int(parts[0]), 0) + int(parts[1])
    return apps if res.returncode == 0 else f"exit {res.returncode}: {res.stdout.strip()[:200]}"


class _NoNvml:
    """An nvml stand-in whose init fails, to drive GpuSampler into its nvidia-smi fallback."""

    class NVMLError(Exception):
        value = 12

    def nvmlInit(self) -> None:
        raise self.NVMLError("forced off by gpu_check")


def measure(pid: int, n_samples: int, interval_s: float) -> dict[str, Any]:
    """Sample with NVML, then once with the nvidia-smi fallback; per-pid figures for `pid`."""
    visible = os.environ.get("AURA_WORKER_CUDA_VISIBLE_DEVICES", "")
    sampler = GpuSampler(visible)
    t0 = time.perf_counter()
    snap = sampler.sample()
    first_ms = (time.perf_counter() - t0) * 1000
    mem, util = tree_usage(snap, [pid])
    rows, times = [{"mem_mib": round(mem / MIB, 1), "sm_util": util, "first": True}], []
    for _ in range(n_samples):
        time.sleep(interval_s)
        t0 = time.perf_counter()
        snap = sampler.sample()
        times.append((time.perf_counter() - t0) * 1000)
        mem, util = tree_usage(snap, [pid])
        rows.append({"mem_mib": round(mem / MIB, 1), "sm_util": util})
    t0 = time.perf_counter()
    fb_snap = GpuSampler(visible, nvml=_NoNvml()).sample()
    fb_ms = (time.perf_counter() - t0) * 1000
    sampler.close()
    return {
        "source": snap.source,
        "reason": sampler.reason,
        "notes": list(snap.notes),
        "util_available": snap.util_available,
        "devices": [
            {
                "index": d.index,
                "uuid": d.uuid,
                "name": d.name,
                "total_mib": d.mem_total // MIB,
                "used_mib": d.mem_used // MIB,
                "free_mib": d.mem_free // MIB,
            }
            for d in snap.devices
        ],
        "pids_seen": sorted(snap.procs),
        "first_sample_ms_incl_init": round(first_ms, 2),
        "sample_ms_median": round(statistics.median(times), 3) if times else None,
        "samples": rows,
        "fallback": {
            "source": fb_snap.source,
            "reason": fb_snap.reason,
            "child_mem_mib": round(tree_usage(fb_snap, [pid])[0] / MIB, 1),
            "sample_ms": round(fb_ms, 2),
        },
    }


def check_backend(backend: str, mib: int, workdir: Path, n_samples: int) -> dict[str, Any]:
    """Start one child, measure, compare with nvidia-smi, stop the child."""
    proc, why = start_child(backend, mib, seconds=60 + n_samples * 2, workdir=workdir)
    if proc is None:
        return {"backend": backend, "started": False, "error": why}
    try:
        time.sleep(1.0)  # let the driver's utilisation sampler see the busy SMs
        result = measure(proc.pid, n_samples, 1.0)
        apps = smi_apps()
    finally:
        _stop(proc)
    mems = [r["mem_mib"] for r in result["samples"]]
    utils = [r["sm_util"] for r in result["samples"] if r["sm_util"] is not None]
    smi_mib = apps.get(proc.pid) if isinstance(apps, dict) else None
    return {
        "backend": backend,
        "started": True,
        "child_pid": proc.pid,
        "requested_mib": mib,
        "sampler_mem_mib_last": mems[-1] if mems else None,
        "sampler_util_max": max(utils) if utils else None,
        "nvidia_smi_child_mib": smi_mib,
        "nvidia_smi_apps": apps,
        "mem_diff_mib": (mems[-1] - smi_mib) if mems and smi_mib is not None else None,
        "seen_with_memory": bool(mems) and mems[-1] > 0,
        "util_seen": bool(utils) and max(utils) > 0,
        **result,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--each", action="store_true", help="check every backend, not only the first that starts")
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--child", choices=sorted(CHILDREN))
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    if args.child:
        CHILDREN[args.child](args.mib, args.seconds)
        return 0
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aura-gpu-check-") as tmp:
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            results.append(check_backend(backend, args.mib, Path(tmp), args.samples))
            if results[-1]["started"] and not args.each:
                break
    started = [r for r in results if r["started"]]
    ok = bool(started) and all(r["seen_with_memory"] for r in started)
    print(json.dumps({"ok": ok, "results": results}, indent=2, default=str))
    if not started:
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
