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

from aura.ipc.client import Client, DaemonUnavailable, RemoteError

from .runtime.fsutil import disk_full, read_json, write_json_even_if_full
from .runtime.paths import DAEMONS, ProjectPaths, find_project_root
from .runtime.pidfile import is_alive, live_record

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
    return update_launch(paths, desired=desired)


def update_launch(paths: ProjectPaths, **fields: Any) -> bool:
    """Change fields of `.aura/run/launch.json` (a field set to None is removed); False when a full
    disk left no room to record the change."""
    spec = read_json(paths.launch_file) or {}
    if spec:
        for key, value in fields.items():
            if value is None:
                spec.pop(key, None)
            else:
                spec[key] = value
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
                if sig == signal.SIGTERM:
                    os.kill(pid, signal.SIGCONT)  # a stopped daemon handles SIGTERM only once it runs again
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


def restart_notes(paths: ProjectPaths) -> tuple[dict[str, str], dict[str, str]]:
    """From the peer keepers' records: the daemons they gave up on (and why), and for the others
    how often they were restarted since `aura up` and why the last time."""
    gave_up: dict[str, str] = {}
    restarted: dict[str, str] = {}
    spec = read_json(paths.launch_file)
    launch = spec.get("started_at") if isinstance(spec, dict) else None
    for keeper in ("supervisor", "watchdog"):
        rec = read_json(paths.run_dir / f"{keeper}.peers.json") or {}
        if not isinstance(rec, dict) or rec.get("launch") != launch:
            continue  # a record of an earlier `aura up`
        for name, info in (rec.get("peers") or {}).items():
            if not isinstance(info, dict):
                continue
            if info.get("gave_up"):
                gave_up[name] = str(info["gave_up"])
            count = int(info.get("count") or len(info.get("restarts") or []))
            if count:
                why = f": {info['last_reason']}" if info.get("last_reason") else ""
                restarted[name] = f"restarted {count}x{why}"
    return gave_up, restarted


def missing_hint(paths: ProjectPaths) -> str | None:
    """The command that starts the missing daemons of a run that should be up, for `aura status`."""
    spec = read_json(paths.launch_file) or {}
    task = spec.get("task") if isinstance(spec, dict) else None
    if not task or spec.get("desired") != "up":
        return None
    shown = str(task)
    try:
        relative = os.path.relpath(shown)
        shown = relative if len(relative) < len(shown) else shown
    except ValueError:
        pass
    return f"`aura up {shown}` starts the missing daemons; running workers are kept"
