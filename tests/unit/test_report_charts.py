"""The report's SVG charts: each series drawn and marked, long series thinned with their peaks kept,
the watchdog's kills marked on the timeline, and the top view's sparklines."""

from __future__ import annotations

import re

from aura.brain.svgchart import MAX_POINTS, line_chart, thin, timeline
from aura.topscreen import sparkline


def test_each_series_is_one_marked_line_and_a_long_one_is_thinned_keeping_its_peak() -> None:
    long = [(float(t), 1.0) for t in range(5000)]
    long[3333] = (3333.0, 99.0)
    svg = line_chart("CPU", [("W-1", long), ("W-2", [(0.0, 5.0), (10.0, 6.0)]), ("empty", [])], "%")
    drawn = re.findall(r'class="series" data-series="([^"]+)" data-points="(\d+)"', svg)
    assert drawn == [("W-1", str(MAX_POINTS)), ("W-2", "2")]
    assert max(v for _, v in thin(long)) == 99.0
    assert "no data" in line_chart("GPU", [("W-1", [])])


def test_the_timeline_marks_a_watchdog_kill_and_a_running_attempt() -> None:
    rows = [
        {"label": "T-1", "start": 100.0, "end": 160.0, "outcome": "killed", "kill_at": 150.0, "kill_reason": "RSS"},
        {"label": "T-2", "start": 120.0, "end": None, "outcome": "running"},
    ]
    svg = timeline("Attempts", rows, now=200.0)
    assert svg.count('class="series"') == 2 and svg.count('class="kill"') == 1
    assert "killed by the watchdog: RSS" in svg


def test_sparkline_scales_to_the_top_given() -> None:
    assert sparkline([0, 50, 100], 100.0) == "▁▅█"
    assert sparkline([]) == "" and sparkline([0, 0]) == "▁▁"
