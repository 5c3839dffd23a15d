"""Talking to a project's running daemons from the CLI.

Only light imports (no model SDK): `aura ps`, `aura wake` and `aura status` are typed often.
A daemon is found through its pid file, which names the endpoint it bound, so the CLI works
from any folder of the project and whatever runtime folder the daemon chose.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from ipc.client import Client, DaemonUnavailable, RemoteError

from .fsutil import disk_full, read_json, write_json_even_if_full
from .paths import DAEMONS, ProjectPaths, find_project_root
from .pidfile import is_alive, live_record

START_HINT = "start it with `aura up TASK.md` in the project folder"


class NotRunning(Exception):
    """No daemon of this name answers for the project; the message says how to start it."""


def project_paths(project: Path | None = None) -> ProjectPaths | None:
    """The project named, else $AURA_PROJECT_ROOT, else the nearest one with a data folder (with
    $AURA_DATA_DIR set, the data folder says where the run is, and the root is this folder)."""
    root = project or os.environ.get("AURA_PROJECT_ROOT") or None
    if root is None:
        root = Path.cwd() if os.environ.get("AURA_DATA_DIR") else find_project_root()
    return ProjectPaths.for_root(Path(root).resolve()) if root else None


def daemon_record(paths: ProjectPaths, name: str) -> dict | None:
    return live_record(paths.pidfile(name))


def client(paths: ProjectPaths, name: str, timeout: float = 2.0, retries: int = 0) -> Client:
    """A client for a running daemon; NotRunning at once when its pid file says it is not there."""
    rec = daemon_record(paths, name)
    if rec is None:
        raise NotRunning(f"the {name} is not running for {paths.root}; {START_HINT}")
    return Client(rec.get("endpoint") or paths.endpoint(name), name, timeout=timeout, retries=retries)


def call(paths: ProjectPaths, name: str, op: str, args: dict | None = None, timeout: float = 2.0) -> Any:
    try:
        c = client(paths, name, timeout=timeout)
    except NotRunning:
        raise
    try:
        return c.call(op, args)
    except DaemonUnavailable as exc:
        raise NotRunning(f"the {name} did not answer ({exc.reason}); see `aura logs {name}`") from None
    finally:
        c.close()


def try_call(paths: ProjectPaths, name: str, op: str, args: dict | None = None, timeout: float = 2.0) -> Any:
    """Like call(), but None when the daemon is down (for commands that degrade gracefully)."""
    try:
        return call(paths, name, op, args, timeout)
    except (NotRunning, RemoteError):
        return None


def running_daemons(paths: ProjectPaths) -> dict[str, dict]:
    return {n: rec for n in DAEMONS if (rec := daemon_record(paths, n)) is not None}


def set_desired(paths: ProjectPaths, desired: str) -> bool:
    """Tell the daemons' peer keepers whether to restart crashed peers (`up`) or not (`down`).
    False when a full disk left no way to record it (the caller then stops every keeper first)."""
    spec = read_json(paths.launch_file) or {}
    if spec:
        spec["desired"] = desired
        try:
            write_json_even_if_full(paths.launch_file, spec, mode=0o600)
        except OSError as exc:
            if not disk_full(exc):
                raise
            return False
    return True


def request_stop(paths: ProjectPaths, name: str, stop_workers: bool) -> None:
    """Ask a daemon to stop (it stops its peer keeper at once); no answer is fine."""
    try:
        call(paths, name, "shutdown", {"stop_workers": stop_workers, "reason": "aura down"}, timeout=2.0)
    except (NotRunning, RemoteError):
        pass


def stop_daemon(paths: ProjectPaths, name: str, stop_workers: bool, wait: float = 15.0) -> str:
    """Ask a daemon to stop; if it does not, SIGTERM then SIGKILL it by PID (start time checked)."""
    rec = daemon_record(paths, name)
    if rec is None:
        return "not running"
    pid, created = rec["pid"], rec.get("create_time")
    try:
        call(paths, name, "shutdown", {"stop_workers": stop_workers, "reason": "aura down"}, timeout=2.0)
    except (NotRunning, RemoteError):
        pass
    if _wait_gone(pid, created, wait):
        return f"stopped (pid {pid})"
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        if is_alive(pid, created):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            if _wait_gone(pid, created, grace):
                return f"stopped with {signal.Signals(sig).name} (pid {pid})"
    return f"still running (pid {pid})" if is_alive(pid, created) else f"stopped (pid {pid})"


def _wait_gone(pid: int, created: float | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid, created):
            return True
        time.sleep(0.05)
    return not is_alive(pid, created)
