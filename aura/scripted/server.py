"""``ScriptedServer``: binds 127.0.0.1, answers each request from the script, and records it.

Endpoints: ``POST /v1/messages`` (JSON, or SSE with ``"stream": true``), ``POST
/v1/messages/count_tokens`` (the same estimate as the usage figures), ``GET /v1/models``, and
``GET/HEAD`` probes of any other path answer sensibly. Query strings such as ``?beta=true`` are ignored.

Every request is recorded (method, path, query, headers with secrets masked, parsed JSON body, route,
step, reply status, time) in ``ScriptedServer.requests`` and optionally appended to a JSONL file.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .handler import Handler, HTTPServer
from .messages import build_message, error_body, models_page, new_id, sse_events
from .prompt_cache import PromptCache
from .script import load_script, route_matches

SECRET_HEADERS = {"x-api-key", "authorization", "cookie", "proxy-authorization"}


class ScriptedServer:
    """Anthropic-compatible server that answers from a script (see aura.scripted.script for its format)."""

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
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle

    def start(self) -> ScriptedServer:
        """Bind 127.0.0.1 and serve in a background thread."""
        if self._record_path is not None:
            self._record_path.touch()  # a bad --record path fails here, not silently per request
        self._httpd = HTTPServer(("127.0.0.1", self._port), Handler)
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

    # --- called by the HTTP handler

    def track_connection(self, conn: socket.socket, *, add: bool) -> None:
        """Note an open connection, so that stop() can close the kept-alive ones."""
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def handle_request(self, handler: Handler, method: str) -> None:
        """Answer one request by path; a client that went away ends it quietly."""
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
                self._reply_json(handler, record, 200, models_page(self.script))
            elif method in ("GET", "HEAD", "OPTIONS") and not path.startswith("/v1/"):
                self._reply_json(handler, record, 200, {"ok": True})
            else:
                err = {"status": 404, "message": f"no such endpoint: {method} {path}"}
                self._reply_error(handler, record, err)
        except OSError:  # the client went away (broken pipe, reset, closed by stop())
            handler.close_connection = True
            record["client_gone"] = True

    def _record(self, handler: Handler, method: str, path: str, query: str, body: Any) -> dict[str, Any]:
        headers = {k.lower(): ("***" if k.lower() in SECRET_HEADERS else v) for k, v in handler.headers.items()}
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

    def _messages(self, handler: Handler, record: dict[str, Any], body: dict[str, Any], raw: str) -> None:
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
        handler.start_sse({"request-id": new_id("req")})
        for name, data in sse_events(message):
            handler.send_event(name, data)
            if step.get("hang") == "mid_stream" and name == "ping":
                self._stall(handler, record, "mid_stream")
                return
        handler.end_sse()

    def _stall(self, handler: Handler, record: dict[str, Any], how: str) -> None:
        record["reply"] = {"hang": how}
        self._write_record(record)
        self._stopping.wait()
        handler.close_connection = True

    def _reply_json(self, handler: Handler, record: dict[str, Any], status: int, doc: Any) -> None:
        record["status"] = status
        if record["path"] != "/v1/messages":
            record["reply"] = doc
        self._write_record(record)
        handler.send_json(status, doc, {"request-id": new_id("req")})

    def _reply_error(self, handler: Handler, record: dict[str, Any], err: Mapping[str, Any]) -> None:
        status = int(err["status"])
        request_id = new_id("req")
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
