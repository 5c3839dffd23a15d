"""The bench's own arithmetic and one small real measurement, so `python bench/run.py` cannot
rot unnoticed between the runs whose figures go into the README."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench import aura_bench, driver
from bench.harness import REPO, BenchProject, alive
from bench.report import render
from bench.rivals import read_ends, summary_scale, worker_script
from bench.stats import percentile, ratio, summary


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
    assert summary_scale(raw, [102.0, 103.0]) == {"n": 2, "spawn_s": 0.5, "exit_seen_s": 0.25, "reaped_s": 0.5,
                                                  "ends_recorded": 2}


def test_report_renders_aura_beside_the_rivals_with_ratios() -> None:
    whole = {k: {"median": m, "p95": m * 2} for k, m in
             (("aura ps", 100.0), ("aura wake", 90.0), ("circus status", 200.0), ("circus signal", 180.0),
              ("supervisord status", 50.0), ("supervisord signal", 45.0))}
    result = {"date": "2026-01-01T00:00:00+00:00", "quick": False, "rivals": {"circus": "0.19.0", "supervisor": "4.3.0"},
              "machine": {"aura": "0.2.0", "cpus": 2, "cpu_model": "cpu", "ram_gb": 4.0, "platform": "Linux",
                          "python": "3.11"},
              "sections": {"control": {"whole_commands": whole, "round_trip_us": {}},
                           "tokens": {"available": False, "reason": "no planner"}}}
    text = render(result)
    row = next(line for line in text.splitlines() if line.startswith("| `aura ps` vs `status`, whole command, median"))
    assert row.split("|")[2:7] == [" 100.0 ", " 200.0 ", " 50.0 ", " 0.50 ", " 2.00 "]
    assert "not available (no planner)" in text


@pytest.mark.timeout(120)
def test_spawn_and_reap_of_four_aura_workers_is_measured_and_leaves_nothing() -> None:
    """The same loop that measures circus and supervisord, against a real Aura supervisor."""
    with BenchProject() as p:
        p.write_task(aura_bench.DONE_TASK)
        p.up()
        fifo, ends, script = worker_script(p.root)
        adapter = driver.AuraAdapter(p.paths.endpoint("supervisor"), "t", ["/bin/sh", str(script)])
        try:
            raw = driver.scale(adapter, 4, str(fifo), timeout=60)
        finally:
            adapter.close()
            p.remember()
        got = summary_scale(raw, read_ends(ends))
        assert got["ends_recorded"] == 4 and got["spawn_s"] > 0
        assert got["exit_seen_s"] is not None and 0 <= got["exit_seen_s"] < 10
        assert got["reaped_s"] is not None and got["reaped_s"] >= 0
        assert len(raw["pids"]) == 8, "four workers and their four shims"
        assert not any(alive(pid, created) for pid, created in raw["pids"]), "every worker and shim was reaped"
    assert p.pids.survivors() == []


def test_report_cli_rerenders_a_saved_result(tmp_path) -> None:
    saved = {"date": "d", "quick": True, "machine": {"aura": "0.2.0", "cpus": 1, "cpu_model": "c", "ram_gb": 1,
                                                      "platform": "p", "python": "3"}, "sections": {}}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(saved))
    out = subprocess.run([sys.executable, str(REPO / "bench" / "report.py"), str(path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("Aura 0.2.0 bench, d (quick)")
