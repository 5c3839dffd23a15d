"""Commands that act on a running run: wake (a brain cycle now) and limits (the watchdog's limits,
shown or changed). Both only talk to a daemon."""

from __future__ import annotations

import click

from .common import fail_not_running, paths_of


@click.command()
@click.argument("reason", required=False, default="aura wake")
@click.pass_context
def wake(ctx: click.Context, reason: str) -> None:
    """Ask the brain to run a cycle now (REASON is logged)."""
    from ..control import NotRunning, call

    paths = paths_of(ctx)
    try:
        reply = call(paths, "brain", "wake", {"reason": reason}, timeout=2.0)
    except NotRunning as exc:
        fail_not_running(str(exc))
    click.echo(f"brain woken: cycle {reply.get('cycle')} starts now")


@click.command()
@click.argument("settings", nargs=-1, metavar="[KEY=VALUE]...")
@click.pass_context
def limits(ctx: click.Context, settings: tuple[str, ...]) -> None:
    """Show the resource limits in force, or change them at run time (logged by the watchdog)."""
    from aura.ipc.client import RemoteError

    from ..control import NotRunning, call

    paths = paths_of(ctx)
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
        fail_not_running(str(exc))
    except RemoteError as exc:
        raise click.ClickException(exc.message) from None
    from ..limits_view import limit_lines

    for line in limit_lines(reply["limits"], reply.get("overrides", {})):
        click.echo(line)
