"""A scripted Anthropic-compatible HTTP server on 127.0.0.1.

Why: users dry-run a task file without spending money, and every Aura test needs a model that answers
the same way every time. The server speaks the Messages API closely enough that both the ``anthropic``
Python SDK and the real Claude Code CLI accept it (JSON and ``"stream": true`` SSE replies).

Use it in-process::

    with ScriptedServer({"steps": [{"text": "hello"}]}) as srv:
        client = anthropic.Anthropic(base_url=srv.url, api_key="x")
        ...
        srv.requests   # every request seen, newest last

or as a command (prints its URL on the first stdout line, runs until SIGTERM/SIGINT)::

    python -m aura.scripted_server --script script.json [--port N] [--record requests.jsonl]

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

Usage numbers: tokens are estimated as characters / 4 per content block. Prompt caching is simulated:
when the tools/system/messages (in that order) carry ``cache_control`` markers, the prefix up to each
marker is hashed with the model name and remembered. A later request reads the longest remembered
prefix found at one of its markers or up to 20 blocks before one (``cache_read_input_tokens``), writes
the rest up to its last marker (``cache_creation_input_tokens``, split by TTL in ``cache_creation``),
and pays ``input_tokens`` for what follows. Entries live 5 minutes (1 hour with ``"ttl": "1h"``),
refreshed on each hit, as the API does.

Other endpoints: ``POST /v1/messages/count_tokens`` (the same estimate), ``GET /v1/models`` and
``GET/HEAD`` probes of any other path answer sensibly. Query strings such as ``?beta=true`` are ignored.

Every request is recorded (method, path, query, headers with secrets masked, parsed JSON body, route,
step, reply status, time) in ``ScriptedServer.requests`` and optionally appended to a JSONL file.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gzip
import hashlib
import json
import logging
import math
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ScriptError", "ScriptedServer", "estimate_tokens", "load_script"]

DEFAULT_STEP: dict[str, Any] = {"text": "done"}
REPLY_KEYS = ("text", "tool_use", "tool", "error", "hang")
STEP_KEYS = set(REPLY_KEYS) | {"input", "delay", "repeat", "stop_reason", "usage", "model"}
MATCH_KEYS = {"system", "first_user", "last_user", "model", "contains", "has_tool", "not_contains", "user_agent"}
SECRET_HEADERS = {"x-api-key", "authorization", "cookie", "proxy-authorization"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
CACHE_TTL_S = {"5m": 300.0, "1h": 3600.0}
TEXT_CHUNK = 24  # characters per text_delta / input_json_delta, so clients see real streaming


class ScriptError(ValueError):
    """The script document is malformed; the message says where."""


# --------------------------------------------------------------------------- script


def _check_step(step: Any, where: str) -> dict[str, Any]:
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
    default = _check_step(doc.get("default", dict(DEFAULT_STEP)), "default")
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
    checked = [_check_step(s, f"{where}.steps[{i}]") for i, s in enumerate(steps)]
    default = raw.get("default")
    if default is not None:
        default = _check_step(default, f"{where}.default")
    return Route(name=name, match={k: str(v) for k, v in match.items()}, steps=checked, default=default)


# --------------------------------------------------------------------------- request text helpers


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


# --------------------------------------------------------------------------- tokens and caching


def estimate_tokens(text: str) -> int:
    """Rough token estimate: four characters a token, at least one for non-empty text."""
    return math.ceil(len(text) / 4)


def _prompt_blocks(body: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Yield (canonical text, cache_control or None) in cache-key order: tools, system, messages."""
    for tool in body.get("tools", []) or []:
        yield _canonical(tool), _marker(tool)
    system = body.get("system")
    if isinstance(system, str) and system:
        yield _canonical({"type": "text", "text": system}), None
    elif isinstance(system, list):
        for block in system:
            yield _canonical(block), _marker(block)
    for message in body.get("messages", []) or []:
        content = message.get("content")
        role = message.get("role", "")
        if isinstance(content, str):
            yield role + _canonical({"type": "text", "text": content}), None
        else:
            for block in content or []:
                yield role + _canonical(block), _marker(block)


def _marker(block: Any) -> Any:
    return block.get("cache_control") if isinstance(block, dict) else None


