"""Commands that read the brain's records: history, progress, changelog, summaries, projects, and
budget (which also sets it). They read files on disk (the brain may be down) and never import the
model SDK.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .common import EXIT_NOT_RUNNING, paths_of, when, width, wrap


def _state(paths: Any) -> dict:
    from ..brain.state import read_state

    return read_state(paths.state_dir) or {}


TOOL_RESULT_CHARS = 300  # a tool's result can be a whole file; the decision log keeps it, history shows its start


def format_decision(d: dict, columns: int | None = None) -> str:
    """One entry, wrapped to `columns`: status changes first-class with their whole reason and evidence,
    the rest by kind."""
    import textwrap

    head = f"[{when(d.get('ts'))}]"
    kind = d.get("kind")
    if kind == "status":
        reason = str(d.get("reason", ""))
        n = d.get("attempt")
        tag = f" (attempt {n})" if n and f"attempt {n}" not in reason else ""
        text = f"{head} {d.get('task_id')}: {d.get('old')} -> {d.get('new')} - {reason}{tag}"
        return wrap(text, columns) + "\n" + wrap(f"evidence: {d.get('evidence', '')}", columns, "    ")
    if kind == "tool":
        result = textwrap.shorten(str(d.get("result", "")), TOOL_RESULT_CHARS, placeholder=" [...]")
        return wrap(f"{head} tool {d.get('tool')} {'ok' if d.get('ok') else 'ERROR'}: {result}", columns)
    if kind == "model_cycle":
        usd = d.get("usd")
        return wrap(
            f"{head} model cycle {d.get('cycle')}: {d.get('rounds')} calls, {d.get('tool_calls')} tools, "
            f"{d.get('prompt_tokens')} prompt tokens"
            + (f", ${usd:.4f}" if isinstance(usd, (int, float)) else "")
            + f" - {d.get('ended_by', '')}",
            columns,
        )
    if kind == "merged":
        into = f"{d.get('branch')} as {str(d.get('commit'))[:10]}" if d.get("commit") else f"{d.get('branch')}"
        return wrap(f"{head} merged {d.get('task_id')} ({d.get('worker_id')}) into {into}", columns)
    detail = (
        d.get("reason") or d.get("message") or d.get("error") or d.get("title") or d.get("evidence") or d.get("text")
    )
    if kind == "answer":
        detail = f"{d.get('verdict') or 'answered'}: {d.get('answer')}"
    who = "".join(f" {d[k]}" for k in ("question_id", "task_id") if d.get(k))
    by = " (by user)" if d.get("by") == "user" and kind not in ("steer", "answer") else ""
    return wrap(f"{head} {kind}{who}{by}: {detail or ''}", columns)


KEY_KINDS = {
    "status",
    "done_refused",
    "goal_verified",
    "acceptance_failed",
    "merged",
    "merge_refused",
    "safe_mode_entered",
    "safe_mode_left",
    "budget_warning",
    "budget_reached",
    "budget_resumed",
    "budget_set",
    "model_error",
    "no_op",
    "review",
    "question",
    "answer",
    "answer_refused",
    "steer",
    "steer_refused",
    "note",
}


@click.command()
@click.option("-n", "--lines", default=30, show_default=True, help="How many entries.")
@click.option("-a", "--all", "show_all", is_flag=True, help="Every entry (tool calls, model cycles, tasks added).")
@click.option("--json", "as_json", is_flag=True, help="The entries as stored (JSON lines).")
@click.pass_context
def history(ctx: click.Context, lines: int, show_all: bool, as_json: bool) -> None:
    """The decision log: every status change with its reason and evidence."""
    from ..runtime.fsutil import read_jsonl

    entries = read_jsonl(paths_of(ctx).state_dir / "decisions.jsonl")
    if not show_all:
        entries = [d for d in entries if d.get("kind") in KEY_KINDS]
    columns = width()
    for d in entries[-lines:] if lines > 0 else entries:
        click.echo(json.dumps(d, default=str) if as_json else format_decision(d, columns))
    if not entries:
        click.echo("no decisions yet")


@click.command()
@click.pass_context
def progress(ctx: click.Context) -> None:
    """The run at a glance (.aura/state/progress.md), with its cost."""
    from ..brain import costs as costmod
    from ..brain import progress as progmod
    from ..runtime.fsutil import read_jsonl

    paths = paths_of(ctx)
    path = paths.state_dir / "progress.md"
    state = _state(paths)
    if path.exists():
        text = path.read_text(encoding="utf-8", errors="replace")
    elif state:
        text = progmod.render(state, read_jsonl(paths.state_dir / "decisions.jsonl")[-30:])
    else:
        raise click.ClickException("no progress yet: the brain has not run a cycle")
    click.echo(text.rstrip())
    if state:
        s = costmod.summary(state)
        click.echo(f"\nCost: ${s['total_usd']:.4f} (brain ${s['brain_usd']:.4f}, workers ${s['workers_usd']:.4f})")
    click.echo(f"({path})")


@click.command()
@click.option("--diff", "show_diff", is_flag=True, help="Show each change's diff.")
@click.pass_context
def changelog(ctx: click.Context, show_diff: bool) -> None:
    """Every version of the task file the brain has seen, with what changed."""
    from ..brain.changelog import TaskFileChangelog

    entries = TaskFileChangelog(paths_of(ctx).state_dir).entries()
    if not entries:
        click.echo("no task-file versions recorded yet")
    for e in entries:
        click.echo(
            f"[{when(e.get('ts'))}] cycle {e.get('cycle')} {str(e.get('hash'))[:16]} {e.get('kind')}: "
            f"{e.get('summary')}"
        )
        if show_diff and e.get("diff"):
            for line in e["diff"]:
                click.echo(f"    {line}")


@click.command()
@click.argument("task_id", required=False)
@click.pass_context
def summaries(ctx: click.Context, task_id: str | None) -> None:
    """Completion summaries per finished task (TASK_ID: print that task's latest)."""
    from ..brain.summaries import summaries_dir

    folder = summaries_dir(paths_of(ctx))
    files = sorted(folder.glob("*.md"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    if task_id:
        from ..runtime.paths import safe_name

        mine = [p for p in files if p.name.startswith(safe_name(task_id) + "_")]
        if not mine:
            raise click.ClickException(f"no summary for task {task_id}")
        click.echo(mine[-1].read_text(encoding="utf-8", errors="replace").rstrip())
        return
    if not files:
        click.echo("no summaries yet")
    for p in files:
        name = p.stem.rsplit("_", 2)[0] if p.stem != "final_report" else "(final report)"
        click.echo(f"{name:<20} {when(p.stat().st_mtime)}  {p.stat().st_size / 1024:.1f} KB  {p}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def projects(as_json: bool) -> None:
    """Every project `aura up` has run for this user, with its state and spend."""
    from ..projects import index_path, listing

    rows = listing()
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=1))
        return
    if not rows:
        click.echo(f"no projects yet ({index_path()})")
    for r in rows:
        if not r["exists"]:
            click.echo(f"{r['root']}  (folder gone)")
            continue
        state = "running" if r["running"] else ("finished" if r.get("finished") else "stopped")
        spent = f"${r['spent_usd']:.4f}" if r.get("spent_usd") is not None else "-"
        click.echo(f"{r['root']}  {state}  cycles {r.get('cycles', 0)}  {spent}  last up {when(r.get('last_up'))}")
        click.echo(f"    {str(r.get('mission') or r.get('task') or '')[:100]}")


@click.command(context_settings={"ignore_unknown_options": True})  # `aura budget -5` is a value, refused below
@click.argument("amount", required=False, metavar="[USD]")
@click.pass_context
def budget(ctx: click.Context, amount: str | None) -> None:
    """Show the run budget, or set it to USD now (raising it resumes a run stopped at its budget)."""
    from ..brain import costs as costmod
    from ..control import NotRunning, call
    from ..runtime.settings_check import value_problem

    paths = paths_of(ctx)
    if amount is not None and (problem := value_problem("AURA_BUDGET_USD", amount, "`aura budget`")):
        raise click.ClickException(problem)
    usd = None if amount is None else float(amount)
    if usd is None:
        state = _state(paths)
        b, s = state.get("budget") or {}, costmod.summary(state) if state else None
        spent = f"${s['total_usd']:.4f}" if s else "$0"
        limit = b.get("limit_usd")
        click.echo(
            f"spent {spent} of " + (f"${limit:.2f} ({b.get('state')})" if limit else "no budget (AURA_BUDGET_USD)")
        )
        return
    try:
        reply = call(paths, "brain", "budget", {"usd": usd}, timeout=5.0)
    except NotRunning as exc:
        click.echo(f"aura: {exc}; set AURA_BUDGET_USD in the config and start again", err=True)
        sys.exit(EXIT_NOT_RUNNING)
    b = reply["budget"]
    click.echo(f"budget ${reply['old_usd']:.2f} -> ${usd:.2f}; spent ${b.get('spent_usd', 0):.4f} ({b.get('state')})")
