"""Maintenance commands: clean-workspaces, cleanup, token-stats, cache-stats and
changelog-overview (restart is with the commands that start a run, aura.cli.run).

None of them imports the model SDK. The file logic lives in aura/maintenance.py; this module is the
command-line glue (options, asking the daemons what runs, printing).
"""

from __future__ import annotations

import json
from typing import Any

import click

from .common import paths_of, when


def _config(ctx: click.Context, paths: Any) -> Any:
    """The configuration as `aura up` would read it now (for the cleanup age and the prices)."""
    from ..runtime.config import ConfigError, load_config

    try:
        return load_config(paths.root, ctx.obj["config"], ctx.obj["overrides"])
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


def _supervisor_workers(paths: Any) -> list[dict] | None:
    """The supervisor's worker list when it answers (it knows best what runs), else None."""
    from ..control import try_call

    listed = try_call(paths, "supervisor", "list", {"include_exited": True})
    return listed if isinstance(listed, list) else None


# -- clean-workspaces -------------------------------------------------------------------------------------


@click.command("clean-workspaces")
@click.option(
    "--age",
    type=click.FloatRange(min=0),
    default=None,
    metavar="DAYS",
    help="Remove only what ended at least DAYS ago (default AURA_TASK_CLEANUP_AGE, 7).",
)
@click.option("--all", "include_all", is_flag=True, help="Ignore the age: every finished worker and task.")
@click.option(
    "--dry-run/--no-dry-run",
    default=True,
    show_default=True,
    help="Only list what would go (the default, as in the original); --no-dry-run deletes.",
)
@click.pass_context
def clean_workspaces(ctx: click.Context, age: float | None, include_all: bool, dry_run: bool) -> None:
    """Prune finished workers' folders (.aura/run/workers/ID) and finished tasks' workspaces
    (.aura/workspace/tasks/ID) to reclaim disk space.

    Never touches a worker that is running (the supervisor lists it as live, or it has no
    exit.json and its process is alive) or has not finished, nor the workspace of a task that is
    not finished or that such a worker writes into."""
    from ..maintenance import human_age, human_bytes, plan_workspaces, remove_folders
    from ..runtime.vocab import LIVE_STATES

    paths = paths_of(ctx)
    if age is None:
        age = float(_config(ctx, paths).integer("AURA_TASK_CLEANUP_AGE"))
    listed = _supervisor_workers(paths)
    plan = plan_workspaces(paths, age, include_all, listed)
    live_ids = None if listed is None else {str(w.get("worker_id")) for w in listed if w.get("state") in LIVE_STATES}
    limit = "any age" if include_all else f"ended over {age:g} day(s) ago"
    if not plan.remove:
        click.echo(f"nothing to remove ({limit})")
    else:
        click.echo(("Would remove" if dry_run else "Removing") + f" ({limit}):")
        results = [(f, None) for f in plan.remove] if dry_run else remove_folders(paths, plan, live_ids)
        removed = 0
        for f, error in results:
            mark = f"  FAILED: {error}" if error and not error.startswith("kept") else (f"  ({error})" if error else "")
            removed += f.size if not error else 0
            click.echo(
                f"  {f.kind:<9} {f.name:<24} {human_bytes(f.size):>8}  {human_age(f.age_s):>7} old  {f.path}{mark}"
            )
        total = plan.total if dry_run else removed
        click.echo(
            f"Total: {len(plan.remove)} folder(s), {human_bytes(total)}"
            + (" (dry run: nothing was deleted; --no-dry-run deletes)" if dry_run else " freed")
        )
    _echo_kept(plan.kept, age)


def _echo_kept(kept: list, age: float) -> None:
    young = [f for f in kept if f.young]
    for f in kept:
        if not f.young:
            click.echo(f"  kept {f.kind} {f.name}: {f.keep}")
    if young:
        click.echo(f"  kept {len(young)} folder(s) younger than {age:g} day(s)")


# -- cleanup -------------------------------------------------------------------------------------------------


