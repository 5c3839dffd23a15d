"""The script document: routes, steps, and which route a request takes.

Script format (a JSON document or the same as a Python dict)::

    {
      "routes": [                                   # tried in order, first match wins
        {"name": "brain",
         "match": {"system": "You are the brain"},  # all given conditions must hold
         "steps": [STEP, ...],                      # consumed in order, one per request
         "default": STEP},                          # answer once the steps run out (optional)
        ...
      ],
      "steps": [STEP, ...],      # shorthand: a last catch-all route named "default"
      "default": STEP,           # answer when a route has run out and has no own default, and for
                                 # requests no route matches; built-in: {"text": "done"}
      "cache": {"min_tokens": 0} # prompt-cache simulation: prefixes shorter than this are not cached
    }

Match conditions (case-sensitive substrings): ``system`` (system prompt text), ``first_user`` (text of
the first user message), ``last_user`` (text of the last user message, tool results included),
``model`` (model name), ``contains`` (anywhere in the raw request body), ``not_contains`` (nowhere in
the raw request body), ``has_tool`` (a tool of that exact name is offered), ``user_agent`` (the
User-Agent header; the Claude Code CLI sends ``claude-cli/<version> ...``, the Python SDK
``Anthropic/Python <version>``).

A STEP is one of:

* ``{"text": "..."}`` — an assistant text reply, ``stop_reason: end_turn``.
* ``{"tool_use": [{"name": "Write", "input": {...}}, ...]}`` (ids are generated unless given), or the
  shorthand ``{"tool": "Write", "input": {...}}``; may be combined with ``text`` (text comes first);
  ``stop_reason: tool_use``.
* ``{"error": {"status": 429, "type": "rate_limit_error", "message": "...", "retry_after": 2,
  "headers": {...}}}`` — an HTTP error with the API's error body; ``type`` defaults from the status.
* ``{"hang": true}`` — never answer (until the server stops); ``{"hang": "mid_stream"}`` — for a
  streaming request send ``message_start`` and a ping, then stall (a non-streaming request just hangs).

Modifiers on any step: ``delay`` (seconds to wait before answering, for client timeouts), ``repeat``
(serve this step N times before moving on), ``stop_reason`` (override), ``usage`` (values that replace
the estimated usage fields), ``model`` (model name in the reply; default: the request's). A step with
no reply key (e.g. only ``{"delay": 5}``) answers ``{"text": "done"}``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_STEP: dict[str, Any] = {"text": "done"}
REPLY_KEYS = ("text", "tool_use", "tool", "error", "hang")
STEP_KEYS = set(REPLY_KEYS) | {"input", "delay", "repeat", "stop_reason", "usage", "model"}
MATCH_KEYS = {"system", "first_user", "last_user", "model", "contains", "has_tool", "not_contains", "user_agent"}


class ScriptError(ValueError):
    """The script document is malformed; the message says where."""


def check_step(step: Any, where: str) -> dict[str, Any]:
    """Validate one step early, so a bad task-file dry run fails at start-up, not mid-test."""
    if not isinstance(step, dict):
        raise ScriptError(f"{where}: a step must be an object, got {type(step).__name__}")
    unknown = set(step) - STEP_KEYS
    if unknown:
        raise ScriptError(f"{where}: unknown step keys {sorted(unknown)}")
    kinds = {k for k in REPLY_KEYS if k in step}
    if step.get("hang") == "mid_stream":
        kinds.discard("hang")  # stalls after message_start of whatever reply the step has
    elif "hang" in step and step["hang"] is not True:
        raise ScriptError(f"{where}: 'hang' is true or \"mid_stream\"")
    if len(kinds) > 1 and kinds not in ({"text", "tool_use"}, {"text", "tool"}):
        raise ScriptError(f"{where}: a step has one reply kind, got {sorted(kinds)}")
    if "tool" in step and "tool_use" in step:
        raise ScriptError(f"{where}: use either 'tool' or 'tool_use'")
    if "tool_use" in step:
        calls = step["tool_use"]
        if not isinstance(calls, list) or not calls:
            raise ScriptError(f"{where}: 'tool_use' must be a non-empty list")
        for call in calls:
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise ScriptError(f"{where}: each tool_use needs a 'name'")
            if not isinstance(call.get("input", {}), dict):
                raise ScriptError(f"{where}: tool_use 'input' must be an object")
    if "tool" in step and not isinstance(step.get("input", {}), dict):
        raise ScriptError(f"{where}: 'input' must be an object")
    if "error" in step:
        err = step["error"]
        if not isinstance(err, dict) or not isinstance(err.get("status"), int):
            raise ScriptError(f"{where}: 'error' needs an integer 'status'")
    repeat = step.get("repeat", 1)
    if not isinstance(repeat, int) or repeat < 1:
        raise ScriptError(f"{where}: 'repeat' must be a positive integer")
    delay = step.get("delay", 0)
    if not isinstance(delay, (int, float)) or delay < 0:
        raise ScriptError(f"{where}: 'delay' must be a non-negative number")
    return step


@dataclass
class Route:
    """One independent script: a matcher and the steps it serves in order."""

    name: str
    match: dict[str, str]
    steps: list[dict[str, Any]]
    default: dict[str, Any] | None = None
    position: int = 0  # index of the next step
    used: int = 0  # how many times the current step has been served

    def next_step(self, fallback: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        """Take the next step (honouring ``repeat``); return it and its index (None: a default)."""
        if self.position >= len(self.steps):
            return (self.default or fallback), None
        index = self.position
        step = self.steps[index]
        self.used += 1
        if self.used >= step.get("repeat", 1):
            self.position += 1
            self.used = 0
        return step, index

    @property
    def remaining(self) -> int:
        """Steps not yet started (a partly repeated step counts as started)."""
        return len(self.steps) - self.position


@dataclass
class Script:
    """A parsed script document."""

    routes: list[Route]
    default: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_STEP))
    cache_min_tokens: int = 0


def load_script(source: Mapping[str, Any] | str | Path | None) -> Script:
    """Parse a script from a dict, a JSON file path, or None (always answer the default)."""
    if source is None:
        doc: Any = {}
    elif isinstance(source, (str, Path)):
        try:
            doc = json.loads(Path(source).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ScriptError(f"{source}: not valid JSON ({exc})") from exc
    else:
        doc = copy.deepcopy(dict(source))
    if not isinstance(doc, dict):
        raise ScriptError("the script must be a JSON object")
    unknown = set(doc) - {"routes", "steps", "default", "cache"}
    if unknown:
        raise ScriptError(f"unknown top-level keys {sorted(unknown)}")
    routes = [_parse_route(r, i) for i, r in enumerate(doc.get("routes", []))]
    if "steps" in doc:
        routes.append(_parse_route({"name": "default", "steps": doc["steps"]}, len(routes)))
    default = check_step(doc.get("default", dict(DEFAULT_STEP)), "default")
    cache = doc.get("cache", {})
    return Script(routes=routes, default=default, cache_min_tokens=int(cache.get("min_tokens", 0)))


def _parse_route(raw: Any, index: int) -> Route:
    where = f"routes[{index}]"
    if not isinstance(raw, dict):
        raise ScriptError(f"{where}: a route must be an object")
    match = raw.get("match", {})
    if not isinstance(match, dict) or set(match) - MATCH_KEYS:
        raise ScriptError(f"{where}: 'match' keys must be among {sorted(MATCH_KEYS)}")
    steps = raw.get("steps", [])
    if not isinstance(steps, list):
        raise ScriptError(f"{where}: 'steps' must be a list")
    name = str(raw.get("name", f"route{index}"))
    checked = [check_step(s, f"{where}.steps[{i}]") for i, s in enumerate(steps)]
    default = raw.get("default")
    if default is not None:
        default = check_step(default, f"{where}.default")
    return Route(name=name, match={k: str(v) for k, v in match.items()}, steps=checked, default=default)


# --------------------------------------------------------------------------- matching a request


def _blocks_text(content: Any) -> str:
    """Flatten a message/system content value to text (tool results included)."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or []:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif block.get("type") == "tool_result":
            parts.append(_blocks_text(block.get("content")))
    return "\n".join(parts)


def _user_texts(body: Mapping[str, Any]) -> list[str]:
    return [_blocks_text(m.get("content")) for m in body.get("messages", []) if m.get("role") == "user"]


def route_matches(match: Mapping[str, str], body: Mapping[str, Any], raw: str, user_agent: str = "") -> bool:
    """True when every condition of ``match`` holds for this request."""
    users = _user_texts(body)
    checks = {
        "system": lambda v: v in _blocks_text(body.get("system", "")),
        "first_user": lambda v: bool(users) and v in users[0],
        "last_user": lambda v: bool(users) and v in users[-1],
        "model": lambda v: v in str(body.get("model", "")),
        "contains": lambda v: v in raw,
        "not_contains": lambda v: v not in raw,
        "user_agent": lambda v: v in user_agent,
        "has_tool": lambda v: any(t.get("name") == v for t in body.get("tools", []) if isinstance(t, dict)),
    }
    return all(checks[key](value) for key, value in match.items())
