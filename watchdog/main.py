"""The watchdog daemon: samples every worker's process tree and enforces the limits.

It learns the workers from the registry on disk, so enforcement goes on while the supervisor is
down, and it stops workers by process group itself; a worker on another node (a Slurm job) it judges
by the samples its shim writes there (nodes.py) and stops through `scancel`. This class holds the policy in force and
wires the parts: sampling.py (one pass over the live workers), kills.py (the stops), policy.py
(limits, windows, strikes), disk.py and gpu.py (their readings) and ops/ (the requests it answers).
"""

from __future__ import annotations

import time
from typing import Any

from aura.runtime.diskspace import disk_settings
from aura.runtime.loop import Daemon
from aura.runtime.peers import PeerKeeper
from aura.runtime.records import WorkerRecords, run_time_limits
from aura.runtime.usagehistory import FLUSH_S, UsageHistory, history_dir

from .disk import DiskGuard
from .gpu import GpuSampler
from .kills import Kills
from .policy import Policy
from .sampling import Sampling
from .workers import RegistryView, Watched


class WatchdogDaemon(Daemon):
    name = "watchdog"
    ops_package = "aura.watchdog.ops"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.registry = WorkerRecords(self.paths)
        self.overrides: dict[str, str] = run_time_limits(self.paths.watchdog_dir)
        self.policy = Policy.from_config(self.cfg, self.overrides)
        self.policy_gen = 0  # bumped at each change, so each worker's limits are rebuilt once
        self.watched: dict[str, Watched] = {}
        self.gpu = GpuSampler(self.cfg.text("AURA_WORKER_CUDA_VISIBLE_DEVICES"))
        self.peers: PeerKeeper | None = None
        self.kills = Kills(self.paths, self.log, self.publish, self.cfg.number("AURA_KILL_GRACE_SECONDS"))
        self.disk = DiskGuard(self.paths.data, disk_settings(self.cfg, self.paths.watchdog_dir))
        self.history = UsageHistory(history_dir(self.paths))
        self.sampling = Sampling(self, RegistryView(self.registry))

    def setup(self) -> None:
        if not self.managed:
            self.peers = PeerKeeper(self, ["supervisor"])
            self.peers.start()
        self.log.info(
            "policy",
            mode=self.policy.mode,
            **{k.removeprefix("AURA_WORKER_"): v for k, v in self.policy.as_dict().items()},
        )
        if not self.gpu.available:
            self.log.info("gpu_checks_off", reason=self.gpu.reason)
        self.sampling.log_gpu_notes()
        self.call_later(0, self._sample_loop)
        self.call_every(0.2, self.kills.finish)
        self.call_every(FLUSH_S, self._flush_history)

    def teardown(self) -> None:
        self._flush_history()

    def _flush_history(self) -> None:
        """The usage history's buffered points to disk, off the sampling pass."""
        self.history.flush(time.time(), self._task_of)

    def _task_of(self, wid: str) -> str | None:
        w = self.watched.get(wid)
        return w.rec.get("task_id") if w is not None else None

    def _sample_loop(self) -> None:
        try:
            self.sampling.once()
        finally:
            if not self.stopping:
                self.call_later(self.policy.poll_s, self._sample_loop)

    # -- the policy in force -------------------------------------------------------------------
    def limits_of(self, w: Watched) -> dict[str, float]:
        """The worker's limits in force, rebuilt only when the policy or its record changed."""
        if w.limits is None or w.limits_gen != self.policy_gen:
            w.limits, w.limits_gen = self.policy.for_worker(w.rec.get("limits")), self.policy_gen
        return w.limits

    def use_policy(self, policy: Policy, overrides: dict[str, str], disk: dict[str, float]) -> None:
        """A run-time change (`aura limits`), already checked and kept on disk."""
        self.overrides, self.policy = overrides, policy
        self.disk.configure(disk)
        self.policy_gen += 1

    # -- what `hello`, `status` and `usage` report -----------------------------------------------
    def status_fields(self) -> dict:
        s = self.sampling
        return {
            "mode": self.policy.mode,
            "workers_watched": len(self.watched),
            "last_sample_at": s.last_sample_at,
            "max_sample_gap_s": round(s.max_gap_s, 3),
            "last_sample_cost_ms": round(s.cost_s * 1000, 3),
            "gpu": self.gpu_status(),
            "disk": self.disk.status(),
            "peers": self.peers.summary() if self.peers else None,
        }

    def gpu_status(self) -> dict:
        return {"available": self.gpu.available, "source": self.gpu.source, "reason": self.gpu.reason}
