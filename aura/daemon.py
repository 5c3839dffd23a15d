"""The entry point of every Aura daemon: picks the daemon's class by name and runs its loop
(aura.runtime.loop). systemd and launchd units and `.aura/run/launch.json` start it.

`python -m aura.daemon {supervisor|watchdog|brain} --project ROOT [--managed]` starts one.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # A daemon logs JSON lines, yet structlog imports its console renderer with itself, and that
    # imports rich wherever rich is installed (it is, for `aura top`): a quarter of every daemon's
    # start, and of its restart after a crash. A None in sys.modules makes that import fail at once.
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]

import argparse
import json
from pathlib import Path

from aura.runtime.config import ConfigError, load_config
from aura.runtime.crashlog import crash_line
from aura.runtime.loop import Daemon
from aura.runtime.paths import ProjectPaths
from aura.runtime.proctitle import set_process_name
from aura.runtime.settings_check import check_start

EXIT_CONFIG = 2


EXIT_INTERNAL = 70  # EX_SOFTWARE


def daemon_class(name: str) -> type[Daemon]:
    if name == "supervisor":
        from aura.supervisor.main import SupervisorDaemon

        return SupervisorDaemon
    if name == "watchdog":
        from aura.watchdog.main import WatchdogDaemon

        return WatchdogDaemon
    if name == "brain":
        from aura.brain.main import BrainDaemon

        return BrainDaemon
    raise SystemExit(f"unknown daemon {name!r}: expected supervisor, watchdog or brain")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aura.daemon", description="Run one Aura daemon.")
    parser.add_argument("name", choices=["supervisor", "watchdog", "brain"])
    parser.add_argument("--project", required=True, type=Path, help="project root (where `aura up` ran)")
    parser.add_argument("--task", type=Path, default=None, help="task file (brain only)")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("-O", "--override", action="append", default=[])
    parser.add_argument(
        "--overrides-file",
        type=Path,
        default=None,
        help="private JSON file of -O values (`aura up` keeps them off the command line)",
    )
    parser.add_argument("--managed", action="store_true", help="run under systemd/launchd: no peer restarts")
    args = parser.parse_args(argv)
    # before any thread starts (they inherit it): `pkill python` / `killall python` from a worker
    # must not match a daemon
    set_process_name(f"aura-{args.name}")
    paths = ProjectPaths.for_root(args.project)
    try:
        return _start(args, paths, list(argv if argv is not None else sys.argv[1:]))
    except Exception as exc:  # a daemon's start is a command too: one line, the traceback in a file
        print(f"aura {args.name}: {crash_line(exc, paths.logs_dir / f'{args.name}-errors.log')}", file=sys.stderr)
        return EXIT_INTERNAL


def _start(args: argparse.Namespace, paths: ProjectPaths, argv: list[str]) -> int:
    warnings: list[str] = []
    try:
        overrides = [*read_overrides(args.overrides_file), *args.override]
        cfg = load_config(paths.root, args.config, overrides)
        check_start(cfg, paths.watchdog_dir if args.name == "watchdog" else None, warn=warnings.append)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"aura {args.name}: configuration error: {line}", file=sys.stderr)
        return EXIT_CONFIG
    cls = daemon_class(args.name)
    daemon = cls(paths, cfg, managed=args.managed, argv=argv)
    for line in warnings:
        daemon.log.warning("setting_ignored", detail=line)
    if args.task is not None and hasattr(daemon, "task_file"):
        daemon.task_file = args.task.resolve()
    return daemon.run()


def read_overrides(path: Path | None) -> list[str]:
    """The -O values `aura up` wrote for the daemons (see aura.startstop.write_launch)."""
    if path is None:
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the overrides file {path}: {exc}") from None
    items = data.get("overrides") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"the overrides file {path} holds no list of KEY=VALUE strings")
    return items


if __name__ == "__main__":
    sys.exit(main())
