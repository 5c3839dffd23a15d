"""The filesystem side of the maintenance commands (`aura clean-workspaces`, `cleanup`, `restart`,
`token-stats`, `cache-stats`, `changelog-overview`; the CLI glue is aura/cli/maintenance.py).

Everything here reads what the daemons wrote and never talks to them, so it works whether the
project runs or not; the callers decide, from the daemons' answers, what may be removed. Nothing
here imports the model SDK.

Safety rules, because a deleted folder cannot come back:
* a worker folder goes only when the worker has finished (its shim wrote `exit.json`), the
  supervisor (when it answers) does not list it as live, and its task is finished;
* a task workspace goes only when its task is in a terminal state (or unknown to the run) and
  no unfinished worker writes into it;
* `restart` moves the old run aside (`state.restart-<time>/`), it never deletes it.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .runtime import gitrepo as g
from .runtime.exitfile import exit_record, has_exit
from .runtime.fsutil import read_json, read_jsonl, tree_size
from .runtime.gitmode import attempt_branch
from .runtime.paths import DAEMONS, ProjectPaths, safe_name
from .runtime.pidfile import is_alive
from .runtime.procgroup import processes_in
from .runtime.records import WORKER_RECORD, WORKER_START_REPORT, kills_dir
from .runtime.vocab import COMPLETED, EXITED, LIVE_STATES, TASK_ENDED

DAY = 86400.0
RESTART_PREFIX = "state.restart-"
TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens", "cache_write_1h_tokens")


# -- small helpers -------------------------------------------------------------------------------


def newest_mtime(path: Path) -> float:
    """The latest modification time of anything in the tree: a worker writing its output file
    changes the file's mtime, not its folder's, so the folder's alone would look old."""
    try:
        newest = path.lstat().st_mtime
    except OSError:
        return 0.0
    if path.is_symlink() or not path.is_dir():
        return newest
    for folder, dirs, files in os.walk(path, followlinks=False):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
            except OSError:
                pass
    return newest


def human_bytes(n: float) -> str:
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024:
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}P"


def human_age(seconds: float) -> str:
    s = max(0, int(seconds))
    if s >= DAY:
        return f"{s / DAY:.1f}d"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s"


