"""Turns a bench result (the JSON that bench/run.py writes) into Markdown tables.

Markdown so that the same text reads well in a terminal and pastes into the README.
`python bench/report.py bench/results/FILE.json` re-renders an earlier run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stats import ratio  # noqa: E402

RIVALS = ("circus", "supervisord")
MB = 1024 * 1024


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _row(
    label: str, values: dict[str, float | None], digits: int = 1, shown: dict[str, str] | None = None
) -> list[str]:
    """Aura, circus, supervisord (as `shown`, where given), then Aura/circus and Aura/supervisord."""
    a = values.get("aura")
    return [
        label,
        *((shown or {}).get(k) or _fmt(values.get(k), digits) for k in ("aura", *RIVALS)),
        *(_fmt(ratio(a, values.get(k)), 2) for k in RIVALS),
    ]


HEADER = ["figure", "Aura", "circus", "supervisord", "Aura/circus", "Aura/supervisord"]


def control_rows(sec: dict) -> list[list[str]]:
    whole = sec.get("whole_commands", {})
    rows = []
    for what, aura_key, rival_suffix in (
        ("`aura ps` vs `status`", "aura ps", "status"),
        ("`aura wake` vs `signal`", "aura wake", "signal"),
    ):
        for stat in ("median", "p95"):
            vals = {"aura": whole.get(aura_key, {}).get(stat)}
            vals.update({k: whole.get(f"{k} {rival_suffix}", {}).get(stat) for k in RIVALS})
            rows.append(_row(f"{what}, whole command, {stat} ms", vals))
    rtt = sec.get("round_trip_us", {})
    for op, label in (("light", "round trip, cheapest request"), ("listing", "round trip, list workers")):
        for stat in ("median", "p99"):
            vals = {k: (rtt.get(k, {}).get(op) or {}).get(stat) for k in ("aura", *RIVALS)}
            rows.append(_row(f"{label}, {'p50' if stat == 'median' else stat} µs", vals))
    return rows


def scale_rows(sec: dict) -> list[list[str]]:
    rows = []
    sizes = sorted({int(n) for k in ("aura", *RIVALS) for n in (sec.get(k, {}).get("runs") or {})})
    for n in sizes:
        for key, label, scale, digits in (
            ("spawn_s", "start all, s", 1, 2),
            ("exit_seen_s", "last exit to none running, ms", 1000, 1),
            ("reaped_s", "last exit to all reaped, ms", 1000, 1),
        ):
            vals, shown = {}, {}
            for k in ("aura", *RIVALS):
                run = (sec.get(k, {}).get("runs") or {}).get(str(n)) or {}
                v = run.get(key)
                vals[k] = v * scale if v is not None else None
                shown[k] = _with_quartiles(vals[k], run.get(f"{key}_iqr"), scale, digits, len(run.get("rounds") or []))
            rows.append(_row(f"N={n}: {label}", vals, digits, shown))
        floor = (sec.get("aura", {}).get("fsync_floor") or {}).get(str(n)) or {}
        if floor.get("median_ms") is not None:
            shown = _fmt(floor["median_ms"], 0)
            if floor.get("unsynced_median_ms") is not None:
                shown += f" ({_fmt(floor['unsynced_median_ms'], 0)})"
            label = f"N={n}: Aura only: N exit records made durable at once (the same writes, no flush), ms"
            rows.append([label, shown, *"----"])
    rows += memory_rows(sec, sizes)
    return rows


def _with_quartiles(median: float | None, iqr: list[float] | None, scale: float, digits: int, rounds: int) -> str:
    """`median (p25-p75)` where there were rounds enough to have quartiles, else the median alone."""
    if median is None or not iqr or rounds < 3:
        return _fmt(median, digits)
    low, high = (_fmt(v * scale, digits) for v in iqr)
    return f"{_fmt(median, digits)} ({low}–{high})"


def memory_rows(sec: dict, sizes: list[int]) -> list[list[str]]:
    aura = sec.get("aura", {})
    idle = aura.get("rss_idle") or {}
    top = str(max(sizes)) if sizes else None
    rows = [
        _row(
            "manager RSS idle, MB (Aura: supervisor)",
            {
                "aura": _mb(idle.get("supervisor")),
                **{k: _mb(min((sec.get(k, {}).get("rss_idle") or {"": None}).values(), default=None)) for k in RIVALS},
            },
        )
    ]
    if top:
        peak = (aura.get("rss_peak") or {}).get(top) or {}
        rows.append(
            _row(
                f"manager RSS peak at N={top}, MB (Aura: supervisor)",
                {
                    "aura": _mb(peak.get("supervisor")),
                    **{k: _mb((sec.get(k, {}).get("rss_peak") or {}).get(top)) for k in RIVALS},
                },
            )
        )
        rows.append(
            [
                f"Aura: all three daemons + shims at N={top}, MB",
                _fmt(_mb(sum(v for k, v in peak.items() if k != "shims") + peak.get("shims", 0))),
                "-",
                "-",
                "-",
                "-",
            ]
        )
        rows.append(
            [f"Aura: shims alone at N={top} (one per worker), MB", _fmt(_mb(peak.get("shims"))), "-", "-", "-", "-"]
        )
    rows += per_shim_rows(aura, sizes)
    return rows


def per_shim_rows(aura: dict, sizes: list[int]) -> list[list[str]]:
    """Each shim's share while all N run, resident (RSS, shared pages counted in full) and proportional
    (PSS, shared pages split between their sharers); the fork server's pages are counted with them."""
    rows = []
    for n in sizes:
        mem = (aura.get("shim_memory") or {}).get(str(n)) or {}
        if not mem:
            continue
        rows.append(
            [
                f"Aura: memory per shim at N={n}, MB, RSS / PSS",
                f"{_fmt(_mb(mem['rss'] / n))} / {_fmt(_mb(mem['pss'] / n))}",
                "-",
                "-",
                "-",
                "-",
            ]
        )
    return rows


