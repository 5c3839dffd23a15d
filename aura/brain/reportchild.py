"""The run's report.html, written at the run's end by a child process.

The page renders every worker's record and usage history, so what it takes grows with the run; in
the long-lived brain that peak would stay in its heap for the rest of its life. The child reads it
all from disk (runreport.py), as `aura report` does, once the brain has journaled the run's end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from aura.runtime.fsutil import open_private
from aura.runtime.paths import ProjectPaths

STOP_WAIT_S = 10.0  # a brain that stops waits this long for a report under way, then stops it


class ReportChild:
    """At most one child at a time; a request while one runs starts another once it ends, so the
    page shows the latest end."""

    def __init__(self, paths: ProjectPaths, log: Any):
        self.paths = paths
        self.log = log
        self.child: subprocess.Popen | None = None
        self.again = False
        self._err: int | None = None  # the child's stderr, a private file in the logs folder

    def request(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.again = True
            return
        self._reap()
        self._start()

    def poll(self) -> None:
        """Reap an ended child (its failure logged) and start the one asked for meanwhile."""
        if self.child is None or self.child.poll() is None:
            return
        self._reap()
        if self.again:
            self.again = False
            self._start()

    def close(self) -> None:
        if self.child is None:
            return
        try:
            self.child.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()
        self._reap()

    def _start(self) -> None:
        out = self.paths.logs_dir / "report.out"
        try:
            self._err = open_private(out, append=False)
            self.child = subprocess.Popen(
                [sys.executable, "-m", "aura.brain.runreport", str(self.paths.root), str(self.paths.data)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._err,
            )
        except OSError as exc:
            self.log.error("report_failed", error=f"could not start the report's process: {exc}")
            self._close_err()

    def _reap(self) -> None:
        child, self.child = self.child, None
        if child is not None and child.wait() != 0:
            self.log.error(
                "report_failed",
                code=child.returncode,
                error=f"report.html was not written: see {self.paths.logs_dir / 'report.out'}; "
                "`aura report` writes it again",
            )
        self._close_err()

    def _close_err(self) -> None:
        if self._err is not None:
            os.close(self._err)
            self._err = None
