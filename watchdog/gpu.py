"""Per-process GPU usage for the watchdog: one NVML pass per sample for all workers.

The watchdog calls `GpuSampler.sample()` once per tick and attributes the result to each
worker's process tree with `tree_usage()`, so the cost does not grow with the number of workers
(a command-line query per worker would cost a process start each).

Sources, in order of preference:
  * NVML through `pynvml` (the nvidia-ml-py package): device handles are looked up once,
    each sample makes one memory call, two process-list calls and one utilisation call per
    visible device, and none per pid;
  * `nvidia-smi` (two calls per sample, each bounded by a timeout) when NVML cannot be loaded;
    per-process utilisation is then unknown (None);
  * nothing: `available` is False and `reason` says why. Every call then returns an empty
    snapshot at once; the sampler tries again only every `retry_s` seconds (5 minutes).

Caveats the watchdog must surface instead of hiding (they come back in `notes`):
  * NVML and nvidia-smi report HOST pids. Inside a PID namespace (a container without
    `--pid=host`) they match none of the worker's pids, so attribution reads as zero.
  * Per-process utilisation is not supported on MIG-enabled GPUs; memory still works.
  * Per-process records come from C structs whose layout changed across drivers (R535 grew
    the `_v3` struct without a version bump), so records are sanity-checked and the older
    function versions are tried when a call fails or returns nonsense.
  * Only processes holding a CUDA context appear (often the Python parent, not each child);
    MPS clients are not listed by these calls.
  * `AURA_WORKER_CUDA_VISIBLE_DEVICES` indexes are NVML (PCI bus) order; CUDA's own default
    order can differ unless `CUDA_DEVICE_ORDER=PCI_BUS_ID` is set. MIG UUIDs are not matched.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

log = logging.getLogger(__name__)

GIB = 1024**3
MIB = 1024**2
RETRY_S = 300.0
SMI_TIMEOUT_S = 5.0
PID_MAX = 4_194_304  # Linux's largest pid_max; a bigger pid means a misread struct.

# NVML return codes, used when the injected module lacks the constants.
_NOT_SUPPORTED = 3
_NOT_FOUND = 6
_FUNCTION_NOT_FOUND = 13


@dataclass(frozen=True)
class ProcGpu:
    """One pid's GPU use summed over the visible devices; util None = unknown."""

    mem_bytes: int
    sm_util_percent: float | None


@dataclass(frozen=True)
class GpuDevice:
    """One visible device's identity and memory totals, in bytes."""

    index: int
    uuid: str
    name: str
    mem_total: int
    mem_used: int
    mem_free: int


@dataclass(frozen=True)
class GpuSnapshot:
    """What one sample saw; `source` is "nvml", "nvidia-smi" or "off"."""

    source: str
    devices: tuple[GpuDevice, ...] = ()
    procs: Mapping[int, ProcGpu] = field(default_factory=lambda: MappingProxyType({}))
    util_available: bool = False
    reason: str = ""
    notes: tuple[str, ...] = ()
    taken_at: float = 0.0

    @property
    def available(self) -> bool:
        return self.source != "off"


# ---------------------------------------------------------------- helpers for the watchdog


def tree_usage(snapshot: GpuSnapshot, pids: Iterable[int]) -> tuple[int, float | None]:
    """GPU memory and SM% of a worker's tree; util is capped at 100 (a whole device) however
    the processes' own figures add up.

    Util is None when the snapshot has no per-process utilisation (fallback mode, MIG), so
    a util limit is skipped rather than read as 0 %.
    """
    mem = 0
    util = 0.0
    for pid in set(pids):
        proc = snapshot.procs.get(pid)
        if proc is None:
            continue
        mem += proc.mem_bytes
        util += proc.sm_util_percent or 0.0
    return mem, (min(util, 100.0) if snapshot.util_available else None)


def visible_total_bytes(snapshot: GpuSnapshot) -> int:
    """Total memory of the visible devices: the base of "GPU memory %" limits."""
    return sum(d.mem_total for d in snapshot.devices)


