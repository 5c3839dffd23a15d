"""The usage history on disk: bounded resolution, merged points, torn lines, one writer's appends."""

from __future__ import annotations

from pathlib import Path

from aura.runtime.paths import ProjectPaths
from aura.runtime.usagehistory import (
    COMPACT_EVERY_S,
    DAY_S,
    HOUR_S,
    UsageHistory,
    downsample,
    history_dir,
    history_file,
    read_file,
    read_history,
)


def test_full_resolution_for_an_hour_then_a_point_a_minute_then_one_per_ten_minutes() -> None:
    now = 10 * DAY_S
    points = [[now - 2 * DAY_S + i, 10.0, 100 + i, 0, None] for i in range(0, int(2 * DAY_S), 5)]
    kept = downsample(points, now)
    recent = [p for p in kept if now - p[0] <= HOUR_S]
    minute = [p for p in kept if HOUR_S < now - p[0] <= DAY_S]
    old = [p for p in kept if now - p[0] > DAY_S]
    assert len(recent) == HOUR_S / 5  # every sample of the last hour
    assert abs(len(minute) - (DAY_S - HOUR_S) / 60) <= 2
    assert abs(len(old) - DAY_S / 600) <= 2
    assert len(kept) < 720 + 1440 + 150
    assert downsample(kept, now) == kept  # a second pass changes nothing


def test_a_merged_point_keeps_the_mean_cpu_and_the_peak_memory() -> None:
    now = 5 * HOUR_S
    figures = [(10.0, 5, 1, None), (30.0, 9, 7, 50.0), (20.0, 2, 3, 70.0)]
    points = [[600.0 + i, cpu, rss, gpu, util] for i, (cpu, rss, gpu, util) in enumerate(figures)]
    [merged] = downsample(points, now)
    assert merged == [600.0, 20.0, 9, 7, 60.0]


def test_flush_appends_whole_lines_after_a_header_and_repairs_a_torn_line(tmp_path: Path) -> None:
    paths = ProjectPaths.for_root(tmp_path)
    hist = UsageHistory(history_dir(paths))
    hist.add("T-1", 100.0, 12.5, 1000, 0, None)
    hist.add("T-1", 100.5, 99.0, 9999, 0, None)  # under a second after the last: not kept
    hist.add("T-1", 101.2, 15.0, 2000, 0, None)
    hist.flush(102.0, lambda wid: "T")
    path = history_file(history_dir(paths), "T-1")
    with open(path, "ab") as fh:
        fh.write(b"[103.0,1")  # a watchdog killed mid-write
    later = UsageHistory(history_dir(paths))
    later.add("T-1", 104.0, 1.0, 3000, 0, 5.0)
    later.flush(105.0, lambda wid: "T")
    header, points = read_file(path)
    assert header == {"worker_id": "T-1", "task_id": "T"}
    assert [p[0] for p in points] == [100.0, 101.2, 104.0]
    assert read_history(paths)["T-1"]["points"][-1] == [104.0, 1.0, 3000, 0, 5.0]


def test_a_due_file_is_rewritten_coarser_and_an_ended_worker_is_forgotten(tmp_path: Path) -> None:
    hist = UsageHistory(tmp_path / "usage")
    start = 1000.0
    for i in range(int(3 * HOUR_S)):
        hist.add("W", start + i, 50.0, 10, 0, None)
    now = start + 3 * HOUR_S
    hist.flush(now, lambda wid: None)  # writes, then compacts the one file due
    _, points = read_file(history_file(tmp_path / "usage", "W"))
    assert HOUR_S < len(points) < HOUR_S + 2 * 60 + 5
    assert hist.compact_due["W"] == now + COMPACT_EVERY_S
    hist.end("W", None)
    hist.flush(now + 1, lambda wid: None)
    assert not hist.known and not hist.compact_due and not hist.last_t
