"""Incremental parser of ``opencode run --format json`` output.

Why: opencode may exit 0 after an API failure with nothing useful done, so its exit status alone
cannot be trusted; its JSON events say what happened. One JSON object per line, each with
``type``, ``timestamp`` (ms) and ``sessionID``:

* ``step_start`` — the model starts a step (one model call: counted as a turn);
* ``text`` — ``part.text``, a finished text part;
* ``tool_use`` — ``part.tool``, ``part.callID``, ``part.state{status: completed|error, input, output,
  title, error}``, printed once the call finished;
* ``step_finish`` — ``part.reason`` (``tool-calls`` while the agent goes on; ``stop`` and others end
  the run), ``part.cost`` (USD), ``part.tokens{input, output, reasoning, cache{read, write}}``;
* ``error`` — ``error{name, data{message, statusCode?}}`` (a session error, e.g. ``APIError``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aura.runtime.vocab import API_ERROR, FAILED, RATE_LIMITED, SUCCEEDED

from .common import (
    LAST_TEXT_CHARS,
    ToolCalls,
    as_float,
    as_int,
    is_rate_limit_text,
    mapping_at,
    parse_json_line,
    rate_limit_reset_at,
    str_or,
)

CONTINUE_REASONS = ("tool-calls", "tool_calls", "unknown")
ABORTED = "MessageAbortedError"


class OpenCodeStream:
    """Running state of one opencode worker, built from its JSON event lines."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.lines = 0
        self.bad_lines = 0
        self.steps = 0
        self.cost = 0.0
        self.tokens = {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0}
        self.tools = ToolCalls()
        self.last_text = ""
        self.finish_reason: str | None = None
        self.error_name: str | None = None
        self.error: str | None = None
        self.error_status: int | None = None

    def feed(self, line: str) -> dict[str, Any] | None:
        event = parse_json_line(line)
        if event is None:
            self.bad_lines += bool(line.strip())
            return None
        self.lines += 1
        self.session_id = str_or(event.get("sessionID"), self.session_id)
        part = mapping_at(event, "part")
        kind = event.get("type")
        if kind == "step_start":
            self.steps += 1
            self.finish_reason = None
        elif kind == "text" and isinstance(part.get("text"), str):
            self.last_text = part["text"][-LAST_TEXT_CHARS:]
        elif kind == "tool_use":
            state = mapping_at(part, "state")
            call_id = str(part.get("callID") or "") or None
            self.tools.add(str(part.get("tool") or "?"), state.get("input") or {}, call_id)
        elif kind == "step_finish":
            self._on_step_finish(part)
        elif kind == "error":
            self._on_error(event.get("error"))
        return event

    def _on_step_finish(self, part: Mapping[str, Any]) -> None:
        self.finish_reason = str(part.get("reason") or "unknown")
        self.cost += as_float(part.get("cost")) or 0.0
        tokens = mapping_at(part, "tokens")
        cache = mapping_at(tokens, "cache")
        self.tokens["input_tokens"] += as_int(tokens.get("input"))
        self.tokens["output_tokens"] += as_int(tokens.get("output")) + as_int(tokens.get("reasoning"))
        self.tokens["cache_read_tokens"] += as_int(cache.get("read"))
        self.tokens["cache_write_tokens"] += as_int(cache.get("write"))

    def _on_error(self, error: Any) -> None:
        if not isinstance(error, Mapping):
            self.error_name, self.error = "UnknownError", str(error)
            return
        data = mapping_at(error, "data")
        self.error_name = str(error.get("name") or "UnknownError")
        self.error = str(data.get("message") or error.get("message") or self.error_name)[:LAST_TEXT_CHARS]
        status = data.get("statusCode")
        self.error_status = status if isinstance(status, int) else self.error_status

    @property
    def final(self) -> bool:
        """The run ended: a session error, or a step that finished for a reason other than tool calls."""
        return self.error is not None or (self.finish_reason is not None and self.finish_reason not in CONTINUE_REASONS)

    def verdict(self) -> str | None:
        if self.error is not None:
            if self.error_name == ABORTED:
                return None  # stopped from outside: the exit status and the kill decide
            if self.error_status == 429 or is_rate_limit_text(self.error):
                return RATE_LIMITED
            if self.error_name in ("APIError", "ProviderAuthError") or self.error_status is not None:
                return API_ERROR
            return FAILED
        if self.finish_reason is None or self.finish_reason in CONTINUE_REASONS:
            return None
        return SUCCEEDED if self.finish_reason in ("stop", "end_turn", "end-turn") else FAILED

    def summary(self) -> dict[str, Any]:
        reset = rate_limit_reset_at(self.error or "") if self.verdict() == RATE_LIMITED else None
        return {
            "session_id": self.session_id,
            "turns": self.steps,
            **self.tokens,
            "total_cost_usd": round(self.cost, 6) if self.steps else None,
            "last_text": self.last_text,
            **self.tools.summary(),
            "final": self.final,
            "verdict": self.verdict(),
            "finish_reason": self.finish_reason,
            "error": self.error,
            "rate_limit_reset_at": reset,
            "lines": self.lines,
            "bad_lines": self.bad_lines,
        }
