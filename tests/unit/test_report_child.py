"""The run's report.html is written by a child process of the brain (aura/brain/reportchild.py):
the page appears from what is on disk, a failure is logged with where to look, and a request made
while one runs starts another once it ends."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aura.brain.reportchild import ReportChild
from aura.brain.runreport import report_path
from aura.brain.state import StateStore, add_task, new_task
from aura.runtime.paths import ProjectPaths


class Lines:
    """The brain's log, as lines kept in order."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def error(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


def test_the_page_is_written_by_a_child_and_a_failure_is_logged(tmp_path: Path) -> None:
    paths = ProjectPaths.for_root(tmp_path)
    paths.logs_dir.mkdir(parents=True)
    log = Lines()
    reports = ReportChild(paths, log)
    reports.request()  # no run state yet: the child fails
    reports.close()
    assert [event for event, _ in log.lines] == ["report_failed"]
    assert "report.out" in log.lines[0][1]["error"]
    assert "no run state" in (paths.logs_dir / "report.out").read_text()

    store = StateStore(paths.state_dir)
    state = store.load().state
    add_task(state, new_task("T1", "the one task"))
    store.flush(state)
    reports.request()
    first = reports.child
    reports.request()  # while the first runs: one more once it ends
    assert reports.again and reports.child is first
    deadline = time.monotonic() + 60
    while (reports.child is not None or reports.again) and time.monotonic() < deadline:
        reports.poll()
        time.sleep(0.05)
    assert reports.child is None and not reports.again, "the second report never ended"
    assert "the one task" in report_path(paths).read_text()
    assert len(log.lines) == 1, log.lines
