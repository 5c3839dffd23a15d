"""The shim's sampler of a worker on another node (supervisor/nodesample.py) in this process: its
GPU figure through the stand-in NVML (tests/support/fake_pynvml.py, imported as `pynvml`), and what
it says when NVML cannot be used. The processes are real: a child of this test, read from /proc."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aura.supervisor.nodesample import NodeSampler
from tests.support import fake_pynvml as fake

GIB = 1024**3


@pytest.fixture
def child() -> Iterator[int]:
    """A child that said it runs: read from /proc just past its exec, a child had no resident memory
    yet in 22 of 200 tries here."""
    code = "import time; print('up', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    yield proc.pid
    proc.kill()
    proc.wait()
    proc.stdout.close()


def sampler(tmp_path: Path) -> NodeSampler:
    """Samples the tree under this test's process, as the shim samples the tree under itself."""
    return NodeSampler(tmp_path, 0.5, root=None)


def test_gpu_memory_of_the_tree_on_any_device_counted_once_per_process(
    tmp_path: Path, child: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.reset(
        [
            fake.FakeDevice(uuid="GPU-a", total=80 * GIB, compute=[(child, 3 * GIB), (999_999, 5 * GIB)]),
            fake.FakeDevice(
                uuid="GPU-b",
                total=40 * GIB,
                compute=[(child, 1 * GIB)],
                graphics=[(child, 1 * GIB)],  # the same memory on both lists: counted once
            ),
            fake.FakeDevice(uuid="GPU-c", total=40 * GIB, compute=[(child, 900 * GIB)]),  # a misread record
        ]
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-b,0")  # the job's devices: the base of GPU memory %
    figures = sampler(tmp_path).sample()
    assert figures["nprocs"] >= 1
    assert figures["gpu_mem_bytes"] == 4 * GIB and figures["gpu_total_bytes"] == 120 * GIB
    assert "gpu" not in figures


def test_without_pynvml_the_gpu_figure_is_left_out_and_why_is_said(
    tmp_path: Path, child: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not importable
    figures = sampler(tmp_path).sample()
    assert "gpu_mem_bytes" not in figures and figures["gpu"] == "pynvml is not importable on the node"
    assert figures["nprocs"] >= 1 and figures["rss_bytes"] > 0


def test_an_nvml_that_cannot_start_is_said_once_and_not_tried_at_every_sample(
    tmp_path: Path, child: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.reset([fake.FakeDevice(uuid="GPU-a")], init_error=fake.NVML_ERROR_DRIVER_NOT_LOADED)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    s = sampler(tmp_path)
    first, second = s.sample(), s.sample()
    assert first["gpu"] == second["gpu"] == "NVML cannot be used on the node: Driver Not Loaded"
    assert fake.CONFIG.calls["nvmlInit"] == 1


def test_a_sample_is_written_whole_and_private(tmp_path: Path, child: int) -> None:
    s = sampler(tmp_path)
    s.once()
    written = (tmp_path / "usage.json").read_text()
    assert '"rss_bytes"' in written and oct((tmp_path / "usage.json").stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["usage.json"]
