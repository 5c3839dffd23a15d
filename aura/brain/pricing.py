"""Each provider's published token prices, and which price a call or a worker is charged.

USD per million tokens. A row holds the five figures a bill is made of: uncached input, output,
cache reads, and cache writes by TTL (5 minutes, 1 hour). The sources and the dates they were read
are in README.md ("Prices"); the figures change, so every one of them can be overridden:
AURA_TOKEN_PRICE_* (brain) and AURA_WORKER_TOKEN_PRICE_* (workers) win over the table when set.

Which row: DeepSeek's endpoints bill DeepSeek's prices whatever model name they are sent (a
`claude-opus*` name is served by deepseek-v4-pro, other `claude*` names by deepseek-flash); any
other provider is matched by the model name's longest known prefix. A model no row knows has no
price: its calls count 0 USD and `aura up` says so (and refuses to start with a run budget).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import Any

from aura.runtime.config import Config
from aura.runtime.vocab import LOCAL_PLANNER

PRICE_KEYS = {
    "miss": "CACHE_MISS",
    "hit": "CACHE_HIT",
    "output": "OUTPUT",
    "write_5m": "CACHE_WRITE",
    "write_1h": "CACHE_WRITE",
}
DEEPSEEK_PEAK_HOURS_UTC = ((1, 4), (6, 10))  # weekdays; every other hour is billed at half the peak rate


@dataclass(frozen=True)
class Rate:
    """One model family's published prices (USD per million tokens)."""

    miss: float
    output: float
    hit: float
    write_5m: float
    write_1h: float
    off_peak: float = 1.0  # factor on every figure outside the vendor's peak hours


def anthropic(miss: float, output: float, hit: float) -> Rate:
    """Anthropic's cache writes: 1.25x the input price for a 5-minute entry, 2x for a 1-hour one."""
    return Rate(miss, output, hit, round(miss * 1.25, 6), round(miss * 2, 6))


def no_write_fee(miss: float, output: float, hit: float, off_peak: float = 1.0) -> Rate:
    """Vendors that cache by themselves and bill a cache write as ordinary input."""
    return Rate(miss, output, hit, miss, miss, off_peak)


# (vendor, model-name prefix, rate); the longest matching prefix of a vendor wins.
TABLE: tuple[tuple[str, str, Rate], ...] = (
    ("anthropic", "claude-fable-5-1", anthropic(10, 50, 0.25)),
    ("anthropic", "claude-mythos-5-1", anthropic(10, 50, 0.25)),
    ("anthropic", "claude-fable-5", anthropic(10, 50, 1)),
    ("anthropic", "claude-mythos-5", anthropic(10, 50, 1)),
    ("anthropic", "claude-opus-5-5", anthropic(4, 20, 0.20)),
    ("anthropic", "claude-opus-5", anthropic(5, 25, 0.50)),
    ("anthropic", "claude-opus-4-8", anthropic(5, 25, 0.50)),
    ("anthropic", "claude-opus-4-7", anthropic(5, 25, 0.50)),
    ("anthropic", "claude-opus-4-6", anthropic(5, 25, 0.50)),
    ("anthropic", "claude-opus-4-5", anthropic(5, 25, 0.50)),
    ("anthropic", "claude-opus-4", anthropic(15, 75, 1.50)),
    ("anthropic", "claude-3-opus", anthropic(15, 75, 1.50)),
    ("anthropic", "claude-sonnet-5-5", anthropic(2, 10, 0.10)),
    ("anthropic", "claude-sonnet-5", anthropic(2, 10, 0.20)),
    ("anthropic", "claude-sonnet-4", anthropic(3, 15, 0.30)),
    ("anthropic", "claude-3-7-sonnet", anthropic(3, 15, 0.30)),
    ("anthropic", "claude-haiku-5-5", anthropic(0.10, 0.50, 0.01)),
    ("anthropic", "claude-haiku-4-5", anthropic(1, 5, 0.10)),
    ("anthropic", "claude-3-5-haiku", anthropic(0.80, 4, 0.08)),
    ("anthropic", "claude-3-haiku", Rate(0.25, 1.25, 0.03, 0.30, 0.50)),
    ("deepseek", "deepseek-v4-pro", no_write_fee(1.32, 3.96, 0.044, off_peak=0.5)),
    ("deepseek", "deepseek-flash", no_write_fee(0.30, 1.20, 0.006, off_peak=0.5)),
    ("deepseek", "deepseek-v4-flash", no_write_fee(0.30, 1.20, 0.006, off_peak=0.5)),
    ("deepseek", "deepseek-chat", no_write_fee(0.30, 1.20, 0.006, off_peak=0.5)),
    ("deepseek", "deepseek-reasoner", no_write_fee(0.30, 1.20, 0.006, off_peak=0.5)),
    ("openai", "gpt-5.5-pro", no_write_fee(30, 180, 30)),
    ("openai", "gpt-5.5", no_write_fee(5, 30, 0.50)),
    ("openai", "gpt-5.4-pro", no_write_fee(30, 180, 30)),
    ("openai", "gpt-5.4-mini", no_write_fee(0.75, 4.50, 0.075)),
    ("openai", "gpt-5.4-nano", no_write_fee(0.20, 1.25, 0.02)),
    ("openai", "gpt-5.4", no_write_fee(2.50, 15, 0.25)),
)
DEEPSEEK_FOR_CLAUDE = {"claude-opus": "deepseek-v4-pro", "claude": "deepseek-flash"}


