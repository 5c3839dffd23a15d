"""The `aura` command group: its global options, and the table of commands with the module of each.

A command's module is imported only when that command runs (or `--help` lists it): `aura ps`,
`aura wake` and `aura status` only talk to a daemon, must feel instant, and never import the
model SDK.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from .. import __version__

# commands that change state: output to a closed pipe is dropped rather than stopping them half-way
STEADY_COMMANDS = (
    "restart",
    "cleanup",
    "clean-workspaces",
    "service",
    "budget",
    "limits",
    "answer",
    "approve",
    "deny",
    "task",
)

# command -> (module, attribute); the modules import aura.cli.common, never this module
LAZY_COMMANDS = {
    **{n: ("aura.cli.run", n) for n in ("up", "down", "start", "restart")},
    **{n: ("aura.cli.look", n) for n in ("status", "ps", "logs")},
    "tail": ("aura.cli.look", "tail_cmd"),
    "diff": ("aura.cli.diff", "diff"),
    **{n: ("aura.cli.view", n) for n in ("top", "report")},
    **{n: ("aura.cli.steer", n) for n in ("wake", "limits", "questions", "answer", "approve", "deny", "task")},
    "doctor": ("aura.cli.doctor", "doctor"),
    **{n: ("aura.cli.brain", n) for n in ("history", "progress", "changelog", "summaries", "projects", "budget")},
    **{
        n: ("aura.cli.maintenance", n.replace("-", "_"))
        for n in ("clean-workspaces", "cleanup", "token-stats", "cache-stats", "changelog-overview")
    },
    "service": ("aura.cli.service", "service"),
    "setup": ("aura.cli.setup", "setup"),
}


class AuraGroup(click.Group):
    """Takes `aura task.md` for `aura up task.md` (docs/migrating.md) and imports a command's
    module only when that command is asked for, so `aura ps` starts fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> Any:
        if name in LAZY_COMMANDS and name not in self.commands:
            import importlib

            module, attr = LAZY_COMMANDS[name]
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if (
            args
            and args[0] not in self.commands
            and args[0] not in LAZY_COMMANDS
            and (args[0].endswith(".md") or Path(args[0]).is_file())
        ):
            args = ["up", *args]
        return super().resolve_command(ctx, args)


@click.group(cls=AuraGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aura")
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Project folder (default: the current folder, or the nearest one above it that holds .aura/).",
)
@click.option(
    "--config",
    "-c",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file (KEY=VALUE lines) that overrides the global and project files.",
)
@click.option("--override", "-O", "overrides", multiple=True, metavar="KEY=VALUE", help="Override one setting.")
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(min=1),
    default=None,
    help="Max concurrent workers (AURA_MAX_CONCURRENT_TASKS).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data folder of the run (AURA_DATA_DIR; default: <project>/.aura). Separate folders let "
    "several runs share one project folder.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    project: Path | None,
    config_file: Path | None,
    overrides: tuple[str, ...],
    workers: int | None,
    data_dir: Path | None,
) -> None:
    """Run an autonomous agent on one goal for hours or days without babysitting it."""
    if data_dir is not None:  # the environment carries it to the daemons, and from them to their peers
        os.environ["AURA_DATA_DIR"] = str(data_dir.resolve())
    if workers is not None:
        overrides = (*overrides, f"AURA_MAX_CONCURRENT_TASKS={workers}")
    ctx.obj = {"project": project, "config": config_file, "overrides": overrides}
    if ctx.invoked_subcommand in STEADY_COMMANDS:  # `up` and `down` guard their own output
        from ..interrupts import steady_output

        ctx.with_resource(steady_output())


def main() -> None:
    try:
        cli(prog_name="aura")
    except Exception as exc:  # a bug: one line in Aura's words, the traceback in a file
        from ..runtime.crashlog import report_and_exit

        report_and_exit(exc)
