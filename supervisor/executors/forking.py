"""The supervisor's end of the fork server (supervisor/forkserver.py): started with the supervisor
(or on the first worker start), started again on the next one after it died, and never waited for.

`start` hands the server a shim to start (the native one spawned, or the Python one forked) and
returns at once (False: the server cannot be reached, so the caller starts the shim itself); the
shim's start report comes on its status pipe as from a shim started directly. The server's answers
(the shim's pid, a failed start, a native shim that could not run, a non-zero exit status) are read
in the daemon's poll loop.
"""

from __future__ import annotations

import errno
import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from aura.runtime.exitfile import has_exit
from aura.runtime.fsutil import open_private
from aura.runtime.loop import Daemon

from .. import exitrecord

SERVER = [sys.executable, "-I", "-S", str(Path(__file__).resolve().parent.parent / "forkserver.py")]
SEND_TIMEOUT = 5.0  # a server that takes no request in this long is given up, and started again
ANSWER_WAIT = 1.0  # how long a start's report waits for the server's answer to that start (sent at once)
STATUS_WAIT = 2.0  # how long collect waits for the exit status of a shim that wrote no exit record


class ForkServer:
    def __init__(
        self,
        loop: Daemon,
        shim: str,
        on_failed: Callable[[str, str], None],
        on_native_failed: Callable[[str], None],
    ):
        self.loop = loop
        self.shim = shim
        self.on_failed = on_failed  # (worker id, why): the server could not start its shim
        self.on_native_failed = on_native_failed  # (why): the native shim could not run; a Python one started
        self.sock: socket.socket | None = None
        self.proc: subprocess.Popen | None = None
        self.pids: dict[str, int] = {}  # worker id -> its shim's pid, for the shims this server forked
        self.unanswered: set[str] = set()  # worker ids sent, the server's answer not read yet
        self.status: dict[int, int] = {}  # shim pid -> its non-zero exit status
        self.preload = True  # load the Python shim at the server's start (false: native shims expected)

    def start(
        self,
        wid: str,
        options: dict,
        env: dict[str, str],
        cwd: str,
        fds: tuple[int, int],
        native: list[str] | None = None,
    ) -> bool:
        """Ask the server to start the shim: `native`, the native shim's command, spawned; else the
        Python shim forked with `options` (local.shim_args). `fds`: its status pipe and shim.log.
        False when the server cannot be reached."""
        request = {"id": wid, "options": options, "env": env, "cwd": cwd}
        if native:
            request["spawn"] = native
        msg = json.dumps(request).encode()
        for _attempt in range(2):  # a server found dead is started again once
            sock = self._connected()
            if sock is None:
                return False
            try:
                _send(sock, msg, list(fds))
                self.unanswered.add(wid)
                return True
            except TimeoutError:
                self._lost(f"it took no request for {SEND_TIMEOUT:g}s")
                return False
            except OSError as exc:
                if exc.errno == errno.EMSGSIZE:  # an environment too big for one message: this shim starts alone
                    return False
                self._lost(f"it could not be reached: {exc}")
        return False

    def warm(self) -> None:
        self._connected()

    def await_answer(self, wid: str) -> None:
        """Read the server's answer for `wid` if it is still on the way (up to ANSWER_WAIT): the
        server sends it as soon as the shim is started, so a start is not reported before what the
        server said of it (a native shim that could not run, the shim's pid) is taken in."""
        deadline = time.monotonic() + ANSWER_WAIT
        while wid in self.unanswered and self.sock is not None and time.monotonic() < deadline:
            self._read()
            if wid in self.unanswered and self.sock is not None:
                select.select([self.sock], [], [], max(0.0, deadline - time.monotonic()))

    def forked(self, wid: str) -> bool:
        """Did this server start the worker's shim (its answer read now if it is still on the way)?"""
        if wid not in self.pids:
            self._read()
        return wid in self.pids

    def collect(self, wid: str, worker_dir: Path) -> dict | None:
        """The worker's exit carried by its shim's exit status, where the shim could not write the
        exit record (exitrecord.decode); None otherwise."""
        self._read()
        pid = self.pids.pop(wid, None)
        if pid is None:
            return None
        if has_exit(worker_dir):
            self.status.pop(pid, None)
            return None
        deadline = time.monotonic() + STATUS_WAIT
        while pid not in self.status and self.sock is not None and time.monotonic() < deadline:
            select.select([self.sock], [], [], max(0.0, deadline - time.monotonic()))
            self._read()
        return exitrecord.decode(self.status.pop(pid, None))

    def close(self) -> None:
        """Stop the server (it exits at the end of its socket); the shims it forked run on."""
        if self.sock is not None:
            self._lost(None)

    # -- the server process -----------------------------------------------------------------------
    def _connected(self) -> socket.socket | None:
        if self.sock is not None:
            return self.sock
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        command = [*SERVER, "--fork-server", str(theirs.fileno()), self.shim, *(["--preload"] if self.preload else [])]
        try:
            with os.fdopen(open_private(self.loop.paths.logs_dir / "forkserver.log"), "ab") as log:
                self.proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    pass_fds=(theirs.fileno(),),
                    start_new_session=True,
                    cwd=str(self.loop.paths.root),
                )
        except OSError as exc:
            ours.close()
            self.loop.log.warning("fork_server_not_started", error=str(exc), then="shims start alone")
            return None
        finally:
            theirs.close()
        ours.setblocking(False)
        self.sock = ours
        self.loop.add_reader(ours.fileno(), self._read)
        self.loop.log.info("fork_server_started", pid=self.proc.pid)
        return ours

    def _read(self) -> None:
        """Take every answer the server has sent; its end closing means it is gone."""
        while self.sock is not None:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._lost(f"its socket failed: {exc}")
                return
            if not data:
                self._lost("it exited")
                return
            self._answer(json.loads(data))

    def _answer(self, msg: dict) -> None:
        if "status" in msg:  # a shim's end, not an answer to a start
            self.status[int(msg["pid"])] = int(msg["status"])
            return
        self.unanswered.discard(str(msg.get("id")))  # before on_failed, which reports the start
        if "pid" in msg:
            self.pids[str(msg["id"])] = int(msg["pid"])
            if msg.get("native_failed"):
                self.on_native_failed(str(msg["native_failed"]))
        elif msg.get("id") is not None:
            self.on_failed(str(msg["id"]), str(msg.get("error")))

    def _lost(self, why: str | None) -> None:
        """Forget the server; the next start starts a new one. Its shims are not affected."""
        assert self.sock is not None
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        self.sock = None
        self.unanswered.clear()  # the shims' reports say the rest
        if why is not None:
            self.loop.log.warning("fork_server_gone", reason=why, then="started again at the next worker start")
        if self.proc is not None:
            try:
                self.proc.wait(timeout=1.0)  # it exits at the end of its socket
            except subprocess.TimeoutExpired:  # hung: ours to stop (its shims are in sessions of their own)
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def _send(sock: socket.socket, msg: bytes, fds: list[int]) -> None:
    """One request on the non-blocking socket, waiting up to SEND_TIMEOUT for room in its buffer."""
    deadline = time.monotonic() + SEND_TIMEOUT
    while True:
        try:
            socket.send_fds(sock, [msg], fds)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [sock], [], left)[1]:
                raise TimeoutError from None
