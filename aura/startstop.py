"""Starting and stopping a run: the steps of `aura up` (read the goal, check the settings, plan what
to start, say what will happen, start the daemons, follow the events) and of `aura down`.

No step prints by itself or knows the command line: each takes an `echo` and raises StartError
with the one line a user reads.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .control import (
    NotRunning,
    call,
    daemon_record,
    request_stop,
    running_daemons,
    set_desired,
    stop_daemon,
    update_launch,
)
from .interrupts import Output, StopSignals
from .runtime.fsutil import atomic_write_json
from .runtime.paths import DAEMONS, ProjectPaths, remove_runtime_dir_if_empty
from .runtime.peers import launch_spec, lock_is_held, start_daemon
from .runtime.pidfile import start_time
from .runtime.vocab import LOCAL_PLANNER, SHELL, TASK_DONE

if TYPE_CHECKING:
    from .brain.taskfile import TaskFile
    from .runtime.config import Config

READY_TIMEOUT = 20.0
START_MARGIN = 10.0  # past READY_TIMEOUT, the peer keepers stop waiting for an `aura up` that hangs
START_STAGES = (("supervisor", "watchdog"), ("brain",))
STOP_ORDER = ("brain", "supervisor", "watchdog")  # enforcement stays on while workers stop
EXIT_OUTPUT_GONE = 128 + signal.SIGPIPE


class StartError(Exception):
    """Why nothing (more) was started, in one line."""


@dataclass
class UpPlan:
    """What `aura up` does here: start all three daemons, or only those missing from a run
    that is partly up (a keeper gave up on one, or one was killed)."""

    missing: tuple[str, ...] = DAEMONS
    running: dict[str, dict] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        return bool(self.running)


# -- the steps of `aura up`, in their order -------------------------------------------------------


def read_goal(task: Path) -> TaskFile:
    """The task file, read and checked before anything else happens."""
    from .brain.taskfile import TaskFileError, read_task_file

    try:
        return read_task_file(task)
    except TaskFileError as exc:
        raise StartError(f"{exc}. Nothing was started.") from None


def checked_settings(
    root: Path, paths: ProjectPaths, config_file: Path | None, overrides: tuple[str, ...], warn: Callable[[str], None]
) -> Config:
    """The run's configuration; a setting that cannot work, or a package shadowing Aura's own, is
    refused here, before anything starts."""
    from .doctor import fatal_problems
    from .runtime.config import ConfigError, load_config
    from .runtime.settings_check import check_start, refused

    try:
        cfg = load_config(root, config_file, overrides)
        check_start(cfg, paths.watchdog_dir, warn=warn)
    except ConfigError as exc:
        raise StartError(refused(exc)) from None
    for problem in fatal_problems():
        raise StartError(problem)
    return cfg


def plan_up(paths: ProjectPaths, task: Path) -> UpPlan:
    """Decide what `aura up TASK` starts; StartError (one line) when it must start nothing."""
    live = running_daemons(paths)
    busy = already_running(paths)
    if not live:
        if busy:
            raise StartError(busy)
        return UpPlan()
    missing = tuple(n for n in DAEMONS if n not in live)
    spec = launch_spec(paths.run_dir) or {}
    if (
        not missing
        or any(r.get("managed") for r in live.values())
        or not all(n in spec.get("daemons", {}) for n in missing)
    ):
        raise StartError(busy or f"Aura is already running in {paths.root}")
    held = [n for n in missing if lock_is_held(paths.lockfile(n))]
    if held:
        raise StartError(
            f"Aura is starting or stopping in {paths.root} ({', '.join(held)} holds its lock); try again shortly"
        )
    running_task = Path(spec.get("task") or "")
    if running_task != Path(task).resolve():
        raise StartError(
            f"Aura runs part of another task in {paths.root} ({running_task}: "
            f"{', '.join(missing)} down, {_pids(live)}); `aura up {running_task}` starts the missing "
            "daemons, `aura down` stops the others first"
        )
    return UpPlan(missing=missing, running=live)


def backend_notes(cfg: Config, tf: TaskFile) -> list[str]:
    """What `aura up` says about the worker backends; StartError when the goal needs one that cannot
    start here."""
    from .doctor import backend_checks

    checks = backend_checks(cfg, tf)
    for check in checks:
        if check.fatal:
            raise StartError(check.detail)
    return [check.detail for check in checks]


def git_notes(cfg: Config, paths: ProjectPaths) -> list[str]:
    """What `aura up` says about git mode; StartError when a setting asks for what the folder cannot
    give. A run already going keeps the choice its brain made (in its state)."""
    from .brain.state import read_state
    from .runtime.gitmode import decide

    known = (read_state(paths.state_dir) or {}).get("git") or {}
    if known.get("enabled"):
        return [f"git mode: the run goes on on branch {known.get('branch')}"]
    if "enabled" in known:
        return []
    decision = decide(cfg, paths.root, paths.data)
    if decision.refusal:
        raise StartError(f"{decision.refusal}. Nothing was started.")
    return decision.notes


def shim_notes(cfg: Config) -> list[str]:
    """AURA_SHIM=native: the native shim built now (the supervisor then finds it), or StartError."""
    from .supervisor.nativeshim import NATIVE, find

    if cfg.text("AURA_SHIM") != NATIVE:
        return []
    found = find(NATIVE)
    if found.path is None:
        raise StartError(f"AURA_SHIM=native: the native shim cannot be built: {found.why}. Nothing was started.")
    return []


def slurm_notes(cfg: Config, paths: ProjectPaths, echo: Callable[[str], None]) -> list[str]:
    """AURA_EXECUTOR=slurm: Slurm's commands and the data folder checked from a node, or StartError."""
    from .slurmprobe import ProbeError, check_slurm

    try:
        line = check_slurm(cfg, paths.data, warn=lambda text: echo(f"  warning: {text}"))
    except ProbeError as exc:
        raise StartError(f"{exc}. Nothing was started.") from None
    return [line] if line else []


