"""The run as one self-contained HTML page (`aura report`, and beside the final report at the end of
every run): a timeline of every attempt with the watchdog's kills, each worker's CPU, memory and GPU
over time, the spend against the budget, the task tree with reasons and evidence, and the decisions.

Everything comes from disk, so the page can be written while the daemons are down: the brain's
state and decision log, the cost ledger, the workers' records and the watchdog's usage history.
The page needs no network: the charts are inline SVG (svgchart.py), the style and the one small
script (which checks that each chart drew its series, and records any script error) are inline.
"""

from __future__ import annotations

import json
import sys
import time
from html import escape
from pathlib import Path
from typing import Any

from aura.runtime.fsutil import atomic_write_text, read_json, read_jsonl
from aura.runtime.paths import ProjectPaths
from aura.runtime.records import WorkerRecords, watchdog_kill
from aura.runtime.usagehistory import read_history
from aura.runtime.vocab import EXITED, RUNNING

from . import costs as costmod
from .state import ROOT, counts, read_state, walk
from .svgchart import line_chart, timeline

REPORT_NAME = "report.html"
MAX_DECISIONS = 3000
MIB = 1024**2


def report_path(paths: ProjectPaths) -> Path:
    """Beside the final report (summaries.py writes `final_report.md` in the same folder)."""
    return paths.data / "summaries" / REPORT_NAME


def load_state(paths: ProjectPaths) -> dict | None:
    """The brain's state as it last saved it (its snapshot with the journal replayed, else its backup
    when the snapshot is unreadable); read only."""
    state = read_state(paths.state_dir)
    if state is not None:
        return state
    backup = read_json(paths.state_dir / "state.json.bak")
    return (
        backup
        if isinstance(backup, dict) and isinstance(backup.get("tasks"), dict) and ROOT in backup["tasks"]
        else None
    )


def write_report(paths: ProjectPaths, state: dict | None = None, out: Path | None = None) -> Path:
    """Build the page from disk (with the brain's state in memory when it writes it) and write it."""
    state = state if state is not None else load_state(paths)
    if state is None:
        raise FileNotFoundError(f"no run state in {paths.state_dir} (has `aura up` run here?)")
    path = out or report_path(paths)
    atomic_write_text(path, render(paths, state, time.time()), mode=0o600)
    return path


# -- the data --------------------------------------------------------------------------------------------


def attempts(paths: ProjectPaths) -> list[dict]:
    """Every worker as a timeline row: start, end, outcome, and the watchdog's kill when there was one."""
    reg = WorkerRecords(paths)
    rows = []
    for rec in reg.records():
        w = reg.view(rec)
        exit_rec = w.get("exit") or {}
        kill = w.get("kill") or watchdog_kill(paths, w["worker_id"]) or {}
        outcome = w.get("outcome") or (
            f"exit {exit_rec.get('exit_code')}" if exit_rec else (RUNNING if w.get("state") != EXITED else "ended")
        )
        rows.append(
            {
                "label": w["worker_id"],
                "task_id": w.get("task_id"),
                "start": w.get("started_at") or w.get("created_at"),
                "end": w.get("ended_at") or exit_rec.get("ended_at"),
                "outcome": outcome,
                "kill_at": kill.get("requested_at") if kill.get("by") == "watchdog" else None,
                "kill_reason": kill.get("reason"),
            }
        )
    return sorted(rows, key=lambda r: r["start"] or 0)


def spend_series(paths: ProjectPaths, state: dict, rows: list[dict], now: float) -> list[tuple[str, list]]:
    """Running totals of the brain's calls (the ledger) and of the workers (each at its end)."""
    start = float(state.get("created_at") or now)
    brain: list[tuple[float, float]] = [(start, 0.0)]
    for entry in read_jsonl(paths.state_dir / "costs.jsonl"):
        if entry.get("layer") == "brain" and isinstance(entry.get("usd"), (int, float)):
            brain.append((float(entry.get("ts") or now), brain[-1][1] + float(entry["usd"])))
    ends = {r["label"]: r.get("end") or now for r in rows}
    book = ((state.get("costs") or {}).get("workers") or {}).items()
    workers: list[tuple[float, float]] = [(start, 0.0)]
    for t, usd in sorted((float(ends.get(wid) or now), float(w.get("usd") or 0)) for wid, w in book):
        workers.append((t, workers[-1][1] + usd))
    run = state.get("run") or {}
    last = max([r.get("end") or 0 for r in rows] + [brain[-1][0], workers[-1][0]])
    end = max(float(run.get("finished_at") or 0) if run.get("finished") else now, last)
    brain.append((end, brain[-1][1]))
    workers.append((end, workers[-1][1]))
    return [("brain", brain), ("workers", workers)]


