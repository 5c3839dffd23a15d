"""The shim's own sampler (`--sample-every`), as it runs inside a Slurm job on a node: a real shim
started as the batch script starts it (`python -I -S shim.py`) on real workers, and the `usage.json`
it leaves for the watchdog. Every process is stopped by PID at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aura.runtime.fsutil import read_json
from aura.supervisor.main import SHIM
from tests.support.harness import PidBook, wait_for

MB = 1024**2

HOLD = """\
import sys, time
b = bytearray(int(sys.argv[1]) * 1024 * 1024)
b[::4096] = b"x" * len(b[::4096])  # touch every page, so it is resident
time.sleep(float(sys.argv[2]))
"""

PARENT_AND_CHILD = """\
import subprocess, sys, time
hold = sys.argv[1]
child = subprocess.Popen([sys.executable, hold, "100", "60"])
b = bytearray(100 * 1024 * 1024)
b[::4096] = b"x" * len(b[::4096])
time.sleep(60)
"""

SPIN = "import time\nend = time.time() + 60\nwhile time.time() < end: pass\n"


class Shims:
    """Shims started as a Slurm job starts them, each remembered with its worker to stop them by PID."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.pids = PidBook()
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, body: str, *argv: str, every: float | None = 0.2) -> Path:
        folder = self.tmp / name
        folder.mkdir()
        script = self.tmp / f"{name}.py"
        script.write_text(body)
        sampling = ["--sample-every", str(every)] if every is not None else []
        cmd = [sys.executable, "-I", "-S", SHIM, "--dir", str(folder), "--cwd", str(self.tmp)]
        cmd += ["--stdout", str(folder / "out"), "--stderr", str(folder / "err"), "--grace", "1", *sampling]
        proc = subprocess.Popen([*cmd, "--", sys.executable, str(script), *argv], start_new_session=True)
        self.procs.append(proc)
        launch = wait_for(lambda: read_json(folder / "launch.json"), 20, what=f"{name}'s start report")
        self.pids.add(proc.pid, launch.get("shim_create_time"))
        self.pids.add(launch["worker_pid"], launch["worker_create_time"])
        return folder

    def stop(self) -> None:
        for proc in self.procs:  # the worker's children too: the shim stops its whole tree on SIGTERM
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=20)
        self.pids.kill_survivors()


@pytest.fixture
def shims(tmp_path: Path) -> Iterator[Shims]:
    s = Shims(tmp_path)
    yield s
    s.stop()


def usage(folder: Path) -> dict | None:
    return read_json(folder / "usage.json")


def test_the_shim_samples_its_worker_holding_150_mb_into_usage_json(shims: Shims) -> None:
    folder = shims.start("hold", HOLD, "150", "60")
    first = wait_for(
        lambda: (u := usage(folder)) and u["rss_bytes"] >= 150 * MB and u, 20, what="a sample with the 150 MB"
    )
    assert first["nprocs"] == 1 and first["host"] == os.uname().nodename and first["every"] == 0.2
    assert first["rss_bytes"] < 250 * MB  # the worker alone: the shim itself is left out
    assert first["mem_total_bytes"] > first["rss_bytes"] and first["ncpu"] == os.cpu_count()
    assert "gpu_mem_bytes" in first or first["gpu"]  # the GPU figure, or why there is none
    later = wait_for(
        lambda: (u := usage(folder)) and u["sampled_at"] > first["sampled_at"] and u, 10, what="the next sample"
    )
    assert later["sampled_at"] - first["sampled_at"] < 2.0
    assert oct((folder / "usage.json").stat().st_mode & 0o777) == "0o600"
    assert not (folder / "usage.json.tmp").exists()


def test_the_sample_covers_the_worker_tree_and_its_cpu(shims: Shims) -> None:
    hold = shims.tmp / "hold_child.py"
    hold.write_text(HOLD)
    tree = shims.start("tree", PARENT_AND_CHILD, str(hold))
    spin = shims.start("spin", SPIN)
    both = wait_for(
        lambda: (u := usage(tree)) and u["nprocs"] == 2 and u["rss_bytes"] >= 200 * MB and u,
        20,
        what="a sample of the parent and its child, 100 MB each",
    )
    assert both["rss_bytes"] < 300 * MB
    # a spinning worker uses most of one CPU: cpu_percent is of the node's CPUs, as the watchdog's
    busy = wait_for(
        lambda: (u := usage(spin)) and u["cpu_percent"] * u["ncpu"] / 100 > 0.3 and u,
        20,
        what="a sample showing the spinner's CPU",
    )
    assert busy["cpu_percent"] <= 100.0


def test_the_sampler_stops_with_the_worker_and_the_exit_record_is_written(shims: Shims) -> None:
    folder = shims.start("short", HOLD, "20", "1")
    exit_rec = wait_for(lambda: read_json(folder / "exit.json"), 20, what="the exit record")
    assert exit_rec["exit_code"] == 0
    last = usage(folder)
    assert last is not None and last["sampled_at"] <= exit_rec["ended_at"]
    shims.procs[0].wait(timeout=10)
    assert usage(folder) == last  # nothing samples once the shim is gone


def test_without_sample_every_the_shim_writes_no_usage(shims: Shims) -> None:
    folder = shims.start("local", HOLD, "20", "1", every=None)
    wait_for(lambda: read_json(folder / "exit.json"), 20, what="the exit record")
    assert not (folder / "usage.json").exists()