def announce(
    cfg: Config, tf: TaskFile, notes: list[str], plan: UpPlan, own_settings: bool, echo: Callable[[str], None]
) -> None:
    """The lines `aura up` prints before it starts anything (`own_settings`: it was given --config or
    -O); StartError for a model brain Aura has no price for under a run budget."""
    echo(f"Aura {__version__}: {tf.mission}")
    for note in notes:
        echo(f"  {note}")
    if not cfg.text("AURA_API_KEY") and cfg.text("AURA_PLANNER") in ("auto", LOCAL_PLANNER):
        echo("  no API key configured: the offline `local` planner runs the task file's checklist")
    if cfg.number("AURA_BUDGET_USD") <= 0 and (cfg.text("AURA_API_KEY") or cfg.text("AURA_LAYER2_BACKEND") != SHELL):
        echo(
            "  warning: no run budget (AURA_BUDGET_USD): nothing stops the spending; "
            "`aura setup -y --budget USD` sets one, `aura budget USD` changes it while running"
        )
    _price_check(cfg, echo)
    if plan.partial and own_settings:
        echo(
            "  the missing daemons start with the settings of the running ones; "
            "`aura down` then `aura up` changes settings"
        )


def _price_check(cfg: Config, echo: Callable[[str], None]) -> None:
    """A model brain Aura has no price for: refused with a run budget, a warning without."""
    from .brain.pricing import start_notice
    from .runtime.config import ConfigError

    try:
        line, refuse = start_notice(cfg)
    except ConfigError as exc:
        raise StartError(f"configuration: {exc}") from None
    if refuse:
        raise StartError(f"{line}. Nothing was started.")
    if line:
        echo(f"  warning: {line}")


def start_run(
    paths: ProjectPaths,
    task: Path,
    config_file: Path | None,
    overrides: tuple[str, ...],
    echo: Callable[[str], None],
    plan: UpPlan,
) -> dict[str, int]:
    """Start the daemons (start_all), then list the run among the user's projects (`aura projects`)."""
    pids = start_all(paths, task, config_file, overrides, echo, plan)
    from .projects import register

    register(paths.root, task)
    return pids


