"""Token and dollar accounting for both layers, and the run budget.

Dollars always come from token counts and Aura's price table (aura/brain/pricing.py: each
provider's published prices, with AURA_TOKEN_PRICE_* and AURA_WORKER_TOKEN_PRICE_* winning where
set). A worker CLI's own `total_cost_usd` is priced from its built-in table by model name, which is
wrong behind DeepSeek or any other base URL, so it is kept beside ("reported_usd") and never summed.

Where the figures live: every model call is one line of `.aura/state/costs.jsonl` (with the part
of its cost that paid for cache writes); the totals (per layer, per worker, per task, per cycle) are
in `state["costs"]`; the budget in `state["budget"]`. The brain is the only writer of both.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from aura.runtime.config import Config
from aura.runtime.eventkinds import Kind
from aura.runtime.fsutil import append_line
from aura.runtime.vocab import EXITED

from .model_client import Usage
from .pricing import Prices, brain_prices, worker_prices

TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens", "cache_write_1h_tokens")
KEEP_CYCLES = 50


def _costs(state: dict) -> dict:
    costs = state.setdefault("costs", {})
    costs.setdefault("brain", {"calls": 0, "usd": 0.0, "write_usd": 0.0, **{k: 0 for k in TOKEN_KEYS}})
    costs.setdefault("workers", {})
    costs.setdefault("cycles", {})
    return costs


class CostBook:
    """Records every model call and recomputes worker costs from their token counts."""

    def __init__(self, state_dir: Path, cfg: Config):
        self.ledger = state_dir / "costs.jsonl"
        self.cfg = cfg
        self.cache_ttl = cfg.text("AURA_PROMPT_CACHE_TTL").strip()
        self._prices: dict[tuple[str, str], Prices] = {}

    def prices_for(self, layer: str, model: str | None) -> Prices:
        key = (layer, model or "")
        if key not in self._prices:
            pick = brain_prices if layer == "brain" else worker_prices
            self._prices[key] = pick(self.cfg, model or None)
        return self._prices[key]

    def record_call(
        self, state: dict, *, source: str, cycle: int, model: str, provider: str, usage: Usage, attempts: int = 1
    ) -> dict:
        """Price one model call, add it to the totals and append it to the ledger. Cache writes the
        reply did not split by TTL were made with the TTL the brain asks for (AURA_PROMPT_CACHE_TTL)."""
        tokens = usage.as_dict()
        if usage.cache_write_1h_tokens is None:
            tokens["cache_write_1h_tokens"] = usage.cache_write_tokens if self.cache_ttl != "5m" else 0
        now = time.time()
        prices = self.prices_for("brain", model)
        parts = prices.parts(tokens, now)
        usd = sum(parts.values())
        brain = _costs(state)["brain"]
        brain["calls"] += 1
        brain["usd"] = round(brain["usd"] + usd, 8)
        brain["write_usd"] = round(brain.get("write_usd", 0.0) + parts["cache_write"], 8)
        for key in TOKEN_KEYS:
            brain[key] = brain.get(key, 0) + tokens[key]
        per_cycle = _costs(state)["cycles"].setdefault(str(cycle), {"calls": 0, "usd": 0.0, "prompt_tokens": 0})
        per_cycle["calls"] += 1
        per_cycle["usd"] = round(per_cycle["usd"] + usd, 8)
        per_cycle["prompt_tokens"] += usage.prompt_tokens
        _trim_cycles(_costs(state)["cycles"])
        entry = {
            "ts": now,
            "layer": "brain",
            "source": source,
            "cycle": cycle,
            "model": model,
            "provider": provider,
            "attempts": attempts,
            **tokens,
            "usd": round(usd, 8),
            "write_usd": round(parts["cache_write"], 8),
            "prices": prices.source,
        }
        append_line(self.ledger, json.dumps(entry))
        return entry

    def ingest_workers(self, state: dict, workers: dict[str, dict]) -> None:
        """Worker token counts (from the supervisor's records) priced with Aura's table for the
        worker's model; cache writes count as 5-minute ones unless the record splits them."""
        book = _costs(state)["workers"]
        for wid, worker in workers.items():
            progress = worker.get("progress") or {}
            tokens = {k: int(progress.get(k) or 0) for k in TOKEN_KEYS}
            if not any(tokens.values()) and progress.get("total_cost_usd") is None:
                continue
            prices = self.prices_for("worker", progress.get("model"))
            parts = prices.parts(tokens)
            book[wid] = {
                "task_id": worker.get("task_id"),
                "model": progress.get("model"),
                **tokens,
                "usd": round(sum(parts.values()), 8),
                "write_usd": round(parts["cache_write"], 8),
                "prices": prices.source,
                "reported_usd": progress.get("total_cost_usd"),
                "final": worker.get("state") == EXITED,
            }


def _trim_cycles(cycles: dict) -> None:
    if len(cycles) > KEEP_CYCLES:
        for key in sorted(cycles, key=int)[:-KEEP_CYCLES]:
            del cycles[key]


def summary(state: dict) -> dict[str, Any]:
    """Run totals for `aura status`, the context and the budget."""
    costs = _costs(state)
    brain = costs["brain"]
    workers = costs["workers"].values()
    worker_tokens = {k: sum(int(w.get(k) or 0) for w in workers) for k in TOKEN_KEYS}
    worker_usd = sum(float(w.get("usd") or 0) for w in workers)
    by_task: dict[str, float] = {}
    for w in workers:
        by_task[str(w.get("task_id"))] = round(by_task.get(str(w.get("task_id")), 0.0) + float(w.get("usd") or 0), 8)
    reported = [w.get("reported_usd") for w in workers if isinstance(w.get("reported_usd"), (int, float))]
    return {
        "brain_usd": round(brain["usd"], 6),
        "workers_usd": round(worker_usd, 6),
        "total_usd": round(brain["usd"] + worker_usd, 6),
        "brain_calls": brain["calls"],
        "brain_tokens": {k: brain.get(k, 0) for k in TOKEN_KEYS},
        "worker_tokens": worker_tokens,
        "by_task": by_task,
        "write_usd": round(brain.get("write_usd", 0.0) + sum(float(w.get("write_usd") or 0) for w in workers), 6),
        "workers_reported_usd": round(sum(reported), 6) if reported else None,
    }


# -- the run budget -----------------------------------------------------------------------------------


def budget_limit(state: dict, cfg: Config) -> float:
    """`aura budget USD` (kept in the state) wins over AURA_BUDGET_USD; 0 means no budget."""
    override = (state.get("budget") or {}).get("override_usd")
    return float(override) if override is not None else cfg.number("AURA_BUDGET_USD")


def update_budget(state: dict, cfg: Config) -> list[tuple[str, dict]]:
    """Refresh state["budget"]; return the events to publish (each once per budget figure)."""
    budget = state.setdefault("budget", {})
    limit = budget_limit(state, cfg)
    spent = summary(state)["total_usd"]
    budget.update(limit_usd=limit, spent_usd=spent, percent=round(100 * spent / limit, 1) if limit > 0 else None)
    events: list[tuple[str, dict]] = []
    info = {"spent_usd": round(spent, 4), "budget_usd": limit}
    if limit <= 0:
        budget["state"] = "none"
        return events
    if spent < limit and budget.get("reached_for") is not None:
        budget["reached_for"] = None
        events.append((Kind.BUDGET_RESUMED, {**info, "message": f"budget raised to ${limit:.2f}: the run resumes"}))
    warn = cfg.number("AURA_BUDGET_WARN_PERCENT") / 100
    budget["state"] = "reached" if spent >= limit else ("warning" if spent >= warn * limit else "ok")
    if budget["state"] != "ok" and budget.get("warned_for") != limit:  # also when one step jumps past 100%
        budget["warned_for"] = limit
        events.append(
            (
                Kind.BUDGET_WARNING,
                {**info, "message": f"{100 * spent / limit:.0f}% of the ${limit:.2f} budget spent (${spent:.4f})"},
            )
        )
    if budget["state"] == "reached" and budget.get("reached_for") != limit:
        budget["reached_for"] = limit
        events.append(
            (
                Kind.BUDGET_REACHED,
                {**info, "message": f"budget reached: ${spent:.4f} of ${limit:.2f}; no new spawns or model calls"},
            )
        )
    return events


def budget_reached(state: dict) -> bool:
    return (state.get("budget") or {}).get("state") == "reached"


def remaining_usd(state: dict) -> float | None:
    budget = state.get("budget") or {}
    limit = budget.get("limit_usd") or 0
    return max(0.0, limit - (budget.get("spent_usd") or 0.0)) if limit > 0 else None
