"""The loop every Aura daemon runs: lock, bind, serve, publish, tick, stop cleanly.

A daemon takes its single-instance lock *before* binding, because a second bind on an
`ipc://` path silently steals the endpoint from the first.
"""

from __future__ import annotations

import errno
import heapq
import importlib
import itertools
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import zmq
from filelock import FileLock, Timeout

from aura import __version__
from aura.ipc import envelope as env
from aura.ipc.events import Publisher
from aura.ipc.server import Handler, RequestServer

from . import ops, sdnotify
from .config import Config
from .fsutil import disk_full
from .logs import setup_logging
from .paths import ProjectPaths, ensure_private_dir, remove_runtime_dir_if_empty
from .pidfile import live_record, write_pidfile

EXIT_ALREADY_RUNNING = 3


REPLY_LINGER_MS = 500
POLL_MAX_MS = 1000  # the longest the loop waits with no timer due: how soon it sees `stopping`


def poll_timeout(due_in: float | None) -> int:
    """Milliseconds the loop may wait for I/O when its next timer is due in `due_in` seconds: none
    when it is overdue (a callback scheduled for now runs in the next round, not a millisecond
    later), else rounded up so the timer is never run early."""
    if due_in is None:
        return POLL_MAX_MS
    return 0 if due_in <= 0 else min(POLL_MAX_MS, int(due_in * 1000) + 1)


