"""The watchdog daemon: samples every worker's process tree and enforces the limits.

It learns the workers from the registry on disk, so enforcement goes on while the
supervisor is down, and it kills by process group itself. Like earlyoom and systemd-oomd:
one victim at a time, a cool-down after each kill, SIGTERM then SIGKILL, a dry-run mode,
and one log line per kill with the numbers that justified it.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import psutil

from aura.daemon import Daemon
from aura.fsutil import atomic_write_json, read_json
from aura.paths import safe_name
from aura.peers import PeerKeeper
from aura.procgroup import group_alive, signal_group
from aura.pidfile import is_alive
from ipc.envelope import BadArgs, arg
from supervisor.registry import LIVE_STATES, Registry, merged_view

from .gpu import GpuSampler, best_free_bytes, tree_usage, visible_total_bytes
from .policy import LIMITS, POLICY_KEYS, Policy, Violation, WorkerWindow
from .sampler import TreeSample, TreeTracker, tree_pids

GB = 1024 ** 3
RESERVE_MIN_RSS = 128 * 1024 ** 2  # a worker this small is never the victim of a reserve shortfall


class WatchdogDaemon(Daemon):
    name = "watchdog"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.registry = Registry(self.paths)
        self.overrides: dict[str, str] = self._load_overrides()
        self.policy = Policy.from_config(self.cfg, self.overrides)
        self.windows: dict[str, WorkerWindow] = {}
        self.trackers: dict[str, TreeTracker] = {}
        self.latest: dict[str, dict] = {}
        self.records: dict[str, tuple[float, dict]] = {}
        self.pending_kills: dict[str, tuple[float, int]] = {}
        self.cooldown_until = 0.0
        self.last_sample_at: float | None = None
        self.max_gap_s = 0.0
        self.sample_cost_s = 0.0
        self.gpu = GpuSampler(self.cfg.str("AURA_WORKER_CUDA_VISIBLE_DEVICES"))
        self.peers: PeerKeeper | None = None
        self.grace = self.cfg.float("AURA_KILL_GRACE_SECONDS")

    # -- daemon hooks -------------------------------------------------------------------------
    def handlers(self) -> dict:
        h = super().handlers()
        h.update({"usage": self.op_usage, "limits": self.op_limits, "set_limits": self.op_set_limits,
                  "preflight": self.op_preflight, "status": lambda args: self._op_hello(args)})
        return h

    def setup(self) -> None:
        if not self.managed:
            self.peers = PeerKeeper(self, ["supervisor"])
            self.peers.start()
        self.log.info("policy", mode=self.policy.mode, **{k.removeprefix("AURA_WORKER_"): v
                                                            for k, v in self.policy.as_dict().items()})
        if not self.gpu.available:
            self.log.info("gpu_checks_off", reason=self.gpu.reason)
        self.call_later(0, self._sample_loop)
        self.call_every(0.2, self._finish_kills)

    def status_fields(self) -> dict:
        return {"mode": self.policy.mode, "workers_watched": len(self.latest), "last_sample_at": self.last_sample_at,
                "max_sample_gap_s": round(self.max_gap_s, 3), "last_sample_cost_ms": round(self.sample_cost_s * 1000, 3),
                "gpu": {"available": self.gpu.available, "reason": self.gpu.reason},
                "peers": self.peers.summary() if self.peers else None}

    # -- sampling ------------------------------------------------------------------------------
    def _sample_loop(self) -> None:
        try:
            self.sample_once()
        finally:
            if not self.stopping:
                self.call_later(self.policy.poll_s, self._sample_loop)

    def live_workers(self) -> dict[str, dict]:
        """Running workers from the registry, re-reading only records whose file changed."""
        out: dict[str, dict] = {}
        for wid in self.registry.ids():
            path = self.registry.dir(wid) / "record.json"
            try:
                mtime = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            cached = self.records.get(wid)
            if cached is None or cached[0] != mtime:
                rec = self.registry.record(wid)
                if rec is None:
                    continue
                cached = (mtime, rec)
                self.records[wid] = cached
            rec = cached[1]
            if rec.get("state") not in LIVE_STATES:
                continue
            view = merged_view(self.registry, rec)
            if view.get("state") in LIVE_STATES and view.get("worker_pid"):
                out[wid] = view
        return out

    def sample_once(self) -> None:
        started = time.monotonic()
        now = time.time()
        if self.last_sample_at is not None:
            self.max_gap_s = max(self.max_gap_s, now - self.last_sample_at)
        workers = self.live_workers()
        gpu_snap = self.gpu.sample() if self.gpu.available else None
        samples: dict[str, TreeSample] = {}
        for wid, rec in workers.items():
            pids = self._tree(rec)
            if not pids:
                continue
            sample = self.trackers.setdefault(wid, TreeTracker()).sample(pids)
            if gpu_snap is not None:
                sample.gpu_mem_bytes, sample.gpu_util_percent = tree_usage(gpu_snap, sample.pids)
            samples[wid] = sample
        self._evaluate(workers, samples, gpu_snap, now)
        for gone in set(self.windows) - set(samples):
            self.windows.pop(gone, None)
            self.trackers.pop(gone, None)
            self.latest.pop(gone, None)
        self.last_sample_at = now
        self.sample_cost_s = time.monotonic() - started

    def _tree(self, rec: dict) -> list[int]:
        """The worker's processes: everything under its shim (which adopts orphans), or under the worker."""
        if is_alive(rec.get("shim_pid"), rec.get("shim_create_time")):
            return tree_pids(rec["shim_pid"], include_root=False)
        if is_alive(rec.get("worker_pid"), rec.get("worker_create_time")):
            return tree_pids(rec["worker_pid"])
        return []

    def _metrics(self, sample: TreeSample, gpu_total: int) -> dict[str, float | None]:
        return {"cpu_percent": sample.cpu_percent, "mem_percent": sample.mem_percent,
                "rss_gb": sample.rss_bytes / GB,
                "gpu_util_percent": sample.gpu_util_percent,
                "gpu_mem_percent": (100.0 * sample.gpu_mem_bytes / gpu_total) if gpu_total else None,
                "gpu_mem_gb": sample.gpu_mem_bytes / GB if gpu_total else None,
                "system_free_gb": None, "gpu_free_gb": None}

    def _evaluate(self, workers: dict[str, dict], samples: dict[str, TreeSample], gpu_snap: Any, now: float) -> None:
        gpu_total = visible_total_bytes(gpu_snap) if gpu_snap is not None else 0
        metrics = {wid: self._metrics(s, gpu_total) for wid, s in samples.items()}
        self._attach_reserves(samples, metrics, gpu_snap)
        candidates: list[tuple[float, str, Violation]] = []
        for wid, sample in samples.items():
            limits = self.policy.for_worker(workers[wid].get("limits"))
            window = self.windows.setdefault(wid, WorkerWindow())
            over = window.add(now, metrics[wid], limits, self.policy)
            self.latest[wid] = {"sampled_at": now, "cpu_percent": sample.cpu_percent, "rss_bytes": sample.rss_bytes,
                                "mem_percent": round(sample.mem_percent, 3), "nprocs": sample.nprocs,
                                "gpu_mem_bytes": sample.gpu_mem_bytes, "gpu_util_percent": sample.gpu_util_percent,
                                "avg": {k: round(v, 4) for k, v in window.averages().items()},
                                "strikes": {k: v for k, v in window.strikes.items() if v},
                                "task_id": workers[wid].get("task_id")}
            for v in over:
                candidates.append((v.average / v.threshold if LIMITS[v.key][1] == "max" else v.threshold / max(v.average, 1e-9), wid, v))
        if candidates and self.policy.mode != "off":
            _, wid, violation = max(candidates, key=lambda c: c[0])
            self._act(wid, workers[wid], violation)

    def _attach_reserves(self, samples: dict[str, TreeSample], metrics: dict[str, dict], gpu_snap: Any) -> None:
        """A reserve shortfall is charged to one victim: the biggest worker (one victim at a time)."""
        if not samples:
            return
        if self.policy.limits["AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB"] > 0:
            wid = max(samples, key=lambda w: samples[w].rss_bytes)
            if samples[wid].rss_bytes >= RESERVE_MIN_RSS:
                metrics[wid]["system_free_gb"] = psutil.virtual_memory().available / GB
        if gpu_snap is not None and self.policy.limits["AURA_WORKER_MIN_GPU_MEMORY_FREE_GB"] > 0:
            wid = max(samples, key=lambda w: samples[w].gpu_mem_bytes)
            if samples[wid].gpu_mem_bytes > 0:
                metrics[wid]["gpu_free_gb"] = best_free_bytes(gpu_snap) / GB

    # -- enforcement -----------------------------------------------------------------------------
    def _act(self, wid: str, rec: dict, violation: Violation) -> None:
        now = time.monotonic()
        if self.pending_kills or now < self.cooldown_until:
            return  # one victim at a time, and a cool-down after each kill
        window = self.windows[wid]
        reason = violation.describe()
        record = {"worker_id": wid, "task_id": rec.get("task_id"), "reason": reason, "limit": violation.key,
                  "average": violation.average, "threshold": violation.threshold, "strikes": violation.strikes,
                  "window_s": self.policy.window_s, "poll_s": self.policy.poll_s, "samples": window.recent(),
                  "killed_at": time.time(), "dry_run": self.policy.mode == "dry-run", "pid": rec.get("worker_pid")}
        if self.policy.mode == "dry-run":
            self.log.warning("would_kill", worker=wid, reason=reason)
            self.publish("resource_violation", worker_id=wid, task_id=rec.get("task_id"), reason=reason,
                         limit=violation.key, dry_run=True)
            window.strikes.clear()
            return
        atomic_write_json(self.paths.watchdog_dir / "kills" / f"{safe_name(wid)}.json", record)
        pgid = rec.get("pgid") or rec.get("worker_pid")
        signal_group(pgid, signal.SIGTERM)
        self.pending_kills[wid] = (now + self.grace, pgid)
        self.cooldown_until = now + self.policy.cooldown_s
        window.strikes.clear()
        self.log.warning("worker_resource_kill", worker=wid, task=rec.get("task_id"), reason=reason,
                         average=round(violation.average, 4), threshold=violation.threshold,
                         strikes=violation.strikes, samples=len(window.samples))
        self.publish("worker_resource_killed", worker_id=wid, task_id=rec.get("task_id"), reason=reason,
                     limit=violation.key, average=violation.average, threshold=violation.threshold)

    def _finish_kills(self) -> None:
        now = time.monotonic()
        for wid, (due, pgid) in list(self.pending_kills.items()):
            if not group_alive(pgid):
                self.pending_kills.pop(wid, None)
            elif now >= due:
                signal_group(pgid, signal.SIGKILL)
                self.log.warning("worker_sigkill", worker=wid, reason="still running after the grace period")
                self.pending_kills.pop(wid, None)

    # -- ops ---------------------------------------------------------------------------------------
    def op_usage(self, args: dict) -> dict:
        ids = arg(args, "worker_ids", list, None)
        workers = {w: u for w, u in self.latest.items() if ids is None or w in ids}
        return {"workers": workers, "sampled_at": self.last_sample_at, "mode": self.policy.mode,
                "gpu": {"available": self.gpu.available, "reason": self.gpu.reason}}

    def op_limits(self, args: dict) -> dict:
        return {"limits": self.policy.as_dict(), "overrides": self.overrides}

    def op_set_limits(self, args: dict) -> dict:
        values = arg(args, "values", dict)
        clean: dict[str, str] = {}
        for key, value in values.items():
            if key not in LIMITS and key not in POLICY_KEYS:
                raise BadArgs(f"unknown limit {key!r}; known: {', '.join([*LIMITS, *POLICY_KEYS])}")
            clean[key] = str(value)
        merged = {**self.overrides, **clean}
        try:
            policy = Policy.from_config(self.cfg, merged)
        except ValueError as exc:
            raise BadArgs(f"bad limit value: {exc}") from None
        old = self.policy.as_dict()
        self.overrides, self.policy = merged, policy
        atomic_write_json(self.paths.watchdog_dir / "limits.json", {"overrides": merged, "updated_at": time.time()})
        changed = {k: {"old": old.get(k), "new": v} for k, v in policy.as_dict().items() if old.get(k) != v}
        self.log.warning("limits_changed", changed=changed, by=arg(args, "by", str, "cli"))
        self.publish("limits_changed", changed=changed)
        return {"limits": policy.as_dict(), "changed": changed}

    def op_preflight(self, args: dict) -> dict:
        """May a new worker start? Refused, with a reason, when a free-memory reserve is not met."""
        if self.policy.mode == "off":
            return {"ok": True, "reason": "resource guard off"}
        limits = self.policy.for_worker(arg(args, "limits", dict, {}))
        reserve = limits["AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB"]
        if reserve > 0:
            free = psutil.virtual_memory().available / GB
            if free < reserve:
                return {"ok": False, "reason": f"only {free:.2f} GB of RAM free; the reserve is {reserve:g} GB "
                                               f"(AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB)"}
        gpu_reserve = limits["AURA_WORKER_MIN_GPU_MEMORY_FREE_GB"]
        if gpu_reserve > 0:
            ok, reason = self.gpu.preflight_free_ok(gpu_reserve)
            if not ok:
                return {"ok": False, "reason": reason}
        return {"ok": True, "reason": "reserves met"}

    def _load_overrides(self) -> dict[str, str]:
        rec = read_json(self.paths.watchdog_dir / "limits.json") or {}
        return {k: str(v) for k, v in (rec.get("overrides") or {}).items()}