def _mb(v: Any) -> float | None:
    return v / MB if isinstance(v, (int, float)) else None


def aura_only_lines(sections: dict) -> list[str]:
    lines: list[str] = []
    ev = sections.get("events")
    if ev:
        s, b = ev["exit_to_supervisor_event_ms"], ev["exit_to_brain_task_status_ms"]
        lines.append(
            f"- Worker exit to the supervisor's `worker_exited` event: p50 {_fmt(s.get('median'), 2)} ms, "
            f"p99 {_fmt(s.get('p99'), 2)} ms; to the brain's `task_status` event: p50 "
            f"{_fmt(b.get('median'), 2)} ms, p99 {_fmt(b.get('p99'), 2)} ms ({ev['workers']} workers, 4 at a time)."
        )
    wd = sections.get("watchdog")
    if wd:
        for key in ("cpu", "cpu_default_poll"):
            c = wd.get(key)
            if c:
                cpu = c["cpu_percent_of_one_core"]
                lines.append(
                    f"- Daemon CPU, {c['workers']} workers watched, poll {c['poll_s']:g} s, over {c['seconds']} s: "
                    f"watchdog {cpu.get('watchdog')} %, supervisor {cpu.get('supervisor')} %, brain "
                    f"{cpu.get('brain')} % of one core; one sample costs {c.get('last_sample_cost_ms')} ms."
                )
        k = wd.get("detect_and_kill")
        if k:
            lines.append(
                f"- A worker over its memory limit (poll {k['poll_s']:g} s, window {k['window_s']:g} s, "
                f"{k['strikes']} strikes; bound = window + strikes x poll = {k['bound_s']:g} s): kill decided "
                f"after {_fmt(k['detect_s'].get('median'), 2)} s (max {_fmt(k['detect_s'].get('max'), 2)} s), "
                f"worker gone after {_fmt(k['killed_s'].get('median'), 2)} s, over {k['runs']} runs."
            )
        sc = wd.get("sampling_cost") or {}
        if not sc.get("available"):
            lines.append(f"- Watchdog sampling cost: not available ({sc.get('reason') or 'the script failed'}).")
        for case in sc.get("cases") or []:
            lines.append(
                f"- Watchdog sampling cost (bench/watchdog_overhead.py), {case['sampled_procs']} {case['load']} "
                f"processes in {case['workers']} workers: {case['cpu_ms_per_sample']:.2f} ms CPU per sample, "
                f"{case['cpu_percent_at_10s_poll']:.3f} % of a core at the default 10 s poll, "
                f"{case['cpu_percent_at_1s_poll']:.2f} % at 1 s."
            )
    tok = sections.get("tokens")
    if tok is not None:
        if tok.get("available"):
            t = tok["input_tokens_per_cycle"]
            cycles = tok.get("per_cycle") or []
            fresh = sorted(c["input"] for c in cycles)
            read = sum(c["cache_read"] for c in cycles)
            total = sum(c["input"] + c["cache_read"] + c["cache_write"] for c in cycles) or 1
            lines.append(
                f"- Brain input tokens per cycle (example task, `llm` planner, scripted server answering "
                f"text only): median {t.get('median'):.0f}, max {t.get('max'):.0f} over "
                f"{tok['cycles_with_requests']} cycles; uncached median {fresh[len(fresh) // 2] if fresh else '-'}, "
                f"{100 * read / total:.0f} % read from the prompt cache."
            )
        else:
            lines.append(f"- Brain input tokens per cycle: not available ({tok.get('reason')}).")
    return lines


