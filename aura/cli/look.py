"""Commands that look at a run: status, ps, tail and logs. They ask the daemons and fall back to
what is on disk when one is down; none of them imports the model SDK."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import click

from ..statusview import brain_from_disk, open_question_lines
from .common import EXIT_NOT_RUNNING, age, paths_of, size, when, width, wrap


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Include workers that have ended.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def ps(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """Workers with their resource use."""
    from ..control import try_call
    from ..runtime.vocab import LIVE_STATES

    paths = paths_of(ctx)
    workers = try_call(paths, "supervisor", "list", {"include_exited": show_all})
    source = "supervisor"
    if workers is None:
        from ..psview import workers_from_disk

        workers = workers_from_disk(paths)
        source = "disk (the supervisor is not running)"
    usage = (try_call(paths, "watchdog", "usage") or {}).get("workers", {})
    asked = (try_call(paths, "brain", "questions", timeout=1.0) or {}).get("questions") or []
    rows = []
    for w in sorted(workers, key=lambda w: w.get("created_at", 0)):
        live = w.get("state") in LIVE_STATES
        if not (show_all or live):
            continue
        u = usage.get(w["worker_id"], {})
        rows.append({**w, "usage": u})
    if as_json:
        click.echo(json.dumps({"source": source, "workers": rows, "questions": asked}, default=str, indent=1))
        return
    if not rows:
        click.echo(
            "no workers yet"
            if not (workers or any_worker(paths))
            else "no running workers (aura ps -a shows ended ones)"
        )
    else:
        worker_table(rows, source)
    for line in open_question_lines(asked):
        click.echo(line)


def any_worker(paths: Any) -> bool:
    """Has this run started a worker? (one directory entry read, however long the run)"""
    try:
        with os.scandir(paths.workers_dir) as entries:
            return next(entries, None) is not None
    except OSError:
        return False


def worker_table(rows: list[dict], source: str) -> None:
    """`aura ps`'s table: one line per worker, with its figures."""
    from ..runtime.vocab import EXITED, RUNNING

    header = [
        "WORKER",
        "TASK",
        "BACKEND",
        "PID",
        "STATE",
        "AGE",
        "CPU%",
        "RSS",
        "GPU",
        "TURNS",
        "COST$",
        "OUTPUT",
        "LAST",
    ]
    table = [header]
    now = time.time()
    for w in rows:
        u, p = w["usage"], w.get("progress") or {}
        end = w.get("ended_at") or now
        state = str((w.get("outcome") if w.get("state") == EXITED else w.get("state")) or "-")
        if w.get("managed") and w.get("state") == RUNNING:  # the agent ended; jobs it registered run on
            state = f"jobs:{len(w['managed'].get('children') or [])}"
        if p.get("stuck"):
            state += "/stuck"
        if p.get("loop"):
            state += "/loop"
        table.append(
            [
                w["worker_id"],
                w.get("task_id") or "-",
                w.get("backend", "-"),
                str(w.get("worker_pid") or "-"),
                state or "-",
                age(end - (w.get("started_at") or w.get("created_at") or end)),
                f"{u['cpu_percent']:.1f}" if "cpu_percent" in u else "-",
                size(u.get("rss_bytes")),
                size(u.get("gpu_mem_bytes")),
                str(p.get("turns") or "-"),
                f"{p['total_cost_usd']:.4f}" if p.get("total_cost_usd") is not None else "-",
                size(p.get("output_bytes")),
                (p.get("last_tool") or "-")[:20],
            ]
        )
    table = with_jobs(table, rows)
    header = table[0]
    branches = [str((w.get("meta") or {}).get("branch") or "-") for w in rows]
    if any(b != "-" for b in branches):  # git mode: each attempt's own branch
        table = [[*r, b] for r, b in zip(table, ["BRANCH", *branches], strict=True)]
        header = table[0]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        click.echo("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
    if source != "supervisor":
        click.echo(f"(from {source})")


def with_jobs(table: list[list[str]], rows: list[dict]) -> list[list[str]]:
    """Slurm workers: a JOB column (job id, and node once it runs), and a queued one's reason."""
    from ..runtime.vocab import QUEUED, SLURM

    if not any(w.get("executor") == SLURM for w in rows):
        return table
    out = [[*table[0], "JOB"]]
    for line, w in zip(table[1:], rows, strict=True):
        job = f"{w['job_id']}@{w['node']}" if w.get("job_id") and w.get("node") else str(w.get("job_id") or "-")
        if w.get("state") == QUEUED and w.get("slurm_reason"):
            line = [*line]
            line[4] = f"queued:{w['slurm_reason']}"
        out.append([*line, job])
    return out


@click.command("tail")
@click.argument("task")
@click.option("-f", "--follow", "follow_it", is_flag=True, help="Keep printing until the worker ends.")
@click.option("-n", "--lines", default=40, show_default=True, help="How many recent lines to show (0: all).")
@click.option("--raw", is_flag=True, help="Print the output lines as stored (no decoding).")
@click.option("--stderr", is_flag=True, help="Show the worker's error.log instead of its output.")
@click.pass_context
def tail_cmd(ctx: click.Context, task: str, follow_it: bool, lines: int, raw: bool, stderr: bool) -> None:
    """A worker's output as readable lines (TASK: a task id or a worker id; its latest worker)."""
    from ..tail import TailError, tail

    paths = paths_of(ctx)
    try:
        tail(paths, task, follow_it, lines, raw, stderr, click.echo)
    except TailError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        sys.exit(130)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """The three daemons, the task tree and the run's state."""
    from ..control import missing_hint, restart_notes, running_daemons, try_call
    from ..runtime.fsutil import read_json
    from ..runtime.paths import DAEMONS

    paths = paths_of(ctx)
    live = running_daemons(paths)
    brain = try_call(paths, "brain", "status") if "brain" in live else None
    info = {n: try_call(paths, n, "hello") if n in live else None for n in DAEMONS}
    peers = {n: read_json(paths.run_dir / f"{n}.peers.json") for n in ("supervisor", "watchdog")}
    if brain is None:
        brain = brain_from_disk(paths)
    if as_json:
        click.echo(
            json.dumps(
                {"project": str(paths.root), "daemons": info, "brain": brain, "restarts": peers}, default=str, indent=1
            )
        )
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
            click.echo(f"  {n:<10} running  pid {h['pid']}, up {age(now - h['started_at'])}{extra}")
        elif n in live:
            click.echo(
                f"  {n:<10} NOT ANSWERING  pid {live[n]['pid']} (its peer restarts it after "
                "AURA_PEER_HANG_SECONDS without an answer)"
            )
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
    click.echo(
        f"Planner  {brain.get('planner') or '-'} · cycles {brain.get('cycles') or 0} · "
        + (" · ".join(f"{k} {v}" for k, v in c.items() if v) or "no tasks yet")
    )
    if run.get("finished"):
        click.echo("Run      finished " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.get("finished_at", 0))))
    for line in status_cost_lines(brain):
        click.echo(line)
    from ..runtime.diskspace import status_line

    click.echo(status_line(brain, info.get("watchdog"), paths.data))
    for line in git_status_lines(brain.get("git")):
        click.echo(line)
    for line in tree_display(brain):
        click.echo(line)
    for line in open_question_lines(brain.get("questions")):
        click.echo(line)
    if len(live) < len(DAEMONS):
        sys.exit(EXIT_NOT_RUNNING)


