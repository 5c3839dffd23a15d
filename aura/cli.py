"""The `aura` command line.

Imports are deferred into each command: `aura ps`, `aura wake` and `aura status` only talk
to a daemon, must feel instant, and never import the model SDK.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from . import __version__

EXIT_NOT_RUNNING = 3
# commands that change state: output to a closed pipe is dropped rather than stopping them half-way
STEADY_COMMANDS = ("restart", "cleanup", "clean-workspaces", "service", "budget", "limits")


LAZY_COMMANDS = {"service": ("aura.service_cli", "service"), "setup": ("aura.setup_cmd", "setup"),
                 **{n: ("aura.cli_brain", n) for n in ("history", "progress", "changelog", "summaries", "projects",
                                                       "budget")},
                 **{n: ("aura.cli_maint", n.replace("-", "_")) for n in ("clean-workspaces", "cleanup", "restart",
                                                                        "token-stats", "cache-stats",
                                                                        "changelog-overview")}}


class AuraGroup(click.Group):
    """Keeps the original tool's shorthand (`aura task.md` means `aura up task.md`) and loads
    rarely used command groups only when they are asked for, so `aura ps` starts fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> Any:
        if name in LAZY_COMMANDS and name not in self.commands:
            import importlib
            module, attr = LAZY_COMMANDS[name]
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands and args[0] not in LAZY_COMMANDS and (args[0].endswith(".md") or Path(args[0]).is_file()):
            args = ["up", *args]
        return super().resolve_command(ctx, args)