def usage_series(history: dict[str, dict], column: int) -> list[tuple[str, list]]:
    return [(wid, [(p[0], float(p[column] or 0)) for p in h["points"]]) for wid, h in sorted(history.items())]


# -- the page -----------------------------------------------------------------------------------------------


def render(paths: ProjectPaths, state: dict, now: float) -> str:
    rows = attempts(paths)
    history = read_history(paths)
    budget = state.get("budget") or {}
    limit = float(budget.get("limit_usd") or 0)
    gpu = usage_series(history, 3)
    charts = [
        ("Attempts", timeline("Every attempt: start, end and outcome; a red cross is a watchdog kill", rows, now)),
        ("CPU", line_chart("CPU of each worker (% of the machine)", usage_series(history, 1), "%")),
        ("Memory", line_chart("Memory of each worker (RSS)", usage_series(history, 2), " MB", scale=MIB)),
        (
            "GPU memory",
            line_chart("GPU memory of each worker", gpu, " MB", scale=MIB)
            if any(v for _, pts in gpu for _, v in pts)
            else '<p class="empty">No GPU memory was used (or no GPU could be read).</p>',
        ),
        (
            "Spend",
            line_chart(
                "Spend over time, brain and workers",
                spend_series(paths, state, rows, now),
                "",
                fmt="${:.2f}",
                limit=(f"budget ${limit:.2f}", limit) if limit > 0 else None,
                steps=True,
            ),
        ),
    ]
    decisions = read_jsonl(paths.state_dir / "decisions.jsonl")
    body = [summary(state, now), *[f"<h2>{escape(name)}</h2>{svg}" for name, svg in charts]]
    body += ["<h2>Task tree</h2>", task_tree(state), "<h2>Decisions</h2>", decision_table(decisions)]
    return PAGE.format(title=escape(f"Aura report: {state.get('mission') or ''}"), body="\n".join(body), script=SCRIPT)


def summary(state: dict, now: float) -> str:
    s = costmod.summary(state)
    run = state.get("run") or {}
    c = counts(state)
    started = float(state.get("created_at") or now)
    ended = run.get("finished_at") if run.get("finished") else None
    when = "finished " + _time(ended) if ended else f"still running at {_time(now)}"
    budget = state.get("budget") or {}
    limit = f" of a ${float(budget['limit_usd']):.2f} budget" if budget.get("limit_usd") else ""
    return (
        f"<h1>{escape(str(state.get('mission') or 'Aura run'))}</h1>"
        f'<p class="facts">Started {_time(started)}, {escape(when)} · {state.get("total_cycles", 0)} cycles · '
        + escape(", ".join(f"{k} {v}" for k, v in c.items() if v) or "no tasks")
        + f" · spent ${s['total_usd']:.4f}{escape(limit)} (brain ${s['brain_usd']:.4f} in {s['brain_calls']} "
        f"calls, workers ${s['workers_usd']:.4f})"
        + (
            f' · <b class="bad">safe mode: {escape(str(state["safe_mode"].get("reason")))}</b>'
            if state.get("safe_mode")
            else ""
        )
        + "</p>"
    )


def task_tree(state: dict) -> str:
    out = ['<ul class="tree">']
    depth = 1
    for d, task in walk(state):
        if not d:
            continue
        while depth < d:
            out.append("<ul>")
            depth += 1
        while depth > d:
            out.append("</ul>")
            depth -= 1
        status = str(task.get("status"))
        line = (
            f'<li><b>{escape(str(task["id"]))}</b> <span class="st {escape(status)}">{escape(status)}</span> '
            f"{escape(str(task.get('title') or ''))} <small>({int(task.get('attempts') or 0)} attempts)</small>"
        )
        for key in ("reason", "evidence"):
            if task.get(key):
                line += f'<div class="why"><i>{key}:</i> {escape(str(task[key]))}</div>'
        out.append(line + "</li>")
    out.append("</ul>" * depth)
    return "".join(out)