def _canonical(block: Any) -> str:
    if isinstance(block, dict):
        block = {k: v for k, v in block.items() if k != "cache_control"}
    return json.dumps(block, sort_keys=True, ensure_ascii=False)


@dataclass
class PromptUsage:
    input_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_1h_tokens: int = 0  # the part of the cache writes made with a 1-hour TTL

    @property
    def total(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens


class PromptCache:
    """Simulated prompt cache: prefix hash -> expiry. Thread-safe; shared by all routes, like an account.

    Writes happen at ``cache_control`` breakpoints only; a lookup checks each breakpoint and up to
    ``LOOKBACK`` block boundaries before it, as the API does, so a marker that moves forward with the
    conversation still hits the prefix cached by the previous request.
    """

    LOOKBACK = 20

    def __init__(self, min_tokens: int = 0, clock: Any = time.monotonic) -> None:
        self._entries: dict[str, tuple[float, float]] = {}  # key -> (expires at, ttl)
        self._lock = threading.Lock()
        self._min_tokens = min_tokens
        self._clock = clock

    def account(self, body: Mapping[str, Any], *, update: bool = True) -> PromptUsage:
        """Split the prompt's tokens into uncached, cache-written and cache-read parts."""
        prefixes, breakpoints = _prefix_hashes(body)
        total = max(prefixes[-1][1] if prefixes else 0, 1)
        if not breakpoints or prefixes[breakpoints[-1][0]][1] < self._min_tokens:
            return PromptUsage(input_tokens=total)
        with self._lock:
            now = self._clock()
            hits = [tokens for key, tokens in self._candidates(prefixes, breakpoints) if self._hit(key, now, update)]
            read = max(hits, default=0)
            if update:
                for position, ttl in breakpoints:
                    key, tokens = prefixes[position]
                    if tokens >= self._min_tokens:  # shorter prefixes are silently not cached
                        expires, old_ttl = self._entries.get(key, (0.0, 0.0))
                        self._entries[key] = (max(expires, now + ttl), max(old_ttl, ttl))
        cached_to = prefixes[breakpoints[-1][0]][1]
        return PromptUsage(
            input_tokens=total - cached_to,
            cache_creation_input_tokens=cached_to - read,
            cache_read_input_tokens=read,
            cache_creation_1h_tokens=_written_1h(prefixes, breakpoints, read),
        )

    def _candidates(
        self, prefixes: list[tuple[str, int]], breakpoints: list[tuple[int, float]]
    ) -> Iterator[tuple[str, int]]:
        """Prefixes a lookup may hit: each breakpoint and the LOOKBACK boundaries before it."""
        for position, _ in breakpoints:
            yield from prefixes[max(0, position - self.LOOKBACK + 1) : position + 1]

    def _hit(self, key: str, now: float, refresh: bool) -> bool:
        """Whether ``key`` is cached and alive; a hit refreshes its lifetime when ``refresh``."""
        expires, ttl = self._entries.get(key, (0.0, 0.0))
        if expires <= now:
            return False
        if refresh:
            self._entries[key] = (now + ttl, ttl)
        return True


def _written_1h(prefixes: list[tuple[str, int]], breakpoints: list[tuple[int, float]], read: int) -> int:
    """Written tokens that fall under a 1-hour breakpoint: each span between breakpoints takes the
    TTL of the breakpoint that ends it."""
    out, start = 0, 0
    for position, ttl in breakpoints:
        end = prefixes[position][1]
        if ttl >= CACHE_TTL_S["1h"]:
            out += max(0, end - max(start, read))
        start = max(start, end)
    return out


def _prefix_hashes(body: Mapping[str, Any]) -> tuple[list[tuple[str, int]], list[tuple[int, float]]]:
    """(hash, cumulative tokens) at every block boundary, and (position, ttl) of each breakpoint."""
    digest = hashlib.sha256(str(body.get("model", "")).encode())
    total = 0
    prefixes: list[tuple[str, int]] = []
    breakpoints: list[tuple[int, float]] = []
    for text, marker in _prompt_blocks(body):
        digest.update(text.encode())
        digest.update(b"\x00")
        total += estimate_tokens(text)
        prefixes.append((digest.hexdigest(), total))
        if isinstance(marker, dict):
            ttl = CACHE_TTL_S.get(str(marker.get("ttl", "5m")), CACHE_TTL_S["5m"])
            breakpoints.append((len(prefixes) - 1, ttl))
    return prefixes, breakpoints


# --------------------------------------------------------------------------- replies


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def build_content(step: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The assistant content blocks a reply step produces (tool ids generated)."""
    content: list[dict[str, Any]] = []
    if "text" in step:
        content.append({"type": "text", "text": str(step["text"])})
    calls = step.get("tool_use") or ([{"name": step["tool"], "input": step.get("input", {})}] if "tool" in step else [])
    for call in calls:
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or _new_id("toolu"),
                "name": call["name"],
                "input": call.get("input", {}),
            }
        )
    if not content:
        content.append({"type": "text", "text": DEFAULT_STEP["text"]})
    return content


def output_tokens(content: list[dict[str, Any]]) -> int:
    """Estimate output tokens from the reply blocks."""
    size = 0
    for block in content:
        if block["type"] == "text":
            size += len(block["text"])
        else:
            size += len(block["name"]) + len(json.dumps(block["input"]))
    return max(1, math.ceil(size / 4))


def build_message(step: Mapping[str, Any], body: Mapping[str, Any], prompt: PromptUsage) -> dict[str, Any]:
    """A complete Messages API ``message`` object for a reply step."""
    content = build_content(step)
    has_tools = any(b["type"] == "tool_use" for b in content)
    usage: dict[str, Any] = {
        "input_tokens": prompt.input_tokens,
        "cache_creation_input_tokens": prompt.cache_creation_input_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": prompt.cache_creation_input_tokens - prompt.cache_creation_1h_tokens,
                           "ephemeral_1h_input_tokens": prompt.cache_creation_1h_tokens},
        "cache_read_input_tokens": prompt.cache_read_input_tokens,
        "output_tokens": output_tokens(content),
        "service_tier": "standard",
    }
    usage.update(step.get("usage", {}))
    return {
        "id": _new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": step.get("model") or body.get("model") or "scripted-model",
        "content": content,
        "stop_reason": step.get("stop_reason") or ("tool_use" if has_tools else "end_turn"),
        "stop_sequence": None,
        "usage": usage,
    }


def _chunks(text: str, size: int = TEXT_CHUNK) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def sse_events(message: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The SSE events (name, data) that stream ``message`` the way the Messages API does."""
    usage = dict(message["usage"])
    start = dict(message, content=[], stop_reason=None, stop_sequence=None)
    start["usage"] = dict(usage, output_tokens=1)
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield "content_block_start", {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            }
            for piece in _chunks(block["text"]):
                delta = {"type": "text_delta", "text": piece}
                yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        else:
            yield "content_block_start", {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}},
            }
            for piece in ["", *_chunks(json.dumps(block["input"]))]:
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
        "usage": usage,
    }
    yield "message_stop", {"type": "message_stop"}