def soak_lines(sec: dict) -> list[str]:
    """The long run: throughput per window of 500 tasks, first and last, and the daemons' memory."""
    win = sec.get("windows") or []
    if not win:
        return ["- Soak: no figures (the run did not finish)."]
    mb = 1024 * 1024
    start, end = sec.get("rss_start") or {}, sec.get("rss_end") or {}
    rss = ", ".join(f"{k} {start.get(k, 0) / mb:.1f} -> {end.get(k, 0) / mb:.1f} MB" for k in ("brain", "supervisor"))
    rates = " ".join(f"{w['per_s']:g}" for w in win)
    per = sec.get("brain_bytes_written_per_change") or {}
    return (
        [
            f"- Soak, {sec['tasks']} one-line tasks, {sec['concurrency']} at a time (local planner, shell workers): "
            f"{win[0]['per_s']:g} tasks/s in the first 500, {win[-1]['per_s']:g} in the last (each 500: {rates}); "
            f"daemon memory (RSS) {rss}; the brain wrote {per.get('write_chars', 0) / 1024:.1f} KB per status change "
            f"(every file, the snapshots included; state.json {sec.get('state_json_bytes', 0) / mb:.2f} MB at the end)."
        ]
        + [
            f"- A restarted supervisor's read of the soak's {c['workers']} worker folders (in process): "
            f"{c['index_ms']} ms for the live index and the latest ended, {c['every_record_ms']} ms for every "
            "record (the first start after the machine boots)."
            for c in [sec["supervisor_start_read"]]
            if sec.get("supervisor_start_read")
        ]
        + [
            f"- The supervisor killed with SIGKILL at the soak's end, {c['workers']} worker folders: from its "
            f"new process's start to serving, median {c['index_ms']} ms, {c['every_record_ms']} ms when it reads "
            "every record."
            for c in [sec["supervisor_restart"]]
            if sec.get("supervisor_restart")
        ]
        + [
            f"- One status change saved on a tree of {n} tasks (in process): {c['ms']} ms, {c['bytes']} bytes written"
            + (
                f" ({c['reopened_bytes']} bytes to reopen an ended task, written whole)."
                if "reopened_bytes" in c
                else "."
            )
            for n, c in (sec.get("save_cost") or {}).items()
        ]
        + [
            f"- Over a tree of {n} ended tasks (in process, ms): the sweep each second {c['sweep']}, the counts each "
            f"cycle {c['counts']}, the stall signature {c['stall']}, progress.md {c['progress']}, a fold of the "
            f"journal into state.json {c['fold']}."
            for n, c in (sec.get("tree_cost") or {}).items()
        ]
    )