def decision_table(decisions: list[dict]) -> str:
    if not decisions:
        return "<p>No decisions yet.</p>"
    shown = decisions[-MAX_DECISIONS:]
    note = f"<p>The last {len(shown)} of {len(decisions)} decisions.</p>" if len(shown) < len(decisions) else ""
    rows = "".join(
        f"<tr><td>{_time(d.get('ts'))}</td><td>{escape(str(d.get('kind')))}</td>"
        f"<td>{escape(str(d.get('task_id') or ''))}</td><td>{escape(_decision_text(d))}</td></tr>"
        for d in shown
    )
    head = "<tr><th>time</th><th>kind</th><th>task</th><th>what and why</th></tr>"
    return f'{note}<table class="decisions">{head}{rows}</table>'


def _decision_text(d: dict) -> str:
    if d.get("kind") == "status":
        text = f"{d.get('old')} -> {d.get('new')}: {d.get('reason', '')}"
        return text + (f" (evidence: {d['evidence']})" if d.get("evidence") else "")
    rest = {k: v for k, v in d.items() if k not in ("ts", "kind", "task_id", "cycle", "by")}
    return json.dumps(rest, default=str, ensure_ascii=False)[:600]


def _time(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts))) if ts else "-"


SCRIPT = """
window.addEventListener('error', function (e) {
  document.body.dataset.errors = (document.body.dataset.errors || '') + e.message + ';';
});
document.addEventListener('DOMContentLoaded', function () {
  var charts = document.querySelectorAll('svg.chart'), drawn = 0;
  charts.forEach(function (svg) {
    var all = svg.querySelectorAll('.series'), ok = all.length > 0;
    all.forEach(function (s) { var b = s.getBBox(); if (!(b.width > 0 || b.height > 0)) ok = false; });
    svg.dataset.drawn = ok ? 'yes' : 'no';
    if (ok) drawn += 1;
  });
  var check = document.getElementById('chart-check');
  check.dataset.charts = charts.length;
  check.dataset.drawn = drawn;
  check.textContent = drawn + ' of ' + charts.length + ' charts drawn';
});
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }}
svg.chart text {{ font-size: 11px; fill: #444; }}
.plot {{ fill: #fafafa; stroke: #ccc; }} .grid {{ stroke: #e6e6e6; }}
polyline.series {{ fill: none; stroke-width: 1.6; }}
.limit {{ stroke: #d62728; stroke-dasharray: 6 4; }} .limit-label {{ fill: #d62728 !important; }}
.kill {{ stroke: #d62728; stroke-width: 2.5; }}
.tree li {{ margin: 4px 0; }} .why {{ color: #555; margin-left: 16px; font-size: 13px; }}
.st {{ padding: 0 5px; border-radius: 3px; background: #eee; }} .st.completed {{ background: #cfc; }}
.st.blocked, .st.failed {{ background: #fcc; }} .st.in_progress {{ background: #cdf; }}
table.decisions {{ border-collapse: collapse; font-size: 12px; }}
table.decisions td, table.decisions th {{ border-bottom: 1px solid #eee; padding: 2px 6px; vertical-align: top; }}
table.decisions th {{ text-align: left; }}
.empty {{ color: #777; }} .bad {{ color: #b00; }} #chart-check {{ color: #999; font-size: 11px; }}
</style></head>
<body>
{body}
<p id="chart-check"></p>
<script>{script}</script>
</body></html>
"""


def main(argv: list[str] | None = None) -> int:
    """`python -m aura.brain.runreport ROOT DATA`: the brain's child at the run's end (reportchild.py)."""
    root, data = argv if argv is not None else sys.argv[1:]
    try:
        write_report(ProjectPaths(Path(root), Path(data)))
    except OSError as exc:  # one line for the brain's log to point at, not a traceback
        print(f"report.html was not written: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
