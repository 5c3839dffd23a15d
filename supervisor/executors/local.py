"""Workers as local processes, each under its shim (supervisor/shim.py).

Start: the shim starts in a session of its own, from the supervisor's fork server
(executors/forking.py): the native shim (supervisor/nativeshim.c) spawned where it could be built,
else the Python shim forked. Where the server cannot be reached, the supervisor spawns the native
shim itself, or starts the Python shim as a fresh interpreter, as it does where AURA_WORKER_SCOPE
puts the shim in a transient systemd scope (systemd-run must start that one). It reports the worker's pid on a pipe,
read in the daemon's poll loop, so many workers start in parallel. Exit: a pidfd per shim in the
poll loop, where the platform has pidfds (the supervisor hears of an exit in milliseconds); a 0.25 s
poll elsewhere. A second pidfd, on the worker's own process, tells `list` which workers have ended
while their shims still write the records (workerends.py). Signals go to the worker's process group
and its shim.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from aura.runtime.fsutil import open_private
from aura.runtime.loop import Daemon
from aura.runtime.pidfile import is_alive, start_time
from aura.runtime.procgroup import signal_group, terminate_worker
from aura.runtime.records import START_FACTS
from aura.runtime.vocab import ORPHANED

from .. import exitrecord, nativeshim
from ..forkserver import NATIVE_STATUS_FD, PROGRAM_GONE, spawn_native
from ..placement import CpuPinning
from ..scope import scope_command, scoped
from .base import Ended, Executor, StartOrder, StartReport
from .forking import ForkServer
from .workerends import WorkerEnds

SHIM = str(Path(__file__).resolve().parent.parent / "shim.py")
POLL_INTERVAL = 0.25  # where there are no pidfds
REAP_WAIT = 2.0  # how long collect waits for an ended shim's exit status


@dataclass
class _Pending:
    """A shim whose start report has not come in yet."""

    fd: int
    buf: bytes = b""


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, loop: Daemon, grace: float, on_start_report: StartReport, on_end: Ended):
        super().__init__(on_start_report, on_end)
        self.loop = loop
        self.grace = grace
        self.scope_prefix: list[str] = []
        self.children: dict[str, subprocess.Popen] = {}
        self.spawned: dict[str, int] = {}  # worker id -> pid of its native shim, our child
        self.native: Path | None = None
        self.pending: dict[str, _Pending] = {}
        self.watch_fds: dict[str, int] = {}
        self.polled: dict[str, dict] = {}
        self.worker_ends = WorkerEnds()
        self.pinning = CpuPinning(loop.log)
        self.forks = ForkServer(loop, SHIM, on_failed=self._fork_failed, on_native_failed=self._native_failed)
        self._polling = False

    def setup(self) -> None:
        self.scope_prefix = scope_command(self.loop.cfg.text("AURA_WORKER_SCOPE"), log=self.loop.log)
        mode = self.loop.cfg.text("AURA_SHIM")
        found = nativeshim.find(mode)
        self.native = found.path
        if found.path is not None:
            self.loop.log.info("native_shim", path=str(found.path))
        elif mode != nativeshim.PYTHON:
            self.loop.log.warning("native_shim_unavailable", reason=found.why, then="Python shims")
        self.forks.preload = self.native is None
        if not self.scope_prefix:
            self.forks.warm()  # its interpreter starts now, not on the first spawn

    # -- starting ---------------------------------------------------------------------------------
    def start(self, order: StartOrder) -> None:
        """Start the shim in a new session (the module's docstring says by whom); its start report
        arrives on a pipe."""
        r, w = os.pipe()
        try:
            with os.fdopen(open_private(order.worker_dir / "shim.log"), "ab") as shim_log:
                self._launch(order, w, shim_log)
        except OSError:
            os.close(r)
            raise
        finally:
            os.close(w)
        self._expect_report(order.worker_id, r)

    def _expect_report(self, wid: str, r: int) -> None:
        """The shim's start report comes on `r`, read in the poll loop, or its time runs out."""
        os.set_blocking(r, False)
        self.pending[wid] = _Pending(r)
        self.loop.add_reader(r, lambda: self._on_report(wid))
        self.loop.call_later(self.start_timeout, lambda: self._reported(wid, None))

    def _launch(self, order: StartOrder, status_w: int, log: IO[bytes]) -> None:
        grace = min(self.grace, 5.0)
        if not self.scope_prefix:
            native = self._native_command(order, grace) if self.native is not None else None
            fds, root = (status_w, log.fileno()), str(self.loop.paths.root)
            if self.forks.start(order.worker_id, shim_args(order, grace), order.env, root, fds, native):
                return
            if native is not None and self._spawned(order, native, status_w, log):
                return
        self.children[order.worker_id] = self._popen(order, shim_options(order, grace), status_w, log)

    def _native_command(self, order: StartOrder, grace: float) -> list[str]:
        return [*self._shim_prefix(), "--status-fd", str(NATIVE_STATUS_FD), *shim_options(order, grace)]

    def _spawned(self, order: StartOrder, native: list[str], status_w: int, log: IO[bytes]) -> bool:
        """Spawn the native shim ourselves; False when the program cannot be run any more (its file
        was removed, say): from then on the Python shims start the workers. Any other failure (an
        argument list too long, no memory) is this start's, and raised."""
        try:
            self.spawned[order.worker_id] = spawn_native(native, order.env, status_w, log.fileno())
            return True
        except OSError as exc:
            if exc.errno not in PROGRAM_GONE:
                raise
            self._native_failed(str(exc))
            return False

    def _native_failed(self, why: str) -> None:
        if self.native is None:  # said already, by another start of the same burst
            return
        self.loop.log.warning("native_shim_failed", path=str(self.native), error=why, then="Python shims")
        self.native = None

    def _shim_prefix(self) -> list[str]:
        """The native shim (which hands over to the Python one what it does not do itself), or the Python shim."""
        if self.native is None:
            return shim_prefix()
        return [str(self.native), "--python", sys.executable, "--script", SHIM]

    def _popen(self, order: StartOrder, options: list[str], status_w: int, log: IO[bytes]) -> subprocess.Popen:
        cmd = [*self._shim_prefix(), "--status-fd", str(status_w), *options]
        return subprocess.Popen(
            scoped(self.scope_prefix, self.loop.paths.root, order.worker_id, cmd),
            env=order.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            pass_fds=(status_w,),
            cwd=str(self.loop.paths.root),
        )

    def _fork_failed(self, wid: str, why: str) -> None:
        self._reported(wid, {"ok": False, "error": why})

    def _on_report(self, wid: str) -> None:
        pending = self.pending.get(wid)
        if pending is None:
            return
        try:
            chunk = os.read(pending.fd, 65536)
        except BlockingIOError:
            return
        pending.buf += chunk
        if chunk and b"\n" not in pending.buf:
            return
        try:
            report = json.loads(pending.buf.split(b"\n", 1)[0]) if pending.buf else None
        except ValueError:
            report = None
        self._reported(wid, report)

    def _reported(self, wid: str, report: dict | None) -> None:
        self.forks.await_answer(wid)  # a failed start it answers reports itself, through here
        pending = self.pending.pop(wid, None)
        if pending is None:
            return
        self.loop.remove_reader(pending.fd)
        os.close(pending.fd)
        self.on_start_report(wid, report)

    def facts(self, report: dict) -> dict:
        facts = {k: report[k] for k in (*START_FACTS, "started_at")}
        for key in ("worker", "shim"):  # a shim without /proc (macOS) cannot read start times itself
            if facts.get(f"{key}_create_time") is None:
                facts[f"{key}_create_time"] = start_time(facts[f"{key}_pid"])
        return facts

    # -- watching ---------------------------------------------------------------------------------
    def watch(self, rec: dict) -> None:
        """A pidfd in the poll loop where possible, else a poll every POLL_INTERVAL."""
        wid = rec["worker_id"]
        key = "worker" if rec.get("state") == ORPHANED else "shim"
        pid = rec[f"{key}_pid"]
        if key == "shim":
            self.worker_ends.follow(wid, rec.get("worker_pid"), rec.get("worker_create_time"))
        try:
            fd = os.pidfd_open(pid)
        except OSError as exc:
            if exc.errno == errno.ESRCH:  # ended and reaped already (by the fork server): nothing to wait for
                self.loop.call_later(0, lambda: self.on_end(wid))
                return
            self._poll_for(wid, rec)
            return
        except AttributeError:  # no pidfds on this platform
            self._poll_for(wid, rec)
            return
        if not is_alive(pid, rec.get(f"{key}_create_time")):  # reused PID or already gone: it ended before we looked
            os.close(fd)
            self.loop.call_later(0, lambda: self.on_end(wid))
            return
        self.watch_fds[wid] = fd
        self.loop.add_reader(fd, lambda: self.on_end(wid))

    def _poll_for(self, wid: str, rec: dict) -> None:
        self.polled[wid] = rec
        self._ensure_polling()

    def _ensure_polling(self) -> None:
        if not self._polling:
            self._polling = True
            self.loop.call_every(POLL_INTERVAL, self._poll)

    def _poll(self) -> None:
        for wid, rec in list(self.polled.items()):
            key = "worker" if rec.get("state") == ORPHANED else "shim"
            if not is_alive(rec.get(f"{key}_pid"), rec.get(f"{key}_create_time")):
                self.polled.pop(wid, None)
                self.on_end(wid)

    def collect(self, worker_id: str) -> dict | None:
        """Stop watching; reap the shim when it was our child and has ended, and read the worker's
        exit from the shim's exit status where that carries it (exitrecord.encode)."""
        fd = self.watch_fds.pop(worker_id, None)
        if fd is not None:
            self.loop.remove_reader(fd)
            os.close(fd)
        self.worker_ends.settle(worker_id)
        self.polled.pop(worker_id, None)
        if self.forks.forked(worker_id):
            return self.forks.collect(worker_id, self.loop.paths.worker_dir(worker_id))
        if worker_id in self.spawned:
            return self._collect_spawned(worker_id)
        child = self.children.pop(worker_id, None)
        if child is None:
            return None
        try:
            return exitrecord.decode(child.wait(timeout=2))
        except subprocess.TimeoutExpired:
            self.children[worker_id] = child
            return None

    def _collect_spawned(self, worker_id: str) -> dict | None:
        pid = self.spawned[worker_id]
        deadline = time.monotonic() + REAP_WAIT
        while True:
            status = _reaped(pid)
            if status is not None or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if status is None:  # still running: reap() takes it later
            return None
        del self.spawned[worker_id]
        return exitrecord.decode(os.waitstatus_to_exitcode(status)) if status >= 0 else None

    def reap(self) -> None:
        for wid, child in list(self.children.items()):
            if child.poll() is not None and wid not in self.watch_fds and wid not in self.polled:
                self.children.pop(wid, None)
        for wid, pid in list(self.spawned.items()):
            if wid not in self.watch_fds and wid not in self.polled and _reaped(pid) is not None:
                self.spawned.pop(wid, None)

    def ending(self, running: Collection[str]) -> set[str]:
        return self.worker_ends.ended(running)

    # -- finding again after a restart ------------------------------------------------------------
    def supervised(self, rec: dict) -> bool:
        return rec.get("state") != ORPHANED and is_alive(rec.get("shim_pid"), rec.get("shim_create_time"))

    def orphan(self, rec: dict, start_report: dict) -> dict | None:
        pid = rec.get("worker_pid") or start_report.get("worker_pid")
        created = rec.get("worker_create_time") or start_report.get("worker_create_time")
        if pid and is_alive(pid, created):
            return {"worker_pid": pid, "worker_create_time": created}
        return None

    def running(self, rec: dict) -> bool:
        return is_alive(rec.get("worker_pid"), rec.get("worker_create_time"))

    # -- signals and placement --------------------------------------------------------------------
    def terminate(self, rec: dict) -> bool:
        return terminate_worker(rec)  # the group may outlive its leader, the shim its worker

    def force_kill(self, rec: dict) -> bool:
        return signal_group(rec.get("pgid"), signal.SIGKILL)

    def place(self, rec: dict, ceiling: float, in_use: list[int]) -> list[int] | None:
        return self.pinning.pin(rec["worker_id"], rec["worker_pid"], ceiling, in_use)

    def close(self) -> None:
        for wid in list(self.pending):
            self._reported(wid, None)
        for fd in self.watch_fds.values():
            os.close(fd)
        self.watch_fds.clear()
        self.worker_ends.close()
        self.forks.close()


def _reaped(pid: int) -> int | None:
    """The wait status of our ended child `pid` (-1: not ours, or taken already); None while it runs."""
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return -1
    return status if got == pid else None


def shim_command(order: StartOrder, grace: float, *options: str) -> list[str]:
    """The shim's command line for one worker (`options`: what its executor adds, before `--`)."""
    return [*shim_prefix(), *options, *shim_options(order, grace)]


def shim_prefix() -> list[str]:
    """The interpreter running the shim: `-I -S`, the standard library only, a fast start."""
    return [sys.executable, "-I", "-S", SHIM]


def shim_args(order: StartOrder, grace: float) -> dict:
    """The shim's options for one worker, by name (as the fork server takes them)."""
    return {
        "dir": str(order.worker_dir),
        "cwd": order.cwd,
        "stdout": str(order.stdout),
        "stderr": str(order.stderr),
        "task_dir": str(order.task_dir),
        "grace": grace,
        "argv": list(order.argv),
    }


def shim_options(order: StartOrder, grace: float) -> list[str]:
    """The shim's options for one worker on its command line, ending with `-- ARGV`."""
    named = shim_args(order, grace)
    argv = named.pop("argv")
    return [*(x for key, value in named.items() for x in (f"--{key.replace('_', '-')}", str(value))), "--", *argv]
