"""A stand-in for the subset of pynvml that aura.watchdog.gpu uses, driven by `CONFIG`.

Tests call `reset(...)` to describe devices, processes, utilisation samples and errors,
then inject this module into `GpuSampler(nvml=fake_pynvml)`. `CONFIG.calls` counts calls
per function so tests can check that sampling stays cheap.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25
NVML_ERROR_UNKNOWN = 999

_NAMES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH: "Argument Version Mismatch",
}


class NVMLError(Exception):
    """Carries the NVML return code in `.value`, like pynvml's."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _NAMES.get(self.value, f"NVML Error with code {self.value}")


@dataclass
class FakeDevice:
    """One GPU. compute/graphics: (pid, bytes or None); util: (pid, timestamp_us, sm%)."""

    uuid: str
    name: str = "Fake GPU"
    total: int = 80 * 1024**3
    used: int = 0
    compute: list[tuple[int, int | None]] = field(default_factory=list)
    graphics: list[tuple[int, int | None]] = field(default_factory=list)
    util: list[tuple[int, int, int]] = field(default_factory=list)
    mig: bool = False


@dataclass
class FakeConfig:
    """What the fake answers. errors: function name -> NVML code it raises.
    garbage: function names that return records with shuffled fields (struct drift)."""

    devices: list[FakeDevice] = field(default_factory=list)
    init_error: int | None = None
    errors: dict[str, int] = field(default_factory=dict)
    garbage: set[str] = field(default_factory=set)
    calls: Counter[str] = field(default_factory=Counter)
    initialised: bool = False


CONFIG = FakeConfig()


def reset(devices: list[FakeDevice] | None = None, **kwargs: Any) -> FakeConfig:
    """Start a fresh configuration (tests call this first)."""
    global CONFIG
    CONFIG = FakeConfig(devices=list(devices or []), **kwargs)
    return CONFIG


def _enter(name: str) -> None:
    """Count the call and raise the configured error, if any."""
    CONFIG.calls[name] += 1
    if name != "nvmlInit" and not CONFIG.initialised:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)
    code = CONFIG.errors.get(name)
    if code is not None:
        raise NVMLError(code)


def _dev(handle: Any) -> FakeDevice:
    return CONFIG.devices[handle.index]


def nvmlInit() -> None:
    CONFIG.calls["nvmlInit"] += 1
    if CONFIG.init_error is not None:
        raise NVMLError(CONFIG.init_error)
    CONFIG.initialised = True


def nvmlShutdown() -> None:
    _enter("nvmlShutdown")
    CONFIG.initialised = False


def nvmlDeviceGetCount() -> int:
    _enter("nvmlDeviceGetCount")
    return len(CONFIG.devices)


def nvmlDeviceGetHandleByIndex(index: int) -> Any:
    _enter("nvmlDeviceGetHandleByIndex")
    if not 0 <= index < len(CONFIG.devices):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return SimpleNamespace(index=index)


def nvmlDeviceGetUUID(handle: Any) -> str:
    _enter("nvmlDeviceGetUUID")
    return _dev(handle).uuid


def nvmlDeviceGetName(handle: Any) -> bytes:
    _enter("nvmlDeviceGetName")
    return _dev(handle).name.encode()  # bytes, as older bindings return


def nvmlDeviceGetMemoryInfo(handle: Any) -> Any:
    _enter("nvmlDeviceGetMemoryInfo")
    d = _dev(handle)
    return SimpleNamespace(total=d.total, used=d.used, free=d.total - d.used)


def nvmlDeviceGetMigMode(handle: Any) -> list[int]:
    _enter("nvmlDeviceGetMigMode")
    mode = int(_dev(handle).mig)
    return [mode, mode]


def _procs(name: str, rows: list[tuple[int, int | None]]) -> list[Any]:
    _enter(name)
    if name in CONFIG.garbage:  # what a newer driver's bigger struct looks like to old code
        return [SimpleNamespace(pid=(mem or 0) + 7, usedGpuMemory=pid << 40) for pid, mem in rows]
    return [SimpleNamespace(pid=pid, usedGpuMemory=mem, gpuInstanceId=0xFFFFFFFF) for pid, mem in rows]


def nvmlDeviceGetComputeRunningProcesses(handle: Any) -> list[Any]:
    return _procs("nvmlDeviceGetComputeRunningProcesses", _dev(handle).compute)


def nvmlDeviceGetComputeRunningProcesses_v3(handle: Any) -> list[Any]:
    return _procs("nvmlDeviceGetComputeRunningProcesses_v3", _dev(handle).compute)


def nvmlDeviceGetComputeRunningProcesses_v2(handle: Any) -> list[Any]:
    return _procs("nvmlDeviceGetComputeRunningProcesses_v2", _dev(handle).compute)


def nvmlDeviceGetGraphicsRunningProcesses(handle: Any) -> list[Any]:
    return _procs("nvmlDeviceGetGraphicsRunningProcesses", _dev(handle).graphics)


def nvmlDeviceGetGraphicsRunningProcesses_v3(handle: Any) -> list[Any]:
    return _procs("nvmlDeviceGetGraphicsRunningProcesses_v3", _dev(handle).graphics)


def nvmlDeviceGetGraphicsRunningProcesses_v2(handle: Any) -> list[Any]:
    return _procs("nvmlDeviceGetGraphicsRunningProcesses_v2", _dev(handle).graphics)


def nvmlDeviceGetProcessUtilization(handle: Any, timeStamp: int) -> list[Any]:
    """Samples newer than `timeStamp`; NOT_FOUND when there are none, as NVML does."""
    _enter("nvmlDeviceGetProcessUtilization")
    d = _dev(handle)
    if d.mig:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    fresh = [
        SimpleNamespace(pid=pid, timeStamp=ts, smUtil=sm, memUtil=0, encUtil=0, decUtil=0)
        for pid, ts, sm in d.util
        if ts > timeStamp
    ]
    if not fresh:
        raise NVMLError(NVML_ERROR_NOT_FOUND)
    return fresh
