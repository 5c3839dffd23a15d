"""Incremental parser of ``claude -p --output-format stream-json --verbose`` output.

Why: the supervisor and the brain judge a Claude Code worker while it runs (turns, tokens, cost, last
tool, loops) and after it ends (outcome). The worker's stdout is a file that grows one JSON object per
line; this parser is fed those lines as they appear and never raises on bad input, because a killed
worker leaves a truncated last line and some CLI versions print non-JSON noise.

Facts this relies on (Claude Code 2.1.x, checked against the real CLI; see tests/fixtures/claude/):

* first line ``{"type":"system","subtype":"init", session_id, model, cwd, claude_code_version, ...}``;
* ``{"type":"system","subtype":"api_retry", attempt, max_retries, error_status, error}`` per API retry;
* one ``{"type":"assistant", "message": {...}}`` line per content block; the same ``message.id`` repeats,
  so usage is deduplicated by id. Its usage is the ``message_start`` figure (output tokens ~1), so the
  result's usage, when present, overrides the sums. After an API failure the CLI prints a synthetic
  assistant message (``model: "<synthetic>"``, an ``error`` field) that is not a model turn;
* ``{"type":"user"}`` lines carry tool results;
* the last line ``{"type":"result", subtype, is_error, result, num_turns, duration_ms, total_cost_usd,
  usage, api_error_status, ...}``; a SIGTERM'd CLI prints no result line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aura.runtime.vocab import (
    API_ERROR,
    BUDGET_EXCEEDED,
    FAILED,
    KILLED,
    LOST,
    RATE_LIMITED,
    SUCCEEDED,
    TIMED_OUT,
    TURNS_EXCEEDED,
    UNKNOWN,
)
from aura.supervisor.streams.common import (
    KILL_SIGNALS,
    OUTCOMES,
    TIMEOUT_EXIT,
    ToolCalls,
    effective_signal,
    is_rate_limit_text,
    mapping_at,
    parse_json_line,
    rate_limit_reset_at,
)
from aura.supervisor.streams.common import as_int as _int
from aura.supervisor.streams.common import plain as _plain

__all__ = ["OUTCOMES", "ClaudeStream", "classify_claude"]

LAST_TEXT_CHARS = 500
RESULT_FIELDS = (
    "subtype",
    "is_error",
    "result",
    "num_turns",
    "duration_ms",
    "duration_api_ms",
    "api_error_status",
    "stop_reason",
    "terminal_reason",
    "errors",
)
USAGE_KEYS = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_write_tokens": "cache_creation_input_tokens",
    "cache_read_tokens": "cache_read_input_tokens",
}
SYNTHETIC_MODEL = "<synthetic>"


class ClaudeStream:
    """Running state of one Claude Code worker, built from its stream-json lines."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.model: str | None = None
        self.cwd: str | None = None
        self.cli_version: str | None = None
        self.lines = 0  # lines that parsed as events
        self.bad_lines = 0  # garbage, partial or non-object lines, ignored
        self.api_retries = 0
        self.last_api_error: str | None = None  # e.g. "overloaded", "rate_limit"
        self.last_text: str = ""
        self.tools = ToolCalls()  # counts, and consecutive identical calls (a loop)
        self.result: dict[str, Any] | None = None  # the final result line, as printed
        self._usage_by_message: dict[str, dict[str, int]] = {}
        self._message_order: list[str] = []
        self._last_text_id: str | None = None
        self._last_text_parts: list[str] = []
        self._pending = ""

    # ----------------------------------------------------------------- feeding

    def feed(self, line: str) -> dict[str, Any] | None:
        """Take one line; return the parsed event, or None when it was blank or garbage (counted)."""
        if not line.strip():
            return None
        event = parse_json_line(line)
        if event is None:
            self.bad_lines += 1
            return None
        self.lines += 1
        handler = {
            "system": self._on_system,
            "assistant": self._on_assistant,
            "result": self._on_result,
        }.get(str(event.get("type")))
        if handler is not None:
            handler(event)
        return event

    def feed_text(self, chunk: str) -> None:
        """Take an arbitrary chunk of output (as read from a growing file); keep a partial last line."""
        data = self._pending + chunk
        *complete, self._pending = data.split("\n")
        for line in complete:
            self.feed(line)

    def close(self) -> None:
        """End of output: a leftover partial line is parsed if it is whole, else counted as bad."""
        leftover, self._pending = self._pending, ""
        self.feed(leftover)

    # ----------------------------------------------------------------- events

    def _on_system(self, event: Mapping[str, Any]) -> None:
        subtype = event.get("subtype")
        if subtype == "init":
            self.session_id = _str_or(event.get("session_id"), self.session_id)
            self.model = _str_or(event.get("model"), self.model)
            self.cwd = _str_or(event.get("cwd"), self.cwd)
            self.cli_version = _str_or(event.get("claude_code_version"), self.cli_version)
        elif subtype == "api_retry":
            self.api_retries += 1
            self.last_api_error = _str_or(event.get("error"), self.last_api_error)

    def _on_assistant(self, event: Mapping[str, Any]) -> None:
        self.session_id = _str_or(event.get("session_id"), self.session_id)
        message = event.get("message")
        if not isinstance(message, Mapping):
            return
        if isinstance(event.get("error"), str):
            self.last_api_error = event["error"]
        msg_id = str(message.get("id") or f"anon-{self.lines}")
        synthetic = message.get("model") == SYNTHETIC_MODEL
        if not synthetic and msg_id not in self._usage_by_message:
            self._message_order.append(msg_id)
        usage = message.get("usage")
        if isinstance(usage, Mapping) and not synthetic:
            self._usage_by_message[msg_id] = {k: _int(usage.get(v)) for k, v in USAGE_KEYS.items()}
        for block in message.get("content") or []:
            if isinstance(block, Mapping):
                self._on_block(msg_id, block)

    def _on_block(self, msg_id: str, block: Mapping[str, Any]) -> None:
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            if msg_id != self._last_text_id:  # a new message: its text replaces the old one
                self._last_text_id, self._last_text_parts = msg_id, []
            self._last_text_parts.append(block["text"])
            self.last_text = "\n".join(self._last_text_parts)[-LAST_TEXT_CHARS:]
        elif kind == "tool_use":
            self._on_tool_use(block)

    def _on_tool_use(self, block: Mapping[str, Any]) -> None:
        tool_input = mapping_at(block, "input")
        self.tools.add(str(block.get("name") or "?"), tool_input, str(block.get("id") or "") or None)

    # the tool-call figures, under the names callers and summaries use
    last_tool = property(lambda self: self.tools.last_tool)
    last_call = property(lambda self: self.tools.last_call)
    tool_counts = property(lambda self: self.tools.counts)
    repeat_count = property(lambda self: self.tools.repeat_count)
    max_repeat = property(lambda self: self.tools.max_repeat)

    def _on_result(self, event: Mapping[str, Any]) -> None:
        self.result = dict(event)
        self.session_id = _str_or(event.get("session_id"), self.session_id)

    # ----------------------------------------------------------------- derived figures

    @property
    def assistant_messages(self) -> int:
        """Distinct model replies seen (synthetic error messages excluded)."""
        return len(self._message_order)

    @property
    def turns(self) -> int:
        """The CLI's own ``num_turns`` when it finished, else the model replies seen so far."""
        if self.result is not None and isinstance(self.result.get("num_turns"), int):
            return int(self.result["num_turns"])
        return self.assistant_messages

    def _usage(self, key: str) -> int:
        usage = self.result.get("usage") if self.result else None
        if isinstance(usage, Mapping) and USAGE_KEYS[key] in usage:
            return _int(usage.get(USAGE_KEYS[key]))
        return sum(u[key] for u in self._usage_by_message.values())

    @property
    def input_tokens(self) -> int:
        return self._usage("input_tokens")

    @property
    def output_tokens(self) -> int:
        return self._usage("output_tokens")

    @property
    def cache_write_tokens(self) -> int:
        return self._usage("cache_write_tokens")

    @property
    def cache_read_tokens(self) -> int:
        return self._usage("cache_read_tokens")

    @property
    def total_cost_usd(self) -> float | None:
        """The CLI's own figure (priced by model name, whatever server it talked to); None until the end."""
        cost = self.result.get("total_cost_usd") if self.result else None
        return float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None

    def result_fields(self) -> dict[str, Any] | None:
        """The result line's outcome fields (plain types), or None when no result line was seen."""
        if self.result is None:
            return None
        return {k: _plain(self.result.get(k)) for k in RESULT_FIELDS}

    def summary(self) -> dict[str, Any]:
        """Everything above as one msgpack-friendly dict."""
        return {
            "session_id": self.session_id,
            "model": self.model,
            "cli_version": self.cli_version,
            "turns": self.turns,
            "assistant_messages": self.assistant_messages,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "total_cost_usd": self.total_cost_usd,
            "last_tool": self.last_tool,
            "last_text": self.last_text,
            "tool_counts": dict(self.tool_counts),
            "repeat_count": self.repeat_count,
            "max_repeat": self.max_repeat,
            "last_call": self.last_call,
            "api_retries": self.api_retries,
            "last_api_error": self.last_api_error,
            "lines": self.lines,
            "bad_lines": self.bad_lines,
            "result": self.result_fields(),
            "final": self.result is not None,
            "verdict": _classify_result(self.result) if self.result is not None else None,
            "error": self._error_text(),
            "rate_limit_reset_at": self._reset_at(),
        }

    def _error_text(self) -> str | None:
        """What went wrong, in the CLI's words: the error result's text, else the last API error."""
        if self.result is not None and self.result.get("is_error") is True:
            errors = " ".join(map(str, self.result.get("errors") or []))
            return (str(self.result.get("result") or "") + " " + errors).strip()[:LAST_TEXT_CHARS] or None
        return self.last_api_error

    def _reset_at(self) -> float | None:
        """When a rate or usage limit lifts, if the CLI's error text says so."""
        text = self._error_text() or ""
        return rate_limit_reset_at(text) if is_rate_limit_text(text) else None