def best_free_bytes(snapshot: GpuSnapshot) -> int | None:
    """Most free memory on any one visible device (a job lands on one); None = no device."""
    if not snapshot.devices:
        return None
    return max(d.mem_free for d in snapshot.devices)


def check_free_reserve(snapshot: GpuSnapshot, min_free_gb: float) -> tuple[bool, str]:
    """Whether the best visible device keeps `min_free_gb` GiB free, with a one-line reason."""
    if min_free_gb <= 0:
        return True, "GPU free-memory reserve disabled"
    if not snapshot.available:
        return False, f"GPU free-memory reserve {min_free_gb:g} GiB set, but no GPU data: {snapshot.reason}"
    best = best_free_bytes(snapshot)
    if best is None:
        return False, f"GPU free-memory reserve {min_free_gb:g} GiB set, but no visible GPU"
    dev = max(snapshot.devices, key=lambda d: d.mem_free)
    have = f"{best / GIB:.2f} GiB free on GPU {dev.index}"
    if best < min_free_gb * GIB:
        return False, f"{have} < reserve {min_free_gb:g} GiB"
    return True, f"{have} >= reserve {min_free_gb:g} GiB"


# ---------------------------------------------------------------- visible-device selection


def parse_visible(visible: str) -> list[str] | None:
    """Tokens of a CUDA_VISIBLE_DEVICES-style value; None means every GPU."""
    tokens = [t.strip() for t in visible.split(",")]
    tokens = [t for t in tokens if t]
    return tokens or None


def _match_token(token: str, uuids: Sequence[str]) -> int | None:
    """Position of the device a token names (index, full UUID or unique UUID prefix)."""
    if token.isdigit():
        pos = int(token)
        return pos if pos < len(uuids) else None
    want = token.lower()
    if not want.startswith(("gpu-", "mig-")):
        want = "gpu-" + want
    hits = [i for i, u in enumerate(uuids) if u.lower().startswith(want)]
    return hits[0] if len(hits) == 1 else None


def select_visible(visible: str, uuids: Sequence[str]) -> tuple[list[int], str]:
    """Positions picked by `visible`, and a note when an entry matched nothing.

    Like CUDA, parsing stops at the first entry that names no device (so "-1" hides all).
    """
    tokens = parse_visible(visible)
    if tokens is None:
        return list(range(len(uuids))), ""
    picked: list[int] = []
    for token in tokens:
        pos = _match_token(token, uuids)
        if pos is None:
            return picked, f"visible-devices entry {token!r} matches no GPU; it and later entries ignored"
        if pos not in picked:
            picked.append(pos)
    return picked, ""


# ---------------------------------------------------------------- small pure helpers


def _text(value: Any) -> str:
    """NVML strings are bytes in older bindings and str in newer ones."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _quiet_shutdown(nvml: Any) -> None:
    """nvmlShutdown that never raises: it only runs on the way out."""
    try:
        nvml.nvmlShutdown()
    except Exception:  # noqa: BLE001
        pass


def _in_pid_namespace() -> bool:
    """True when this process sits in a nested PID namespace (NSpid lists several pids)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return len(line.split()) > 2
    except OSError:
        pass
    return False


def _none_exist_here(pids: Iterable[int]) -> bool:
    """True when /proc exists and none of the given pids is in it (a namespace mismatch)."""
    pids = list(pids)
    if not pids or not os.path.isdir("/proc/self"):
        return False
    return not any(os.path.exists(f"/proc/{pid}") for pid in pids)


def _smi_number(field_: str) -> int | None:
    """An integer from nvidia-smi's csv, None for "[N/A]" and the like."""
    try:
        return int(float(field_))
    except ValueError:
        return None


def parse_smi_gpus(out: str) -> list[GpuDevice]:
    """Rows of `--query-gpu=index,uuid,memory.total,memory.used,memory.free,name` (MiB)."""
    devices = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 5:
            continue
        idx, total, used, free = (_smi_number(p) for p in (parts[0], *parts[2:5]))
        if idx is None or total is None:
            continue
        used = used or 0
        free = free if free is not None else max(total - used, 0)
        name = ",".join(parts[5:]).strip()
        devices.append(GpuDevice(idx, parts[1], name, total * MIB, used * MIB, free * MIB))
    return devices


