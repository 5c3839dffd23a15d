"""A worker runs at most once per folder: a shim started again where one already started the worker
(a cluster job its scheduler ran a second time) refuses, and leaves the first start's records alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aura.runtime.fsutil import read_json
from aura.supervisor.main import SHIM


def run_shim(folder: Path, ledger: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-I", "-S", SHIM, "--dir", str(folder), "--cwd", str(folder.parent)]
    cmd += ["--stdout", str(folder / "out"), "--stderr", str(folder / "err"), "--grace", "1"]
    script = f"echo ran >> {ledger}"
    return subprocess.run([*cmd, "--", "/bin/sh", "-c", script], env=env, timeout=30, start_new_session=True)


def test_a_second_start_in_the_same_folder_does_not_run_the_worker_again(tmp_path: Path) -> None:
    folder, ledger = tmp_path / "w", tmp_path / "ledger"
    folder.mkdir()
    assert run_shim(folder, ledger).returncode == 0
    first_launch, first_exit = read_json(folder / "launch.json"), read_json(folder / "exit.json")
    assert first_exit is not None and first_exit["exit_code"] == 0
    again = run_shim(folder, ledger)
    assert again.returncode == 127 and ledger.read_text() == "ran\n"
    assert read_json(folder / "launch.json") == first_launch and read_json(folder / "exit.json") == first_exit


def test_a_second_start_after_a_death_without_a_record_writes_one_saying_why(tmp_path: Path) -> None:
    folder, ledger = tmp_path / "w", tmp_path / "ledger"
    folder.mkdir()
    assert run_shim(folder, ledger).returncode == 0
    (folder / "exit.json").unlink()  # as if its node had died under the first start
    again = run_shim(folder, ledger, env={"SLURM_RESTART_COUNT": "1", "PATH": "/usr/bin:/bin"})
    assert again.returncode == 127 and ledger.read_text() == "ran\n"
    record = read_json(folder / "exit.json")
    assert (
        record["exit_code"] is None
        and "Slurm restart 1" in record["error"]
        and "not run a second time" in record["error"]
    )
