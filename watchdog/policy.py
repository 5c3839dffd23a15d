"""The resource policy: limits, rolling-window averages and strikes, per worker.

A worker is killed only when a limit's rolling-window average stays over it for
AURA_WORKER_RESOURCE_VIOLATION_STRIKES consecutive samples. Every limit counts its own
strikes, not only the first limit that is over, so a worker that alternates between two
excesses is still caught.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aura.runtime.config import KEYS, Config, ConfigError
from aura.runtime.limits import GUARD_KEY, GUARD_ON, LIMITS, guard_mode
from aura.runtime.settings_check import cross_problems, value_problem

POLICY_KEYS = (
    GUARD_KEY,
    "AURA_WORKER_RESOURCE_POLL_SECONDS",
    "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS",
    "AURA_WORKER_RESOURCE_VIOLATION_STRIKES",
    "AURA_WORKER_RESOURCE_COOLDOWN_SECONDS",
)
MIN_SAMPLES = 2
EVIDENCE_MAX = 240  # samples a kill record may carry (the strike run and the windows behind it)


def check_task_limits(values: Mapping[str, Any]) -> list[str]:
    """Problems with per-task overrides given at spawn time (config names, values in their range)."""
    problems = []
    for key, value in values.items():
        if key not in LIMITS:
            problems.append(f"{key!r} is not a per-task limit (known: {', '.join(LIMITS)})")
            continue
        line = value_problem(key, str(value), "the task's limits")
        if line:
            problems.append(line)
    return problems


def reserve_victim(sizes: Mapping[str, float], floor: float) -> str | None:
    """The one worker a reserve shortfall is charged to: the biggest, if it is at least `floor`.

    One victim at a time, like earlyoom: killing the biggest frees the most, and a worker
    too small to matter is never killed for a shortfall others caused."""
    if not sizes:
        return None
    wid = max(sizes, key=lambda w: sizes[w])
    return wid if sizes[wid] >= floor and sizes[wid] > 0 else None


@dataclass
class Policy:
    limits: dict[str, float]
    mode: str = GUARD_ON
    poll_s: float = 10.0
    window_s: float = 180.0
    strikes: int = 3
    cooldown_s: float = 15.0

    @classmethod
    def from_config(
        cls, cfg: Config, overrides: Mapping[str, Any] | None = None, source: str = "`aura limits`"
    ) -> Policy:
        """The configuration's policy with the run-time changes (`overrides`, from `source`) on top."""
        values = {k: cfg.text(k) for k in (*LIMITS, *POLICY_KEYS)}
        sources = {k: cfg.sources.get(k, "the default") for k in values}
        for key, value in (overrides or {}).items():
            values[key], sources[key] = str(value), source
        return cls.from_values(values, sources)

    @classmethod
    def from_values(cls, values: Mapping[str, str], sources: Mapping[str, str] | None = None) -> Policy:
        """Checked against the settings table and the window rule: a value that would switch
        enforcement off without a word (nan, inf, a window no strike fits in) is a ConfigError."""
        where = sources or {}
        found = [
            line
            for k in (*LIMITS, *POLICY_KEYS)
            if (line := value_problem(k, values[k], where.get(k, "the configuration")))
        ]
        found += cross_problems(values, where)
        if found:
            raise ConfigError("; ".join(found))
        num = {k: _number(k, values[k]) for k in (*LIMITS, *POLICY_KEYS[1:])}
        return cls(
            limits={k: num[k] for k in LIMITS},
            mode=guard_mode(KEYS[GUARD_KEY].canonical(values[GUARD_KEY])),
            poll_s=num["AURA_WORKER_RESOURCE_POLL_SECONDS"],
            window_s=num["AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS"],
            strikes=int(num["AURA_WORKER_RESOURCE_VIOLATION_STRIKES"]),
            cooldown_s=num["AURA_WORKER_RESOURCE_COOLDOWN_SECONDS"],
        )

    def for_worker(self, task_limits: Mapping[str, Any] | None) -> dict[str, float]:
        """Limits in force for one worker: the global ones with its spawn-time overrides.

        An override outside its range is ignored (preflight refuses it, but a spawn made while
        the watchdog was down was not checked): a nan would silently disable a limit."""
        merged = dict(self.limits)
        for key, value in (task_limits or {}).items():
            if key in LIMITS and str(value).strip() and KEYS[key].problem(str(value)) is None:
                merged[key] = float(value)
        return merged

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.limits,
            GUARD_KEY: self.mode,
            "AURA_WORKER_RESOURCE_POLL_SECONDS": self.poll_s,
            "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS": self.window_s,
            "AURA_WORKER_RESOURCE_VIOLATION_STRIKES": self.strikes,
            "AURA_WORKER_RESOURCE_COOLDOWN_SECONDS": self.cooldown_s,
        }


