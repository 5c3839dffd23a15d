"""aura.watchdog.gpu against a fake NVML and a fake nvidia-smi (no GPU needed)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from aura.watchdog import gpu
from aura.watchdog.gpu import GIB, MIB, GpuSampler, best_free_bytes, tree_usage, visible_total_bytes
from tests.support import fake_pynvml as fake

FakeDevice = fake.FakeDevice

UUID_A = "GPU-aaaaaaaa-1111-2222-3333-444444444444"
UUID_B = "GPU-bbbbbbbb-5555-6666-7777-888888888888"


class Clock:
    """A hand-moved monotonic clock for the retry interval."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def two_gpus() -> fake.FakeConfig:
    """dev0: pids 100, 101 (the tree) and 999 (another worker); dev1: pid 100 again."""
    return fake.reset(
        [
            FakeDevice(
                UUID_A,
                total=80 * GIB,
                used=10 * GIB,
                compute=[(100, 1 * GIB), (101, 2 * GIB), (999, 5 * GIB)],
                util=[(100, 10, 30), (101, 11, 20), (999, 12, 50)],
            ),
            FakeDevice(
                UUID_B,
                total=40 * GIB,
                used=30 * GIB,
                compute=[(100, 3 * GIB)],
                util=[(100, 13, 40)],
            ),
        ]
    )


def sampler(visible: str = "", **kw: object) -> GpuSampler:
    kw.setdefault("smi", None)
    return GpuSampler(visible, nvml=fake, **kw)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _fresh_fake() -> None:
    fake.reset()


# ---------------------------------------------------------------- off


def test_no_driver_turns_gpu_checks_off_with_reason_and_retries_rarely() -> None:
    cfg = fake.reset([FakeDevice(UUID_A)], init_error=fake.NVML_ERROR_DRIVER_NOT_LOADED)
    clock = Clock()
    s = sampler(clock=clock, retry_s=300.0)
    assert s.available is False
    assert "Driver Not Loaded" in s.reason and "\n" not in s.reason
    for _ in range(50):
        snap = s.sample()
        assert snap.source == "off" and not snap.available
        assert snap.devices == () and dict(snap.procs) == {}
    assert tree_usage(snap, [1, 2]) == (0, None)
    assert cfg.calls["nvmlInit"] == 1
    clock.now += 301
    cfg.init_error = None
    assert s.sample().source == "nvml"
    assert cfg.calls["nvmlInit"] == 2
    assert s.available and s.reason == ""  # recovered: the old outage is history, not a reason


def test_pynvml_missing_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    s = GpuSampler("", smi=None)
    assert not s.available
    assert "pynvml cannot be imported" in s.reason


# ---------------------------------------------------------------- memory and util


def test_tree_memory_and_util_summed_across_two_devices() -> None:
    two_gpus()
    snap = sampler().sample()
    assert snap.source == "nvml" and snap.util_available
    assert [d.index for d in snap.devices] == [0, 1]
    assert snap.procs[100] == gpu.ProcGpu(4 * GIB, 70.0)
    assert tree_usage(snap, [100, 101, 555, 100]) == (6 * GIB, 90.0)
    assert tree_usage(snap, [999]) == (5 * GIB, 50.0)
    assert tree_usage(snap, [555]) == (0, 0.0)
    assert visible_total_bytes(snap) == 120 * GIB
    assert best_free_bytes(snap) == 70 * GIB


def test_tree_util_is_capped_at_100() -> None:
    cfg = two_gpus()
    cfg.devices[1].util = [(100, 13, 95)]
    snap = sampler().sample()
    assert tree_usage(snap, [100, 101]) == (6 * GIB, 100.0)


