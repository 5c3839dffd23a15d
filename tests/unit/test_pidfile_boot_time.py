"""A process's start time after the clock was stepped (a VM resumed, NTP): the kernel moves its boot
time (`btime`), and a pid file written after the step must still name a live process."""

from __future__ import annotations

import os
import time

import pytest

from aura.runtime import pidfile

pytestmark = pytest.mark.skipif(not pidfile.HAS_PROC, reason="reads /proc")


def test_a_boot_time_read_before_a_clock_step_is_read_again() -> None:
    me = os.getpid()
    now = pidfile.start_time(me)
    assert now is not None and pidfile.is_alive(me, now)
    true_boot = pidfile._boot_time[0] if pidfile._boot_time else 0.0
    stale = (true_boot - 600.0, time.monotonic() - pidfile.BOOT_TIME_TTL - 1)  # read before a 10-minute step
    pidfile._boot_time = stale
    assert pidfile.is_alive(me, now)  # read again: the same start time as a process reading it fresh
    assert pidfile._boot_time is not None and pidfile._boot_time[0] == true_boot


def test_a_boot_time_is_not_read_again_within_its_ttl() -> None:
    """The watchdog's and the supervisor's many reads cost one read of /proc/stat a second."""
    me = os.getpid()
    pidfile.start_time(me)
    assert pidfile._boot_time is not None
    cached = (pidfile._boot_time[0] + 100.0, time.monotonic())
    pidfile._boot_time = cached
    try:
        pidfile.start_time(me)
        assert pidfile._boot_time == cached
    finally:
        pidfile._boot_time = None