def git_status_lines(git: dict | None) -> list[str]:
    """The run's integration branch, what was merged into it, the worktrees' disk, and how to take it."""
    from ..maintenance import human_bytes

    if not git:
        return []
    if not git.get("enabled"):
        return [f"Git      {note}" for note in git.get("notes") or []]
    merged = git.get("merged") or []
    source = f"from {git.get('user_branch') or 'a detached HEAD'} at {str(git.get('base'))[:10]}"
    disk = f" · worktrees {human_bytes(git['disk_bytes'])}" if git.get("disk_bytes") is not None else ""
    lines = [f"Git      branch {git.get('branch')} ({source}) · {len(merged)} merged{disk}"]
    if merged:
        lines.append(
            f"         merged: {', '.join(merged[:12])}" + (f" and {len(merged) - 12} more" if len(merged) > 12 else "")
        )
    if git.get("merging"):
        lines.append(f"         merging {git['merging']}")
    lines.append(f"         bring it into your branch: {git.get('bring_in')}")
    return lines


def status_cost_lines(brain: dict) -> list[str]:
    """The cost and budget lines of `aura status` (also from a state read off disk)."""
    lines = []
    s = brain.get("costs")
    if s:
        lines.append(
            f"Cost     ${s['total_usd']:.4f} (brain ${s['brain_usd']:.4f} in {s['brain_calls']} calls, "
            f"workers ${s['workers_usd']:.4f})"
        )
    b = brain.get("budget") or {}
    if b.get("limit_usd"):
        word = {
            "reached": "BUDGET REACHED: no new spawns or model calls; `aura budget USD` raises it",
            "warning": f"WARNING: {b.get('percent')}% spent",
            "ok": f"{b.get('percent')}% spent",
        }
        state = str(b.get("state"))
        lines.append(f"Budget   ${b['limit_usd']:.2f} · {word.get(state, state)}")
    llm = brain.get("llm") or {}
    if llm.get("model_cycles") is not None:
        lines.append(
            f"Model    {llm.get('model_cycles', 0)} cycles called the model, {llm.get('skipped_total', 0)} "
            "skipped it (nothing new)"
            + (f", {llm['failures_in_row']} failing in a row" if llm.get("failures_in_row") else "")
        )
    safe = brain.get("safe_mode")
    if safe:
        lines.append(f"SAFE MODE since {when(safe.get('since'))}: {safe.get('reason')}")
    return lines


def tree_display(brain: dict, columns: int | None = None) -> list[str]:
    """The task tree of `aura status`: one line per task (with its attempt while it runs or once it
    was retried), and under each task that ended without completing, its whole reason, wrapped."""
    from ..runtime.vocab import IN_PROGRESS

    rows = brain.get("tree_rows")
    if rows is None:  # a brain that sends only the plain lines
        return [f"  {line}" for line in brain.get("tree") or []]
    columns = columns if columns is not None else width()
    out = []
    for r in rows:
        indent = "  " * int(r.get("depth") or 1)
        n = int(r.get("attempt") or 0)
        attempt = f" (attempt {n})" if n > 1 or (n and r.get("status") == IN_PROGRESS) else ""
        out.append(f"{indent}{r['id']} [{r['status']}] {str(r.get('title') or '')[:80]}{attempt}")
        if r.get("reason"):
            out.append(wrap(r["reason"], columns, indent + "    ", first=indent + "    why: "))
    return out


@click.command()
@click.argument("daemon", required=False, type=click.Choice(["brain", "supervisor", "watchdog"]))
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", default=40, show_default=True, help="How many recent lines to show.")
@click.option("--raw", is_flag=True, help="Print the JSON lines as stored.")
@click.pass_context
def logs(ctx: click.Context, daemon: str | None, follow: bool, lines: int, raw: bool) -> None:
    """Print the daemons' logs readably (all three merged, or one)."""
    from ..logview import print_logs

    paths = paths_of(ctx)
    names = [daemon] if daemon else ["supervisor", "watchdog", "brain"]
    print_logs(paths, names, lines, follow, raw, click.echo)
