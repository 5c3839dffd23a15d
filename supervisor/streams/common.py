"""Pieces every worker-output parser shares: tool-call repeat counting, rate-limit reset times,
plain (msgpack-friendly) values, and the summary keys the supervisor and brain rely on.

Why one place: the supervisor judges every backend with the same signals (turns, cost, last tool,
identical-call loops, a final marker, a verdict), so each parser fills the same summary keys.

Summary keys every parser provides (None or 0 when the CLI does not report it):
``session_id, turns, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
total_cost_usd, last_tool, last_text, tool_counts, repeat_count, max_repeat, last_call, final,
verdict, error, rate_limit_reset_at, lines, bad_lines``. ``final`` is True once the CLI printed its
end marker; ``verdict`` is the outcome that marker decides by itself (one of ``OUTCOMES``), or None.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from aura.runtime.vocab import OUTCOMES  # noqa: F401  (the parsers' verdicts are outcomes)

KILL_SIGNALS = {signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGHUP}  # how a stop ends a process
TIMEOUT_EXIT = 124  # timeout(1)'s convention

LAST_TEXT_CHARS = 500

RATE_LIMIT_RE = re.compile(r"rate.?limit|usage.?limit|too many requests|\b429\b|quota", re.IGNORECASE)
_EPOCH_AFTER_BAR = re.compile(r"\|\s*(\d{10})(?:\d{3})?\b")  # "... usage limit reached|1795866220"
_RETRY_IN = re.compile(
    r"(?:retry|try again)\s+(?:after|in)\s+(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|mins?|minutes?|h|hours?)\b",
    re.IGNORECASE,
)
_UNIT_S = {"s": 1, "m": 60, "h": 3600}


def plain(value: Any) -> Any:
    """Keep only msgpack-friendly plain types (drop anything exotic a line might decode to)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)


def as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def as_float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def mapping_at(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """`obj[key]` when it is an object, else an empty one: a stream line may hold anything there."""
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def list_at(obj: Mapping[str, Any], key: str) -> list[Any]:
    """`obj[key]` when it is a list, else an empty one."""
    value = obj.get(key)
    return value if isinstance(value, list) else []


def str_or(value: Any, fallback: str | None) -> str | None:
    return value if isinstance(value, str) and value else fallback


def rate_limit_reset_at(text: str, now: float | None = None) -> float | None:
    """When a rate/usage limit says it lifts: an epoch after '|' (Claude's usage-limit text) or
    'try again in N minutes'. None when the text does not say."""
    now = time.time() if now is None else now
    m = _EPOCH_AFTER_BAR.search(text)
    if m:
        return float(m.group(1))
    m = _RETRY_IN.search(text)
    if m:
        return now + float(m.group(1)) * _UNIT_S[m.group(2)[0].lower()]
    return None


def is_rate_limit_text(text: str) -> bool:
    return bool(RATE_LIMIT_RE.search(text or ""))


def parse_json_line(line: str) -> dict[str, Any] | None:
    """One JSON object per line, or None for blank lines, garbage and non-objects."""
    text = line.strip()
    if not text:
        return None
    try:
        event = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    return event if isinstance(event, dict) else None


class ToolCalls:
    """Counts tool calls and how many identical calls (same name and input) came in a row.

    A coding agent that repeats the very same call is looping: its output grows, so silence
    checks never see it, but the repeat count does."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.last_tool: str | None = None
        self.last_call: dict[str, Any] | None = None
        self.repeat_count = 0
        self.max_repeat = 0
        self._last_key: str | None = None
        self._seen_ids: set[str] = set()

    def add(self, name: str, tool_input: Any, call_id: str | None = None) -> bool:
        """Record one call; False when this call id was already counted."""
        if call_id:
            if call_id in self._seen_ids:
                return False
            self._seen_ids.add(call_id)
        key = name + "\x00" + json.dumps(tool_input, sort_keys=True, default=str)
        self.repeat_count = self.repeat_count + 1 if key == self._last_key else 1
        self._last_key = key
        self.max_repeat = max(self.max_repeat, self.repeat_count)
        self.last_call = {"name": name, "input": plain(tool_input)}
        self.last_tool = name
        self.counts[name] += 1
        return True

    def summary(self) -> dict[str, Any]:
        return {
            "last_tool": self.last_tool,
            "tool_counts": dict(self.counts),
            "repeat_count": self.repeat_count,
            "max_repeat": self.max_repeat,
            "last_call": self.last_call,
        }


def effective_signal(exit_code: int | None, sig: int | None) -> int | None:
    """The signal that ended a process: reported directly, as a negative code, or as a shell's 128+N."""
    if sig:
        return sig
    if exit_code is not None and exit_code < 0:
        return -exit_code
    if exit_code is not None and exit_code - 128 in KILL_SIGNALS:
        return exit_code - 128
    return None