def test_one_nvml_pass_per_sample_with_cached_handles() -> None:
    cfg = two_gpus()
    s = sampler()
    for _ in range(3):
        s.sample()
    assert cfg.calls["nvmlInit"] == 1
    assert cfg.calls["nvmlDeviceGetHandleByIndex"] == 2
    assert cfg.calls["nvmlDeviceGetMemoryInfo"] == 6
    assert cfg.calls["nvmlDeviceGetComputeRunningProcesses_v3"] == 6
    assert cfg.calls["nvmlDeviceGetProcessUtilization"] == 6


def test_pid_in_compute_and_graphics_lists_counts_once() -> None:
    fake.reset([FakeDevice(UUID_A, compute=[(100, 2 * GIB)], graphics=[(100, 2 * GIB), (200, GIB)])])
    snap = sampler().sample()
    assert snap.procs[100].mem_bytes == 2 * GIB
    assert snap.procs[200].mem_bytes == GIB


def test_unavailable_process_memory_reads_zero_with_note() -> None:
    fake.reset([FakeDevice(UUID_A, compute=[(100, None)])])
    snap = sampler().sample()
    assert snap.procs[100].mem_bytes == 0
    assert any("N/A" in n for n in snap.notes)


# ---------------------------------------------------------------- visible devices


def test_visible_index_keeps_only_that_device() -> None:
    two_gpus()
    snap = sampler("1").sample()
    assert [d.uuid for d in snap.devices] == [UUID_B]
    assert tree_usage(snap, [100, 101]) == (3 * GIB, 40.0)
    assert 999 not in snap.procs
    assert visible_total_bytes(snap) == 40 * GIB


def test_visible_uuid_prefix_selects_device() -> None:
    two_gpus()
    snap = sampler("bbbbbbbb").sample()
    assert [d.index for d in snap.devices] == [1]
    snap = sampler(f" {UUID_A} ").sample()
    assert [d.index for d in snap.devices] == [0]


def test_visible_parsing_stops_at_first_bad_entry_like_cuda() -> None:
    two_gpus()
    s = sampler("0,-1,1")
    snap = s.sample()
    assert [d.index for d in snap.devices] == [0]
    assert "'-1' matches no GPU" in s.reason
    assert sampler("-1").sample().devices == ()


# ---------------------------------------------------------------- utilisation samples


def test_not_found_means_no_new_samples_and_only_new_ones_count() -> None:
    cfg = fake.reset([FakeDevice(UUID_A, compute=[(100, GIB)], util=[(100, 10, 50)])])
    s = sampler()
    assert s.sample().procs[100].sm_util_percent == 50.0
    snap = s.sample()  # the fake raises NOT_FOUND: nothing newer than timestamp 10
    assert snap.util_available and snap.procs[100].sm_util_percent == 0.0
    assert tree_usage(snap, [100]) == (GIB, 0.0)
    cfg.devices[0].util.append((100, 20, 70))
    assert s.sample().procs[100].sm_util_percent == 70.0
    assert not any("utilisation" in n for n in s.notes)


def test_util_latest_sample_per_pid_wins() -> None:
    fake.reset([FakeDevice(UUID_A, compute=[(100, GIB)], util=[(100, 10, 90), (100, 30, 20), (100, 20, 60)])])
    assert sampler().sample().procs[100].sm_util_percent == 20.0


def test_mig_util_unsupported_said_once_memory_kept() -> None:
    cfg = fake.reset([FakeDevice(UUID_A, compute=[(100, GIB)], util=[(100, 10, 50)], mig=True)])
    s = sampler()
    for _ in range(3):
        snap = s.sample()
    assert snap.util_available is False
    assert tree_usage(snap, [100]) == (GIB, None)
    assert cfg.calls["nvmlDeviceGetProcessUtilization"] == 1
    assert [n for n in snap.notes if "MIG" in n] == [
        "GPU 0: per-process utilisation not supported (MIG mode); memory still checked"
    ]


def test_util_supported_on_one_device_only_keeps_util_available() -> None:
    cfg = two_gpus()
    cfg.devices[1].mig = True
    snap = sampler().sample()
    assert snap.util_available
    assert tree_usage(snap, [100, 101]) == (6 * GIB, 50.0)


