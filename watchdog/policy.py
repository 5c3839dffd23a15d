"""The resource policy: limits, rolling-window averages and strikes, per worker.

A worker is killed only when a limit's rolling-window average stays over it for
AURA_WORKER_RESOURCE_VIOLATION_STRIKES consecutive samples. Every limit counts its own
strikes (the original counted only the first limit that was over), so a worker that
alternates between two excesses is still caught.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aura.config import Config

# config key -> (metric, "max" ceiling or "min" reserve, unit)
LIMITS: dict[str, tuple[str, str, str]] = {
    "AURA_WORKER_MAX_CPU_PERCENT": ("cpu_percent", "max", "%"),
    "AURA_WORKER_MAX_SYSTEM_MEMORY_PERCENT": ("mem_percent", "max", "%"),
    "AURA_WORKER_MAX_SYSTEM_MEMORY_GB": ("rss_gb", "max", "GB"),
    "AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB": ("system_free_gb", "min", "GB"),
    "AURA_WORKER_MAX_GPU_UTIL_PERCENT": ("gpu_util_percent", "max", "%"),
    "AURA_WORKER_MAX_GPU_MEMORY_PERCENT": ("gpu_mem_percent", "max", "%"),
    "AURA_WORKER_MAX_GPU_MEMORY_GB": ("gpu_mem_gb", "max", "GB"),
    "AURA_WORKER_MIN_GPU_MEMORY_FREE_GB": ("gpu_free_gb", "min", "GB"),
}
POLICY_KEYS = ("AURA_WORKER_RESOURCE_GUARD", "AURA_WORKER_RESOURCE_POLL_SECONDS",
               "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS", "AURA_WORKER_RESOURCE_VIOLATION_STRIKES",
               "AURA_WORKER_RESOURCE_COOLDOWN_SECONDS")
MIN_SAMPLES = 2


def guard_mode(value: str) -> str:
    v = value.strip().lower()
    if v in ("dry-run", "dry_run", "dryrun"):
        return "dry-run"
    return "off" if v in ("0", "false", "no", "off", "") else "on"


@dataclass
class Policy:
    limits: dict[str, float]
    mode: str = "on"
    poll_s: float = 10.0
    window_s: float = 180.0
    strikes: int = 3
    cooldown_s: float = 15.0

    @classmethod
    def from_config(cls, cfg: Config, overrides: dict[str, Any] | None = None) -> "Policy":
        values = {k: cfg.str(k) for k in (*LIMITS, *POLICY_KEYS)}
        values.update({k: str(v) for k, v in (overrides or {}).items()})
        return cls.from_values(values)

    @classmethod
    def from_values(cls, values: dict[str, str]) -> "Policy":
        return cls(limits={k: float(values[k]) for k in LIMITS},
                   mode=guard_mode(values["AURA_WORKER_RESOURCE_GUARD"]),
                   poll_s=max(0.05, float(values["AURA_WORKER_RESOURCE_POLL_SECONDS"])),
                   window_s=float(values["AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS"]),
                   strikes=max(1, int(float(values["AURA_WORKER_RESOURCE_VIOLATION_STRIKES"]))),
                   cooldown_s=float(values["AURA_WORKER_RESOURCE_COOLDOWN_SECONDS"]))

    def for_worker(self, task_limits: dict[str, Any] | None) -> dict[str, float]:
        """Limits in force for one worker: the global ones with its spawn-time overrides."""
        merged = dict(self.limits)
        for key, value in (task_limits or {}).items():
            if key in LIMITS:
                try:
                    merged[key] = float(value)
                except (TypeError, ValueError):
                    continue
        return merged

    def as_dict(self) -> dict[str, Any]:
        return {**self.limits, "AURA_WORKER_RESOURCE_GUARD": self.mode,
                "AURA_WORKER_RESOURCE_POLL_SECONDS": self.poll_s,
                "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS": self.window_s,
                "AURA_WORKER_RESOURCE_VIOLATION_STRIKES": self.strikes,
                "AURA_WORKER_RESOURCE_COOLDOWN_SECONDS": self.cooldown_s}


@dataclass
class Violation:
    key: str
    metric: str
    average: float
    threshold: float
    strikes: int
    unit: str

    def describe(self) -> str:
        word = "below the reserve of" if LIMITS[self.key][1] == "min" else "over the limit of"
        return (f"{self.metric} averaged {self.average:.3g}{self.unit} {word} {self.threshold:g}{self.unit} "
                f"for {self.strikes} consecutive samples ({self.key})")


@dataclass
class WorkerWindow:
    """Rolling samples and per-limit strike counters of one worker."""

    samples: deque = field(default_factory=deque)
    strikes: dict[str, int] = field(default_factory=dict)

    def add(self, t: float, metrics: dict[str, float | None], limits: dict[str, float], policy: Policy) -> list[Violation]:
        self.samples.append((t, metrics))
        while self.samples and t - self.samples[0][0] > policy.window_s:
            self.samples.popleft()
        if len(self.samples) < MIN_SAMPLES:
            return []
        avgs = self.averages()
        over: list[Violation] = []
        for key, threshold in limits.items():
            metric, kind, unit = LIMITS[key]
            avg = avgs.get(metric)
            if threshold <= 0 or avg is None:
                self.strikes[key] = 0
                continue
            bad = avg > threshold if kind == "max" else avg < threshold
            self.strikes[key] = self.strikes.get(key, 0) + 1 if bad else 0
            if self.strikes[key] >= policy.strikes:
                over.append(Violation(key, metric, avg, threshold, self.strikes[key], unit))
        return over

    def averages(self) -> dict[str, float]:
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for _, m in self.samples:
            for k, v in m.items():
                if v is not None:
                    sums[k] = sums.get(k, 0.0) + v
                    counts[k] = counts.get(k, 0) + 1
        return {k: sums[k] / counts[k] for k in sums}

    def recent(self, n: int = 20) -> list[dict]:
        return [{"t": round(t, 3), **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}}
                for t, m in list(self.samples)[-n:]]
