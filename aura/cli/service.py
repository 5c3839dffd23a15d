"""`aura service ...`: install this project's daemons as systemd units or LaunchAgents.

Loaded by the `aura` group when asked for (aura.cli.group). Imports stay light (no anthropic,
no zmq) so these commands start fast. The machine can be redirected with AURA_SERVICE_HOME,
AURA_SYSTEMCTL, AURA_LOGINCTL, AURA_LAUNCHCTL, AURA_SYSTEM_UNIT_DIR and AURA_SERVICE_MANAGER
(see `Machine.from_env`), which is how the tests avoid touching a real service manager.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from aura.runtime.paths import find_project_root
from aura.service import (
    LAUNCHD,
    SYSTEMD,
    Machine,
    ProjectService,
    Scope,
    ServiceError,
    apply,
    describe,
    linger_warning,
    plan_install,
    plan_uninstall,
    preview_manager,
    running_manager,
    status_lines,
)


def _project_root() -> Path:
    """The folder holding `.aura/` at or above the current one, else the current folder."""
    return find_project_root(Path.cwd()) or Path.cwd().resolve()


F = TypeVar("F", bound=Callable[..., object])


def _scope_options(func: F) -> F:
    """--user (default) / --system, both stored in `scope`."""
    func = click.option(
        "--system", "scope", flag_value="system", help="System units in /etc/systemd/system (needs root)."
    )(func)
    return click.option(
        "--user", "scope", flag_value="user", default=True, help="Units of your user manager (default)."
    )(func)


def _fail(exc: ServiceError) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group()
def service() -> None:
    """Run this project's daemons under systemd or launchd, which restart them and keep logs."""


@service.command()
@_scope_options
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print every file with its content; write and run nothing (works "
    "without a service manager: a preview of this platform's units).",
)
@click.option(
    "--manager",
    type=click.Choice([SYSTEMD, LAUNCHD]),
    default=None,
    help="The service manager to write for (default: the one running here; for a dry run without "
    "one, this platform's).",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Optional KEY=value file read at start (default: .aura/service.env).",
)
@click.option(
    "--watchdog-sec",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="systemd WatchdogSec= (0: off); the daemons must ping at half of it.",
)
@click.argument("task", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def install(
    scope: Scope, dry_run: bool, manager: str | None, env_file: Path | None, watchdog_sec: int, task: Path
) -> None:
    """Write the unit files for TASK in this project, then enable and start them."""
    machine = Machine.from_env()
    svc = ProjectService.for_project(_project_root(), task, env_file, watchdog_sec)
    preview: str | None = None
    try:
        if dry_run:
            chosen, preview = preview_manager(machine, manager)
            plan = plan_install(svc, machine, scope, chosen)
            click.echo(f"dry run, a preview: nothing is written, started or stopped ({plan.manager}, --{scope}).")
            if preview:
                click.echo(preview)
            describe(plan, click.echo)
        else:
            plan = plan_install(svc, machine, scope, running_manager(machine, manager))
            apply(plan, click.echo)
    except ServiceError as exc:
        raise _fail(exc) from exc
    for note in plan.notes:
        click.echo(note)
    if plan.manager == SYSTEMD and scope == "user" and not preview:
        warning = linger_warning(machine)
        if warning:
            click.echo(warning)


@service.command()
@_scope_options
@click.option("--dry-run", is_flag=True, help="Print what would be stopped and removed; change nothing.")
def uninstall(scope: Scope, dry_run: bool) -> None:
    """Stop and disable this project's units and remove the files install wrote.

    Workers that are still running are left to the supervisor's own shutdown: stopping its unit
    signals the supervisor alone.
    """
    root = _project_root()
    try:
        plan = plan_uninstall(root, Machine.from_env(), scope)
        if not plan.files:
            click.echo(f"nothing installed for {root} ({plan.manager}, --{scope}).")
            return
        if dry_run:
            click.echo("dry run: nothing is removed, started or stopped.")
            describe(plan, click.echo)
        else:
            apply(plan, click.echo)
    except ServiceError as exc:
        raise _fail(exc) from exc


@service.command()
def status() -> None:
    """Show which unit files are installed for this project and what the manager says of them."""
    try:
        _installed, lines = status_lines(_project_root(), Machine.from_env())
    except ServiceError as exc:
        raise _fail(exc) from exc
    for line in lines:
        click.echo(line)