def follow_then_stop(
    paths: ProjectPaths,
    echo: Callable[[str], None],
    stay: bool,
    cursors: dict[str, int],
    stop: StopSignals,
    out: Output,
) -> int:
    """A foreground `aura up` after the start: print the events until the run finishes (or, with
    `stay`, until a stop signal), then stop the daemons and workers; the command's exit code."""
    code = follow_events(paths, echo, stop_on_finish=not stay, cursors=cursors, stop=stop, out=out)
    echo("Stopping:")
    stop_all(paths, stop_workers=True, echo=echo)
    return code


def _pids(live: dict[str, dict]) -> str:
    return ", ".join(f"{n} pid {r['pid']}" for n, r in live.items())


def already_running(paths: ProjectPaths) -> str | None:
    live = running_daemons(paths)
    if live:
        parts = ", ".join(f"{n} pid {r['pid']}" for n, r in live.items())
        return f"Aura is already running in {paths.root} ({parts}); use `aura status`, or `aura down` first"
    held = [n for n in DAEMONS if lock_is_held(paths.lockfile(n))]
    if held:
        return f"Aura is starting or stopping in {paths.root} ({', '.join(held)} holds its lock); try again shortly"
    return None


def overrides_file(paths: ProjectPaths) -> Path:
    return paths.run_dir / "overrides.json"


def daemon_argv(
    name: str, paths: ProjectPaths, task: Path, config_file: Path | None, overrides: tuple[str, ...]
) -> list[str]:
    """The daemon's command line. `-O` values are never on it (any of them may be a key, and every
    process's argv is public through `ps`): it names the private file write_launch puts them in."""
    argv = [sys.executable, "-m", "aura.daemon", name, "--project", str(paths.root)]
    if config_file is not None:
        argv += ["--config", str(Path(config_file).resolve())]
    if overrides:
        argv += ["--overrides-file", str(overrides_file(paths))]
    if name == "brain":
        argv += ["--task", str(task)]
    return argv


def write_launch(paths: ProjectPaths, task: Path, config_file: Path | None, overrides: tuple[str, ...]) -> dict:
    """launch.json, which peers restart daemons from, and the 0600 file holding the `-O` values."""
    if overrides:
        atomic_write_json(overrides_file(paths), {"overrides": list(overrides)}, mode=0o600)
    else:
        overrides_file(paths).unlink(missing_ok=True)
    spec = {
        "desired": "up",
        "started_at": time.time(),
        "cwd": str(paths.root),
        "task": str(task),
        "daemons": {n: {"argv": daemon_argv(n, paths, task, config_file, overrides)} for n in DAEMONS},
        "env": {} if paths.default_data else {"AURA_DATA_DIR": str(paths.data)},
    }
    atomic_write_json(paths.launch_file, spec, mode=0o600)
    return spec


def start_all(
    paths: ProjectPaths,
    task: Path,
    config_file: Path | None,
    overrides: tuple[str, ...],
    echo: Callable[[str], None],
    plan: UpPlan | None = None,
) -> dict[str, int]:
    """Start every daemon (or, for a partly running run, the missing ones with the run's own
    launch record) and wait until each answers `ping`; on failure stop what started.

    The brain starts last, once the supervisor answers, so its first cycle can spawn at once.
    While this runs, launch.json says so, and the daemons' peer keepers leave the start to it."""
    paths.ensure()
    plan = plan or UpPlan()
    if plan.partial:
        spec = launch_spec(paths.run_dir) or {}
        echo(f"  partly running ({_pids(plan.running)}); starting the {', '.join(plan.missing)}")
    else:
        spec = write_launch(paths, task, config_file, overrides)
    me = os.getpid()
    update_launch(
        paths,
        desired="up",
        starting={"pid": me, "create_time": start_time(me), "until": time.time() + READY_TIMEOUT + START_MARGIN},
    )
    pids: dict[str, int] = {}
    started: list[str] = []
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        for stage in START_STAGES:
            names = [n for n in stage if n in plan.missing]
            children = {name: start_daemon(spec, name, paths.stdio_file(name)) for name in names}
            started += names
            for name in names:
                try:
                    pids[name] = _wait_ready(paths, name, children[name], deadline)
                except StartError:
                    if plan.partial:
                        for n in started:
                            stop_daemon(paths, n, stop_workers=False)
                    else:
                        stop_all(paths, stop_workers=False, echo=lambda s: None)
                    raise
                echo(f"  {name:<10} pid {pids[name]}")
    finally:
        update_launch(paths, starting=None)
    return pids


