"""`aura service install --dry-run` on a machine without a service manager: a dry run writes and runs
nothing, so it previews this platform's units anyway (or those `--manager` names) and says it is a
preview. The real `aura` command in its own process; systemctl and launchctl point at names that do
not exist, the home folder is a temporary one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aura.runtime import paths
from tests.support.harness import REPO


def aura_service(root: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURA_")}
    env.update(
        AURA_SERVICE_HOME=str(home),
        AURA_SYSTEMCTL="no-such-systemctl",
        AURA_LAUNCHCTL="no-such-launchctl",
        AURA_LOGINCTL="no-such-loginctl",
        PYTHONPATH=str(REPO),
    )
    return subprocess.run(
        [sys.executable, "-m", "aura.cli", "service", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.fixture
def machine(tmp_path: Path) -> tuple[Path, Path]:
    root, home = tmp_path / "proj", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    (root / "task.md").write_text("# Goal\n")
    return root, home


@pytest.mark.skipif(sys.platform == "darwin", reason="the platform default here is launchd")
def test_dry_run_without_a_service_manager_previews_the_systemd_units(machine: tuple[Path, Path]) -> None:
    root, home = machine
    before = files_under(root)
    done = aura_service(root, home, "install", "--user", "--dry-run", "task.md")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.splitlines()[0].startswith("dry run, a preview: nothing is written")
    assert "preview for systemd: no service manager was found here" in out
    project_id = paths.project_id(root)
    daemons = ("supervisor", "watchdog", "brain")
    for name in (f"aura@{project_id}.target", *(f"aura-{d}@{project_id}.service" for d in daemons)):
        assert f"would write: {home / '.config/systemd/user' / name}" in out
    assert "ExecStart=" in out and "Lingering" not in out
    assert files_under(home) == [] and files_under(root) == before


def test_manager_option_picks_launchd_for_a_preview(machine: tuple[Path, Path]) -> None:
    root, home = machine
    done = aura_service(root, home, "install", "--user", "--dry-run", "--manager", "launchd", "task.md")
    assert done.returncode == 0, done.stderr
    project_id = paths.project_id(root)
    assert f"would write: {home / 'Library/LaunchAgents' / f'dev.aura.{project_id}.brain.plist'}" in done.stdout
    assert "<plist" in done.stdout and files_under(home) == []


def test_a_real_install_still_needs_the_manager_it_names(machine: tuple[Path, Path]) -> None:
    root, home = machine
    for args in (["install", "--user", "task.md"], ["install", "--user", "--manager", "systemd", "task.md"]):
        done = aura_service(root, home, *args)
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) <= 2, done.stderr
        assert "--dry-run" in done.stderr or "aura up -d" in done.stderr, done.stderr
    assert files_under(home) == []
