"""What the command modules share: the project a command works on, the way to say its daemons are
not running, and the time, size and line formats of their output.

The command modules import this one and never each other, nor the group (aura.cli.group) that
loads them by name: no import goes round in a circle.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

EXIT_NOT_RUNNING = 3


def paths_of(ctx: click.Context) -> Any:
    """The ProjectPaths of the project a command reads; one wording of "no project here" for all."""
    from ..control import project_paths

    paths = project_paths(ctx.obj["project"])
    if paths is None:
        raise click.ClickException(
            "no Aura project here: no .aura/ folder in this folder or above it; start one with `aura up TASK.md`"
        )
    return paths


def project_root(ctx: click.Context) -> Path:
    """The folder `aura up` and `aura restart` start in (--project, AURA_PROJECT_ROOT, else here)."""
    return Path(ctx.obj["project"] or os.environ.get("AURA_PROJECT_ROOT") or Path.cwd()).resolve()


def fail_not_running(message: str) -> NoReturn:
    click.echo(f"aura: {message}", err=True)
    sys.exit(EXIT_NOT_RUNNING)


def when(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts))) if ts else "-"


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


def size(n: float | None) -> str:
    if not n:
        return "-"
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024:
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}P"


def width() -> int | None:
    """The terminal's width (or $COLUMNS); None when the output goes to a pipe or a file: whole lines."""
    import shutil

    if not sys.stdout.isatty() and not os.environ.get("COLUMNS"):
        return None
    return max(40, shutil.get_terminal_size().columns)


def wrap(text: str, width: int | None, indent: str = "", first: str | None = None) -> str:
    """Whole words to `width`: a reason or a path is never cut, only wrapped (not at all without a width)."""
    import textwrap

    first = indent if first is None else first
    if width is None:
        return first + " ".join(str(text).split())
    return textwrap.fill(
        str(text),
        width=width,
        initial_indent=first,
        subsequent_indent=indent + "    ",
        break_long_words=False,
        break_on_hyphens=False,
    )
