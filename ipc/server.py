"""A ROUTER-socket request server that a daemon's poll loop drives.

Every frame gets a reply: a malformed frame, an unknown op, a wrong argument type or a
handler failure becomes an error reply and the daemon keeps running.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import zmq

from . import envelope as env

Handler = Callable[[dict], Any]


class Deferred:
    """What a handler returns when it will answer later (e.g. after a child process reports):
    the loop keeps serving other requests meanwhile; the daemon calls `resolve` or `reject`."""

    __slots__ = ("req_id", "route", "done")

    def __init__(self) -> None:
        self.req_id: Any = None
        self.route: list[bytes] | None = None
        self.done = False


ZMQ_MAX_MSG = 64 << 20  # hard ceiling in libzmq; requests above MAX_REQUEST_BYTES get an error reply


class RequestServer:
    """Binds one ROUTER endpoint and dispatches requests to `handlers[op](args)`."""

    def __init__(
        self,
        ctx: zmq.Context,
        endpoint: str,
        handlers: dict[str, Handler],
        on_error: Callable[[str, str], None] | None = None,
    ):
        self.handlers = handlers
        self.on_error = on_error
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.sock.setsockopt(zmq.MAXMSGSIZE, ZMQ_MAX_MSG)
        self.sock.bind(endpoint)
        self.endpoint = endpoint

    def handle_ready(self, budget: int = 100) -> int:
        """Serve up to `budget` queued requests without blocking; returns how many."""
        served = 0
        while served < budget:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            served += 1
            self._serve(frames)
        return served

    def _serve(self, frames: list[bytes]) -> None:
        identity = frames[0]
        rest = frames[1:]
        prefix: list[bytes] = []
        if len(rest) >= 2 and rest[0] == b"":  # a REQ client puts an empty delimiter first
            prefix, rest = [b""], rest[1:]
        reply: bytes | Deferred
        if len(rest) != 1:
            reply = env.error_reply(None, env.BAD_FRAME, f"expected one body frame, got {len(rest)}")
        else:
            reply = self._dispatch(rest[0])
        if isinstance(reply, Deferred):
            reply.route = [identity, *prefix]
            return
        self._send([identity, *prefix], reply)

    def _send(self, route: list[bytes], reply: bytes) -> None:
        try:
            self.sock.send_multipart([*route, reply], zmq.NOBLOCK)
        except (zmq.Again, zmq.ZMQError):
            pass  # the client went away; nothing to deliver

    def resolve(self, deferred: Deferred, result: Any) -> None:
        if not deferred.done and deferred.route is not None:
            deferred.done = True
            self._send(deferred.route, env.ok_reply(deferred.req_id, result))

    def reject(self, deferred: Deferred, code: str, message: str) -> None:
        if not deferred.done and deferred.route is not None:
            deferred.done = True
            self._send(deferred.route, env.error_reply(deferred.req_id, code, message))

    def _dispatch(self, body: bytes) -> bytes | Deferred:
        try:
            req = env.parse_request(body)
        except env.IpcError as exc:
            self._report(exc.code, exc.message)
            return env.error_reply(env.safe_id(body), exc.code, exc.message)
        handler = self.handlers.get(req.op)
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            return env.error_reply(req.id, env.UNKNOWN_OP, f"unknown op {req.op!r}; this daemon answers: {known}")
        try:
            result = handler(req.args)
            if isinstance(result, Deferred):
                result.req_id = req.id
                return result
            return env.ok_reply(req.id, result)
        except env.IpcError as exc:
            return env.error_reply(req.id, exc.code, exc.message)
        except Exception as exc:
            self._report(env.INTERNAL, f"{req.op}: {exc!r}\n{traceback.format_exc()}")
            return env.error_reply(req.id, env.INTERNAL, f"{req.op} failed: {exc}")

    def _report(self, code: str, message: str) -> None:
        if self.on_error is not None:
            try:
                self.on_error(code, message)
            except Exception:
                pass

    def close(self, linger_ms: int = 0) -> None:
        """`linger_ms`: how long replies already queued (the answer to `shutdown`) may still take to
        go out before they are dropped."""
        self.sock.close(linger_ms)