def error_body(status: int, err: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """The API's error document for an error step."""
    kind = err.get("type") or ERROR_TYPES.get(status, "api_error")
    message = err.get("message") or f"scripted {kind} ({status})"
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}


# --------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    """Serves one connection; all state lives on the ScriptedServer."""

    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is ``ScriptedServer.requests``."""

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    # --- verbs

    def do_POST(self) -> None:
        self.server.owner._handle(self, "POST")

    def do_GET(self) -> None:
        self.server.owner._handle(self, "GET")

    def do_HEAD(self) -> None:
        self.server.owner._handle(self, "HEAD")

    def do_PUT(self) -> None:
        self.server.owner._handle(self, "PUT")

    def do_DELETE(self) -> None:
        self.server.owner._handle(self, "DELETE")

    def do_OPTIONS(self) -> None:
        self.server.owner._handle(self, "OPTIONS")

    # --- I/O helpers

    def read_body(self) -> bytes:
        """Read the request body (Content-Length or chunked; gzip-decoded when marked)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
            raw = bytes(data)
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        return raw

    def send_json(self, status: int, doc: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def start_sse(self, headers: Mapping[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.flush()

    def send_chunk(self, data: bytes) -> None:
        """Write one HTTP chunk and flush, so the client sees each event as it is sent."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def send_event(self, name: str, data: Mapping[str, Any]) -> None:
        self.send_chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

    def end_sse(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
log = logging.getLogger("aura.scripted_server")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: ScriptedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up is normal (a timeout, a cancelled stream, a killed CLI): one debug
        line. Anything else is a bug in the server and keeps the standard traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, CLIENT_GONE):
            log.debug("client %s went away: %s", client_address, exc.__class__.__name__)
            return
        super().handle_error(request, client_address)


class ScriptedServer:
    """Anthropic-compatible server that answers from a script; see the module docstring."""

    def __init__(
        self,
        script: Mapping[str, Any] | str | Path | None = None,
        *,
        port: int = 0,
        record_path: str | Path | None = None,
    ) -> None:
        self.script = load_script(script)
        self.cache = PromptCache(self.script.cache_min_tokens)
        self.requests: list[dict[str, Any]] = []
        self._port = port
        self._record_path = Path(record_path) if record_path else None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle

    def start(self) -> ScriptedServer:
        """Bind 127.0.0.1 and serve in a background thread."""
        if self._record_path is not None:
            self._record_path.touch()  # a bad --record path fails here, not silently per request
        self._httpd = _HTTPServer(("127.0.0.1", self._port), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="scripted-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; release hanging/delayed replies and close kept-alive connections."""
        self._stopping.set()
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for clients (``ANTHROPIC_BASE_URL``)."""
        return f"http://127.0.0.1:{self.port}"

    def remaining(self, route_name: str) -> int:
        """How many scripted steps of ``route_name`` have not been served yet."""
        with self._lock:
            return next(r.remaining for r in self.script.routes if r.name == route_name)

    def messages_requests(self, *routes: str | None) -> list[dict[str, Any]]:
        """Recorded ``/v1/messages`` requests, only those of the given route names when any are given."""
        with self._lock:
            found = [r for r in self.requests if r["path"] == "/v1/messages"]
        return [r for r in found if not routes or r["route"] in routes]

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)

    # --- dispatch

    def _handle(self, handler: _Handler, method: str) -> None:
        parts = urlsplit(handler.path)
        path = parts.path.rstrip("/") or "/"
        try:
            raw = handler.read_body() if method in ("POST", "PUT") else b""
        except OSError:  # the client went away mid-request
            handler.close_connection = True
            return
        body, parse_error = _parse_json(raw)
        record = self._record(handler, method, path, parts.query, body)
        try:
            if method == "POST" and (parse_error is not None or not isinstance(body, (dict, type(None)))):
                why = parse_error or "the body must be a JSON object"
                self._reply_error(handler, record, {"status": 400, "message": f"invalid JSON body: {why}"})
            elif method == "POST" and path == "/v1/messages":
                self._messages(handler, record, body or {}, raw.decode("utf-8", "replace"))
            elif method == "POST" and path == "/v1/messages/count_tokens":
                tokens = self.cache.account(body or {}, update=False).total
                self._reply_json(handler, record, 200, {"input_tokens": tokens})
            elif method in ("GET", "HEAD") and path == "/v1/models":
                self._reply_json(handler, record, 200, _models_page(self.script))
            elif method in ("GET", "HEAD", "OPTIONS") and not path.startswith("/v1/"):
                self._reply_json(handler, record, 200, {"ok": True})
            else:
                err = {"status": 404, "message": f"no such endpoint: {method} {path}"}
                self._reply_error(handler, record, err)
        except OSError:  # the client went away (broken pipe, reset, closed by stop())
            handler.close_connection = True
            record["client_gone"] = True

    def _record(
        self, handler: _Handler, method: str, path: str, query: str, body: Any
    ) -> dict[str, Any]:
        headers = {
            k.lower(): ("***" if k.lower() in SECRET_HEADERS else v) for k, v in handler.headers.items()
        }
        record: dict[str, Any] = {
            "time": time.time(),
            "method": method,
            "path": path,
            "query": query,
            "headers": headers,
            "body": body,
            "route": None,
            "step": None,
            "reply": None,
            "status": None,
        }
        with self._lock:
            self.requests.append(record)
        return record

    def _write_record(self, record: Mapping[str, Any]) -> None:
        """Append one JSONL line once the reply is decided (hangs are written before stalling)."""
        if self._record_path is None:
            return
        line = json.dumps(record, default=str)
        with self._lock, open(self._record_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def _pick(
        self, body: Mapping[str, Any], raw: str, user_agent: str
    ) -> tuple[str | None, dict[str, Any], int | None]:
        """Choose the route and take its next step (under the lock: steps are consumed once)."""
        with self._lock:
            for route in self.script.routes:
                if route_matches(route.match, body, raw, user_agent):
                    step, index = route.next_step(self.script.default)
                    return route.name, step, index
            return None, self.script.default, None

    def _messages(self, handler: _Handler, record: dict[str, Any], body: dict[str, Any], raw: str) -> None:
        route, step, index = self._pick(body, raw, handler.headers.get("User-Agent", ""))
        record.update(route=route, step=index)
        if step.get("delay") and self._stopping.wait(float(step["delay"])):
            handler.close_connection = True
            return
        if "error" in step:
            self._reply_error(handler, record, step["error"])
            return
        streaming = bool(body.get("stream"))
        if step.get("hang") and (step["hang"] != "mid_stream" or not streaming):
            self._stall(handler, record, "hang")
            return
        message = build_message(step, body, self.cache.account(body))
        record["reply"] = message
        if not streaming:
            self._reply_json(handler, record, 200, message)
            return
        record["status"] = 200
        self._write_record(record)
        handler.start_sse({"request-id": _new_id("req")})
        for name, data in sse_events(message):
            handler.send_event(name, data)
            if step.get("hang") == "mid_stream" and name == "ping":
                self._stall(handler, record, "mid_stream")
                return
        handler.end_sse()

    def _stall(self, handler: _Handler, record: dict[str, Any], how: str) -> None:
        record["reply"] = {"hang": how}
        self._write_record(record)
        self._stopping.wait()
        handler.close_connection = True

    def _reply_json(self, handler: _Handler, record: dict[str, Any], status: int, doc: Any) -> None:
        record["status"] = status
        if record["path"] != "/v1/messages":
            record["reply"] = doc
        self._write_record(record)
        handler.send_json(status, doc, {"request-id": _new_id("req")})

    def _reply_error(self, handler: _Handler, record: dict[str, Any], err: Mapping[str, Any]) -> None:
        status = int(err["status"])
        request_id = _new_id("req")
        doc = error_body(status, err, request_id)
        headers = {"request-id": request_id, **{str(k): str(v) for k, v in err.get("headers", {}).items()}}
        if "retry_after" in err:
            headers["retry-after"] = str(err["retry_after"])
        if "should_retry" in err:
            headers["x-should-retry"] = "true" if err["should_retry"] else "false"
        record.update(status=status, reply=doc)
        self._write_record(record)
        handler.send_json(status, doc, headers)


def _parse_json(raw: bytes) -> tuple[Any, str | None]:
    if not raw:
        return None, None
    try:
        return json.loads(raw), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, str(exc)


def _models_page(script: Script) -> dict[str, Any]:
    """A ``/v1/models`` page naming the models the script mentions (or one generic name)."""
    names = sorted({r.match["model"] for r in script.routes if "model" in r.match}) or ["scripted-model"]
    data = [
        {"type": "model", "id": n, "display_name": n, "created_at": "2025-01-01T00:00:00Z"} for n in names
    ]
    return {"data": data, "has_more": False, "first_id": names[0], "last_id": names[-1]}


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT; print its URL first so a parent process can read it."""
    parser = argparse.ArgumentParser(prog="python -m aura.scripted_server", description=__doc__.split("\n")[0])
    parser.add_argument("--script", help="script JSON file (default: always answer 'done')")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--record", help="append every request to this JSONL file")
    args = parser.parse_args(argv)
    try:
        server = ScriptedServer(args.script, port=args.port, record_path=args.record).start()
    except (ScriptError, OSError) as exc:
        print(f"scripted_server: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(server.url, flush=True)
    while not done.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