def _number(key: str, raw: str) -> float:
    """A checked value; empty means the key's default."""
    return float(raw) if raw.strip() else float(KEYS[key].default)  # type: ignore[arg-type]


@dataclass
class Violation:
    key: str
    metric: str
    average: float
    threshold: float
    strikes: int
    unit: str
    run: list[tuple[float, float]] = field(default_factory=list)  # (t, window average) of each strike

    def describe(self) -> str:
        word = "below the reserve of" if LIMITS[self.key][1] == "min" else "over the limit of"
        return (
            f"{self.metric} averaged {self.average:.3g}{self.unit} {word} {self.threshold:g}{self.unit} "
            f"for {self.strikes} consecutive samples ({self.key})"
        )

    @property
    def severity(self) -> float:
        """How far past its limit: the ratio used to pick the one victim among several."""
        if LIMITS[self.key][1] == "max":
            return self.average / self.threshold
        return self.threshold / max(self.average, 1e-9)


@dataclass
class WorkerWindow:
    """Rolling samples and per-limit strike counters of one worker.

    The window keeps running sums, so a sample costs the same whatever the window's length;
    `history` keeps the recent samples a kill record cites (the windows behind every strike)."""

    samples: deque = field(default_factory=deque)
    strikes: dict[str, int] = field(default_factory=dict)
    runs: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    history: deque = field(default_factory=lambda: deque(maxlen=EVIDENCE_MAX))
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(
        self, t: float, metrics: dict[str, float | None], limits: dict[str, float], policy: Policy
    ) -> list[Violation]:
        """Take one sample; the limits struck `policy.strikes` times in a row (or more)."""
        self._push(t, metrics)
        while self.samples and t - self.samples[0][0] > policy.window_s:
            self._pop()
        if len(self.samples) < MIN_SAMPLES:
            return []
        avgs = self.averages()
        over: list[Violation] = []
        for key, threshold in limits.items():
            metric, kind, unit = LIMITS[key]
            avg = avgs.get(metric)
            bad = threshold > 0 and avg is not None and (avg > threshold if kind == "max" else avg < threshold)
            if not bad or avg is None:  # (never None when bad; said for the type checker)
                if self.strikes.get(key):
                    self.strikes[key] = 0
                    self.runs.pop(key, None)
                continue
            self.strikes[key] = self.strikes.get(key, 0) + 1
            self.runs.setdefault(key, []).append((t, avg))
            if self.strikes[key] >= policy.strikes:
                over.append(Violation(key, metric, avg, threshold, self.strikes[key], unit, list(self.runs[key])))
        return over

    def _push(self, t: float, metrics: dict[str, float | None]) -> None:
        self.samples.append((t, metrics))
        self.history.append((t, metrics))
        for k, v in metrics.items():
            if v is not None:
                self.sums[k] = self.sums.get(k, 0.0) + v
                self.counts[k] = self.counts.get(k, 0) + 1

    def _pop(self) -> None:
        _, metrics = self.samples.popleft()
        for k, v in metrics.items():
            if v is not None:
                left = self.counts[k] - 1
                if left:
                    self.counts[k], self.sums[k] = left, self.sums[k] - v
                else:  # drop the key, so no rounding residue outlives the samples
                    del self.counts[k], self.sums[k]

    def averages(self) -> dict[str, float]:
        return {k: self.sums[k] / n for k, n in self.counts.items()}

    def clear_strikes(self) -> None:
        self.strikes.clear()
        self.runs.clear()

    def evidence(self, since: float) -> list[dict]:
        """The samples from `since` on (the first strike's window start), rounded for a record."""
        return [_rounded(t, m) for t, m in self.history if t >= since]

    def recent(self, n: int = 20) -> list[dict]:
        return [_rounded(t, m) for t, m in list(self.samples)[-n:]]


def _rounded(t: float, metrics: dict[str, float | None]) -> dict:
    return {"t": round(t, 6), **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}}
