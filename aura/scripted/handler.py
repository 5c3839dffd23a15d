"""HTTP on the wire: reading request bodies, writing JSON and SSE replies. What to answer is the
owner's (``ScriptedServer``) business; a client that hangs up is normal and logged at debug level."""

from __future__ import annotations

import gzip
import json
import logging
import socket
import sys
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


class Owner(Protocol):
    """What the handler calls back: one request to answer, and the open connections to track."""

    def handle_request(self, handler: Handler, method: str) -> None: ...
    def track_connection(self, conn: socket.socket, *, add: bool) -> None: ...


class Handler(BaseHTTPRequestHandler):
    """Serves one connection; all state lives on the ScriptedServer."""

    protocol_version = "HTTP/1.1"
    server: HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is ``ScriptedServer.requests``."""

    def setup(self) -> None:
        super().setup()
        self.server.owner.track_connection(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner.track_connection(self.connection, add=False)

    # --- verbs

    def do_POST(self) -> None:
        self.server.owner.handle_request(self, "POST")

    def do_GET(self) -> None:
        self.server.owner.handle_request(self, "GET")

    def do_HEAD(self) -> None:
        self.server.owner.handle_request(self, "HEAD")

    def do_PUT(self) -> None:
        self.server.owner.handle_request(self, "PUT")

    def do_DELETE(self) -> None:
        self.server.owner.handle_request(self, "DELETE")

    def do_OPTIONS(self) -> None:
        self.server.owner.handle_request(self, "OPTIONS")

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


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: Owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up is normal (a timeout, a cancelled stream, a killed CLI): one debug
        line. Anything else is a bug in the server and keeps the standard traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, CLIENT_GONE):
            log.debug("client %s went away: %s", client_address, exc.__class__.__name__)
            return
        super().handle_error(request, client_address)
