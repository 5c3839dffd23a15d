"""`aura diff TASK`: what an attempt changed, against the commit it started from (git mode)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import paths_of


@click.command("diff")
@click.argument("task")
@click.option("--stat", "stat_only", is_flag=True, help="Only the diffstat.")
@click.pass_context
def diff(ctx: click.Context, task: str, stat_only: bool) -> None:
    """Show the diff of TASK's latest attempt against its base: the merged commits once it was
    accepted, else what its worktree holds now (uncommitted and untracked files included)."""
    from ..brain.state import read_state
    from ..runtime import gitrepo as g

    paths = paths_of(ctx)
    state = read_state(paths.state_dir) or {}
    if not (state.get("git") or {}).get("enabled"):
        raise click.ClickException("this run is not in git mode: there is no attempt diff (see `aura status`)")
    found = (state.get("tasks") or {}).get(task)
    if not isinstance(found, dict):
        raise click.ClickException(f"no task {task!r} in this run (`aura status` lists them)")
    known = found.get("git") or {}
    if not known.get("base"):
        raise click.ClickException(f"task {task} has not started an attempt in a worktree yet")
    repo = Path(state["git"]["repo"])
    try:
        click.echo(attempt_diff(repo, known, stat_only), nl=False)
    except g.GitError as exc:
        raise click.ClickException(str(exc)) from None


def attempt_diff(repo: Path, known: dict, stat_only: bool) -> str:
    """The attempt's committed head when there is one (its worktree may be gone), else its worktree."""
    from ..runtime import gitrepo as g

    header = f"# {known.get('worker_id')} on {known.get('branch')}, against {str(known['base'])[:10]}\n"
    flags = ["--stat=100"] if stat_only else []
    worktree = Path(str(known.get("worktree") or ""))
    if known.get("head") and not (worktree / ".git").exists():
        return header + str(g.run(repo, "diff", *flags, known["base"], known["head"]).stdout)
    if not (worktree / ".git").exists():
        raise g.GitError(f"the attempt's worktree {worktree} is gone and it made no commit")
    text = str(g.run(worktree, "diff", *flags, known["base"]).stdout)
    untracked = g.out(worktree, "ls-files", "--others", "--exclude-standard")
    if untracked:
        text += "".join(f"new file (not staged yet): {name}\n" for name in untracked.splitlines())
    return header + text