def normalise(model: str) -> str:
    """`Claude-Opus-4-8[1m]`, `anthropic/claude-opus-4-8` -> `claude-opus-4-8`."""
    name = re.sub(r"\[[^\]]*\]$", "", (model or "").strip().lower())
    return name.rsplit("/", 1)[-1]


def vendor_of(provider: str, base_url: str = "") -> str | None:
    """The vendor whose bill a call lands on, or None: any vendor the model name matches."""
    if provider == "anthropic":
        return "anthropic"
    return "deepseek" if provider == "deepseek" or "deepseek" in base_url.lower() else None


def lookup(model: str, vendor: str | None = None) -> tuple[str, str, Rate] | None:
    """(vendor, row name, rate) for `model` billed by `vendor` (None: whichever vendor names it)."""
    name = normalise(model)
    if vendor == "deepseek" and name.startswith("claude"):
        name = DEEPSEEK_FOR_CLAUDE["claude-opus" if name.startswith("claude-opus") else "claude"]
    rows = [r for r in TABLE if (vendor is None or r[0] == vendor) and name.startswith(r[1])]
    if not rows:
        return None
    return max(rows, key=lambda r: len(r[1]))


def deepseek_peak(at: float) -> bool:
    """DeepSeek bills its peak rate 01:00-04:00 and 06:00-10:00 UTC on weekdays (public holidays in
    China are off-peak too; Aura cannot know them, so it counts them as peak: an upper bound)."""
    t = time.gmtime(at)
    return t.tm_wday < 5 and any(lo <= t.tm_hour < hi for lo, hi in DEEPSEEK_PEAK_HOURS_UTC)


@dataclass(frozen=True)
class Prices:
    """The prices one call or one worker is charged: the table's, with every set key winning."""

    hit: float
    miss: float
    output: float
    write_5m: float
    write_1h: float
    source: str = "settings"
    vendor: str | None = None
    off_peak: float = 1.0
    fixed: frozenset[str] = frozenset()  # figures a setting gave: no off-peak discount on them
    known: bool = True

    def at(self, when: float | None) -> Prices:
        """The figures in force at `when` (DeepSeek's off-peak hours halve the table's figures)."""
        if self.off_peak == 1.0 or when is None or deepseek_peak(when):
            return self
        cut = {f: getattr(self, f) * self.off_peak for f in PRICE_KEYS if f not in self.fixed}
        return replace(self, off_peak=1.0, **cut)

    def parts(self, usage: dict, when: float | None = None) -> dict[str, float]:
        """USD per kind of token; a cache write without a TTL split is a 5-minute one."""
        p = self.at(when)
        write = int(usage.get("cache_write_tokens") or 0)
        write_1h = min(write, int(usage.get("cache_write_1h_tokens") or 0))
        return {
            "input": int(usage.get("input_tokens") or 0) * p.miss / 1e6,
            "output": int(usage.get("output_tokens") or 0) * p.output / 1e6,
            "cache_read": int(usage.get("cache_read_tokens") or 0) * p.hit / 1e6,
            "cache_write": ((write - write_1h) * p.write_5m + write_1h * p.write_1h) / 1e6,
        }

    def usd(self, usage: dict, when: float | None = None) -> float:
        return sum(self.parts(usage, when).values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "hit": self.hit,
            "miss": self.miss,
            "output": self.output,
            "write_5m": self.write_5m,
            "write_1h": self.write_1h,
            "source": self.source,
            "off_peak": self.off_peak,
            "known": self.known,
        }


