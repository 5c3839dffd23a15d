"""Request client: DEALER socket, timeout, bounded retry ("lazy pirate").

A DEALER never gets stuck the way a REQ socket does after a lost reply; on a timeout the
socket is dropped and a fresh one resends the same request id, a bounded number of times.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from typing import Any

import zmq

from . import envelope as env

_ids = itertools.count(1)


class DaemonUnavailable(Exception):
    """The daemon is not running or did not answer in time."""

    def __init__(self, daemon: str, reason: str):
        super().__init__(f"{daemon} {reason}")
        self.daemon = daemon
        self.reason = reason


class RemoteError(Exception):
    """The daemon answered with an error reply."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def ipc_path(endpoint: str) -> str | None:
    return endpoint[len("ipc://") :] if endpoint.startswith("ipc://") else None


class Client:
    """One daemon's request client. Cheap to create; not thread-safe."""

    def __init__(
        self,
        endpoint: str,
        daemon: str = "daemon",
        timeout: float = 2.0,
        retries: int = 1,
        ctx: zmq.Context | None = None,
    ):
        self.endpoint = endpoint
        self.daemon = daemon
        self.timeout = timeout
        self.retries = retries
        self.ctx = ctx or zmq.Context.instance()
        self._sock: zmq.Socket | None = None

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            sock = self.ctx.socket(zmq.DEALER)
            # no IMMEDIATE: with it libzmq drops a reply not yet read when the daemon closes its
            # socket right after answering (the answer to `shutdown`)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self.endpoint)
            self._sock = sock
        return self._sock

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def close(self) -> None:
        self._drop()

    def call(self, op: str, args: dict | None = None, timeout: float | None = None, retries: int | None = None) -> Any:
        """Send one request and return its result; raise RemoteError or DaemonUnavailable."""
        path = ipc_path(self.endpoint)
        if path is not None and not os.path.exists(path):
            raise DaemonUnavailable(self.daemon, f"is not running (no socket at {path})")
        req_id = f"{os.getpid()}-{next(_ids)}"
        body = env.make_request(req_id, op, args)
        wait = self.timeout if timeout is None else timeout
        attempts = 1 + (self.retries if retries is None else retries)
        for _ in range(attempts):
            reply = self._attempt(body, req_id, wait)
            if reply is not None:
                return _result(reply)
            self._drop()  # the socket may hold a half-delivered request: start clean
        raise DaemonUnavailable(self.daemon, f"did not answer {op!r} within {wait:g}s ({attempts} tries)")

    def call_many(self, requests: Sequence[tuple[str, dict | None]], timeout: float | None = None) -> list[Any]:
        """Send several requests at once and collect every answer (results, or the RemoteError
        for those that failed). The daemon may answer them in any order; no retry here, since
        a partial batch cannot be resent blindly."""
        path = ipc_path(self.endpoint)
        if path is not None and not os.path.exists(path):
            raise DaemonUnavailable(self.daemon, f"is not running (no socket at {path})")
        sock = self._socket()
        ids = [f"{os.getpid()}-{next(_ids)}" for _ in requests]
        for req_id, (op, args) in zip(ids, requests, strict=True):
            sock.send(env.make_request(req_id, op, args))
        answers: dict[str, Any] = {}
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(answers) < len(ids):
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                self._drop()
                raise DaemonUnavailable(self.daemon, f"answered {len(answers)} of {len(ids)} requests in time")
            try:
                reply = env.unpack(sock.recv_multipart()[-1])
            except Exception:
                continue
            if isinstance(reply, dict) and reply.get("id") in ids:
                try:
                    answers[reply["id"]] = _result(reply)
                except RemoteError as exc:
                    answers[reply["id"]] = exc
        return [answers[i] for i in ids]

    def _attempt(self, body: bytes, req_id: str, wait: float) -> dict | None:
        sock = self._socket()
        try:
            sock.send(body, zmq.NOBLOCK)
        except zmq.Again:
            return None
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                return None
            frames = sock.recv_multipart()
            try:
                reply = env.unpack(frames[-1])
            except Exception:
                continue
            if isinstance(reply, dict) and reply.get("id") == req_id:
                return reply


def _result(reply: dict) -> Any:
    if reply.get("ok"):
        return reply.get("result")
    err = reply.get("error") or {}
    raise RemoteError(str(err.get("code", "error")), str(err.get("message", "unknown error")))
