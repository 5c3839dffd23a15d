"""Incremental parser of ``codex exec --json`` output.

Why: the supervisor needs Codex's session id (to resume it), its token use, what it is running
and whether the turn completed or failed, while it runs. One JSON object per line:

* ``thread.started`` — ``thread_id`` (the id ``codex exec resume`` takes);
* ``turn.started``; ``turn.completed`` — ``usage{input_tokens, cached_input_tokens, output_tokens}``;
  ``turn.failed`` — ``error{message}``; ``error`` — ``message`` (fatal stream error);
* ``item.started`` / ``item.updated`` / ``item.completed`` — ``item{id, type, ...}`` with ``type``
  ``agent_message{text}``, ``reasoning{text}``, ``command_execution{command, aggregated_output,
  exit_code, status}``, ``file_change{changes[{path, kind}], status}``, ``mcp_tool_call{server, tool,
  arguments, status}``, ``web_search{query}``, ``todo_list``, ``error{message}`` (non-fatal).

Codex reports no cost, only tokens. A "turn" here is one completed agent step (a message, a
command, a file change, a tool call), the closest match to Claude's ``num_turns``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aura.runtime.vocab import API_ERROR, FAILED, RATE_LIMITED, SUCCEEDED

from .common import (
    LAST_TEXT_CHARS,
    ToolCalls,
    as_int,
    is_rate_limit_text,
    list_at,
    parse_json_line,
    rate_limit_reset_at,
    str_or,
)

STEP_ITEMS = ("agent_message", "command_execution", "file_change", "mcp_tool_call", "web_search")
_API_ERROR = re.compile(
    r"\b[45]\d\d\b|stream|disconnect|retry limit|unexpected status|\bapi\b|timed? ?out|connection", re.IGNORECASE
)


def _tool_of(item: Mapping[str, Any]) -> tuple[str, Any] | None:
    """(tool name, input) of an item that is a tool call, else None."""
    kind = item.get("type")
    if kind == "command_execution":
        return "shell", {"command": item.get("command")}
    if kind == "file_change":
        changes = list_at(item, "changes")
        return "apply_patch", {"files": [c.get("path") for c in changes if isinstance(c, Mapping)]}
    if kind == "mcp_tool_call":
        return f"{item.get('server')}.{item.get('tool')}", item.get("arguments") or {}
    if kind == "web_search":
        return "web_search", {"query": item.get("query")}
    return None


class CodexStream:
    """Running state of one Codex worker, built from its JSONL events."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.lines = 0
        self.bad_lines = 0
        self.steps = 0
        self.turns_completed = 0
        self.tokens = {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0}
        self.tools = ToolCalls()
        self.last_text = ""
        self.failed: str | None = None  # turn.failed / error message
        self.warning: str | None = None  # non-fatal error items
        self.ended = False

    def feed(self, line: str) -> dict[str, Any] | None:
        event = parse_json_line(line)
        if event is None:
            self.bad_lines += bool(line.strip())
            return None
        self.lines += 1
        kind = event.get("type")
        if kind == "thread.started":
            self.session_id = str_or(event.get("thread_id"), self.session_id)
        elif kind == "turn.started":
            self.ended = False
        elif kind == "turn.completed":
            self._on_usage(event.get("usage"))
            self.turns_completed += 1
            self.ended = True
        elif kind in ("turn.failed", "error"):
            error = event.get("error") if kind == "turn.failed" else event
            message = error.get("message") if isinstance(error, Mapping) else error
            self.failed = str(message or kind)[:LAST_TEXT_CHARS]
            self.ended = True
        elif kind in ("item.started", "item.updated", "item.completed") and isinstance(event.get("item"), Mapping):
            self._on_item(event["item"], completed=kind == "item.completed")
        return event

    def _on_usage(self, usage: Any) -> None:
        if not isinstance(usage, Mapping):
            return
        cached = as_int(usage.get("cached_input_tokens"))
        self.tokens["input_tokens"] += max(0, as_int(usage.get("input_tokens")) - cached)
        self.tokens["cache_read_tokens"] += cached
        self.tokens["output_tokens"] += as_int(usage.get("output_tokens"))

    def _on_item(self, item: Mapping[str, Any], completed: bool) -> None:
        tool = _tool_of(item)
        if tool is not None:
            self.tools.add(tool[0], tool[1], str(item.get("id") or "") or None)
        if not completed:
            return
        kind = item.get("type")
        if kind in STEP_ITEMS:
            self.steps += 1
        if kind == "agent_message" and isinstance(item.get("text"), str):
            self.last_text = item["text"][-LAST_TEXT_CHARS:]
        elif kind == "error":
            self.warning = str(item.get("message") or "")[:LAST_TEXT_CHARS]

    def verdict(self) -> str | None:
        if self.failed is not None:
            if is_rate_limit_text(self.failed):
                return RATE_LIMITED
            return API_ERROR if _API_ERROR.search(self.failed) else FAILED
        return SUCCEEDED if self.ended and self.turns_completed else None

    def summary(self) -> dict[str, Any]:
        error = self.failed or self.warning
        reset = rate_limit_reset_at(self.failed or "") if self.verdict() == RATE_LIMITED else None
        return {
            "session_id": self.session_id,
            "turns": self.steps,
            **self.tokens,
            "total_cost_usd": None,
            "last_text": self.last_text,
            **self.tools.summary(),
            "final": self.ended,
            "verdict": self.verdict(),
            "error": error,
            "rate_limit_reset_at": reset,
            "lines": self.lines,
            "bad_lines": self.bad_lines,
        }