def parse_smi_apps(out: str) -> list[tuple[str, int, int | None]]:
    """Rows of `--query-compute-apps=gpu_uuid,pid,used_memory`: (uuid, pid, bytes or None)."""
    rows = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3:
            continue
        pid = _smi_number(parts[1])
        if pid is None or pid <= 0:
            continue
        mem = _smi_number(parts[2])
        rows.append((parts[0], pid, None if mem is None else mem * MIB))
    return rows


def _run_bounded(cmd: list[str], timeout_s: float) -> tuple[int, str, str]:
    """Run a command in its own session; on timeout kill the whole group, so a wedged
    nvidia-smi (or a wrapper's children holding the pipe) cannot stall the watchdog."""
    with subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()
            proc.communicate()
            raise
        return proc.returncode, out, err


# ---------------------------------------------------------------- the sampler


@dataclass
class _Dev:
    """A visible NVML device: cached handle and identity, plus the utilisation cursor."""

    handle: Any
    index: int
    uuid: str
    name: str
    util_ok: bool = True
    last_ts: int = 0


_PROC_KINDS = ("Compute", "Graphics")
_OFF_PREFIX = "GPU checks off: "


class GpuSampler:
    """Samples every visible GPU once per call; cheap, lazy, and never raises."""

    def __init__(
        self,
        visible: str = "",
        *,
        nvml: Any = None,
        smi: str | None = "nvidia-smi",
        smi_timeout_s: float = SMI_TIMEOUT_S,
        retry_s: float = RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`nvml`: a pynvml-like module (tests inject a fake); None imports pynvml lazily.
        `smi`: the nvidia-smi command for the fallback, None to disable it."""
        self.visible = visible
        self._nvml_given = nvml
        self._nvml: Any = None
        self._smi_cmd = smi
        self._smi_path: str | None = None
        self._smi_timeout_s = smi_timeout_s
        self._retry_s = retry_s
        self._clock = clock
        self._lock = threading.Lock()
        self._mode = "new"  # new | nvml | nvidia-smi | off
        self._next_try = 0.0
        self._reason = ""
        self._devs: list[_Dev] = []
        self._proc_fn: dict[str, int] = {}
        self._notes: dict[str, None] = {}  # ordered set of things said once

    # ------------------------------------------------------------ public

    @property
    def available(self) -> bool:
        """Whether GPU data can be had now (initialises on first use)."""
        with self._lock:
            return self._ready()

    @property
    def reason(self) -> str:
        """One line: why GPU checks are off, or what is degraded; empty when all is well."""
        with self._lock:
            self._ready()
            if self._mode == "off":
                return self._reason
            return "; ".join(n for n in self._notes if not n.startswith(_OFF_PREFIX))

    @property
    def source(self) -> str:
        """ "nvml", "nvidia-smi" or "off" (after the first use)."""
        with self._lock:
            self._ready()
            return self._mode

    @property
    def notes(self) -> tuple[str, ...]:
        """Everything degraded so far, each said once (also logged once)."""
        return tuple(self._notes)

    def sample(self) -> GpuSnapshot:
        """One pass over the visible devices for all workers; never raises."""
        return self._snapshot(with_util=True)

    def preflight_free_ok(self, min_free_gb: float) -> tuple[bool, str]:
        """Spawn-time check of the free GPU memory reserve (GiB); does not consume util samples."""
        if min_free_gb <= 0:
            return True, "GPU free-memory reserve disabled"
        return check_free_reserve(self._snapshot(with_util=False), min_free_gb)

    def close(self) -> None:
        """Release NVML; the next use initialises again."""
        with self._lock:
            if self._mode == "nvml":
                _quiet_shutdown(self._nvml)
            self._mode, self._devs, self._proc_fn = "new", [], {}

    def __enter__(self) -> GpuSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ state

    def _say_once(self, msg: str) -> None:
        """Record and log a degradation the first time it happens."""
        if msg not in self._notes:
            self._notes[msg] = None
            log.warning("GPU: %s", msg)

    def _off_snapshot(self) -> GpuSnapshot:
        return GpuSnapshot("off", reason=self._reason, notes=self.notes, taken_at=time.time())

    def _go_off(self, reason: str) -> None:
        """Turn GPU checks off until `retry_s` passes, saying why once."""
        if self._mode == "nvml":
            _quiet_shutdown(self._nvml)
        self._mode, self._reason = "off", reason
        self._next_try = self._clock() + self._retry_s
        self._devs, self._proc_fn = [], {}
        self._say_once(f"{_OFF_PREFIX}{reason}")

    def _ready(self) -> bool:
        """Initialise lazily; after a failure, retry no more often than every `retry_s`."""
        if self._mode in ("nvml", "nvidia-smi"):
            return True
        if self._mode == "off" and self._clock() < self._next_try:
            return False
        nvml_err = self._init_nvml()
        if nvml_err is None:
            self._mode, self._reason = "nvml", ""
            return True
        self._smi_path = shutil.which(self._smi_cmd) if self._smi_cmd else None
        if self._smi_path:
            self._mode, self._reason = "nvidia-smi", ""
            self._say_once(f"NVML unavailable ({nvml_err}); using nvidia-smi, no per-process utilisation")
            return True
        self._go_off(f"{nvml_err}; nvidia-smi not found")
        return False

    def _init_nvml(self) -> str | None:
        """Load NVML and cache the visible handles; returns why it failed, or None."""
        try:
            nvml = self._nvml_given if self._nvml_given is not None else importlib.import_module("pynvml")
        except Exception as exc:  # noqa: BLE001 - any import problem means "no NVML"
            return f"pynvml cannot be imported ({type(exc).__name__}: {exc})"
        try:
            nvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - no driver, no library...
            return f"NVML init failed: {exc or type(exc).__name__}"
        try:
            count = int(nvml.nvmlDeviceGetCount())
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            uuids = [_text(nvml.nvmlDeviceGetUUID(h)) for h in handles]
            names = [_text(nvml.nvmlDeviceGetName(h)) for h in handles]
        except Exception as exc:  # noqa: BLE001 - a lost GPU, a broken binding...
            _quiet_shutdown(nvml)
            return f"NVML device enumeration failed: {exc or type(exc).__name__}"
        self._nvml = nvml
        picked, note = select_visible(self.visible, uuids)
        if note:
            self._say_once(note)
        self._devs = [_Dev(handles[i], i, uuids[i], names[i]) for i in picked]
        if _in_pid_namespace():
            self._say_once("running in a PID namespace: NVML reports host pids, which will not match workers' pids")
        return None

    # ------------------------------------------------------------ one sample

    def _snapshot(self, *, with_util: bool) -> GpuSnapshot:
        with self._lock:
            if not self._ready():
                return self._off_snapshot()
            try:
                if self._mode == "nvml":
                    return self._sample_nvml(with_util)
                return self._sample_smi()
            except Exception as exc:  # noqa: BLE001 - the watchdog must keep running
                log.exception("GPU sampling failed")
                self._go_off(f"sampling failed: {type(exc).__name__}: {exc}")
                return self._off_snapshot()

    def _sample_nvml(self, with_util: bool) -> GpuSnapshot:
        """Memory info, process lists and (optionally) utilisation, once per visible device."""
        devices: list[GpuDevice] = []
        mem: dict[int, int] = {}
        util: dict[int, float] = {}
        util_any = False
        for dev in self._devs:
            info = self._memory_info(dev)
            if info is None:
                continue
            devices.append(info)
            for pid, used in self._device_procs(dev, info.mem_total).items():
                mem[pid] = mem.get(pid, 0) + used
            dev_util = self._device_util(dev) if with_util else None
            if dev_util is not None:
                util_any = True
                for pid, pct in dev_util.items():
                    util[pid] = util.get(pid, 0.0) + pct
        self._check_namespace(mem)
        procs = {
            pid: ProcGpu(mem.get(pid, 0), util.get(pid, 0.0) if util_any else None) for pid in mem.keys() | util.keys()
        }
        return GpuSnapshot("nvml", tuple(devices), MappingProxyType(procs), util_any, "", self.notes, time.time())

    def _check_namespace(self, pids: Mapping[int, int]) -> None:
        if _none_exist_here(pids):
            self._say_once("none of the pids NVML reports exist here: likely a PID namespace (NVML gives host pids)")

    def _memory_info(self, dev: _Dev) -> GpuDevice | None:
        try:
            info = self._nvml.nvmlDeviceGetMemoryInfo(dev.handle)
        except self._nvml.NVMLError as exc:
            self._say_once(f"GPU {dev.index}: memory info failed ({exc}); device skipped")
            return None
        return GpuDevice(dev.index, dev.uuid, dev.name, int(info.total), int(info.used), int(info.free))

    def _device_procs(self, dev: _Dev, total: int) -> dict[int, int]:
        """pid -> bytes on one device; compute and graphics merged (a C+G pid counts once)."""
        merged: dict[int, int] = {}
        for kind in _PROC_KINDS:
            for pid, used in self._proc_list(dev, kind, total):
                merged[pid] = max(merged.get(pid, 0), used)
        return merged

    def _proc_fns(self, kind: str) -> list[Callable[[Any], Any]]:
        """The process-list functions of one kind: explicit struct versions newest first, then
        the unversioned name (whatever version the installed binding maps it to)."""
        fns: list[Callable[[Any], Any]] = []
        for suffix in ("_v3", "_v2", ""):
            fn = getattr(self._nvml, f"nvmlDeviceGet{kind}RunningProcesses{suffix}", None)
            if fn is not None and fn not in fns:
                fns.append(fn)
        return fns

    def _proc_list(self, dev: _Dev, kind: str, total: int) -> list[tuple[int, int]]:
        """Records from the first function version that answers sanely; remembers which one.

        A failure or nonsense (pid beyond pid_max, memory beyond the device) moves on to the
        older struct version, since that is how binding/driver struct drift shows up.
        """
        fns = self._proc_fns(kind)
        start = self._proc_fn.get(kind, 0)
        problems: list[str] = []
        for pos in range(start, len(fns)):
            try:
                raw = fns[pos](dev.handle)
            except Exception as exc:  # noqa: BLE001 - NVMLError or NVMLLibraryMismatchError
                if getattr(exc, "value", None) == getattr(self._nvml, "NVML_ERROR_NOT_SUPPORTED", _NOT_SUPPORTED):
                    return []  # e.g. no graphics on a compute-only board
                problems.append(f"{getattr(fns[pos], '__name__', '?')}: {exc or type(exc).__name__}")
                continue
            records = self._sane_records(raw, total)
            if records is not None:
                self._proc_fn[kind] = pos
                return records
            problems.append(f"{getattr(fns[pos], '__name__', '?')}: implausible records (struct mismatch?)")
        self._say_once(f"GPU {dev.index}: {kind.lower()} process list unavailable ({'; '.join(problems)})")
        return []

    def _sane_records(self, raw: Iterable[Any], total: int) -> list[tuple[int, int]] | None:
        """(pid, bytes) pairs, or None when any record is impossible. N/A memory reads 0."""
        records = []
        for proc in raw:
            pid = int(getattr(proc, "pid", -1))
            used = getattr(proc, "usedGpuMemory", None)
            if not 0 < pid <= PID_MAX or (used is not None and not 0 <= used <= total):
                return None
            if used is None:
                self._say_once("per-process GPU memory is N/A for some processes (counted as 0)")
            records.append((pid, int(used or 0)))
        return records

    def _device_util(self, dev: _Dev) -> dict[int, float] | None:
        """pid -> SM% since the last call on this device; {} = no new samples; None = unknown."""
        if not dev.util_ok:
            return None
        try:
            samples = self._nvml.nvmlDeviceGetProcessUtilization(dev.handle, dev.last_ts)
        except self._nvml.NVMLError as exc:
            return self._util_error(dev, exc)
        latest: dict[int, tuple[int, float]] = {}
        for s in samples:
            pid, ts, sm = int(s.pid), int(s.timeStamp), float(s.smUtil)
            if not 0 < pid <= PID_MAX or not 0 <= sm <= 100:
                self._say_once(f"GPU {dev.index}: implausible utilisation sample dropped (pid {pid}, sm {sm:g})")
                continue  # and its timestamp too: a garbage one could hide every later sample
            dev.last_ts = max(dev.last_ts, ts)
            if pid not in latest or ts >= latest[pid][0]:
                latest[pid] = (ts, sm)
        return {pid: sm for pid, (_, sm) in latest.items()}

    def _util_error(self, dev: _Dev, exc: Any) -> dict[int, float] | None:
        """NOT_FOUND (or pynvml's "success with no samples") = 0 % for all; unsupported = say once."""
        code = getattr(exc, "value", None)
        if code in (0, getattr(self._nvml, "NVML_ERROR_NOT_FOUND", _NOT_FOUND)):
            return {}
        unsupported = (
            getattr(self._nvml, "NVML_ERROR_NOT_SUPPORTED", _NOT_SUPPORTED),
            getattr(self._nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", _FUNCTION_NOT_FOUND),
        )
        if code in unsupported:
            dev.util_ok = False
            why = "MIG mode" if self._is_mig(dev) else str(exc)
            self._say_once(f"GPU {dev.index}: per-process utilisation not supported ({why}); memory still checked")
            return None
        self._say_once(f"GPU {dev.index}: per-process utilisation failed ({exc}); util unknown this sample")
        return None

    def _is_mig(self, dev: _Dev) -> bool:
        fn = getattr(self._nvml, "nvmlDeviceGetMigMode", None)
        try:
            return bool(fn and fn(dev.handle)[0])
        except Exception:  # noqa: BLE001 - only used to word a message
            return False

    # ------------------------------------------------------------ nvidia-smi fallback

    def _run_smi(self, query: str) -> str | None:
        """One bounded nvidia-smi call; None (and GPU checks off) when it fails or hangs."""
        assert self._smi_path is not None
        cmd = [self._smi_path, query, "--format=csv,noheader,nounits"]
        try:
            rc, out, err = _run_bounded(cmd, self._smi_timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self._go_off(f"NVML unavailable and nvidia-smi failed: {type(exc).__name__}: {exc}")
            return None
        if rc != 0:
            first = (out + err).strip().splitlines()
            self._go_off(f"NVML unavailable and nvidia-smi exited {rc}: {first[0] if first else ''}")
            return None
        return out

    def _sample_smi(self) -> GpuSnapshot:
        """Two nvidia-smi calls: device memory and per-pid memory; no utilisation."""
        gpu_out = self._run_smi("--query-gpu=index,uuid,memory.total,memory.used,memory.free,name")
        if gpu_out is None:
            return self._off_snapshot()
        apps_out = self._run_smi("--query-compute-apps=gpu_uuid,pid,used_memory")
        if apps_out is None:
            return self._off_snapshot()
        every = parse_smi_gpus(gpu_out)
        picked, note = select_visible(self.visible, [d.uuid for d in every])
        if note:
            self._say_once(note)
        devices = tuple(every[i] for i in picked)
        wanted = {d.uuid for d in devices}
        mem: dict[int, int] = {}
        for uuid, pid, used in parse_smi_apps(apps_out):
            if uuid in wanted:
                if used is None:
                    self._say_once("per-process GPU memory is N/A for some processes (counted as 0)")
                mem[pid] = mem.get(pid, 0) + (used or 0)
        self._check_namespace(mem)
        procs = {pid: ProcGpu(b, None) for pid, b in mem.items()}
        return GpuSnapshot("nvidia-smi", devices, MappingProxyType(procs), False, "", self.notes, time.time())
