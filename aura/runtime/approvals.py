"""AURA_APPROVE: the actions that wait for a person's yes before they happen.

Read by the settings check (an unknown action refuses the start) and by the brain (which holds the
action and asks). `spend-over:USD` holds new workers once the run has spent more than USD.
"""

from __future__ import annotations

import math
import re

from .vocab import APPROVABLE

SPEND_OVER = "spend-over"
EXPECTED = "a comma-separated list of spawn, merge, kill, spend-over:USD (or empty)"


class ApprovalError(ValueError):
    """An AURA_APPROVE value that names no action Aura can hold; one line."""


def parse(raw: str) -> dict[str, float | None]:
    """Action -> its figure (the USD of spend-over, else None); ApprovalError on a word it cannot use."""
    rules: dict[str, float | None] = {}
    for word in (w for w in re.split(r"[,\s]+", raw.strip().lower()) if w):
        name, sep, figure = word.partition(":")
        if name not in APPROVABLE:
            raise ApprovalError(f"unknown action {word!r}")
        if (name == SPEND_OVER) != bool(sep):
            raise ApprovalError(f"{word!r}: only spend-over takes a figure, and it needs one (spend-over:USD)")
        if not sep:
            rules[name] = None
            continue
        try:
            usd = float(figure)
        except ValueError:
            raise ApprovalError(f"{word!r}: {figure!r} is not an amount in USD") from None
        if not math.isfinite(usd) or usd < 0:
            raise ApprovalError(f"{word!r}: the amount must be a number >= 0")
        rules[name] = usd
    return rules
