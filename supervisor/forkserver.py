"""The fork server: one process per supervisor, with the shim's code loaded, that forks a shim per
worker, so a start costs a fork instead of an interpreter start and its imports, and the shims share
the server's pages copy-on-write.

A forked shim is what `python -I -S shim.py ...` would be: a session of its own (setsid), the
working folder of the request and its environment for the worker, its stdout and stderr on its shim.log, its start
report on the status pipe the supervisor passed. Nothing ties it to the server or the supervisor: it
outlives both and writes its exit record as any shim does. The server only reaps its shims and
tells the supervisor an exit status that carries something (a shim that could not write the exit
record says the worker's exit in it, supervisor/exitrecord.py).

Where the native shim (supervisor/nativeshim.c) can run, the request names it in `spawn` and the
server starts it by posix_spawn instead: the shims are still the server's children, so an exit is
reaped here at once, by a process that does nothing else, not when the supervisor's loop gets to it
in the middle of a burst; and the spawn itself runs beside the supervisor's own work on a start.

One message per datagram on a SOCK_SEQPACKET socket, JSON:

    supervisor -> server  {"id": WID, "options": {shim options}, "env": {...}, "cwd": DIR,
                           "spawn": [native shim's command] (optional)}
                          with two descriptors: the status pipe and shim.log
    server -> supervisor  {"id": WID, "pid": PID}, or {"id": WID, "error": TEXT} when the start failed;
                          with "native_failed": TEXT when the native shim could not be run (gone from
                          its folder, say) and the Python shim was forked instead
                          {"pid": PID, "status": CODE} when a shim ended with a non-zero status

The server exits when the supervisor's end of the socket closes (the supervisor stopped or died);
its shims run on. It runs as `python -I -S forkserver.py --fork-server FD SHIM [--preload]` and
imports the standard library only: the Python shim's code (SHIM) is loaded at the start with
`--preload` (Python shims expected: every fork shares it), else on the first Python shim asked for,
so a server that only spawns native shims holds half the memory.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import selectors
import signal
import socket
import sys
import traceback
from collections.abc import Callable

MAX_MESSAGE = 1 << 20
FDS_PER_REQUEST = 2
NATIVE_STATUS_FD = 3  # where a spawned native shim finds its status pipe (its --status-fd)
PROGRAM_GONE = (errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.ENOTDIR)  # the native shim cannot be run
RunShim = Callable[[dict, int, dict[str, str]], int]  # shim.forked: its options, status pipe, worker's environment


class LazyShim:
    """The Python shim's `forked`, its module loaded from SHIM the first time `load` is called."""

    def __init__(self, path: str):
        self.path = path
        self._run: RunShim | None = None

    def load(self) -> RunShim:
        """Load the shim in this process, before it forks: the children share its pages."""
        if self._run is None:
            import importlib.util

            spec = importlib.util.spec_from_file_location("aura_shim", self.path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            module.libc()  # the C library the forked shims name themselves with, loaded once here
            self._run = module.forked
            gc.collect()
            gc.freeze()
        return self._run


def set_name(name: str) -> None:
    """The kernel's name for this process (what `pkill NAME` matches), without loading ctypes.
    Not aura.runtime.proctitle's: under `-I -S` this script cannot import Aura until it loads the
    shim, and its prctl needs ctypes, which a server of native shims never loads."""
    try:
        with open("/proc/self/comm", "w") as fh:
            fh.write(name)
    except OSError:  # no /proc (macOS): the name is a nicety
        pass


def main(argv: list[str]) -> int:
    """`--fork-server FD SHIM [--preload]`."""
    if len(argv) < 3 or argv[0] != "--fork-server":
        print("usage: forkserver.py --fork-server FD SHIM [--preload]", file=sys.stderr)
        return 2
    set_name("aura-forkserver")
    shim = LazyShim(argv[2])
    if "--preload" in argv[3:]:
        shim.load()
    return serve(int(argv[1]), shim)


def serve(sock_fd: int, shim: LazyShim) -> int:
    """Fork a shim for each request until the supervisor's end closes."""
    os.set_inheritable(sock_fd, False)  # a spawned shim holding it would hide the server's end from the supervisor
    sock = socket.socket(fileno=sock_fd)
    sock.setblocking(True)
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w.fileno())
    gc.collect()
    gc.freeze()  # the collector never writes to the loaded code's pages: they stay shared with every shim
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    own: list = [sel, sock, wake_r, wake_w]
    while True:
        for key, _ in sel.select():
            if key.fileobj is wake_r:
                _drain(wake_r)
                _reap(sock)
                continue
            try:
                msg, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, FDS_PER_REQUEST)
            except InterruptedError:
                continue
            except OSError:
                return 0
            if not msg and not fds:
                return 0  # the supervisor is gone; the shims run on
            _fork_one(sock, msg, fds, shim, own)


def _fork_one(sock: socket.socket, msg: bytes, fds: list[int], shim: LazyShim, own: list) -> None:
    """Start the shim a request asks for and answer with its pid, or with why it could not start."""
    answer: dict = {"id": None}
    try:
        for fd in fds:
            os.set_inheritable(fd, False)  # a spawned shim gets them where the file actions put them, once
        req = json.loads(msg)
        answer["id"] = req.get("id")
        status_fd, log_fd = fds
        if req.get("spawn"):
            try:
                answer["pid"] = spawn_native(req["spawn"], req["env"], status_fd, log_fd)
            except OSError as exc:
                if exc.errno not in PROGRAM_GONE:
                    raise
                answer["native_failed"] = f"{req['spawn'][0]}: {exc.strerror}"
        if "pid" not in answer:
            answer["pid"] = _fork_shim(req, status_fd, log_fd, shim.load(), own)
    except Exception as exc:  # a bad request, a failed spawn or fork, a Python shim that cannot load: this start's
        answer = {"id": answer["id"], "error": f"the fork server could not start the shim: {exc}"}
    finally:
        for fd in fds:
            os.close(fd)
    _send(sock, answer)


def spawn_native(argv: list[str], env: dict[str, str], status_fd: int, log_fd: int) -> int:
    """The native shim, by posix_spawn (no Python between fork and exec), in a session of its own:
    its status pipe on NATIVE_STATUS_FD, its output on shim.log, every signal at its default and
    none blocked."""
    return os.posix_spawn(
        argv[0],
        argv,
        env,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1),
            (os.POSIX_SPAWN_DUP2, log_fd, 2),
            (os.POSIX_SPAWN_DUP2, status_fd, NATIVE_STATUS_FD),
        ],
        setsid=True,
        setsigmask=(),
        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGCHLD),
    )


def _fork_shim(req: dict, status_fd: int, log_fd: int, run_shim: RunShim, own: list) -> int:
    """A Python shim, forked from this process (its loaded code shared copy-on-write)."""
    pid = os.fork()
    if pid == 0:
        _run_child(req, status_fd, log_fd, run_shim, own)
    return pid


def _run_child(req: dict, status_fd: int, log_fd: int, run_shim: RunShim, own: list) -> None:
    """Become the shim `req` asks for, and never return into the server's loop."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for s in own:
            s.close()
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(devnull)
        os.close(log_fd)
        os.chdir(req["cwd"])
        code = run_shim(req["options"], status_fd, req["env"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            _send(sock, {"pid": pid, "status": code})


def _send(sock: socket.socket, message: dict) -> None:
    try:
        sock.send(json.dumps(message).encode())
    except OSError:  # the supervisor is gone; the loop ends at its EOF
        pass


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
