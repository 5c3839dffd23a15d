"""`aura doctor`: the installation's checks (aura.doctor), one line each."""

from __future__ import annotations

import sys

import click


@click.command()
def doctor() -> None:
    """Check this installation: import-name conflicts, Python, the worker CLIs, GPU access."""
    from ..doctor import run_checks

    bad = 0
    for check in run_checks():
        mark = "ok  " if check.ok else ("FAIL" if check.fatal else "warn")
        bad += check.fatal and not check.ok
        click.echo(f"[{mark}] {check.name}: {check.detail}")
    sys.exit(1 if bad else 0)