class Daemon:
    """Base class: subclasses add request handlers, timers and readers."""

    name = "daemon"
    ops_package = ""  # the package whose import registers this daemon's own operations

    def __init__(self, paths: ProjectPaths, cfg: Config, managed: bool = False, argv: list[str] | None = None):
        self.paths = paths
        self.cfg = cfg
        self.managed = managed
        self.argv = argv or []
        self.ctx = zmq.Context()
        self.log = setup_logging(paths.logfile(self.name), self.name, cfg.text("AURA_LOG_LEVEL"), to_stderr=managed)
        self.started_at = time.time()
        self.stopping = False
        self.stop_reason = ""
        self._timers: list[tuple[float, int, Callable[[], Any]]] = []
        self._tick = itertools.count()
        self._readers: dict[Any, Callable[[], Any]] = {}
        self.server: RequestServer | None = None
        self.events: Publisher | None = None

    # -- hooks for subclasses -------------------------------------------------------------
    def handlers(self) -> dict[str, Handler]:
        """The requests this daemon answers: every operation module registered for its name."""
        ops.load(ops.__name__, ops.COMMON)
        if self.ops_package:
            importlib.import_module(self.ops_package)
        return ops.handlers(self, self.name)

    def setup(self) -> None:
        """Called after the sockets are bound, before readiness is reported."""

    def teardown(self) -> None:
        """Called once when the loop ends."""

    def status_fields(self) -> dict:
        return {}

    # -- scheduling -----------------------------------------------------------------------
    def call_later(self, delay: float, fn: Callable[[], Any]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + max(0.0, delay), next(self._tick), fn))

    def call_every(self, interval: float, fn: Callable[[], Any], first: float | None = None) -> None:
        def run() -> None:
            try:
                fn()
            finally:
                if not self.stopping:
                    self.call_later(interval, run)

        self.call_later(interval if first is None else first, run)

    def add_reader(self, source: Any, fn: Callable[[], Any]) -> None:
        """Call `fn` when a zmq socket or file descriptor becomes readable."""
        self._readers[source] = fn
        if self._poller is not None:
            self._poller.register(source, zmq.POLLIN)

    def remove_reader(self, source: Any) -> None:
        if self._readers.pop(source, None) is not None and self._poller is not None:
            try:
                self._poller.unregister(source)
            except KeyError:
                pass

    _poller: zmq.Poller | None = None

    # -- what the common operations (aura.runtime.ops) ask of a daemon ------------------------
    def hello(self) -> dict:
        return {
            "daemon": self.name,
            "version": __version__,
            "protocol": [1, env.PROTOCOL],
            "pid": os.getpid(),
            "started_at": self.started_at,
            "managed": self.managed,
            **self.status_fields(),
        }

    def shutdown_requested(self, reason: str, stop_workers: bool) -> None:
        self.request_stop(reason)

    def request_stop(self, reason: str) -> None:
        if not self.stopping:
            self.stopping = True
            self.stop_reason = reason

    def publish(self, kind: str, **data: Any) -> dict | None:
        if self.events is None:
            return None
        return self.events.publish(kind, **data)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> int:
        lock = FileLock(str(self.paths.lockfile(self.name)), mode=0o600)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            rec = live_record(self.paths.pidfile(self.name)) or {}
            msg = f"{self.name} is already running for {self.paths.root} (pid {rec.get('pid', '?')})"
            print(msg, file=sys.stderr)
            self.log.error("already_running", pid=rec.get("pid"))
            return EXIT_ALREADY_RUNNING
        try:
            return self._run_locked()
        finally:
            lock.release()

    def _run_locked(self) -> int:
        self.paths.ensure()
        for suffix in (".sock", ".pub"):  # stale files of a crashed predecessor; we hold the lock
            stale = self.paths.runtime_dir / f"{self.name}{suffix}"
            if stale.exists():
                stale.unlink()
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        old_handlers = self._install_signals(wake_w)
        self._poller = zmq.Poller()
        try:
            self._bind()
            assert self.server is not None
            self._poller.register(self.server.sock, zmq.POLLIN)
            self._poller.register(wake_r.fileno(), zmq.POLLIN)
            for source in self._readers:
                self._poller.register(source, zmq.POLLIN)
            self.setup()
            self._write_pid("running")
            self.log.info("started", pid=os.getpid(), managed=self.managed, project=str(self.paths.root))
            self.publish("daemon_started", daemon=self.name, pid=os.getpid())
            sdnotify.ready()
            self._start_heartbeat()
            self._loop(wake_r)
            self.log.info("stopping", reason=self.stop_reason)
            sdnotify.stopping()
            return 0
        finally:
            self._shutdown(old_handlers, wake_r, wake_w)

    def _bind(self) -> None:
        """Bind the request and event endpoints. The last daemon of a stopping run removes the
        runtime folder when it is empty, possibly between our `ensure()` and this bind: then the
        folder is made again and the bind retried."""
        for attempt in range(3):
            try:
                if self.server is None:
                    self.server = RequestServer(
                        self.ctx,
                        self.paths.endpoint(self.name),
                        self.handlers(),
                        on_error=lambda code, msg: self.log.warning("bad_request", code=code, detail=msg[:500]),
                    )
                if self.events is None:
                    self.events = Publisher(
                        self.ctx, self.name, self.paths.pub_endpoint(self.name), self.paths.journal(self.name)
                    )
                return
            except zmq.ZMQError as exc:
                if exc.errno != errno.ENOENT or attempt == 2:
                    raise
                ensure_private_dir(self.paths.runtime_dir)

    def _loop(self, wake_r: socket.socket) -> None:
        self._wake_r = wake_r
        while not self.stopping:
            self._poll_once(poll_timeout(self._timers[0][0] - time.monotonic() if self._timers else None))
            self._run_due_timer()

    _wake_r: socket.socket | None = None

    def _poll_once(self, timeout_ms: int) -> None:
        """Wait up to `timeout_ms` and serve whatever became ready: requests, signals, readers."""
        assert self._poller is not None and self.server is not None
        try:
            ready = dict(self._poller.poll(timeout_ms))
        except zmq.ZMQError as exc:
            if exc.errno == errno.EINTR:
                return
            raise
        if self._wake_r is not None and self._wake_r.fileno() in ready:
            _drain(self._wake_r)
        if self.server.sock in ready:
            self.server.handle_ready()
        for source, fn in list(self._readers.items()):
            if source in ready:
                self.guard(fn)

    def pump(self, seconds: float) -> None:
        """Keep answering requests (and noting events) while the caller waits on something slow,
        e.g. a model call: timers do not run here, so no cycle starts inside another."""
        if self._poller is None or self.server is None:
            time.sleep(seconds)
            return
        self._poll_once(max(0, int(seconds * 1000)))

    def _run_due_timer(self) -> None:
        """The earliest due timer, one per round: requests that came in meanwhile are answered
        before the next (a burst of work scheduled in rounds never holds a request behind two)."""
        if self._timers and self._timers[0][0] <= time.monotonic() and not self.stopping:
            _, _, fn = heapq.heappop(self._timers)
            self.guard(fn)

    def guard(self, fn: Callable[[], Any]) -> None:
        """A bug in one callback is logged; the daemon keeps serving."""
        try:
            fn()
        except Exception as exc:
            if disk_full(exc):  # a full disk is the user's to fix, not a bug: one line, no trace
                self.log.error("disk_full", error=str(exc))
                return
            self.log.error("callback_failed", error=repr(exc), trace=traceback.format_exc()[-2000:])

    def _start_heartbeat(self) -> None:
        interval = sdnotify.watchdog_interval()
        if interval:
            self.call_every(interval / 2, sdnotify.watchdog_ping, first=0)

    def _install_signals(self, wake_w: socket.socket) -> dict:
        def on_signal(signum: int, _frame: Any) -> None:
            self.request_stop(f"signal {signal.Signals(signum).name}")

        old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        return old

    def _write_pid(self, state: str) -> None:
        write_pidfile(
            self.paths.pidfile(self.name),
            daemon=self.name,
            state=state,
            managed=self.managed,
            started_at=self.started_at,
            endpoint=self.paths.endpoint(self.name),
            pub=self.paths.pub_endpoint(self.name),
            version=__version__,
            protocol=env.PROTOCOL,
            stop_reason=self.stop_reason or None,
        )

    def _shutdown(self, old_handlers: dict, wake_r: socket.socket, wake_w: socket.socket) -> None:
        self._write_pid("stopping")  # no longer serving: peers must neither ping it nor take it for crashed
        try:
            self.teardown()
        except Exception as exc:
            self.log.error("teardown_failed", error=repr(exc))
        if self.events is not None:
            self.publish("daemon_stopped", daemon=self.name, reason=self.stop_reason)
        try:
            self._write_pid("stopped")
        except OSError as exc:  # a full disk must not stop the stop
            self.log.error("pidfile_not_updated", error=str(exc))
        signal.set_wakeup_fd(-1)
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        if self.server is not None:
            self.server.close(linger_ms=REPLY_LINGER_MS)  # the answer to `shutdown` must still reach its caller
        if self.events is not None:
            self.events.close()
        for suffix in (".sock", ".pub"):
            try:
                (self.paths.runtime_dir / f"{self.name}{suffix}").unlink()
            except FileNotFoundError:
                pass
        remove_runtime_dir_if_empty(self.paths)
        wake_r.close()
        wake_w.close()
        self.ctx.destroy(linger=0)
        self.log.info("stopped", reason=self.stop_reason)


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, OSError):
        pass
