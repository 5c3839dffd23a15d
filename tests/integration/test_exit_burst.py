"""Many workers ending in the same instant: the supervisor takes their ends in together (one listing
of the kill folder, one hand-over of the record writes), and each keeps its own exit, outcome and
kill."""

from __future__ import annotations

import os

from bench.driver import release
from tests.support.harness import wait_for
from tests.support.rig import Rig

LIMIT_GB = 0.2
BARRIER = 24

# Over the memory limit, it outlives the watchdog's SIGTERM until the release, then exits 7: its end
# comes in the same burst as the others', after the watchdog wrote why it stopped it. SIGTERM is
# blocked, not handled: the record is written before the signal is sent (and the shim forwards it
# again), so it can arrive while the interpreter ends, after its handlers are reset.
HOG = """\
import signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
b = bytearray(300 * 1024 * 1024)
b[::4096] = b"x" * len(b[::4096])
with open(sys.argv[1]) as fifo:
    fifo.read()
sys.exit(7)
"""


def test_a_burst_of_exits_keeps_each_workers_code_outcome_and_kill(rig: Rig) -> None:
    rig.p.env.update(AURA_WORKER_MAX_SYSTEM_MEMORY_GB=str(LIMIT_GB), AURA_KILL_GRACE_SECONDS="60")
    rig.start("watchdog", "supervisor")
    fifo = rig.tmp / "release.fifo"
    os.mkfifo(fifo)
    pids = [
        rig.spawn_argv(f"b{i}", ["/bin/sh", "-c", f"read x < {fifo}; exit {i + 1}"])["worker_pid"]
        for i in range(BARRIER)
    ]
    pids.append(rig.spawn("hog", HOG, str(fifo))["worker_pid"])
    wait_for(lambda: rig.kill_record("hog"), 30, what="the watchdog's kill record of the hog")
    assert rig.worker("hog")["state"] == "running"  # it outlives the SIGTERM, as asked
    release(str(fifo), pids)
    ended = wait_for(
        lambda: all(rig.exited(w) for w in [f"b{i}" for i in range(BARRIER)] + ["hog"]), 30, what="every end"
    )
    assert ended
    for i in range(BARRIER):
        rec = rig.worker(f"b{i}")
        assert rec["exit"]["exit_code"] == i + 1 and rec["exit"]["signal"] is None, rec
        assert rec["outcome"] == "failed" and not rec.get("kill"), rec
    hog = rig.worker("hog")
    assert hog["exit"]["exit_code"] == 7 and hog["exit"]["signal"] is None, hog
    assert hog["kill"]["by"] == "watchdog" and hog["kill"]["limit"] == "AURA_WORKER_MAX_SYSTEM_MEMORY_GB"
    assert hog["outcome"] == "killed", hog  # a kill Aura asked for, whatever code the worker then exited with
    exits = rig.logged("worker_exited", "supervisor")
    assert sorted(e["worker"] for e in exits) == sorted([f"b{i}" for i in range(BARRIER)] + ["hog"])
    assert rig.logged("callback_failed", "supervisor") == []
    assert not [p for p in pids if _alive(p)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
