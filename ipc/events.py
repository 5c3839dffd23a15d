"""Sequenced events: a journal on disk is the record, PUB/SUB is the fast path.

Each daemon numbers its own events (1, 2, 3, ...), appends each to its journal, then
publishes it. A subscriber remembers the last sequence number seen per source; a gap, a
restart or a slow-joining socket is repaired by reading the journal.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import zmq

from . import envelope as env

TAIL_BYTES = 64 << 10


def last_seq(journal: Path) -> int:
    """The highest sequence number in a journal (reads only its tail)."""
    try:
        with open(journal, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - TAIL_BYTES))
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return 0
    for raw in reversed(lines):
        try:
            seq = json.loads(raw).get("seq")
        except (ValueError, AttributeError):
            continue
        if isinstance(seq, int):
            return seq
    return 0


def read_journal(journal: Path, after: int = 0, offsets: dict[Path, int] | None = None) -> Iterator[dict]:
    """Events with seq > `after`, in order; torn lines are skipped.

    With `offsets`, reading resumes where the previous call stopped (complete lines only),
    so following a journal for days does not re-read it from the start each time.
    """
    try:
        fh = open(journal, "rb")
    except FileNotFoundError:
        return
    with fh:
        start = (offsets or {}).get(journal, 0)
        if start > os.fstat(fh.fileno()).st_size:
            start = 0  # the journal was replaced
        fh.seek(start)
        pos = start
        for raw in fh:
            if not raw.endswith(b"\n"):
                break  # a line still being written: read it next time
            pos += len(raw)
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            if isinstance(ev, dict) and isinstance(ev.get("seq"), int) and ev["seq"] > after:
                yield ev
        if offsets is not None:
            offsets[journal] = pos


def _terminate_torn_line(journal: Path, fd: int) -> None:
    """A predecessor killed mid-write may have left half a line: end it, so the next event
    starts on a line of its own instead of being glued to (and lost with) the fragment."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    with open(journal, "rb") as fh:
        fh.seek(size - 1)
        if fh.read(1) != b"\n":
            os.write(fd, b"\n")


class Publisher:
    """Numbers, journals and publishes one daemon's events."""

    def __init__(self, ctx: zmq.Context, source: str, endpoint: str, journal: Path):
        self.source = source
        self.journal = journal
        journal.parent.mkdir(parents=True, exist_ok=True)
        self.seq = last_seq(journal)
        self.sock = ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 10000)
        self.sock.bind(endpoint)
        self._fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # private, like the data folder
        self.unjournaled = 0
        self._torn = False
        try:
            _terminate_torn_line(journal, self._fd)
        except OSError:
            pass

    def publish(self, kind: str, **data: Any) -> dict:
        self.seq += 1
        event = {"seq": self.seq, "ts": time.time(), "src": self.source, "kind": kind, "data": data}
        line = json.dumps(event, default=str, separators=(",", ":")) + "\n"
        raw = (b"\n" if self._torn else b"") + line.encode("utf-8")
        try:
            self._torn = os.write(self._fd, raw) < len(raw)  # a short write on a full disk
        except OSError:  # a full disk: the event still goes out live, it is only missing from the record
            self.unjournaled += 1
        try:
            self.sock.send_multipart([kind.encode(), env.pack(event)], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # a full or closed PUB drops; the journal still has it
        return event

    def close(self) -> None:
        self.sock.close(0)
        os.close(self._fd)


class EventFeed:
    """Subscribes to several daemons' events and yields each event exactly once, in order per source."""

    def __init__(self, ctx: zmq.Context, sources: dict[str, tuple[str, Path]], cursors: dict[str, int] | None = None):
        """`sources` maps a daemon name to (pub endpoint, journal path)."""
        self.sources = sources
        self.cursors: dict[str, int] = {name: 0 for name in sources}
        self.cursors.update(cursors or {})
        self.offsets: dict[Path, int] = {}
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 10000)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        for endpoint, _ in sources.values():
            self.sock.connect(endpoint)

    def catch_up(self) -> list[dict]:
        """Everything in the journals past our cursors (call at start and after a gap)."""
        out: list[dict] = []
        for name, (_, journal) in self.sources.items():
            for ev in read_journal(journal, self.cursors.get(name, 0), self.offsets):
                self.cursors[name] = ev["seq"]
                out.append(ev)
        out.sort(key=lambda e: e.get("ts", 0))
        return out

    def drain(self) -> list[dict]:
        """Events waiting on the socket, repaired from the journal where a gap shows."""
        out: list[dict] = []
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            out.extend(self._accept(frames))
        return out

    def _accept(self, frames: list[bytes]) -> Iterable[dict]:
        try:
            ev = env.unpack(frames[-1])
        except Exception:
            return []
        if not isinstance(ev, dict):
            return []
        src, seq = ev.get("src"), ev.get("seq")
        if src not in self.sources or not isinstance(seq, int):
            return []
        last = self.cursors.get(src, 0)
        if seq <= last:
            return []  # already seen (delivered by the journal first)
        if seq == last + 1:
            self.cursors[src] = seq
            return [ev]
        # a gap (slow joiner, dropped at HWM, or we were down): the journal has the truth
        missed = list(read_journal(self.sources[src][1], last, self.offsets))
        if not missed or missed[-1]["seq"] < seq:
            missed.append(ev)  # not journaled (a full disk): the live copy is all there is
        self.cursors[src] = missed[-1]["seq"]
        return missed

    def close(self) -> None:
        self.sock.close(0)
