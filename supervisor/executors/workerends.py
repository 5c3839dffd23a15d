"""Which running workers' own processes have ended, asked at once for all of them.

The supervisor hears of an end from the shim, after the shim has reaped its worker and made the exit
record durable; under a burst on busy cores that is tens of milliseconds later. Until then `list`
would call an ended worker running. A pidfd on each worker's process (not a child of ours: the
shim's), all in one epoll set, answers "which have ended?" in one call whose cost does not grow
with the workers still running, as circus reads each process's state when asked.
"""

from __future__ import annotations

import errno
import os
import resource
import select
from collections.abc import Collection

from aura.runtime.pidfile import is_alive

SUPPORTED = hasattr(select, "epoll") and hasattr(os, "pidfd_open")  # Linux 5.3 and later
FD_SHARE = 4  # at most this fraction of the descriptors we may open: the shims' pidfds and start pipes come first


class WorkerEnds:
    def __init__(self) -> None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.most = soft // FD_SHARE if soft != resource.RLIM_INFINITY else 1 << 16
        self._epoll: select.epoll | None = None
        self._fds: dict[int, str] = {}  # pidfd -> worker id
        self._by_worker: dict[str, int] = {}
        self._gone: set[str] = set()  # ended, and no pidfd held on it (gone before followed, or settled)

    def follow(self, wid: str, pid: int | None, created: float | None) -> None:
        """Watch `pid`, the worker's process started at `created`. Nothing where pidfds or epoll are
        missing or `most` are followed already: the worker is then shown running until its shim's
        end is heard."""
        if not SUPPORTED or not pid or wid in self._by_worker or len(self._fds) >= self.most:
            return
        try:
            fd = os.pidfd_open(pid)
        except OSError as e:
            if e.errno == errno.ESRCH:  # already reaped by its shim
                self._gone.add(wid)
            return
        if not is_alive(pid, created):  # ended, or the pid is another process's by now
            os.close(fd)
            self._gone.add(wid)
            return
        if self._epoll is None:
            self._epoll = select.epoll()
        self._epoll.register(fd, select.EPOLLIN)
        self._fds[fd] = wid
        self._by_worker[wid] = fd

    def settle(self, wid: str) -> None:
        """Stop following the worker (its shim is reaped): one that has ended is still answered
        for until it leaves the running workers `ended` is asked about."""
        fd = self._by_worker.pop(wid, None)
        if fd is None:
            return
        del self._fds[fd]
        if self._epoll is not None:
            self._epoll.unregister(fd)
        readable = select.poll()
        readable.register(fd, select.POLLIN)
        if readable.poll(0):
            self._gone.add(wid)
        os.close(fd)

    def ended(self, running: Collection[str]) -> set[str]:
        """Those of the `running` workers (every one the supervisor holds as running: the rest are
        let go) whose process has ended."""
        self._gone.intersection_update(running)
        if self._epoll is None or not self._fds:
            return set(self._gone)
        ready = {self._fds[fd] for fd, _ in self._epoll.poll(0, len(self._fds))}
        return self._gone | ready.intersection(running)

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        self._by_worker.clear()
        self._gone.clear()
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
