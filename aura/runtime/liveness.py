"""Whether a daemon still answers, judged without blocking the judge.

A pid says a process exists, not that its loop still serves: a stopped (`kill -STOP`) or
deadlocked daemon keeps its pid and its lock. A peer keeper pings each peer over a DEALER
socket it never waits on: every check drains the answers that arrived, sends a ping when one
is due, and reports how long the oldest unanswered ping has waited.
"""

from __future__ import annotations

import itertools
import os
import time

import psutil
import zmq

from aura.ipc import envelope as env

from .pidfile import START_TIME_TOLERANCE

PING_INTERVAL = 1.0  # seconds between pings while no answer is due

_ids = itertools.count(1)


class PingWatch:
    """Pings one daemon instance; `unanswered_for()` never blocks."""

    def __init__(self, ctx: zmq.Context, endpoint: str, interval: float = PING_INTERVAL):
        self.endpoint = endpoint
        self.interval = interval
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.waiting_since: float | None = None  # monotonic time of the oldest ping not yet answered
        self.last_sent = float("-inf")

    def unanswered_for(self) -> float:
        """Take in the answers that arrived, send a ping when one is due, and return how many
        seconds the oldest unanswered ping has waited (0 when every ping was answered)."""
        while True:
            try:
                self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self.waiting_since = None  # any answer means its loop serves requests
        now = time.monotonic()
        if now - self.last_sent >= self.interval:
            self.last_sent = now
            if self.waiting_since is None:
                self.waiting_since = now  # a ping that cannot even be queued counts as unanswered too
            try:
                self.sock.send(env.make_request(f"ping-{os.getpid()}-{next(_ids)}", "ping", None), zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
        return 0.0 if self.waiting_since is None else now - self.waiting_since

    def close(self) -> None:
        self.sock.close(0)


def kill_instance(pid: int, created: float | None) -> bool:
    """SIGKILL `pid` if it is still the process that started at `created` (SIGKILL also ends a
    stopped process); True when it was killed."""
    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - float(created)) > START_TIME_TOLERANCE:
            return False
        proc.kill()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False
    return True  # not waited for: the next check sees it gone (its lock goes with it) and restarts it