# ---------------------------------------------------------------- struct versions


def test_version_mismatch_error_falls_back_to_v2_and_remembers() -> None:
    cfg = two_gpus()
    cfg.errors["nvmlDeviceGetComputeRunningProcesses_v3"] = fake.NVML_ERROR_ARGUMENT_VERSION_MISMATCH
    s = sampler()
    snap = s.sample()
    assert tree_usage(snap, [100, 101]) == (6 * GIB, 90.0)
    s.sample()
    assert cfg.calls["nvmlDeviceGetComputeRunningProcesses_v3"] == 1  # not retried per sample
    assert cfg.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 4  # 2 devices x 2 samples


def test_garbage_records_from_struct_drift_fall_back_to_v2() -> None:
    cfg = two_gpus()
    cfg.garbage.add("nvmlDeviceGetComputeRunningProcesses_v3")
    snap = sampler().sample()
    assert tree_usage(snap, [100, 101])[0] == 6 * GIB
    assert all(pid in (100, 101, 999) for pid in snap.procs)


def test_all_versions_failing_leaves_memory_unknown_with_note_not_exception() -> None:
    cfg = two_gpus()
    cfg.errors["nvmlDeviceGetComputeRunningProcesses_v3"] = fake.NVML_ERROR_UNKNOWN
    cfg.errors["nvmlDeviceGetComputeRunningProcesses_v2"] = fake.NVML_ERROR_FUNCTION_NOT_FOUND
    cfg.garbage.add("nvmlDeviceGetComputeRunningProcesses")
    s = sampler()
    snap = s.sample()
    assert snap.source == "nvml"
    assert tree_usage(snap, [100, 101]) == (0, 90.0)
    assert "compute process list unavailable" in s.reason


def test_lost_device_is_skipped() -> None:
    cfg = two_gpus()
    cfg.errors["nvmlDeviceGetMemoryInfo"] = fake.NVML_ERROR_GPU_IS_LOST
    s = sampler()
    snap = s.sample()
    assert snap.devices == () and snap.source == "nvml"
    assert "GPU is lost" in s.reason


# ---------------------------------------------------------------- pid namespaces


def test_namespace_note_only_when_no_reported_pid_exists_here() -> None:
    fake.reset([FakeDevice(UUID_A, compute=[(os.getpid(), GIB)])])
    s = sampler()
    s.sample()
    assert not any("none of the pids" in n for n in s.notes)
    fake.reset([FakeDevice(UUID_A, compute=[(4_000_000, GIB)])])
    s = sampler()
    s.sample()
    if os.path.isdir("/proc/self") and not os.path.exists("/proc/4000000"):
        assert any("none of the pids" in n for n in s.notes)


# ---------------------------------------------------------------- nvidia-smi fallback


def fake_smi(tmp_path: Path, gpus: str, apps: str, *, rc: int = 0, sleep: float = 0.0) -> Path:
    """An executable `nvidia-smi` that answers the two queries and logs each call."""
    (tmp_path / "gpus.csv").write_text(gpus)
    (tmp_path / "apps.csv").write_text(apps)
    script = tmp_path / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{tmp_path}/calls.log"\n'
        f"sleep {sleep}\n"
        f'[ {rc} -ne 0 ] && {{ echo "NVIDIA-SMI has failed"; exit {rc}; }}\n'
        'case "$*" in\n'
        f'  *query-gpu*) cat "{tmp_path}/gpus.csv";;\n'
        f'  *query-compute-apps*) cat "{tmp_path}/apps.csv";;\n'
        "  *) exit 2;;\n"
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


SMI_GPUS = (
    f"0, {UUID_A}, 81559, 10000, 71559, NVIDIA H100 80GB HBM3\n"
    f"1, {UUID_B}, 40960, 30000, 10960, NVIDIA A100-SXM4-40GB\n"
)
SMI_APPS = f"{UUID_A}, 100, 1024\n{UUID_A}, 101, 2048\n{UUID_B}, 100, 3072\n{UUID_B}, 102, [N/A]\n"