def remove_tree(path: Path) -> None:
    """Delete a folder (or a file/link) without following links out of it."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


def read_state(state_dir: Path) -> dict:
    from .brain.state import read_state as live

    return live(state_dir) or {}


# -- clean-workspaces ------------------------------------------------------------------------------


@dataclass
class Folder:
    """A worker folder or a task workspace, with the reason it is kept (None: it may go)."""

    kind: str  # "worker", "workspace" or "worktree"
    name: str
    path: Path
    size: int
    age_s: float
    keep: str | None = None
    young: bool = False
    branch: str | None = None  # a worktree's attempt branch, removed with it


@dataclass
class WorkspacePlan:
    remove: list[Folder] = field(default_factory=list)
    kept: list[Folder] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(f.size for f in self.remove)


def _worker_running(wdir: Path) -> str:
    """Why, judging from disk only, a worker without exit.json must be treated as running."""
    report = read_json(wdir / WORKER_START_REPORT) or {}
    rec = read_json(wdir / WORKER_RECORD) or {}
    for who in ("shim", "worker"):
        pid = report.get(f"{who}_pid") or rec.get(f"{who}_pid")
        created = report.get(f"{who}_create_time") or rec.get(f"{who}_create_time")
        if is_alive(pid, created):
            return f"running ({who} pid {pid})"
    return "not finished (no exit.json)"


def worker_status(wdir: Path, live_ids: set[str] | None) -> str | None:
    """None when the worker has finished for sure, else why it is kept.

    `live_ids`: the workers the supervisor lists as live, or None when it did not answer."""
    if live_ids is not None and wdir.name in live_ids:
        return "running (supervisor)"
    if has_exit(wdir):
        return None
    why = _worker_running(wdir)
    rec = read_json(wdir / WORKER_RECORD) or {}
    if not why.startswith("running") and rec.get("state") == EXITED:
        return None  # the supervisor closed it without a shim exit (e.g. the shim never started)
    return why


def plan_workspaces(
    paths: ProjectPaths,
    age_days: float,
    include_all: bool,
    supervisor_workers: list[dict] | None,
    now: float | None = None,
) -> WorkspacePlan:
    """Decide, for each worker folder and task workspace, whether it may be removed."""
    now = time.time() if now is None else now
    cutoff = now - age_days * DAY
    state = read_state(paths.state_dir)
    status_by_dir = {
        safe_name(tid): str(t.get("status")) for tid, t in (state.get("tasks") or {}).items() if isinstance(t, dict)
    }
    live_ids = None
    if supervisor_workers is not None:
        live_ids = {str(w.get("worker_id")) for w in supervisor_workers if w.get("state") in LIVE_STATES}
    plan = WorkspacePlan()
    busy_dirs: dict[str, str] = {}  # task workspace -> the unfinished worker writing into it

    workers = sorted(p for p in _subdirs(paths.workers_dir))
    for wdir in workers:
        rec = read_json(wdir / WORKER_RECORD) or {}
        exit_rec = exit_record(wdir) or {}
        keep = worker_status(wdir, live_ids)
        task_id = rec.get("task_id")
        if keep is not None:
            task_dir = rec.get("task_dir") or (str(paths.task_dir(task_id)) if task_id else None)
            if task_dir:
                busy_dirs[os.path.realpath(task_dir)] = wdir.name
        elif task_id and status_by_dir.get(safe_name(task_id), COMPLETED) not in TASK_ENDED:
            keep = f"task {task_id} is {status_by_dir[safe_name(task_id)]}"
        ended = exit_rec.get("ended_at") if isinstance(exit_rec.get("ended_at"), (int, float)) else None
        when = ended or newest_mtime(wdir)
        folder = Folder("worker", wdir.name, wdir, tree_size(wdir), now - when, keep)
        plan_add(plan, folder, when, cutoff, include_all)

    for tdir in sorted(_subdirs(paths.workspace_dir)):
        status = status_by_dir.get(tdir.name)
        keep = None
        writer = busy_dirs.get(os.path.realpath(tdir))
        if writer:
            keep = f"worker {writer} is not finished"
        elif status is not None and status not in TASK_ENDED:
            keep = f"task is {status}"
        when = newest_mtime(tdir)
        folder = Folder("workspace", tdir.name, tdir, tree_size(tdir), now - when, keep)
        plan_add(plan, folder, when, cutoff, include_all)
    for folder, when in plan_worktrees(paths, state, live_ids, now):
        plan_add(plan, folder, when, cutoff, include_all)
    return plan


def plan_worktrees(
    paths: ProjectPaths, state: dict, live_ids: set[str] | None, now: float
) -> list[tuple[Folder, float]]:
    """Git mode's worktrees: an attempt's goes once its worker has finished, the integration one once the
    run has; neither while a process runs in it."""
    git = state.get("git") or {}
    if not git.get("enabled"):
        return []
    out = []
    for wdir in sorted(_subdirs(paths.attempts_dir)):
        keep = worker_status(paths.worker_dir(wdir.name), live_ids) if paths.worker_dir(wdir.name).exists() else None
        if git.get("merging", {}).get("worker_id") == wdir.name:
            keep = "the brain is merging it"
        out.append((_worktree(wdir, keep, now, attempt_branch(str(git.get("branch")), wdir.name)), newest_mtime(wdir)))
    integ = paths.integration_dir
    if integ.exists():
        finished = (state.get("run") or {}).get("finished")
        keep = None if finished else "the run is not finished (the brain merges there)"
        out.append((_worktree(integ, keep, now, None), newest_mtime(integ)))
    return out


def _worktree(path: Path, keep: str | None, now: float, branch: str | None) -> Folder:
    if keep is None:
        pids = processes_in(path)
        keep = f"a process runs in it (pid {', '.join(map(str, pids[:5]))})" if pids else None
    when = newest_mtime(path)
    return Folder("worktree", path.name, path, tree_size(path), now - when, keep, branch=branch)


def remove_worktree_folder(paths: ProjectPaths, folder: Folder) -> None:
    """`git worktree remove`, then `prune`, then its attempt branch; the integration branch stays."""
    state = read_state(paths.state_dir)
    repo = Path((state.get("git") or {}).get("repo") or paths.root)
    pids = processes_in(folder.path)
    if pids:
        raise OSError(f"a process runs in it (pid {pids[0]})")
    try:
        g.remove_worktree(repo, folder.path)
        if folder.branch:
            g.delete_branch(repo, folder.branch)
    except g.GitError as exc:
        raise OSError(str(exc)) from None


def plan_add(plan: WorkspacePlan, folder: Folder, when: float, cutoff: float, include_all: bool) -> None:
    if folder.keep is None and not include_all and when > cutoff:
        folder.keep, folder.young = "younger than the age limit", True
    (plan.kept if folder.keep else plan.remove).append(folder)


def _subdirs(folder: Path) -> Iterable[Path]:
    try:
        return [Path(e.path) for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def remove_folders(
    paths: ProjectPaths, plan: WorkspacePlan, live_ids: set[str] | None
) -> list[tuple[Folder, str | None]]:
    """Delete what the plan allows, checking each worker once more just before (it may have been
    relaunched meanwhile); returns (folder, error or None)."""
    out: list[tuple[Folder, str | None]] = []
    for f in plan.remove:
        if f.kind == "worker":
            again = worker_status(f.path, live_ids)
            if again:
                out.append((f, f"kept: {again}"))
                continue
        try:
            if f.kind == "worktree":
                remove_worktree_folder(paths, f)
            else:
                remove_tree(f.path)
            out.append((f, None))
        except OSError as exc:
            out.append((f, str(exc)))
    return out


# -- cleanup (leftovers of a stopped run) ----------------------------------------------------------------


@dataclass
class Leftover:
    path: Path
    why: str
    size: int


_TMP = re.compile(r"^\..+\.\d+\.\d+\.tmp$")  # aura.runtime.fsutil's temporary files
_CORRUPT = re.compile(r"\.corrupt-(\d+)$")


def stale_leftovers(paths: ProjectPaths, age_days: float, now: float | None = None) -> list[Leftover]:
    """What a stopped or crashed run left behind; the caller must know that nothing runs.

    * the run's socket folder (outside the data folder; the daemons make a new one on start);
    * pid files that still say "running" for a process that is gone (a kill -9 or a crash);
    * temporary files of interrupted atomic writes in the daemons' own folders;
    * `*.corrupt-<time>` state files (kept by the brain for a human) older than `age_days`.
    Worker folders and workspaces are `clean-workspaces`' business; `state.restart-*` archives
    are kept (they are the only copy of an earlier run)."""
    now = time.time() if now is None else now
    out: list[Leftover] = []
    runtime = paths.runtime_dir
    if runtime.is_dir() and not runtime.is_symlink():
        names = sorted(p.name for p in runtime.iterdir())
        what = f" ({', '.join(names)})" if names else " (empty)"
        out.append(Leftover(runtime, "socket folder of a stopped run" + what, tree_size(runtime)))
    for name in DAEMONS:
        pidfile = paths.pidfile(name)
        rec = read_json(pidfile)
        if (
            isinstance(rec, dict)
            and rec.get("state") == "running"
            and not is_alive(rec.get("pid"), rec.get("create_time"))
        ):
            out.append(
                Leftover(pidfile, f"pid file of a {name} that died (pid {rec.get('pid')} is gone)", tree_size(pidfile))
            )
    for folder in (paths.state_dir, paths.run_dir, paths.memory_dir, paths.events_dir, paths.watchdog_dir):
        for p in sorted(folder.glob(".*.tmp")) if folder.is_dir() else ():
            if _TMP.match(p.name) and now - _mtime(p) > 60:
                out.append(Leftover(p, "temporary file of an interrupted write", tree_size(p)))
    if paths.state_dir.is_dir():
        for p in sorted(paths.state_dir.glob("*.corrupt-*")):
            m = _CORRUPT.search(p.name)
            when = float(m.group(1)) if m else _mtime(p)
            if now - when > age_days * DAY:
                out.append(Leftover(p, f"unreadable state kept aside {human_age(now - when)} ago", tree_size(p)))
    return out


def _mtime(p: Path) -> float:
    try:
        return p.lstat().st_mtime
    except OSError:
        return 0.0


# -- restart ------------------------------------------------------------------------------------------------


def unfinished_workers(paths: ProjectPaths) -> list[str]:
    """Workers whose shim or process is still alive (judged from disk)."""
    out = []
    for wdir in sorted(_subdirs(paths.workers_dir)):
        if not has_exit(wdir) and _worker_running(wdir).startswith("running"):
            out.append(wdir.name)
    return out


def run_folders(paths: ProjectPaths) -> dict[str, Path]:
    """The per-run folders `restart` moves aside besides the state: anything keyed by task or
    worker id (a new run reuses the ids, so old records would pass as the new run's) and the event
    journals (a new state reads them from the start). Settings stay: the project's config.env and
    the limits changed at run time (run/watchdog/limits.json); so do the daemons' logs."""
    return {
        "events": paths.events_dir,
        "workers": paths.workers_dir,
        "watchdog-kills": kills_dir(paths),
        "workspace": paths.data / "workspace",
        "summaries": paths.data / "summaries",
        "memory": paths.memory_dir,
    }


def archive_run(paths: ProjectPaths, now: float | None = None) -> Path | None:
    """Rename `state/` to `state.restart-<time>/` and move the other per-run folders into it under
    `previous-run/`; returns the archive, or None when there was no earlier run."""
    present = {k: p for k, p in run_folders(paths).items() if p.exists()}
    if not paths.state_dir.exists() and not present:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    target = paths.data / f"{RESTART_PREFIX}{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = paths.data / f"{RESTART_PREFIX}{stamp}-{n}"
    if paths.state_dir.exists():
        os.rename(paths.state_dir, target)
    else:
        target.mkdir(mode=0o700, parents=True)
    if present:
        (target / "previous-run").mkdir(mode=0o700)
        for key, p in present.items():
            os.rename(p, target / "previous-run" / key)
    return target


# -- token-stats / cache-stats ---------------------------------------------------------------------------------

MONEY_KEYS = ("usd", "write_usd", "saved_usd", "write_extra_usd")


def _blank() -> dict:
    return {"calls": 0, **{k: 0 for k in TOKEN_KEYS}, **{k: 0.0 for k in MONEY_KEYS}}


def _cache_money(tokens: dict, prices: Any) -> tuple[float, float, float]:
    """(write, saved, extra): what the cache writes cost; cache reads priced at the hit price instead
    of the miss price; and what the cache writes cost above the same tokens as ordinary input."""
    parts = prices.parts(tokens)
    saved = int(tokens.get("cache_read_tokens") or 0) * max(0.0, prices.miss - prices.hit) / 1e6
    extra = max(0.0, parts["cache_write"] - int(tokens.get("cache_write_tokens") or 0) * prices.miss / 1e6)
    return parts["cache_write"], saved, extra


def _add(row: dict, tokens: dict, prices: Any, calls: int = 1) -> None:
    """Add one call (or one worker's totals) to a row; the dollars recorded with it win over a
    recomputation at today's prices."""
    write, saved, extra = _cache_money(tokens, prices)
    row["calls"] += calls
    for k in TOKEN_KEYS:
        row[k] += int(tokens.get(k) or 0)
    row["usd"] += float(tokens["usd"]) if tokens.get("usd") is not None else prices.usd(tokens)
    row["write_usd"] += float(tokens["write_usd"]) if tokens.get("write_usd") is not None else write
    row["saved_usd"] += saved
    row["write_extra_usd"] += extra


def finish_row(row: dict) -> dict:
    prompt = row["input_tokens"] + row["cache_read_tokens"] + row["cache_write_tokens"]
    row["prompt_tokens"] = prompt
    row["hit_rate"] = round(row["cache_read_tokens"] / prompt, 4) if prompt else None
    for k in MONEY_KEYS:
        row[k] = round(row[k], 6)
    return row


def usage_stats(paths: ProjectPaths, cfg: Any) -> dict:
    """Model usage of this run, per source: every brain call from `state/costs.jsonl` (by what
    the call was for), every worker from the brain's per-worker totals (by model), plus workers the
    brain has not counted yet from the supervisor's records. Dollars are Aura's (its price table,
    aura/brain/pricing.py); saved dollars use today's prices."""
    from .brain.pricing import brain_model, brain_prices, worker_prices

    configured = brain_model(cfg)[0]
    prices: dict[tuple[str, str], Any] = {}

    def price(layer: str, model: Any) -> Any:
        key = (layer, str(model or (configured if layer == "brain" else "")))
        if key not in prices:
            prices[key] = (brain_prices if layer == "brain" else worker_prices)(cfg, key[1] or None)
        return prices[key]

    state = read_state(paths.state_dir)
    rows: dict[str, dict] = {}
    ledger = read_jsonl(paths.state_dir / "costs.jsonl")
    for e in ledger:
        _add(
            rows.setdefault(f"brain/{e.get('source') or 'call'}", {**_blank(), "layer": "brain"}),
            e,
            price("brain", e.get("model")),
        )
    brain_book = (state.get("costs") or {}).get("brain") or {}
    if not ledger and brain_book.get("calls"):  # the ledger is gone: the totals still say something
        _add(
            rows.setdefault("brain/(totals)", {**_blank(), "layer": "brain"}),
            brain_book,
            price("brain", None),
            calls=int(brain_book.get("calls") or 0),
        )
    book = dict((state.get("costs") or {}).get("workers") or {})
    for wdir in sorted(_subdirs(paths.workers_dir)):
        if wdir.name in book:
            continue
        rec = read_json(wdir / WORKER_RECORD) or {}
        progress = rec.get("progress") or {}
        tokens = {k: int(progress.get(k) or 0) for k in TOKEN_KEYS}
        if any(tokens.values()):
            book[wdir.name] = {
                **tokens,
                "model": progress.get("model") or rec.get("backend"),
                "reported_usd": progress.get("total_cost_usd"),
            }
    reported = 0.0
    for w in book.values():
        _add(
            rows.setdefault(f"worker/{w.get('model') or 'unknown'}", {**_blank(), "layer": "worker"}),
            w,
            price("worker", w.get("model")),
        )
        if isinstance(w.get("reported_usd"), (int, float)):
            reported += w["reported_usd"]
    total = _blank()
    for r in rows.values():
        for k in ("calls", *TOKEN_KEYS, *MONEY_KEYS):
            total[k] += r[k]
    brain_calls = sum(r["calls"] for r in rows.values() if r["layer"] == "brain")
    brain_usd = sum(r["usd"] for r in rows.values() if r["layer"] == "brain")
    llm = state.get("llm") or {}
    price("brain", None)
    return {
        "sources": {k: finish_row(v) for k, v in sorted(rows.items())},
        "total": finish_row(total),
        "brain_calls": brain_calls,
        "worker_runs": len(book),
        "avg_brain_usd": round(brain_usd / brain_calls, 6) if brain_calls else None,
        "avg_prompt_tokens": round(
            sum(r["prompt_tokens"] for r in rows.values() if r["layer"] == "brain") / brain_calls
        )
        if brain_calls
        else None,
        "model_cycles": llm.get("model_cycles"),
        "skipped_cycles": llm.get("skipped_total"),
        "workers_reported_usd": round(reported, 6) if reported else None,
        "prices": {
            "brain": price("brain", None).as_dict(),
            **{f"{layer}/{model or '(no model named)'}": p.as_dict() for (layer, model), p in prices.items()},
        },
    }


# -- changelog-overview --------------------------------------------------------------------------------------


def state_dirs(paths: ProjectPaths) -> list[tuple[str, Path]]:
    """The current run's state folder and those `restart` kept aside, oldest first."""
    out = [(p.name, p) for p in sorted(paths.data.glob(RESTART_PREFIX + "*")) if p.is_dir()]
    if paths.state_dir.is_dir():
        out.append(("current run", paths.state_dir))
    return out


def changelog_overview(paths: ProjectPaths) -> list[dict]:
    """Per run: how many task-file versions the brain saw, how many it has planned for (the
    last change waits in state["pending_task_diff"] until a model cycle replans), when the last
    change was seen, and which file it was."""
    rows = []
    for label, folder in state_dirs(paths):
        entries = read_jsonl(folder / "changelog.jsonl")
        state = read_state(folder)
        # only the llm planner consumes the pending diff; the local planner re-syncs every cycle
        pending = (state.get("pending_task_diff") or {}).get("hash") if state.get("llm") is not None else None
        waiting = sum(1 for e in entries if pending and e.get("hash") == pending)
        added = removed = 0
        for e in entries:
            for line in e.get("diff") or []:
                if line.startswith("+") and not line.startswith("+++"):
                    added += 1
                elif line.startswith("-") and not line.startswith("---"):
                    removed += 1
        rows.append(
            {
                "run": label,
                "folder": str(folder),
                "entries": len(entries),
                "changes": sum(1 for e in entries if e.get("kind") == "changed"),
                "processed": len(entries) - waiting,
                "waiting": waiting,
                "lines_added": added,
                "lines_removed": removed,
                "first_ts": entries[0].get("ts") if entries else None,
                "last_ts": entries[-1].get("ts") if entries else None,
                "last_summary": entries[-1].get("summary") if entries else None,
                "task_file": (entries[-1].get("file") if entries else None) or state.get("task_file"),
                "mission": state.get("mission"),
            }
        )
    return rows


def overview_markdown(rows: list[dict], when: float | None = None) -> str:
    def ts(t: Any) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(t))) if t else "-"

    lines = [
        "# Task-file changelog overview",
        "",
        f"Written {ts(time.time() if when is None else when)} by `aura changelog-overview`.",
        "",
    ]
    if not rows:
        return "\n".join(lines + ["No run has recorded a task-file version yet.", ""])
    lines += [
        "| Run | Task file | Versions | Changes | Processed | Waiting | Lines +/- | Last seen | Last change |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['task_file'] or '-'} | {r['entries']} | {r['changes']} | {r['processed']} | "
            f"{r['waiting']} | +{r['lines_added']}/-{r['lines_removed']} | {ts(r['last_ts'])} | "
            f"{(r['last_summary'] or '-').replace('|', '/')} |"
        )
    lines += [
        "",
        f"Total: {sum(r['entries'] for r in rows)} version(s) in {len(rows)} run(s), "
        f"{sum(r['processed'] for r in rows)} processed, {sum(r['waiting'] for r in rows)} waiting "
        "for the next model cycle.",
        "",
    ]
    return "\n".join(lines)
