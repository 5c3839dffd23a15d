"""`aura up` and `aura down`: start the three daemons, wait until each answers, stop them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from .control import call, daemon_record, request_stop, running_daemons, set_desired, stop_daemon, NotRunning
from .fsutil import atomic_write_json
from .paths import DAEMONS, ProjectPaths
from .peers import lock_is_held, start_daemon

READY_TIMEOUT = 20.0
START_STAGES = (("supervisor", "watchdog"), ("brain",))
STOP_ORDER = ("brain", "supervisor", "watchdog")  # enforcement stays on while workers stop


class LaunchError(Exception):
    pass


def already_running(paths: ProjectPaths) -> str | None:
    live = running_daemons(paths)
    if live:
        parts = ", ".join(f"{n} pid {r['pid']}" for n, r in live.items())
        return f"Aura is already running in {paths.root} ({parts}); use `aura status`, or `aura down` first"
    held = [n for n in DAEMONS if lock_is_held(paths.lockfile(n))]
    if held:
        return f"Aura is starting or stopping in {paths.root} ({', '.join(held)} holds its lock); try again shortly"
    return None


def daemon_argv(name: str, paths: ProjectPaths, task: Path, config_file: Path | None, overrides: tuple[str, ...]) -> list[str]:
    argv = [sys.executable, "-m", "aura.daemon", name, "--project", str(paths.root)]
    if config_file is not None:
        argv += ["--config", str(Path(config_file).resolve())]
    for item in overrides:
        argv += ["-O", item]
    if name == "brain":
        argv += ["--task", str(task)]
    return argv


def write_launch(paths: ProjectPaths, task: Path, config_file: Path | None, overrides: tuple[str, ...]) -> dict:
    spec = {"desired": "up", "started_at": time.time(), "cwd": str(paths.root), "task": str(task),
            "daemons": {n: {"argv": daemon_argv(n, paths, task, config_file, overrides)} for n in DAEMONS},
            "env": {} if paths.default_data else {"AURA_DATA_DIR": str(paths.data)}}
    atomic_write_json(paths.launch_file, spec, mode=0o600)
    return spec


def start_all(paths: ProjectPaths, task: Path, config_file: Path | None, overrides: tuple[str, ...],
              echo: Callable[[str], None]) -> dict[str, int]:
    """Start every daemon and wait until each answers `ping`; on failure stop what started.

    The brain starts last, once the supervisor answers, so its first cycle can spawn at once."""
    paths.ensure()
    spec = write_launch(paths, task, config_file, overrides)
    pids: dict[str, int] = {}
    deadline = time.monotonic() + READY_TIMEOUT
    for stage in START_STAGES:
        children = {name: start_daemon(spec, name, paths.stdio_file(name)) for name in stage}
        for name in stage:
            pids[name] = _wait_ready(paths, name, children[name], deadline)
            echo(f"  {name:<10} pid {pids[name]}")
    return pids


def _wait_ready(paths: ProjectPaths, name: str, child: subprocess.Popen, deadline: float) -> int:
    while True:
        code = child.poll()
        if code is not None and daemon_record(paths, name) is None:
            stop_all(paths, stop_workers=False, echo=lambda s: None)
            raise LaunchError(f"the {name} exited with code {code} while starting:\n{_tail(paths.stdio_file(name))}")
        if daemon_record(paths, name) is not None:
            try:
                return call(paths, name, "ping", timeout=1.0)["pid"]
            except NotRunning:
                pass
        if time.monotonic() > deadline:
            stop_all(paths, stop_workers=False, echo=lambda s: None)
            raise LaunchError(f"the {name} did not answer within {READY_TIMEOUT:g}s; see {paths.stdio_file(name)}")
        time.sleep(0.02)


def stop_all(paths: ProjectPaths, stop_workers: bool, echo: Callable[[str], None]) -> bool:
    if not set_desired(paths, "down"):  # a full disk: no keeper may restart a peer stopped before it
        echo("  (the disk is full: launch.json could not be updated; asking every daemon to stop at once)")
        for name in STOP_ORDER:
            request_stop(paths, name, stop_workers=stop_workers and name == "supervisor")
    ok = True
    for name in STOP_ORDER:
        result = stop_daemon(paths, name, stop_workers=stop_workers and name == "supervisor")
        ok = ok and not result.startswith("still running")
        echo(f"  {name:<10} {result}")
    return ok


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def journal_positions(paths: ProjectPaths) -> dict[str, int]:
    """Where each journal ends now: `aura up` shows every event after this point."""
    from ipc.events import last_seq
    return {n: last_seq(paths.journal(n)) for n in DAEMONS}


def follow_events(paths: ProjectPaths, echo: Callable[[str], None], stop_on_finish: bool = True,
                  cursors: dict[str, int] | None = None) -> int:
    """Print the run's events until it finishes or the user presses Ctrl-C; return an exit code."""
    import zmq

    from ipc.events import EventFeed

    from .eventfmt import format_event

    ctx = zmq.Context()
    feed = EventFeed(ctx, {n: (paths.pub_endpoint(n), paths.journal(n)) for n in DAEMONS},
                     cursors=cursors if cursors is not None else journal_positions(paths))
    interrupted = []
    old = signal.signal(signal.SIGINT, lambda *_: interrupted.append(1))
    code = 0
    try:
        last_catch_up = 0.0
        while not interrupted:
            events = feed.drain() if feed.sock.poll(250) else []
            if time.monotonic() - last_catch_up > 1.0:  # a slow-joining SUB misses the first events
                events += feed.catch_up()
                last_catch_up = time.monotonic()
            for ev in events:
                line = format_event(ev)
                if line:
                    echo(line)
                if stop_on_finish and ev.get("kind") == "cycle_done" and ev.get("data", {}).get("finished"):
                    return 0 if _run_ok(paths) else 1
            if not running_daemons(paths):
                echo("all daemons have stopped")
                return 1
        echo("\nCtrl-C: stopping Aura and its workers")
        code = 130
    finally:
        signal.signal(signal.SIGINT, old)
        feed.close()
        ctx.term()
    return code


def _run_ok(paths: ProjectPaths) -> bool:
    try:
        status = call(paths, "brain", "status", timeout=2.0)
    except Exception:
        return False
    c = status.get("counts") or {}
    return sum(c.values()) == c.get("completed", 0) + c.get("archived", 0)