@click.command()
@click.option("--force", is_flag=True, help="Delete what is listed (default: only list it).")
@click.option(
    "--age",
    type=click.FloatRange(min=0),
    default=7.0,
    show_default=True,
    metavar="DAYS",
    help="Unreadable-state copies (*.corrupt-*) must be at least this old.",
)
@click.pass_context
def cleanup(ctx: click.Context, force: bool, age: float) -> None:
    """List (or with --force delete) what a stopped or crashed run left behind.

    The original deleted orphan per-project data folders; Aura keeps one data folder per
    project, so here it means: the run's socket folder, pid files that still say "running" for a
    process that is gone, temporary files of interrupted writes, and unreadable-state copies
    (state.json.corrupt-*) older than --age days. Worker folders and workspaces are for
    `aura clean-workspaces`; `state.restart-*` archives are kept. Refuses while the project's
    daemons run."""
    from ..maintenance import human_bytes, remove_tree, stale_leftovers
    from ..startstop import already_running

    paths = paths_of(ctx)
    busy = already_running(paths)
    if busy:
        raise click.ClickException(f"{busy}. Nothing was removed: cleanup only works on a stopped project.")
    found = stale_leftovers(paths, age)
    if not found:
        click.echo(f"nothing left over in {paths.data}")
        return
    click.echo(("Removing" if force else "Left over (aura cleanup --force removes them)") + ":")
    for item in found:
        error = ""
        if force:
            try:
                remove_tree(item.path)
            except OSError as exc:
                error = f"  FAILED: {exc}"
        click.echo(f"  {human_bytes(item.size):>8}  {item.path}  ({item.why}){error}")
    click.echo(
        f"Total: {len(found)} item(s), {human_bytes(sum(i.size for i in found))}"
        + ("" if force else " (nothing was deleted)")
    )


# -- token-stats / cache-stats ---------------------------------------------------------------------------------


def _stats(ctx: click.Context) -> tuple[Any, dict]:
    from ..maintenance import usage_stats

    paths = paths_of(ctx)
    return paths, usage_stats(paths, _config(ctx, paths))


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())


def _price_notes(prices: dict) -> list[str]:
    """One line per model Aura has no price for (its tokens count 0 USD)."""
    return [
        f"No price known for {name.split('/', 1)[-1]}: its tokens count 0 USD; set AURA_TOKEN_PRICE_* "
        "(brain) or AURA_WORKER_TOKEN_PRICE_* (workers)"
        for name, p in prices.items()
        if "/" in name and not p.get("known")
    ]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


@click.command("token-stats")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def token_stats(ctx: click.Context, as_json: bool) -> None:
    """Model usage of the run: calls, tokens, cache hit rate, cost and saved cost, per source
    (each brain call from .aura/state/costs.jsonl; workers from their token counts)."""
    paths, s = _stats(ctx)
    if as_json:
        click.echo(json.dumps(s, indent=1, default=str))
        return
    if not s["sources"]:
        click.echo(f"no model usage recorded yet ({paths.state_dir / 'costs.jsonl'})")
        return
    rows = [["SOURCE", "CALLS", "INPUT", "OUTPUT", "CACHE-READ", "CACHE-WRITE", "HIT%", "COST$", "WRITE$", "SAVED$"]]
    for name, r in [*s["sources"].items(), ("total", s["total"])]:
        rows.append(
            [
                name,
                str(r["calls"]),
                str(r["input_tokens"]),
                str(r["output_tokens"]),
                str(r["cache_read_tokens"]),
                str(r["cache_write_tokens"]),
                _pct(r["hit_rate"]),
                f"{r['usd']:.4f}",
                f"{r['write_usd']:.4f}",
                f"{r['saved_usd']:.4f}",
            ]
        )
    _table(rows)
    if s["brain_calls"]:
        click.echo(
            f"Brain: {s['brain_calls']} call(s), ${s['avg_brain_usd']:.4f} and {s['avg_prompt_tokens']} "
            f"prompt tokens per call on average"
        )
    if s["model_cycles"] is not None or s["skipped_cycles"] is not None:
        click.echo(
            f"Cycles: {s['model_cycles'] or 0} called the model, {s['skipped_cycles'] or 0} skipped it (nothing new)"
        )
    if s["worker_runs"]:
        extra = (
            f"; their CLIs reported ${s['workers_reported_usd']:.4f} (not summed: priced by model name)"
            if s["workers_reported_usd"] is not None
            else ""
        )
        click.echo(f"Workers: {s['worker_runs']} run(s) (CALLS counts runs){extra}")
    click.echo(
        "Cost: each provider's published prices (AURA_TOKEN_PRICE_* / AURA_WORKER_TOKEN_PRICE_* win where "
        "set); WRITE$: the part of COST$ paid for cache writes (1-hour writes cost more than 5-minute ones); "
        "SAVED$: cache reads at the hit price instead of the miss price, at today's prices."
    )
    for line in _price_notes(s["prices"]):
        click.echo(line)


