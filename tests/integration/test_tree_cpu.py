"""The output scan's CPU signal (supervisor/monitor.tree_cpu_seconds) read from /proc with real
processes: a worker's tree counts its live processes and the children they have waited for, and a
shim that ended (a zombie its supervisor has not reaped yet) gives None, not a tree of nothing."""

from __future__ import annotations

import subprocess
import sys

from aura.runtime.pidfile import start_time
from aura.supervisor.monitor import tree_cpu_seconds
from tests.support.harness import wait_for

BURN = "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.3: pass"
BURN_IN_A_CHILD = f"""import subprocess, sys, time
subprocess.run([sys.executable, "-c", "{BURN}"])
print("reaped", flush=True)
time.sleep(60)
"""


def test_a_tree_counts_the_cpu_of_children_it_waited_for_and_an_ended_root_gives_none() -> None:
    shim = subprocess.Popen([sys.executable, "-c", BURN_IN_A_CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert shim.stdout is not None and shim.stdout.readline().strip() == "reaped"
        created = start_time(shim.pid)
        rec = {"shim_pid": shim.pid, "shim_create_time": created, "worker_pid": shim.pid, "state": "running"}
        used = tree_cpu_seconds(rec)
        assert used is not None and used >= 0.25  # the burning child ended; its CPU is its parent's reaped time
    finally:
        shim.kill()
    wait_for(lambda: open(f"/proc/{shim.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", 10, what="a zombie")
    try:
        assert tree_cpu_seconds(rec) is None
    finally:
        shim.wait()
