"""Commands that start and stop a run: up, down, start (another spelling of up, for scripts;
docs/migrating.md) and restart. The steps themselves are in aura.startstop; these commands print and exit."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import paths_of, project_root


@click.command()
@click.argument("task", type=click.Path(path_type=Path))
@click.option("-d", "--detach", is_flag=True, help="Start in the background and return once all three answer.")
@click.option(
    "--stay", is_flag=True, help="Foreground: keep running after the run finishes (watch for task-file edits)."
)
@click.pass_context
def up(ctx: click.Context, task: Path, detach: bool, stay: bool) -> None:
    """Start the brain, supervisor and watchdog on TASK (a Markdown goal file)."""
    from ..interrupts import StopSignals, steady_output
    from ..runtime.paths import ProjectPaths
    from ..startstop import (
        StartError,
        announce,
        backend_notes,
        checked_settings,
        follow_then_stop,
        git_notes,
        journal_positions,
        plan_up,
        read_goal,
        shim_notes,
        slurm_notes,
        start_run,
    )

    # from the first line on, a reader that goes away (`aura up -d | head -1`) costs only the output
    out = ctx.with_resource(steady_output())
    root = project_root(ctx)
    paths = ProjectPaths.for_root(root)
    config_file, overrides = ctx.obj["config"], ctx.obj["overrides"]
    try:
        tf = read_goal(task)
        cfg = checked_settings(
            root, paths, config_file, overrides, warn=lambda line: click.echo(f"aura: warning: {line}", err=True)
        )
        plan = plan_up(paths, tf.path)
        notes = backend_notes(cfg, tf) + git_notes(cfg, paths)
        if not plan.partial:
            notes += shim_notes(cfg) + slurm_notes(cfg, paths, click.echo)
        announce(cfg, tf, notes, plan, bool(config_file or overrides), click.echo)
    except StartError as exc:
        raise click.ClickException(str(exc)) from None
    cursors = journal_positions(paths)
    # a closed pipe or terminal, Ctrl-C, SIGTERM or SIGHUP never leaves the run half started or
    # orphaned: the start finishes, then a signal stops everything gracefully
    with StopSignals(hangup=not detach) as stop:
        try:
            start_run(paths, tf.path.resolve(), config_file, overrides, click.echo, plan)
        except StartError as exc:
            raise click.ClickException(str(exc)) from None
        if detach and not stop.received:
            click.echo(
                f"Running in the background in {root}.\n  aura status · aura ps · aura logs -f · aura wake · aura down"
            )
            return
        if not detach:
            click.echo("Streaming events; Ctrl-C stops Aura and its workers.")
        code = follow_then_stop(paths, click.echo, stay, cursors, stop, out)
    sys.exit(code)


@click.command("start", hidden=True)
@click.option("--task-file", required=True, type=click.Path(path_type=Path))
@click.pass_context
def start(ctx: click.Context, task_file: Path) -> None:
    """The original tool's `aura start --task-file PATH` (same as `aura up PATH`)."""
    ctx.invoke(up, task=task_file, detach=False, stay=False)


@click.command()
@click.option("--keep-workers", is_flag=True, help="Leave running workers alive; the next `aura up` re-adopts them.")
@click.pass_context
def down(ctx: click.Context, keep_workers: bool) -> None:
    """Stop the three daemons and (unless --keep-workers) their workers."""
    from ..control import running_daemons
    from ..interrupts import StopSignals, steady_output
    from ..startstop import stop_all

    paths = paths_of(ctx)
    if not running_daemons(paths):
        click.echo(f"Aura is not running in {paths.root}.")
        return
    with steady_output(), StopSignals():  # a closed pipe or a signal must not stop it half-way
        click.echo(f"Stopping Aura in {paths.root}" + (" (workers keep running)" if keep_workers else "") + ":")
        ok = stop_all(paths, stop_workers=not keep_workers, echo=click.echo)
    if not ok:
        sys.exit(1)


@click.command()
@click.argument("task_file", type=click.Path(path_type=Path))
@click.option("-d", "--detach", is_flag=True, help="Start in the background (as `aura up -d`).")
@click.pass_context
def restart(ctx: click.Context, task_file: Path, detach: bool) -> None:
    """Start TASK_FILE from scratch: stop the daemons and workers, move the old run aside
    (.aura/state becomes .aura/state.restart-<time>, with the run's workers, workspaces, events,
    summaries and memory inside it under previous-run/), then `aura up`. Nothing is deleted."""
    from ..brain.taskfile import TaskFileError, read_task_file
    from ..control import running_daemons
    from ..maintenance import archive_run, unfinished_workers
    from ..runtime.config import ConfigError, load_config
    from ..runtime.paths import ProjectPaths
    from ..runtime.settings_check import check_start
    from ..startstop import already_running, stop_all

    if not task_file.is_file():
        raise click.ClickException(f"task file {task_file} does not exist. Nothing was stopped or moved.")
    try:
        read_task_file(task_file)
    except TaskFileError as exc:
        raise click.ClickException(f"{exc}. Nothing was stopped or moved.") from None
    root = project_root(ctx)
    paths = ProjectPaths.for_root(root)
    try:  # a setting `up` would refuse must not cost the running run
        check_start(load_config(root, ctx.obj["config"], ctx.obj["overrides"]), paths.watchdog_dir)
    except ConfigError as exc:
        raise click.ClickException(f"{exc}. Nothing was stopped or moved.") from None
    if running_daemons(paths):
        click.echo(f"Stopping Aura in {paths.root}:")
        if not stop_all(paths, stop_workers=True, echo=click.echo):
            raise click.ClickException("a daemon did not stop (see above); nothing was moved")
    busy = already_running(paths)
    if busy:
        raise click.ClickException(f"{busy}. Nothing was moved.")
    left = unfinished_workers(paths)
    if left:
        raise click.ClickException(
            f"workers still running without daemons ({', '.join(left)}); `aura up` "
            "re-adopts them and `aura down` then stops them. Nothing was moved."
        )
    archive = archive_run(paths)
    if archive is not None:
        click.echo(f"The previous run is kept in {archive}")
    ctx.invoke(up, task=task_file, detach=detach, stay=False)