def git_lines(sec: dict) -> list[str]:
    """The git section (bench/gitcost.py): what one attempt costs in git mode."""
    if not sec.get("available"):
        return [f"- Git mode per attempt: not available ({sec.get('reason')})."]
    repo, disk, acc = sec["repo"], sec["disk"], sec["accept"]
    made, prep, rm = sec["create_ms"], sec["prepare_attempt_ms"], sec["remove_ms"]
    return [
        f"- Git mode, a repository of {repo['files']:,} small files in {repo['folders']} folders, one commit "
        f"(checkout {_fmt(_mb(repo['checkout_bytes']), 2)} MB by `tree_size`, "
        f"{_fmt(_mb(repo['checkout_allocated_bytes']), 1)} MB allocated; "
        f"`.git` {_fmt(_mb(repo['git_dir_bytes']), 1)} MB; "
        f"{sec.get('git', 'git')}):",
        f"  - creating an attempt's worktree (`add_worktree`, new branch from the integration head): median "
        f"{_fmt(made.get('median'))} ms, p90 {_fmt(made.get('p90'))} ms over {made.get('n')} runs; the brain's whole "
        f"step (`GitWork.prepare_attempt`): median {_fmt(prep.get('median'))} ms, p90 {_fmt(prep.get('p90'))} ms; "
        f"removing it (`remove_worktree` + `delete_branch`): median {_fmt(rm.get('median'))} ms, "
        f"p90 {_fmt(rm.get('p90'))} ms. For scale, copying the checkout's files without git (`shutil.copytree`): "
        f"median {_fmt(sec.get('copy_checkout_ms', {}).get('median'))} ms.",
        f"  - disk per fresh attempt: the worktree {_fmt(_mb(disk['worktree_bytes']), 2)} MB by `tree_size` "
        f"({_fmt(_mb(disk['worktree_allocated_bytes']), 1)} MB allocated) against the checkout's "
        f"{_fmt(_mb(repo['checkout_bytes']), 2)} MB ({_fmt(_mb(repo['checkout_allocated_bytes']), 1)} MB), plus "
        f"{_fmt(_mb(disk['admin_bytes']), 2)} MB in its folder under `.git/worktrees/` (its index).",
        f"  - one accept, `commit_all` of a one-file change + `merge` into the integration worktree: median "
        f"{_fmt(acc['commit_and_merge_ms'].get('median'))} ms (commit {_fmt(acc['commit_all_ms'].get('median'))} ms, "
        f"merge {_fmt(acc['merge_ms'].get('median'))} ms) over {acc['commit_and_merge_ms'].get('n')} runs; "
        f"`GitWork.accept` with no acceptance commands: median {_fmt(acc['gitwork_accept_ms'].get('median'))} ms.",
    ]


def slurm_lines(sec: dict) -> list[str]:
    """The slurm section (bench/slurmcost.py): workers as jobs on a private one-node cluster."""
    if not sec.get("available"):
        return [f"- Workers as Slurm jobs: not available ({sec.get('why')})."]
    n, ps = sec["workers"], sec["ps_ms"]
    return [
        f"- {n} workers as Slurm jobs (private one-node cluster, `OverSubscribe=FORCE:16`): from the `spawn` "
        f"request to `sbatch`'s job id median {_fmt(sec['submit_ms'].get('median'))} ms, to the shim's start on "
        f"the node median {_fmt(sec['to_node_start_ms'].get('median'))} ms (max "
        f"{_fmt(sec['to_node_start_ms'].get('max'))} ms), to the supervisor reporting it running median "
        f"{_fmt(sec['to_running_ms'].get('median'))} ms (max {_fmt(sec['to_running_ms'].get('max'))} ms); all {n} "
        f"running after {_fmt(sec['all_running_s'], 2)} s. `aura ps` with {n} Slurm workers: median "
        f"{_fmt(ps.get('median'))} ms, p95 {_fmt(ps.get('p95'))} ms; `aura down` stopping them all through "
        f"`scancel`: {_fmt(sec['down_s'], 2)} s.",
    ]


def render(result: dict) -> str:
    m = result["machine"]
    riv = result.get("rivals") or {}
    head = [
        f"Aura {m['aura']} bench, {result['date']}{' (quick)' if result.get('quick') else ''}: "
        f"{m['cpus']} CPUs ({m['cpu_model']}), {m['ram_gb']} GB RAM, {m['platform']}, Python {m['python']}"
        + (f", scheduler autogroup {m['autogroup']}" if m.get("autogroup") else "")
        + (f"; circus {riv.get('circus')}, supervisor {riv.get('supervisor')}" if riv else ""),
        "",
    ]
    secs = result.get("sections", {})
    rows: list[list[str]] = []
    if "control" in secs:
        rows += control_rows(secs["control"])
    if "scale" in secs:
        rows += scale_rows(secs["scale"])
    out = head + (_table(HEADER, rows) if rows else [])
    extra = aura_only_lines(secs)
    if "git" in secs:
        extra += git_lines(secs["git"])
    if "slurm" in secs:
        extra += slurm_lines(secs["slurm"])
    if "soak" in secs:
        extra += soak_lines(secs["soak"])
    if extra:
        out += ["", "Aura only:", *extra]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    for name in argv or sorted(Path(__file__).with_name("results").glob("*.json"))[-1:]:
        print(render(json.loads(Path(name).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