@pytest.mark.skipif(sys.platform == "win32", reason="shell script")
def test_nvidia_smi_fallback_parses_memory_and_has_no_util(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_smi(tmp_path, SMI_GPUS, SMI_APPS)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    fake.reset([FakeDevice(UUID_A)], init_error=fake.NVML_ERROR_LIBRARY_NOT_FOUND)
    s = GpuSampler("", nvml=fake)
    snap = s.sample()
    assert snap.source == "nvidia-smi" and not snap.util_available
    assert snap.devices[0] == gpu.GpuDevice(0, UUID_A, "NVIDIA H100 80GB HBM3", 81559 * MIB, 10000 * MIB, 71559 * MIB)
    assert tree_usage(snap, [100, 101]) == (6 * 1024 * MIB, None)
    assert snap.procs[102].mem_bytes == 0
    assert "NVML Shared Library Not Found" in s.reason
    assert len((tmp_path / "calls.log").read_text().splitlines()) == 2  # one call per query
    only_b = GpuSampler(UUID_B, nvml=fake).sample()
    assert [d.index for d in only_b.devices] == [1]
    assert tree_usage(only_b, [100, 101]) == (3072 * MIB, None)


@pytest.mark.skipif(sys.platform == "win32", reason="shell script")
def test_nvidia_smi_failure_or_hang_turns_checks_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.reset([], init_error=fake.NVML_ERROR_DRIVER_NOT_LOADED)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    fake_smi(tmp_path, SMI_GPUS, SMI_APPS, rc=9)
    s = GpuSampler("", nvml=fake)
    snap = s.sample()
    assert snap.source == "off" and "exited 9: NVIDIA-SMI has failed" in snap.reason
    fake_smi(tmp_path, SMI_GPUS, SMI_APPS, sleep=5)
    s = GpuSampler("", nvml=fake, smi_timeout_s=0.3)
    snap = s.sample()
    assert snap.source == "off" and "TimeoutExpired" in snap.reason
    s.sample()  # off: no new call until the retry interval passes
    assert len((tmp_path / "calls.log").read_text().splitlines()) == 2


def test_parsers_skip_malformed_rows() -> None:
    assert gpu.parse_smi_gpus("garbage\n0, GPU-x, [N/A], 1, 2\n") == []
    assert gpu.parse_smi_apps("GPU-x, notapid, 5\nGPU-x, 7\nGPU-x, 8, 4\n") == [("GPU-x", 8, 4 * MIB)]


# ---------------------------------------------------------------- preflight


def test_preflight_reserve_uses_best_visible_device() -> None:
    cfg = two_gpus()  # free: 70 GiB on GPU 0, 10 GiB on GPU 1
    s = sampler()
    assert s.preflight_free_ok(0) == (True, "GPU free-memory reserve disabled")
    ok, why = s.preflight_free_ok(60)
    assert ok and "70.00 GiB free on GPU 0" in why
    ok, why = s.preflight_free_ok(75)
    assert not ok and why == "70.00 GiB free on GPU 0 < reserve 75 GiB"
    ok, why = sampler("1").preflight_free_ok(20)
    assert not ok and "10.00 GiB free on GPU 1" in why
    assert cfg.calls["nvmlDeviceGetProcessUtilization"] == 0  # util cursor left for the watchdog


def test_preflight_fails_without_gpu_data_or_visible_gpu() -> None:
    fake.reset([], init_error=fake.NVML_ERROR_DRIVER_NOT_LOADED)
    ok, why = sampler().preflight_free_ok(1)
    assert not ok and "no GPU data" in why and "Driver Not Loaded" in why
    two_gpus()
    ok, why = sampler("-1").preflight_free_ok(1)
    assert not ok and "no visible GPU" in why