@click.command("cache-stats")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def cache_stats(ctx: click.Context, as_json: bool) -> None:
    """Prompt-cache figures of the run: hit rate, tokens read from the cache vs written to it,
    and the dollars the cache saved. (The original's cache-stats showed an in-memory file cache
    that was always empty in a fresh process; Aura has only the model's prompt cache.)"""
    paths, s = _stats(ctx)
    keys = (
        "calls",
        "prompt_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cache_write_1h_tokens",
        "input_tokens",
        "hit_rate",
        "write_usd",
        "saved_usd",
        "write_extra_usd",
    )
    if as_json:
        out = {name: {k: r[k] for k in keys} for name, r in s["sources"].items()}
        click.echo(
            json.dumps({"sources": out, "total": {k: s["total"][k] for k in keys}, "prices": s["prices"]}, indent=1)
        )
        return
    if not s["sources"]:
        click.echo(f"no model usage recorded yet ({paths.state_dir / 'costs.jsonl'})")
        return
    rows = [["SOURCE", "PROMPT", "FROM-CACHE", "WRITTEN", "UNCACHED", "HIT%", "SAVED$", "WRITE-EXTRA$", "NET$"]]
    for name, r in [*s["sources"].items(), ("total", s["total"])]:
        rows.append(
            [
                name,
                str(r["prompt_tokens"]),
                str(r["cache_read_tokens"]),
                str(r["cache_write_tokens"]),
                str(r["input_tokens"]),
                _pct(r["hit_rate"]),
                f"{r['saved_usd']:.4f}",
                f"{r['write_extra_usd']:.4f}",
                f"{r['saved_usd'] - r['write_extra_usd']:.4f}",
            ]
        )
    _table(rows)
    p = s["prices"]["brain"]
    click.echo(
        f"Saved: cache reads priced at ${p['hit']:g} instead of ${p['miss']:g} per 1M tokens (brain; workers "
        "at their model's prices); write-extra: what cache writes cost above the same tokens as input "
        f"(brain: ${p['write_5m']:g} for a 5-minute write, ${p['write_1h']:g} for a 1-hour one)."
    )
    for line in _price_notes(s["prices"]):
        click.echo(line)


# -- changelog-overview ------------------------------------------------------------------------------------------


@click.command("changelog-overview")
@click.pass_context
def changelog_overview(ctx: click.Context) -> None:
    """Summary of the task-file changelog of this run and of the runs `aura restart` kept aside:
    versions seen, processed, waiting, last change; also written to .aura/changelog_overview.md."""
    from ..maintenance import changelog_overview as overview
    from ..maintenance import overview_markdown
    from ..runtime.fsutil import atomic_write_text

    paths = paths_of(ctx)
    rows = overview(paths)
    if not rows or not any(r["entries"] for r in rows):
        click.echo("no task-file versions recorded yet")
    for r in rows:
        click.echo(
            f"{r['run']}: {r['entries']} version(s), {r['changes']} change(s), {r['processed']} processed, "
            f"{r['waiting']} waiting; last {when(r['last_ts'])}: {r['last_summary'] or '-'}"
        )
        click.echo(f"    {r['task_file'] or '-'}")
    target = paths.data / "changelog_overview.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, overview_markdown(rows))
    click.echo(f"({target})")
