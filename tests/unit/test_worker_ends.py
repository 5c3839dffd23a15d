"""Which running workers' processes have ended (supervisor/executors/workerends.py), with real
processes: what `list` shows as exiting before the shim's exit record is in."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from aura.runtime.pidfile import start_time
from aura.supervisor.executors.workerends import WorkerEnds
from tests.support.harness import wait_for

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfds")


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_an_ended_process_is_told_apart_from_one_that_runs_and_nothing_is_left_open() -> None:
    ends = WorkerEnds()
    before = _open_fds()
    runs, ends_soon = _sleeper(), _sleeper()
    try:
        ends.follow("a", runs.pid, start_time(runs.pid))
        ends.follow("b", ends_soon.pid, start_time(ends_soon.pid))
        running = {"a", "b"}
        assert ends.ended(running) == set()
        ends_soon.kill()
        wait_for(lambda: ends.ended(running) == {"b"}, 10, what="the ended process to be seen")  # a zombie
        ends_soon.wait()
        assert ends.ended(running) == {"b"}  # and once reaped
        ends.settle("b")  # its shim is reaped; the end is not marked yet
        ends.settle("a")  # a shim that died before its worker: not ended
        assert ends.ended(running) == {"b"}
        assert ends.ended({"a"}) == set()  # "b" is marked ended: let go
        assert ends.ended(running) == set()
    finally:
        runs.kill()
        runs.wait()
    ends.close()
    assert _open_fds() == before


def test_a_process_gone_or_replaced_before_it_is_followed_counts_as_ended() -> None:
    ends = WorkerEnds()
    gone = _sleeper()
    created = start_time(gone.pid)
    gone.kill()
    gone.wait()
    ends.follow("gone", gone.pid, created)
    other = _sleeper()
    try:
        ends.follow("reused", other.pid, (start_time(other.pid) or 0) - 3600)  # its pid, another start time
        assert ends.ended({"gone", "reused", "other"}) == {"gone", "reused"}
    finally:
        other.kill()
        other.wait()
    assert ends.ended(set()) == set()
    ends.close()


def test_it_follows_no_more_than_its_share_of_descriptors() -> None:
    ends = WorkerEnds()
    ends.most = 1
    first, second = _sleeper(), _sleeper()
    try:
        ends.follow("first", first.pid, start_time(first.pid))
        ends.follow("second", second.pid, start_time(second.pid))
        second.kill()
        second.wait()
        assert ends.ended({"first", "second"}) == set()  # the second is not followed: running until its end is heard
    finally:
        first.kill()
        first.wait()
    assert ends.ended({"first", "second"}) == {"first"}
    ends.close()
