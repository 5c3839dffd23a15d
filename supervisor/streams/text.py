"""A parser for CLIs that print plain text (``ds-code``): lines, the last words, repeats, limits.

Why: a text-only agent CLI still shows a loop (the very same line over and over) and a rate or
usage limit (its error text), which a text parser can see as well as a JSON one. There is no
end marker and no verdict: the exit status decides, refined by the rate-limit hint.
"""

from __future__ import annotations

from typing import Any

from .common import LAST_TEXT_CHARS, is_rate_limit_text, rate_limit_reset_at

TAIL_LINES = 5


class TextStream:
    """Running state of a plain-text worker output."""

    def __init__(self) -> None:
        self.lines = 0
        self.tail: list[str] = []
        self.repeat_count = 0
        self.max_repeat = 0
        self.rate_limit_line: str | None = None
        self._last: str | None = None

    def feed(self, line: str) -> None:
        text = line.rstrip("\r\n")
        if not text.strip():
            return
        self.lines += 1
        self.tail = (self.tail + [text])[-TAIL_LINES:]
        self.repeat_count = self.repeat_count + 1 if text == self._last else 1
        self.max_repeat = max(self.max_repeat, self.repeat_count)
        self._last = text
        if is_rate_limit_text(text):
            self.rate_limit_line = text[:LAST_TEXT_CHARS]

    def summary(self) -> dict[str, Any]:
        reset = rate_limit_reset_at(self.rate_limit_line) if self.rate_limit_line else None
        return {
            "session_id": None,
            "turns": 0,
            "total_cost_usd": None,
            "last_tool": None,
            "last_text": "\n".join(self.tail)[-LAST_TEXT_CHARS:],
            "repeat_count": self.repeat_count,
            "max_repeat": self.max_repeat,
            "last_call": None,
            "final": False,
            "verdict": None,
            "error": self.rate_limit_line,
            "rate_limit_hint": self.rate_limit_line is not None,
            "rate_limit_reset_at": reset,
            "lines": self.lines,
            "bad_lines": 0,
        }