UNKNOWN = Prices(0.0, 0.0, 0.0, 0.0, 0.0, source="no price known", known=False)


def _explicit(cfg: Config, key: str) -> float | None:
    raw = (cfg.raw(key) or "").strip()
    return cfg.number(key) if raw else None


def resolve(cfg: Config, prefix: str, model: str, vendor: str | None, fallback: Prices | None = None) -> Prices:
    """The table's row for `model` (or `fallback` where it has none), each set `<prefix>*` key winning."""
    found = lookup(model, vendor)
    if found is not None:
        v, row, rate = found
        base = Prices(
            rate.hit,
            rate.miss,
            rate.output,
            rate.write_5m,
            rate.write_1h,
            source=f"{v} {row} (table)",
            vendor=v,
            off_peak=rate.off_peak,
        )
    else:
        base = fallback or UNKNOWN
    given: dict[str, float] = {}
    for field, key in PRICE_KEYS.items():
        value = _explicit(cfg, prefix + key)
        if value is not None:
            given[field] = value
    if not given:
        return base
    figures = {f: given.get(f, getattr(base, f)) for f in PRICE_KEYS}
    source = "settings" if len(given) == len(PRICE_KEYS) else f"{base.source}, partly settings"
    return Prices(
        figures["hit"],
        figures["miss"],
        figures["output"],
        figures["write_5m"],
        figures["write_1h"],
        source=source,
        vendor=base.vendor,
        off_peak=base.off_peak,
        fixed=frozenset(given),
    )


def brain_model(cfg: Config) -> tuple[str, str | None]:
    """(model, vendor) of the brain's calls, as configured."""
    from .model_client import detect_provider  # the client module carries no SDK import

    base_url = cfg.text("AURA_API_BASE_URL")
    provider = (cfg.text("AURA_API_PROVIDER") or detect_provider(base_url)).lower()
    return cfg.text("AURA_API_MODEL"), vendor_of(provider, base_url)


def brain_prices(cfg: Config, model: str | None = None) -> Prices:
    """Prices of a brain call (to `model`, else the configured one)."""
    configured, vendor = brain_model(cfg)
    prices = resolve(cfg, "AURA_TOKEN_PRICE_", model or configured, vendor)
    if not prices.known and model and model != configured:
        prices = resolve(cfg, "AURA_TOKEN_PRICE_", configured, vendor)
    return prices


def worker_prices(cfg: Config, model: str | None = None) -> Prices:
    """Prices of a worker's tokens: its model's row by name, else the brain's prices."""
    return resolve(cfg, "AURA_WORKER_TOKEN_PRICE_", model or "", None, fallback=brain_prices(cfg))


def start_notice(cfg: Config) -> tuple[str | None, bool]:
    """(a line for `aura up`, whether it must refuse): a model brain with no known price cannot keep
    a run budget, so that is refused; without a budget it is a warning."""
    if not cfg.text("AURA_API_KEY") or cfg.text("AURA_PLANNER").lower() == LOCAL_PLANNER:
        return None, False
    if brain_prices(cfg).known:
        return None, False
    model, _ = brain_model(cfg)
    budget = cfg.number("AURA_BUDGET_USD") > 0
    line = (
        f"no published price is known for AURA_API_MODEL={model!r}: its calls count 0 USD; set "
        "AURA_TOKEN_PRICE_CACHE_MISS, _CACHE_HIT, _OUTPUT and _CACHE_WRITE (0 for a free local model)"
    )
    return (line + (" before AURA_BUDGET_USD can hold" if budget else ""), budget)
