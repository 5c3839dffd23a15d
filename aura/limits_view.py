"""What `aura limits` prints: each limit in force, then what the window, the strikes and the
cool-down mean in samples (the rules are the watchdog's: watchdog/policy.py and watchdog/main.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

POLL = "AURA_WORKER_RESOURCE_POLL_SECONDS"
WINDOW = "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS"
STRIKES = "AURA_WORKER_RESOURCE_VIOLATION_STRIKES"
COOLDOWN = "AURA_WORKER_RESOURCE_COOLDOWN_SECONDS"
GUARD = "AURA_WORKER_RESOURCE_GUARD"


def limit_lines(limits: Mapping[str, Any], overrides: Mapping[str, Any]) -> list[str]:
    lines = [
        f"{key}={value}" + ("  (changed at run time)" if key in overrides else "") for key, value in limits.items()
    ]
    try:
        return lines + rule_lines(limits)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):  # a watchdog of another version
        return lines


def rule_lines(limits: Mapping[str, Any]) -> list[str]:
    poll, window = float(limits[POLL]), float(limits[WINDOW])
    strikes, cooldown = int(limits[STRIKES]), float(limits[COOLDOWN])
    lines = [
        (
            f"window: {window:g} s = {window / poll:g} samples at one every {poll:g} s; from a worker's second "
            f"sample on, each sample compares the window's average with every limit"
        ),
        (
            f"strikes: a worker is killed once one limit's average has been over it (a reserve: under it) for "
            f"{strikes} samples in a row: at the earliest {strikes * poll:g} s after its first sample; one victim "
            f"at a time"
        ),
        (
            f"cooldown: for {cooldown:g} s after a kill ({cooldown / poll:g} samples), and while the last victim "
            f"is still stopping, nobody else is killed; strikes keep counting meanwhile, and a worker whose run of "
            f"strikes is unbroken is killed at the first sample after it, so that kill can take more than "
            f"{strikes} samples"
        ),
    ]
    mode = str(limits.get(GUARD))
    if mode == "off":
        lines.append("guard: off: limits are measured and shown, nobody is killed")
    elif mode == "dry-run":
        lines.append("guard: dry-run: each kill the rules call for is logged (would_kill), nobody is killed")
    return lines
