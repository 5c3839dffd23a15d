"""The bench's own arithmetic and its report, so `python bench/run.py` cannot rot unnoticed between
the runs whose figures go into the README (the real measurement: tests/integration/test_bench_spawn.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench import fsyncfloor
from bench.report import render
from bench.rivals import rounds_median, summary_scale
from bench.stats import percentile, ratio, summary
from tests.support.harness import REPO


def test_percentile_is_nearest_rank() -> None:
    data = list(range(1, 101))
    assert percentile(data, 50) == 50 and percentile(data, 99) == 99 and percentile(data, 100) == 100
    assert percentile([3.0], 99) == 3.0
    assert percentile([5, 1, 4, 2, 3], 50) == 3
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_scales_and_ratio_refuses_what_cannot_be_checked() -> None:
    s = summary([0.001, 0.002, 0.003], scale=1000)
    assert s == {"n": 3, "min": 1.0, "median": 2.0, "p95": 3.0, "p99": 3.0, "max": 3.0}
    assert summary([]) == {"n": 0}
    assert ratio(1.0, 4.0) == 0.25 and ratio(None, 1.0) is None and ratio(1.0, 0) is None


def test_scale_summary_counts_from_the_last_worker_exit() -> None:
    raw = {"n": 2, "t0": 100.0, "all_running": 100.5, "exit_seen": 103.25, "reaped": 103.5}
    assert summary_scale(raw, [102.0, 103.0]) == {
        "n": 2,
        "spawn_s": 0.5,
        "exit_seen_s": 0.25,
        "reaped_s": 0.5,
        "ends_recorded": 2,
    }


def test_report_renders_aura_beside_the_rivals_with_ratios() -> None:
    whole = {
        k: {"median": m, "p95": m * 2}
        for k, m in (
            ("aura ps", 100.0),
            ("aura wake", 90.0),
            ("circus status", 200.0),
            ("circus signal", 180.0),
            ("supervisord status", 50.0),
            ("supervisord signal", 45.0),
        )
    }
    result = {
        "date": "2026-01-01T00:00:00+00:00",
        "quick": False,
        "rivals": {"circus": "0.19.0", "supervisor": "4.3.0"},
        "machine": {
            "aura": "0.2.0",
            "cpus": 2,
            "cpu_model": "cpu",
            "ram_gb": 4.0,
            "platform": "Linux",
            "python": "3.11",
        },
        "sections": {
            "control": {"whole_commands": whole, "round_trip_us": {}},
            "tokens": {"available": False, "reason": "no planner"},
            "scale": {
                "aura": {
                    "runs": {"128": {"n": 128, "spawn_s": 0.3, "exit_seen_s": 0.05, "reaped_s": 0.06}},
                    "fsync_floor": {"128": {"median_ms": 42.4, "rounds_ms": [42.4], "unsynced_median_ms": 30.2}},
                }
            },
        },
    }
    text = render(result)
    row = next(line for line in text.splitlines() if line.startswith("| `aura ps` vs `status`, whole command, median"))
    assert row.split("|")[2:7] == [" 100.0 ", " 200.0 ", " 50.0 ", " 0.50 ", " 2.00 "]
    floor = next(line for line in text.splitlines() if "exit records made durable at once" in line)
    assert floor.split("|")[1].strip().startswith("N=128: Aura only") and floor.split("|")[2:4] == [" 42 (30) ", " - "]
    assert "not available (no planner)" in text


def test_report_cli_rerenders_a_saved_result(tmp_path) -> None:
    saved = {
        "date": "d",
        "quick": True,
        "machine": {"aura": "0.2.0", "cpus": 1, "cpu_model": "c", "ram_gb": 1, "platform": "p", "python": "3"},
        "sections": {},
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(saved))
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "report.py"), str(path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.startswith("Aura 0.2.0 bench, d (quick)")


def test_the_machine_line_says_whether_sessions_share_the_cpu_where_the_run_recorded_it() -> None:
    machine = {"aura": "0.2.0", "cpus": 2, "cpu_model": "c", "ram_gb": 1, "platform": "p", "python": "3"}
    first = {"date": "d", "quick": False, "machine": {**machine, "autogroup": "off"}, "sections": {}}
    assert render(first).splitlines()[0].endswith("Python 3, scheduler autogroup off")
    older = {"date": "d", "quick": False, "machine": machine, "sections": {}}
    assert render(older).splitlines()[0].endswith("Python 3")


def test_scale_rounds_give_each_figure_its_median_and_keep_every_round() -> None:
    rounds = [
        {"n": 8, "spawn_s": 0.03, "exit_seen_s": 0.05, "reaped_s": None, "ends_recorded": 8},
        {"n": 8, "spawn_s": 0.01, "exit_seen_s": 0.09, "reaped_s": 0.2, "ends_recorded": 7},
        {"n": 8, "spawn_s": 0.02, "exit_seen_s": 0.04, "reaped_s": 0.1, "ends_recorded": 8},
    ]
    got = rounds_median(rounds)
    assert (got["spawn_s"], got["exit_seen_s"], got["reaped_s"]) == (0.02, 0.05, 0.1)
    assert got["spawn_s_iqr"] == [0.01, 0.03] and got["exit_seen_s_iqr"] == [0.04, 0.09]
    assert got["reaped_s_iqr"] == [0.1, 0.2]  # the round without the figure is left out
    assert got["ends_recorded"] == 7 and got["rounds"] == rounds and got["n"] == 8


def test_scale_rows_show_quartiles_beside_the_median_once_there_are_rounds_enough() -> None:
    from bench.report import scale_rows

    rounds = [{"n": 8, "spawn_s": s, "exit_seen_s": e, "reaped_s": e, "ends_recorded": 8} for s, e in _ROUNDS]
    one = rounds_median(rounds[:1])
    sec = {"aura": {"runs": {"8": rounds_median(rounds)}}, "circus": {"runs": {"8": one}}}
    row = next(r for r in scale_rows(sec) if r[0] == "N=8: last exit to none running, ms")
    assert row[1:4] == ["3.0 (2.0–6.0)", "2.0", "-"]  # one round: no quartiles to show
    assert row[4] == "1.50"  # the ratio stays the medians'


_ROUNDS = [(0.02, 0.002), (0.03, 0.006), (0.01, 0.003), (0.02, 0.009), (0.02, 0.001)]


def test_fsync_floor_times_every_round_of_real_writers_and_leaves_nothing() -> None:
    before = set(os.listdir(tempfile.gettempdir()))
    got = fsyncfloor.measure([3], 2)
    assert list(got) == ["3"] and len(got["3"]["rounds_ms"]) == 2 == len(got["3"]["unsynced_rounds_ms"])
    assert all(t > 0 for t in got["3"]["rounds_ms"]) and got["3"]["median_ms"] in got["3"]["rounds_ms"]
    assert got["3"]["unsynced_median_ms"] in got["3"]["unsynced_rounds_ms"]
    assert not [n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("aura-fsync-")]


def test_a_whole_command_that_fails_stops_the_bench_instead_of_giving_a_figure(tmp_path: Path) -> None:
    """The time a command takes to fail (an installed Aura that cannot import itself, say) is no figure."""
    from bench.run import time_commands

    ok = time_commands({"true": (["true"], tmp_path, None)}, runs=3, warmup=1)
    assert ok["true"]["n"] == 3 and ok["true"]["unit"] == "ms"
    failing = ["sh", "-c", "echo cannot import >&2; exit 1"]
    with pytest.raises(SystemExit, match=r"`aura ps` failed \(exit 1\): cannot import"):
        time_commands({"true": (["true"], tmp_path, None), "aura ps": (failing, tmp_path, None)}, runs=3)
