"""Commands that show a run as a whole: `aura top` (live, in the terminal) and `aura report` (one
HTML page with charts). Neither imports the model SDK."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import paths_of


@click.command()
@click.option("--once", is_flag=True, help="Print one screen and exit (for a pipe, a file or a script).")
@click.option(
    "--interval", default=1.0, show_default=True, type=click.FloatRange(0.2, 60), help="Seconds between refreshes."
)
@click.pass_context
def top(ctx: click.Context, once: bool, interval: float) -> None:
    """The run live: state, tasks, workers with their CPU and memory, spend, events."""
    from ..topscreen import run_top

    try:
        run_top(paths_of(ctx), once, interval)
    except KeyboardInterrupt:
        sys.exit(130)


@click.command()
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the page here (default: .aura/summaries/report.html, beside the final report).",
)
@click.option("--open", "open_it", is_flag=True, help="Open the page in the default browser.")
@click.pass_context
def report(ctx: click.Context, out: Path | None, open_it: bool) -> None:
    """The whole run as one HTML page that opens offline: attempts, usage, spend, tasks, decisions."""
    from ..brain.runreport import write_report

    paths = paths_of(ctx)
    if out is not None and not out.resolve().parent.is_dir():
        raise click.ClickException(f"cannot write the report: no folder {out.resolve().parent}")
    try:
        path = write_report(paths, out=out)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise click.ClickException(
            str(exc)
            if isinstance(exc, FileNotFoundError) and not exc.filename
            else f"cannot write the report: {exc.strerror or exc}: {exc.filename or out}"
        ) from None
    click.echo(str(path))
    if open_it:
        import webbrowser

        if not webbrowser.open(path.resolve().as_uri()):
            click.echo("no browser found here; open the file above in one", err=True)
