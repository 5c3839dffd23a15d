"""The watchdog daemon: samples every worker's process tree and enforces the limits.

It learns the workers from the registry on disk, so enforcement goes on while the
supervisor is down, and it kills by process group itself. Like earlyoom and systemd-oomd:
one victim at a time, a cool-down after each kill, SIGTERM then SIGKILL, a dry-run mode,
and one log line per kill with the numbers that justified it.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import psutil

from aura.runtime.config import ConfigError
from aura.runtime.loop import Daemon
from aura.runtime.diskspace import DISK_KEYS, disk_settings, parse_mb
from aura.runtime.fsutil import atomic_write_json, disk_full, read_json
from aura.runtime.peers import PeerKeeper
from aura.runtime.procgroup import group_alive, signal_group, signal_shim
from aura.runtime.settings_check import suggestion
from aura.ipc import envelope as env
from aura.ipc.envelope import BadArgs, IpcError, arg
from aura.runtime.records import WorkerRecords, kill_record_path

from .disk import DiskGuard, Stop
from .gpu import GpuSampler, GpuSnapshot, best_free_bytes, tree_usage, visible_total_bytes
from .policy import LIMITS, POLICY_KEYS, Policy, Violation, check_task_limits, reserve_victim
from .sampler import TreeSample
from .workers import RegistryView, Watched

GB = 1024 ** 3
RESERVE_MIN_RSS = 128 * 1024 ** 2  # a worker this small is never the victim of a reserve shortfall


class WatchdogDaemon(Daemon):
    name = "watchdog"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.registry = WorkerRecords(self.paths)
        self.view = RegistryView(self.registry)
        self.overrides: dict[str, str] = self._load_overrides()
        self.policy = Policy.from_config(self.cfg, self.overrides)
        self.policy_gen = 0
        self.watched: dict[str, Watched] = {}
        self.pending_kills: dict[str, tuple[float, int]] = {}
        self.cooldown_until = 0.0
        self.last_sample_at: float | None = None
        self.max_gap_s = 0.0
        self.sample_cost_s = 0.0
        self.gpu = GpuSampler(self.cfg.str("AURA_WORKER_CUDA_VISIBLE_DEVICES"))
        self.gpu_notes_logged = 0
        self.peers: PeerKeeper | None = None
        self.grace = self.cfg.float("AURA_KILL_GRACE_SECONDS")
        self.disk = DiskGuard(self.paths.data, disk_settings(self.cfg, self.paths.watchdog_dir))
        self.unwritten: dict[str, dict] = {}  # kill records a full disk kept from being written
        self.would_stop: set[tuple[str, str]] = set()  # dry-run disk stops already logged

    # -- daemon hooks -------------------------------------------------------------------------
    def handlers(self) -> dict:
        h = super().handlers()
        h.update({"usage": self.op_usage, "limits": self.op_limits, "set_limits": self.op_set_limits,
                  "preflight": self.op_preflight, "status": lambda args: self.hello()})
        return h

    def setup(self) -> None:
        if not self.managed:
            self.peers = PeerKeeper(self, ["supervisor"])
            self.peers.start()
        self.log.info("policy", mode=self.policy.mode, **{k.removeprefix("AURA_WORKER_"): v
                                                            for k, v in self.policy.as_dict().items()})
        if not self.gpu.available:
            self.log.info("gpu_checks_off", reason=self.gpu.reason)
        self._log_gpu_notes()
        self.call_later(0, self._sample_loop)
        self.call_every(0.2, self._finish_kills)

    def status_fields(self) -> dict:
        return {"mode": self.policy.mode, "workers_watched": len(self.watched), "last_sample_at": self.last_sample_at,
                "max_sample_gap_s": round(self.max_gap_s, 3), "last_sample_cost_ms": round(self.sample_cost_s * 1000, 3),
                "gpu": self._gpu_status(), "disk": self.disk.status(),
                "peers": self.peers.summary() if self.peers else None}

    def _gpu_status(self) -> dict:
        return {"available": self.gpu.available, "source": self.gpu.source, "reason": self.gpu.reason}

    # -- sampling ------------------------------------------------------------------------------
    def _sample_loop(self) -> None:
        try:
            self.sample_once()
        finally:
            if not self.stopping:
                self.call_later(self.policy.poll_s, self._sample_loop)

    def sample_once(self) -> None:
        """One pass: each worker process read once, NVML once for all workers, then the policy."""
        started = time.monotonic()
        now = time.time()
        if self.last_sample_at is not None:
            self.max_gap_s = max(self.max_gap_s, now - self.last_sample_at)
        workers = self.view.live()
        gpu_snap = self.gpu.sample() if self.gpu.available else None
        samples: dict[str, TreeSample] = {}
        for wid, rec in workers.items():
            w = self.watched.get(wid)
            if w is None or w.rec is not rec:
                w = self._watch(wid, rec, w)
            stats = w.read()
            if not stats:
                continue
            sample = w.tracker.sample(stats)
            if gpu_snap is not None:
                sample.gpu_mem_bytes, sample.gpu_util_percent = tree_usage(gpu_snap, stats)
            w.sample, w.sampled_at = sample, now
            samples[wid] = sample
        self._evaluate(samples, gpu_snap, now)
        self._check_disk(samples, now)
        for gone in set(self.watched) - set(samples):
            del self.watched[gone]
        if gpu_snap is not None and len(gpu_snap.notes) > self.gpu_notes_logged:
            self._log_gpu_notes()
        self.last_sample_at = now
        self.sample_cost_s = time.monotonic() - started

    def _watch(self, wid: str, rec: dict, old: Watched | None) -> Watched:
        """Start watching a worker, or take in its changed record (keeping its window)."""
        if old is None:
            w = Watched(rec)
            if rec.get("limits"):
                self.log.info("worker_limits", worker=wid, task=rec.get("task_id"), overrides=rec["limits"])
        else:
            w, w.rec, w.limits_gen = old, rec, -1
        w.resolve_root()
        self.watched[wid] = w
        return w

    def _limits(self, w: Watched) -> dict[str, float]:
        """The worker's limits in force, rebuilt only when the policy or its record changed."""
        if w.limits is None or w.limits_gen != self.policy_gen:
            w.limits, w.limits_gen = self.policy.for_worker(w.rec.get("limits")), self.policy_gen
        return w.limits

    def _metrics(self, sample: TreeSample, gpu_total: int) -> dict[str, float | None]:
        return {"cpu_percent": sample.cpu_percent, "mem_percent": sample.mem_percent,
                "rss_gb": sample.rss_bytes / GB,
                "gpu_util_percent": sample.gpu_util_percent,
                "gpu_mem_percent": (100.0 * sample.gpu_mem_bytes / gpu_total) if gpu_total else None,
                "gpu_mem_gb": sample.gpu_mem_bytes / GB if gpu_total else None,
                "system_free_gb": None, "gpu_free_gb": None}

    def _evaluate(self, samples: dict[str, TreeSample], gpu_snap: GpuSnapshot | None, now: float) -> None:
        gpu_total = visible_total_bytes(gpu_snap) if gpu_snap is not None else 0
        metrics = {wid: self._metrics(s, gpu_total) for wid, s in samples.items()}
        self._attach_reserves(samples, metrics, gpu_snap)
        worst: tuple[float, str, Violation] | None = None
        for wid in samples:
            w = self.watched[wid]
            for v in w.window.add(now, metrics[wid], self._limits(w), self.policy):
                if worst is None or v.severity > worst[0]:
                    worst = (v.severity, wid, v)
        if worst is not None and self.policy.mode != "off":
            self._act(worst[1], worst[2])

    def _attach_reserves(self, samples: dict[str, TreeSample], metrics: dict[str, dict],
                         gpu_snap: GpuSnapshot | None) -> None:
        """A reserve shortfall is charged to one victim: the biggest worker (one victim at a time),
        under the reserve in force for it (a task may have its own)."""
        wid = reserve_victim({w: s.rss_bytes for w, s in samples.items()}, RESERVE_MIN_RSS)
        if wid is not None and self._limits(self.watched[wid])["AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB"] > 0:
            metrics[wid]["system_free_gb"] = psutil.virtual_memory().available / GB
        if gpu_snap is None:
            return
        wid = reserve_victim({w: s.gpu_mem_bytes for w, s in samples.items()}, 1)
        free = best_free_bytes(gpu_snap)
        if wid is not None and free is not None and \
                self._limits(self.watched[wid])["AURA_WORKER_MIN_GPU_MEMORY_FREE_GB"] > 0:
            metrics[wid]["gpu_free_gb"] = free / GB

    def _log_gpu_notes(self) -> None:
        """Say each GPU degradation once in this log ("GPU per-process data unavailable: why")."""
        notes = self.gpu.notes
        for note in notes[self.gpu_notes_logged:]:
            self.log.warning("gpu_note", note=note)
        self.gpu_notes_logged = len(notes)

    # -- enforcement -----------------------------------------------------------------------------
    def _act(self, wid: str, violation: Violation) -> None:
        now = time.monotonic()
        if self.pending_kills or now < self.cooldown_until:
            return  # one victim at a time, and a cool-down after each kill
        w = self.watched[wid]
        rec, reason = w.rec, violation.describe()
        if self.policy.mode == "dry-run":
            self.log.warning("would_kill", worker=wid, task=rec.get("task_id"), reason=reason,
                             average=round(violation.average, 4), threshold=violation.threshold,
                             strikes=violation.strikes)
            self.publish("resource_violation", worker_id=wid, task_id=rec.get("task_id"), reason=reason,
                         limit=violation.key, average=violation.average, threshold=violation.threshold, dry_run=True)
            w.window.clear_strikes()
            return
        record = self._kill_record(wid, w, violation)
        self._write_kill_record(wid, record)
        pgid = rec.get("pgid") or rec.get("worker_pid")
        signal_group(pgid, signal.SIGTERM)
        signal_shim(rec)
        self.pending_kills[wid] = (now + self.grace, pgid)
        self.cooldown_until = now + self.policy.cooldown_s
        w.window.clear_strikes()
        self.log.warning("worker_resource_kill", worker=wid, task=rec.get("task_id"), reason=reason,
                         average=round(violation.average, 4), threshold=violation.threshold,
                         strikes=violation.strikes, samples=len(record["samples"]), pgid=pgid)
        self.publish("worker_resource_killed", worker_id=wid, task_id=rec.get("task_id"), reason=reason,
                     limit=violation.key, average=violation.average, threshold=violation.threshold)

    def _kill_record(self, wid: str, w: Watched, v: Violation) -> dict:
        """Written before the signal: the numbers, the strike run and the samples behind it."""
        return {"worker_id": wid, "task_id": w.rec.get("task_id"), "reason": v.describe(), "limit": v.key,
                "metric": v.metric, "average": v.average, "threshold": v.threshold, "strikes": v.strikes,
                "strike_averages": [{"t": round(t, 6), "average": round(a, 4)} for t, a in v.run],
                "window_s": self.policy.window_s, "poll_s": self.policy.poll_s,
                "limits": self._limits(w), "overrides": w.rec.get("limits") or {},
                "samples": w.window.evidence(self._evidence_start(w, v)), "killed_at": time.time(), "dry_run": False,
                "pid": w.rec.get("worker_pid"), "pgid": w.rec.get("pgid") or w.rec.get("worker_pid")}

    def _evidence_start(self, w: Watched, v: Violation) -> float:
        """From the window of the sample before the first strike: the record then shows the run of
        strikes from its start, and that the sample before it was no strike."""
        first = v.run[0][0] if v.run else 0.0
        before = [t for t, _ in w.window.history if t < first]
        return (before[-1] if before else first) - self.policy.window_s

    def _finish_kills(self) -> None:
        now = time.monotonic()
        for wid, (due, pgid) in list(self.pending_kills.items()):
            if not group_alive(pgid):
                self.pending_kills.pop(wid, None)
            elif now >= due:
                signal_group(pgid, signal.SIGKILL)
                self.log.warning("worker_sigkill", worker=wid, reason="still running after the grace period")
                self.pending_kills.pop(wid, None)

    # -- disk: the data folder's free space and each worker's output ------------------------------------
    def _check_disk(self, samples: dict[str, TreeSample], now: float) -> None:
        change, stops = self.disk.check({wid: (self.watched[wid].rec, s.pids) for wid, s in samples.items()}, now)
        if change is not None:
            info = self.disk.status()
            if change == "disk_low":
                self.log.warning("disk_low", free_mb=info["free_mb"], reserve_mb=info["reserve_mb"], path=info["path"])
            else:
                self.log.info("disk_ok", free_mb=info["free_mb"], reserve_mb=info["reserve_mb"], path=info["path"])
            self.publish(change, **info)
        for stop in stops:
            self._stop(stop)
        for wid, record in list(self.unwritten.items()):
            self._write_kill_record(wid, record)

    def _stop(self, stop: Stop) -> None:
        """Stop a worker for its output or for the disk, like a resource kill: record, SIGTERM, grace."""
        wid = stop.worker_id
        if self.policy.mode == "off" or wid in self.pending_kills or wid not in self.watched:
            return
        if stop.code == "disk_low" and self.pending_kills:
            return  # one victim at a time
        rec = self.watched[wid].rec
        if self.policy.mode == "dry-run":
            if (wid, stop.code) not in self.would_stop:
                self.would_stop.add((wid, stop.code))
                self.log.warning("would_kill", worker=wid, task=rec.get("task_id"), reason=stop.reason, limit=stop.limit)
                self.publish("resource_violation", worker_id=wid, task_id=rec.get("task_id"), reason=stop.reason,
                             limit=stop.limit, reason_code=stop.code, dry_run=True)
            return
        pgid = int(rec.get("pgid") or rec.get("worker_pid") or 0)
        self._write_kill_record(wid, {"worker_id": wid, "task_id": rec.get("task_id"), "reason": stop.reason,
                                      "reason_code": stop.code, "limit": stop.limit, **stop.evidence,
                                      "killed_at": time.time(), "dry_run": False, "pid": rec.get("worker_pid"),
                                      "pgid": pgid})
        signal_group(pgid, signal.SIGTERM)
        signal_shim(rec)
        self.pending_kills[wid] = (time.monotonic() + self.grace, pgid)
        self.log.warning("worker_disk_kill" if stop.code == "disk_low" else "worker_output_kill", worker=wid,
                         task=rec.get("task_id"), reason=stop.reason, pgid=pgid)
        self.publish("worker_resource_killed", worker_id=wid, task_id=rec.get("task_id"), reason=stop.reason,
                     limit=stop.limit, reason_code=stop.code)

    def _write_kill_record(self, wid: str, record: dict) -> None:
        """Written before the signal; on a full disk kept and retried at each sample."""
        try:
            atomic_write_json(kill_record_path(self.paths, wid), record)
        except OSError as exc:
            if not disk_full(exc):
                raise
            if wid not in self.unwritten:
                self.log.error("kill_record_not_written", worker=wid, error=str(exc), retry="at each sample")
            self.unwritten[wid] = record
        else:
            self.unwritten.pop(wid, None)

    # -- ops ---------------------------------------------------------------------------------------
    def op_usage(self, args: dict) -> dict:
        ids = arg(args, "worker_ids", list, None)
        workers = {wid: self._usage(w) for wid, w in self.watched.items()
                   if w.sample is not None and (ids is None or wid in ids)}
        return {"workers": workers, "sampled_at": self.last_sample_at, "mode": self.policy.mode,
                "gpu": {**self._gpu_status(), "notes": list(self.gpu.notes)}, "disk": self.disk.status()}

    def _usage(self, w: Watched) -> dict:
        """One worker's latest figures, built on request rather than at every sample."""
        s = w.sample
        assert s is not None
        return {"sampled_at": w.sampled_at, "cpu_percent": s.cpu_percent, "rss_bytes": s.rss_bytes,
                "mem_percent": round(s.mem_percent, 3), "nprocs": s.nprocs, "gpu_mem_bytes": s.gpu_mem_bytes,
                "gpu_util_percent": s.gpu_util_percent,
                "avg": {k: round(v, 4) for k, v in w.window.averages().items()},
                "strikes": {k: n for k, n in w.window.strikes.items() if n}, "task_id": w.rec.get("task_id"),
                "output_bytes": self.disk.output_bytes(w.rec.get("worker_id") or ""),
                "limits": self._limits(w), "overrides": w.rec.get("limits") or {}}

    def op_limits(self, args: dict) -> dict:
        return {"limits": {**self.policy.as_dict(), **self.disk.settings}, "overrides": self.overrides}

    def op_set_limits(self, args: dict) -> dict:
        """`aura limits KEY=VALUE`: checked by the same rules as a start, with the run's other settings."""
        values = arg(args, "values", dict)
        clean: dict[str, str] = {}
        for key, value in values.items():
            if key not in LIMITS and key not in POLICY_KEYS and key not in DISK_KEYS:
                known = [*LIMITS, *POLICY_KEYS, *DISK_KEYS]
                raise BadArgs(f"unknown limit {key!r}{suggestion(str(key), known)} (known: {', '.join(known)})")
            clean[key] = str(value)
        merged = {**self.overrides, **clean}
        try:
            policy = Policy.from_config(self.cfg, {k: v for k, v in merged.items() if k not in DISK_KEYS})
            disk = {**self.disk.settings, **{k: parse_mb(k, v) for k, v in clean.items() if k in DISK_KEYS}}
        except ConfigError as exc:
            raise BadArgs(str(exc)) from None
        try:  # kept first: a change that would not survive a restart is not made
            atomic_write_json(self.paths.watchdog_dir / "limits.json", {"overrides": merged, "updated_at": time.time()})
        except OSError as exc:
            if not disk_full(exc):
                raise
            raise IpcError(env.UNAVAILABLE, f"the change was not made: the disk is full ({exc.strerror})") from None
        old = {**self.policy.as_dict(), **self.disk.settings}
        self.overrides, self.policy = merged, policy
        self.disk.configure(disk)
        self.policy_gen += 1
        changed = {k: {"old": old.get(k), "new": v} for k, v in {**policy.as_dict(), **disk}.items()
                   if old.get(k) != v}
        self.log.warning("limits_changed", changed=changed, by=arg(args, "by", str, "cli"))
        self.publish("limits_changed", changed=changed)
        return {"limits": {**policy.as_dict(), **disk}, "changed": changed}

    def op_preflight(self, args: dict) -> dict:
        """May a new worker start? Refused, with a reason naming the reserve, when a free-memory or
        free-disk reserve is not met (`short`: it may be met later) or the task's own limits are malformed.
        The reply carries the limits that will be in force for the worker, so the supervisor can
        place it (CPU affinity)."""
        task_limits = arg(args, "limits", dict, {})
        problems = check_task_limits(task_limits)
        if problems:
            return {"ok": False, "reason": "bad per-task limits: " + "; ".join(problems)}
        limits = self.policy.for_worker(task_limits)
        reply = {"ok": True, "reason": "reserves met", "limits": limits, "mode": self.policy.mode}
        if self.policy.mode == "off":
            return {**reply, "reason": "resource guard off"}
        refusal = self._reserve_refusal(limits)
        return {**reply, "ok": False, "reason": refusal, "short": True} if refusal else reply

    def _reserve_refusal(self, limits: dict[str, float]) -> str | None:
        disk = self.disk.refusal()
        if disk:
            return disk
        reserve = limits["AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB"]
        if reserve > 0:
            free = psutil.virtual_memory().available / GB
            if free < reserve:
                return (f"only {free:.2f} GB of RAM free; the reserve AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB "
                        f"is {reserve:g} GB")
        gpu_reserve = limits["AURA_WORKER_MIN_GPU_MEMORY_FREE_GB"]
        if gpu_reserve > 0:
            ok, why = self.gpu.preflight_free_ok(gpu_reserve)
            if not ok:
                return f"{why} (AURA_WORKER_MIN_GPU_MEMORY_FREE_GB)"
        return None

    def _load_overrides(self) -> dict[str, str]:
        rec = read_json(self.paths.watchdog_dir / "limits.json") or {}
        return {k: str(v) for k, v in (rec.get("overrides") or {}).items()}