def _str_or(value: Any, fallback: str | None) -> str | None:
    return value if isinstance(value, str) and value else fallback


# --------------------------------------------------------------------------- outcome


def classify_claude(
    result: Mapping[str, Any] | None,
    exit_code: int | None,
    signal: int | None,
    *,
    timed_out: bool = False,
) -> str:
    """One outcome from ``OUTCOMES`` for a finished ``claude -p`` worker. Pure function.

    ``result``: the result line's fields (``ClaudeStream.result`` or ``result_fields()``), None if absent.
    ``exit_code``/``signal``: from the exit record (a negative exit code is read as a signal, as
    ``subprocess`` reports it; 128+N as signal N, as a shell reports it). ``timed_out``: the caller
    stopped the worker for its deadline.

    Rules (claude 2.1.x): a result with ``is_error == false`` and ``subtype == "success"`` is success
    whatever the exit status (a CLI that hangs after printing its result gets killed: still success).
    ``error_max_turns`` -> turns_exceeded, ``error_max_budget_usd`` -> budget_exceeded. An API failure
    after retries reports ``subtype: "success"`` with ``is_error: true`` and exit 1 -> api_error, or
    rate_limited when the status is 429 or the text says rate/usage limit. Other error results ->
    failed. Without a result: the caller's deadline -> timed_out; SIGTERM/SIGKILL/SIGINT/SIGHUP (exit
    143, 137, 130, 129) -> killed; no exit status at all -> lost; exit 0 -> unknown (it claimed success
    but said nothing); any other exit or signal -> failed.
    """
    signal = effective_signal(exit_code, signal)
    if result is not None:
        verdict = _classify_result(result)
        if verdict is not None:
            return verdict
    if timed_out or exit_code == TIMEOUT_EXIT:
        return TIMED_OUT
    if signal is not None:
        return KILLED if signal in KILL_SIGNALS else FAILED
    if exit_code is None:
        return LOST
    if exit_code == 0:
        return UNKNOWN
    return FAILED


def _classify_result(result: Mapping[str, Any]) -> str | None:
    """The outcome a result line decides by itself; None when it decides nothing."""
    subtype = result.get("subtype")
    is_error = result.get("is_error")
    if subtype == "success" and is_error is False:
        return SUCCEEDED
    if subtype == "error_max_turns":
        return TURNS_EXCEEDED
    if subtype == "error_max_budget_usd":
        return BUDGET_EXCEEDED
    text = str(result.get("result") or "") + " " + " ".join(map(str, result.get("errors") or []))
    status = result.get("api_error_status")
    if is_error is True and subtype == "success":  # the shape of an API failure after retries
        if status == 429 or is_rate_limit_text(text):
            return RATE_LIMITED
        if status is not None or text.lstrip().startswith("API Error"):
            return API_ERROR
    if is_error is True or (isinstance(subtype, str) and subtype.startswith("error")):
        return FAILED
    return None
