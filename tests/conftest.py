"""Fixtures shared by every test (a temporary project, its daemons, scripted model servers) and the
markers, given by folder: tests/unit -> unit, tests/integration -> integration, tests/real -> real,
and gpu as well under tests/real/gpu. Helpers live in tests/support (see tests/README.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import Project
from tests.support.rig import Rig
from tests.support.slurm import SlurmCluster, require_slurm

TESTS = Path(__file__).resolve().parent
KINDS = ("unit", "integration", "real")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by its folder, before `-m` selects; a test outside the three folders is refused."""
    for item in items:
        parts = item.path.resolve().relative_to(TESTS).parts
        if parts[0] not in KINDS:
            raise pytest.UsageError(
                f"{item.nodeid}: put the test in tests/unit, tests/integration or tests/real (see tests/README.md)"
            )
        item.add_marker(parts[0])
        if "gpu" in parts[1:-1]:
            item.add_marker("gpu")


@pytest.fixture
def project(tmp_path: Path) -> Any:
    root = tmp_path / "proj"
    root.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    proj = Project(root, home)
    yield proj
    proj.cleanup()


@pytest.fixture
def rig(project: Project, tmp_path: Path) -> Any:
    """The supervisor and the watchdog of `project` as real daemons (see tests/support/rig.py)."""
    r = Rig(project, tmp_path)
    yield r
    r.stop()


@pytest.fixture
def serve() -> Any:
    """Start scripted model servers (aura.scripted_server) for a test; each is stopped after it."""
    from aura.scripted_server import ScriptedServer

    started: list[ScriptedServer] = []

    def start(script: dict) -> ScriptedServer:
        server = ScriptedServer(script).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def slurm_session(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One private Slurm cluster for the session (see tests/support/slurm.py); skipped where Slurm is
    missing, failed under CI=true. Tests take `slurm_cluster`, which cleans it between them."""
    require_slurm()
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def slurm_cluster(slurm_session: SlurmCluster) -> Any:
    """The session's Slurm cluster; after the test every job is cancelled and both daemons run again."""
    yield slurm_session
    slurm_session.reset()
