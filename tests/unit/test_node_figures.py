"""A worker on another node (a Slurm job), as the watchdog sees it: its figures come from the
`usage.json` its shim writes on the node, never from this machine's /proc. One node sample is one
sample of the window; a stale one is not used and `usage` says why. The watchdog here is an
in-process WatchdogDaemon (never run) in dry-run, so nothing is signalled or cancelled."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

import aura.watchdog.main as wmain
from aura.runtime.config import Config
from aura.runtime.fsutil import atomic_write_json
from aura.runtime.paths import ProjectPaths
from aura.watchdog.nodes import NodeFigures
from aura.watchdog.ops.usage import usage

GB = 1024**3
POLL = 0.2


def write_usage(path: Path, **figures: Any) -> dict:
    sample = {
        "sampled_at": time.time(),
        "host": "node7",
        "every": POLL,
        "cpu_percent": 12.5,
        "rss_bytes": 2 * GB,
        "nprocs": 3,
        "ncpu": 64,
        "mem_total_bytes": 512 * GB,
        **figures,
    }
    path.write_text(json.dumps(sample))
    return sample


def test_a_new_node_sample_is_handed_over_once(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    node = NodeFigures(str(path))
    assert node.take(time.time(), POLL) is None and node.missing == "no sample from the node yet"
    sent = write_usage(path, gpu_mem_bytes=GB, gpu_total_bytes=80 * GB)
    sample = node.take(time.time(), POLL)
    assert sample is not None and node.missing == ""
    assert (sample.rss_bytes, sample.nprocs, sample.cpu_percent, sample.host) == (2 * GB, 3, 12.5, "node7")
    assert sample.pids == [] and sample.t == sent["sampled_at"]
    assert sample.mem_percent == pytest.approx(100 * 2 / 512)  # of the node's memory, not this machine's
    assert (sample.gpu_mem_bytes, sample.gpu_total) == (GB, 80 * GB)
    assert node.take(time.time(), POLL) is None and node.missing == ""  # the same sample: not fed twice


def test_a_sample_older_than_three_polls_is_not_used_and_missing_says_why(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    node = NodeFigures(str(path))
    write_usage(path, sampled_at=time.time() - 4 * POLL)
    assert node.take(time.time(), POLL) is None
    assert "from the node node7 is 1s old (more than 3 polls)" in node.missing
    write_usage(path, sampled_at=time.time() - 2 * POLL)  # within three polls: used
    assert node.take(time.time(), POLL) is not None
    # a node that samples more slowly than the watchdog polls is judged by its own interval
    write_usage(path, sampled_at=time.time() - 4 * POLL, every=2.0)
    assert node.take(time.time(), POLL) is not None


def test_a_node_that_cannot_sample_or_a_broken_file_is_said(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    node = NodeFigures(str(path))
    path.write_text(json.dumps({"sampled_at": time.time(), "host": "n1", "error": "no /proc children files"}))
    assert node.take(time.time(), POLL) is None
    assert node.missing == "the node n1 cannot sample the worker: no /proc children files"
    path.write_text(json.dumps({"sampled_at": time.time(), "host": "n1", "rss_bytes": "lots"}))
    assert node.take(time.time(), POLL) is None and node.missing == "the node n1 wrote a usage.json without its figures"
    path.write_text("{half a sam")
    assert node.take(time.time(), POLL) is None
    assert node.missing == "the node's usage.json cannot be read: not a JSON object"
    write_usage(path)
    assert node.take(time.time(), POLL) is not None
    path.unlink()
    assert node.take(time.time(), POLL) is None and node.missing == "the node's usage.json is gone"


def slurm_dog(tmp_path: Path) -> tuple[Any, Path]:
    """A watchdog in dry-run with one Slurm worker whose record names this test's own pid: a local
    process the watchdog must not read (on another node the pid is someone else's)."""
    paths = ProjectPaths.for_root(tmp_path / "p")
    paths.ensure()
    cfg = Config()
    for key, value in {
        "AURA_WORKER_RESOURCE_GUARD": "dry-run",
        "AURA_WORKER_RESOURCE_POLL_SECONDS": str(POLL),
        "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS": "1",
        "AURA_WORKER_RESOURCE_VIOLATION_STRIKES": "3",
        "AURA_WORKER_MAX_SYSTEM_MEMORY_GB": "1",
    }.items():
        cfg.set(key, value, "test")
    dog = wmain.WatchdogDaemon(paths, cfg)
    folder = paths.workers_dir / "w1"
    atomic_write_json(
        folder / "record.json",
        {
            "worker_id": "w1",
            "task_id": "T1",
            "state": "running",
            "executor": "slurm",
            "job_id": "4242",
            "node": "node7",
            "worker_pid": os.getpid(),
            "pgid": os.getpid(),
        },
    )
    return dog, folder / "usage.json"


@pytest.fixture
def dog_and_usage(tmp_path: Path) -> Any:
    dog, path = slurm_dog(tmp_path)
    yield dog, path
    dog.ctx.destroy(linger=0)


def test_the_window_is_fed_from_node_samples_and_the_strikes_count_them(dog_and_usage: Any) -> None:
    dog, path = dog_and_usage
    dog.sampling.once()
    figures = usage(dog, {"worker_ids": None})["workers"]["w1"]
    assert figures["missing"] == "no sample from the node yet" and "rss_bytes" not in figures
    for _ in range(3):
        write_usage(path)
        dog.sampling.once()
        dog.sampling.once()  # a pass without a new node sample adds nothing to the window
    w = dog.watched["w1"]
    assert len(w.window.samples) == 3 and w.window.strikes == {"AURA_WORKER_MAX_SYSTEM_MEMORY_GB": 2}
    figures = usage(dog, {"worker_ids": None})["workers"]["w1"]
    assert figures["rss_bytes"] == 2 * GB and figures["nprocs"] == 3 and figures["host"] == "node7"
    assert figures["cpu_percent"] == 12.5 and "missing" not in figures
    write_usage(path)
    dog.sampling.once()
    said = [json.loads(line) for line in dog.paths.logfile("watchdog").read_text().splitlines()]
    would = [r for r in said if r.get("event") == "would_kill"]
    assert len(would) == 1 and would[0]["worker"] == "w1" and "averaged 2GB over the limit of 1GB" in would[0]["reason"]


def test_a_stale_node_sample_leaves_the_figures_out_and_the_worker_watched(dog_and_usage: Any) -> None:
    dog, path = dog_and_usage
    write_usage(path)
    dog.sampling.once()
    write_usage(path, sampled_at=time.time() - 10)
    dog.sampling.once()
    figures = usage(dog, {"worker_ids": None})["workers"]["w1"]
    assert "rss_bytes" not in figures and figures["host"] == "node7"
    assert "is 10s old (more than 3 polls)" in figures["missing"]
    assert len(dog.watched["w1"].window.samples) == 1  # the window keeps what it had