@click.group(cls=AuraGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aura")
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Project folder (default: the current folder, or the nearest one above it that holds .aura/).")
@click.option("--config", "-c", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Config file (KEY=VALUE lines) that overrides the global and project files.")
@click.option("--override", "-O", "overrides", multiple=True, metavar="KEY=VALUE", help="Override one setting.")
@click.option("--workers", "-w", type=click.IntRange(min=1), default=None,
              help="Max concurrent workers (AURA_MAX_CONCURRENT_TASKS).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data folder of the run (AURA_DATA_DIR; default: <project>/.aura). Separate folders let "
                   "several runs share one project folder.")
@click.pass_context
def cli(ctx: click.Context, project: Path | None, config_file: Path | None, overrides: tuple[str, ...],
        workers: int | None, data_dir: Path | None) -> None:
    """Run an autonomous agent on one goal for hours or days without babysitting it."""
    if data_dir is not None:  # the environment carries it to the daemons, and from them to their peers
        os.environ["AURA_DATA_DIR"] = str(data_dir.resolve())
    if workers is not None:
        overrides = (*overrides, f"AURA_MAX_CONCURRENT_TASKS={workers}")
    ctx.obj = {"project": project, "config": config_file, "overrides": overrides}
    if ctx.invoked_subcommand in STEADY_COMMANDS:  # `up` and `down` guard their own output
        from .interrupts import steady_output
        ctx.with_resource(steady_output())


def _paths(ctx: click.Context, must_exist: bool = True) -> Any:
    from .control import project_paths
    paths = project_paths(ctx.obj["project"])
    if paths is None:
        if must_exist:
            raise click.ClickException("no Aura project here: no .aura/ folder in this folder or above it; "
                                       "start one with `aura up TASK.md`")
    return paths


def _fail_not_running(message: str) -> None:
    click.echo(f"aura: {message}", err=True)
    sys.exit(EXIT_NOT_RUNNING)


# -- up / down ------------------------------------------------------------------------------------

@cli.command()
@click.argument("task", type=click.Path(path_type=Path))
@click.option("-d", "--detach", is_flag=True, help="Start in the background and return once all three answer.")
@click.option("--stay", is_flag=True, help="Foreground: keep running after the run finishes (watch for task-file edits).")
@click.pass_context
def up(ctx: click.Context, task: Path, detach: bool, stay: bool) -> None:
    """Start the brain, supervisor and watchdog on TASK (a Markdown goal file)."""
    from .brain.taskfile import TaskFileError, read_task_file
    from .runtime.config import ConfigError, load_config
    from .doctor import backend_checks, fatal_problems
    from .interrupts import StopSignals, steady_output
    from .launcher import LaunchError, follow_events, journal_positions, plan_up, start_all, stop_all
    from .runtime.paths import ProjectPaths
    from .runtime.settings_check import check_start, refused

    # from the first line on, a reader that goes away (`aura up -d | head -1`) costs only the output
    out = ctx.with_resource(steady_output())
    root = Path(ctx.obj["project"] or os.environ.get("AURA_PROJECT_ROOT") or Path.cwd()).resolve()
    paths = ProjectPaths.for_root(root)
    try:
        tf = read_task_file(task)
    except TaskFileError as exc:
        raise click.ClickException(f"{exc}. Nothing was started.") from None
    try:
        cfg = load_config(root, ctx.obj["config"], ctx.obj["overrides"])
        check_start(cfg, paths.watchdog_dir, warn=lambda line: click.echo(f"aura: warning: {line}", err=True))
    except ConfigError as exc:
        raise click.ClickException(refused(exc)) from None
    for problem in fatal_problems():
        raise click.ClickException(problem)
    try:
        plan = plan_up(paths, tf.path)
    except LaunchError as exc:
        raise click.ClickException(str(exc)) from None
    backend_notes = backend_checks(cfg, tf)
    for check in backend_notes:
        if check.fatal:
            raise click.ClickException(check.detail)
    click.echo(f"Aura {__version__}: {tf.mission}")
    for check in backend_notes:
        click.echo(f"  {check.detail}")
    if not cfg.str("AURA_API_KEY") and cfg.str("AURA_PLANNER") in ("auto", "local"):
        click.echo("  no API key configured: the offline `local` planner runs the task file's checklist")
    if cfg.float("AURA_BUDGET_USD") <= 0 and (cfg.str("AURA_API_KEY") or cfg.str("AURA_LAYER2_BACKEND") != "shell"):
        click.echo("  warning: no run budget (AURA_BUDGET_USD): nothing stops the spending; "
                   "`aura setup -y --budget USD` sets one, `aura budget USD` changes it while running")
    _price_check(cfg)
    if plan.partial and (ctx.obj["config"] or ctx.obj["overrides"]):
        click.echo("  the missing daemons start with the settings of the running ones; "
                   "`aura down` then `aura up` changes settings")
    cursors = journal_positions(paths)
    # a closed pipe or terminal, Ctrl-C, SIGTERM or SIGHUP never leaves the run half started or
    # orphaned: the start finishes, then a signal stops everything gracefully
    with StopSignals(hangup=not detach) as stop:
        try:
            start_all(paths, tf.path.resolve(), ctx.obj["config"], ctx.obj["overrides"], click.echo, plan)
        except LaunchError as exc:
            raise click.ClickException(str(exc)) from None
        from .projects import register
        register(root, tf.path.resolve())
        if detach and not stop.received:
            click.echo(f"Running in the background in {root}.\n"
                       "  aura status · aura ps · aura logs -f · aura wake · aura down")
            return
        if not detach:
            click.echo("Streaming events; Ctrl-C stops Aura and its workers.")
        code = follow_events(paths, click.echo, stop_on_finish=not stay, cursors=cursors, stop=stop, out=out)
        click.echo("Stopping:")
        stop_all(paths, stop_workers=True, echo=click.echo)
    sys.exit(code)


def _price_check(cfg: Any) -> None:
    """A model brain Aura has no price for: refused with a run budget, a warning without."""
    from .brain.pricing import start_notice
    from .runtime.config import ConfigError
    try:
        line, refuse = start_notice(cfg)
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    if refuse:
        raise click.ClickException(f"{line}. Nothing was started.")
    if line:
        click.echo(f"  warning: {line}")


@cli.command("start", hidden=True)
@click.option("--task-file", required=True, type=click.Path(path_type=Path))
@click.pass_context
def start(ctx: click.Context, task_file: Path) -> None:
    """The original tool's `aura start --task-file PATH` (same as `aura up PATH`)."""
    ctx.invoke(up, task=task_file, detach=False, stay=False)


@cli.command()
@click.option("--keep-workers", is_flag=True,
              help="Leave running workers alive; the next `aura up` re-adopts them.")
@click.pass_context
def down(ctx: click.Context, keep_workers: bool) -> None:
    """Stop the three daemons and (unless --keep-workers) their workers."""
    from .control import running_daemons
    from .interrupts import StopSignals, steady_output
    from .launcher import stop_all

    paths = _paths(ctx)
    if not running_daemons(paths):
        click.echo(f"Aura is not running in {paths.root}.")
        return
    with steady_output(), StopSignals():  # a closed pipe or a signal must not stop it half-way
        click.echo(f"Stopping Aura in {paths.root}" + (" (workers keep running)" if keep_workers else "") + ":")
        ok = stop_all(paths, stop_workers=not keep_workers, echo=click.echo)
    if not ok:
        sys.exit(1)


# -- read commands -----------------------------------------------------------------------------------

@cli.command()
@click.argument("reason", required=False, default="aura wake")
@click.pass_context
def wake(ctx: click.Context, reason: str) -> None:
    """Ask the brain to run a cycle now (REASON is logged)."""
    from .control import NotRunning, call
    paths = _paths(ctx)
    try:
        reply = call(paths, "brain", "wake", {"reason": reason}, timeout=2.0)
    except NotRunning as exc:
        _fail_not_running(str(exc))
    click.echo(f"brain woken: cycle {reply.get('cycle')} starts now")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


def _bytes(n: float | None) -> str:
    if not n:
        return "-"
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024:
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}P"


@cli.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Include workers that have ended.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def ps(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """Workers with their resource use."""
    from .control import try_call

    paths = _paths(ctx)
    workers = try_call(paths, "supervisor", "list", {"include_exited": True})
    source = "supervisor"
    if workers is None:
        from .psview import workers_from_disk
        workers = workers_from_disk(paths)
        source = "disk (the supervisor is not running)"
    usage = (try_call(paths, "watchdog", "usage") or {}).get("workers", {})
    rows = []
    for w in sorted(workers, key=lambda w: w.get("created_at", 0)):
        live = w.get("state") in ("starting", "running", "orphaned")
        if not (show_all or live):
            continue
        u = usage.get(w["worker_id"], {})
        rows.append({**w, "usage": u})
    if as_json:
        click.echo(json.dumps({"source": source, "workers": rows}, default=str, indent=1))
        return
    if not rows:
        click.echo("no workers yet" if not workers else "no running workers (aura ps -a shows ended ones)")
        return
    header = ["WORKER", "TASK", "BACKEND", "PID", "STATE", "AGE", "CPU%", "RSS", "GPU", "TURNS", "COST$", "OUTPUT", "LAST"]
    table = [header]
    now = time.time()
    for w in rows:
        u, p = w["usage"], w.get("progress") or {}
        end = w.get("ended_at") or now
        state = w.get("outcome") if w.get("state") == "exited" else w.get("state")
        if w.get("managed") and w.get("state") == "running":  # the agent ended; jobs it registered run on
            state = f"jobs:{len((w['managed'].get('children') or []))}"
        if p.get("stuck"):
            state += "/stuck"
        if p.get("loop"):
            state += "/loop"
        table.append([w["worker_id"], w.get("task_id") or "-", w.get("backend", "-"), str(w.get("worker_pid") or "-"),
                      state or "-", _age(end - (w.get("started_at") or w.get("created_at") or end)),
                      f"{u['cpu_percent']:.1f}" if "cpu_percent" in u else "-", _bytes(u.get("rss_bytes")),
                      _bytes(u.get("gpu_mem_bytes")), str(p.get("turns") or "-"),
                      f"{p['total_cost_usd']:.4f}" if p.get("total_cost_usd") is not None else "-",
                      _bytes(p.get("output_bytes")), (p.get("last_tool") or "-")[:20]])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        click.echo("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
    if source != "supervisor":
        click.echo(f"(from {source})")


@cli.command("tail")
@click.argument("task")
@click.option("-f", "--follow", "follow_it", is_flag=True, help="Keep printing until the worker ends.")
@click.option("-n", "--lines", default=40, show_default=True, help="How many recent lines to show (0: all).")
@click.option("--raw", is_flag=True, help="Print the output lines as stored (no decoding).")
@click.option("--stderr", is_flag=True, help="Show the worker's error.log instead of its output.")
@click.pass_context
def tail_cmd(ctx: click.Context, task: str, follow_it: bool, lines: int, raw: bool, stderr: bool) -> None:
    """A worker's output as readable lines (TASK: a task id or a worker id; its latest worker)."""
    from .tail import TailError, tail
    paths = _paths(ctx)
    try:
        tail(paths, task, follow_it, lines, raw, stderr, click.echo)
    except TailError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        sys.exit(130)


def _brain_from_disk(paths: Any) -> dict:
    from .brain.state import counts, tree_lines, tree_rows
    from .runtime.fsutil import read_json
    state = read_json(paths.state_dir / "state.json")
    if not isinstance(state, dict) or "tasks" not in state:
        return {"from_disk": True}
    from .cli_brain import brain_extras_from_disk
    tree = tree_lines(state)
    return {"mission": state.get("mission"), "run": state.get("run"), "cycles": state.get("total_cycles"),
            "counts": counts(state), "tree": tree, "tree_rows": tree_rows(state), "from_disk": True, **brain_extras_from_disk(state)}


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """The three daemons, the task tree and the run's state."""
    from .control import missing_hint, restart_notes, running_daemons, try_call
    from .runtime.fsutil import read_json
    from .runtime.paths import DAEMONS

    paths = _paths(ctx)
    live = running_daemons(paths)
    brain = try_call(paths, "brain", "status") if "brain" in live else None
    info = {n: try_call(paths, n, "hello") if n in live else None for n in DAEMONS}
    peers = {n: read_json(paths.run_dir / f"{n}.peers.json") for n in ("supervisor", "watchdog")}
    if brain is None:
        brain = _brain_from_disk(paths)
    if as_json:
        click.echo(json.dumps({"project": str(paths.root), "daemons": info, "brain": brain, "restarts": peers},
                              default=str, indent=1))
        sys.exit(0 if len(live) == len(DAEMONS) else EXIT_NOT_RUNNING)
    click.echo(f"Project  {paths.root}")
    click.echo(f"Mission  {brain.get('mission') or '-'}")
    gave_up, restarted = restart_notes(paths)
    now = time.time()
    for n in DAEMONS:
        h = info.get(n)
        if h:
            extra = ""
            if n == "watchdog" and h.get("last_sample_at"):
                extra = f", mode {h.get('mode')}, last sample {now - h['last_sample_at']:.1f}s ago"
                gpu = h.get("gpu") or {}
                if not gpu.get("available"):
                    extra += f"; GPU checks off ({gpu.get('reason') or 'no GPU'})"
            if n == "supervisor":
                extra = f", {h.get('workers_live', 0)} live workers"
            if n in restarted:
                extra += f" · {restarted[n]}"
            click.echo(f"  {n:<10} running  pid {h['pid']}, up {_age(now - h['started_at'])}{extra}")
        elif n in live:
            click.echo(f"  {n:<10} NOT ANSWERING  pid {live[n]['pid']} (its peer restarts it after "
                       "AURA_PEER_HANG_SECONDS without an answer)")
        else:
            why = f" (gave up restarting it: {gave_up[n]})" if n in gave_up else ""
            click.echo(f"  {n:<10} DOWN{why}")
    hint = missing_hint(paths) if len(live) < len(DAEMONS) else None
    if hint:
        click.echo(f"  {hint}")
    if brain.get("from_disk"):
        click.echo("(brain down: the task tree below is read from disk)")
    run = brain.get("run") or {}
    c = brain.get("counts") or {}
    click.echo(f"Planner  {brain.get('planner') or '-'} · cycles {brain.get('cycles') or 0} · "
               + (" · ".join(f"{k} {v}" for k, v in c.items() if v) or "no tasks yet"))
    if run.get("finished"):
        click.echo("Run      finished " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.get("finished_at", 0))))
    from .cli_brain import status_cost_lines
    for line in status_cost_lines(brain):
        click.echo(line)
    from .runtime.diskspace import status_line
    click.echo(status_line(brain, info.get("watchdog"), paths.data))
    from .cli_brain import tree_display
    for line in tree_display(brain):
        click.echo(line)
    if len(live) < len(DAEMONS):
        sys.exit(EXIT_NOT_RUNNING)


@cli.command()
@click.argument("daemon", required=False, type=click.Choice(["brain", "supervisor", "watchdog"]))
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", default=40, show_default=True, help="How many recent lines to show.")
@click.option("--raw", is_flag=True, help="Print the JSON lines as stored.")
@click.pass_context
def logs(ctx: click.Context, daemon: str | None, follow: bool, lines: int, raw: bool) -> None:
    """Print the daemons' logs readably (all three merged, or one)."""
    from .logview import print_logs
    paths = _paths(ctx)
    names = [daemon] if daemon else ["supervisor", "watchdog", "brain"]
    print_logs(paths, names, lines, follow, raw, click.echo)


@cli.command()
@click.argument("settings", nargs=-1, metavar="[KEY=VALUE]...")
@click.pass_context
def limits(ctx: click.Context, settings: tuple[str, ...]) -> None:
    """Show the resource limits in force, or change them at run time (logged by the watchdog)."""
    from .control import NotRunning, call
    from aura.ipc.client import RemoteError
    paths = _paths(ctx)
    try:
        if settings:
            values = {}
            for s in settings:
                key, sep, value = s.partition("=")
                if not sep:
                    raise click.ClickException(f"expected KEY=VALUE, got {s!r}")
                values[key.strip()] = value.strip()
            reply = call(paths, "watchdog", "set_limits", {"values": values})
            for key, change in reply["changed"].items():
                click.echo(f"{key}: {change['old']} -> {change['new']}")
            return
        reply = call(paths, "watchdog", "limits")
    except NotRunning as exc:
        _fail_not_running(str(exc))
    except RemoteError as exc:
        raise click.ClickException(exc.message) from None
    from .limits_view import limit_lines
    for line in limit_lines(reply["limits"], reply.get("overrides", {})):
        click.echo(line)


@cli.command()
def doctor() -> None:
    """Check this installation: import-name conflicts, Python, the worker CLIs, GPU access."""
    from .doctor import run_checks
    bad = 0
    for check in run_checks():
        mark = "ok  " if check.ok else ("FAIL" if check.fatal else "warn")
        bad += check.fatal and not check.ok
        click.echo(f"[{mark}] {check.name}: {check.detail}")
    sys.exit(1 if bad else 0)


def main() -> None:
    try:
        cli(prog_name="aura")
    except Exception as exc:  # a bug: one line in Aura's words, the traceback in a file
        from .runtime.crashlog import report_and_exit
        report_and_exit(exc)


if __name__ == "__main__":
    main()