def _wait_ready(paths: ProjectPaths, name: str, child: subprocess.Popen, deadline: float) -> int:
    while True:
        code = child.poll()
        if code is not None and daemon_record(paths, name) is None:
            raise StartError(f"the {name} exited with code {code} while starting:\n{_tail(paths.stdio_file(name))}")
        if daemon_record(paths, name) is not None:
            try:
                return call(paths, name, "ping", timeout=1.0)["pid"]
            except NotRunning:
                pass
        if time.monotonic() > deadline:
            raise StartError(f"the {name} did not answer within {READY_TIMEOUT:g}s; see {paths.stdio_file(name)}")
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
    if ok:
        remove_runtime_dir_if_empty(paths)
    return ok


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def journal_positions(paths: ProjectPaths) -> dict[str, int]:
    """Where each journal ends now: `aura up` shows every event after this point."""
    from aura.ipc.events import last_seq

    return {n: last_seq(paths.journal(n)) for n in DAEMONS}


def follow_events(
    paths: ProjectPaths,
    echo: Callable[[str], None],
    stop_on_finish: bool = True,
    cursors: dict[str, int] | None = None,
    stop: StopSignals | None = None,
    out: Output | None = None,
) -> int:
    """Print the run's events until it finishes, a stop signal arrives (Ctrl-C, SIGTERM, SIGHUP)
    or the output's reader goes away; return an exit code (128 + the signal for a signal)."""
    if stop is None:
        with StopSignals() as own:
            return follow_events(paths, echo, stop_on_finish, cursors, own, out)
    import zmq

    from aura.ipc.events import EventFeed

    from .runtime.eventkinds import Kind, stream_line

    ctx = zmq.Context()
    feed = EventFeed(
        ctx,
        {n: (paths.pub_endpoint(n), paths.journal(n)) for n in DAEMONS},
        cursors=cursors if cursors is not None else journal_positions(paths),
    )
    try:
        last_catch_up = 0.0
        while not stop.received and not (out is not None and out.vanished):
            events = feed.drain() if feed.sock.poll(250) else []
            if time.monotonic() - last_catch_up > 1.0:  # a slow-joining SUB misses the first events
                events += feed.catch_up()
                last_catch_up = time.monotonic()
            for ev in events:
                line = stream_line(ev)
                if line:
                    echo(line)
                if stop_on_finish and ev.get("kind") == Kind.CYCLE_DONE and ev.get("data", {}).get("finished"):
                    return 0 if _run_ok(paths) else 1
            if not running_daemons(paths):
                echo("all daemons have stopped")
                return 1
    finally:
        feed.close()
        ctx.term()
    if not stop.received:
        return EXIT_OUTPUT_GONE  # nobody reads any more: stop as a closed terminal would
    echo(f"\n{'Ctrl-C' if stop.received == signal.SIGINT else stop.name}: stopping Aura and its workers")
    return stop.exit_code


def _run_ok(paths: ProjectPaths) -> bool:
    try:
        status = call(paths, "brain", "status", timeout=2.0)
    except Exception:
        return False
    c = status.get("counts") or {}
    return sum(c.values()) == sum(c.get(s, 0) for s in TASK_DONE)
