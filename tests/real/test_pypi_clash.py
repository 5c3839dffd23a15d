"""Aura shares an environment with PyPI's `watchdog` and `supervisor`.

Aura installs one top-level package, `aura`; its supervisor/, watchdog/ and ipc/ folders become
aura.supervisor, aura.watchdog and aura.ipc. These tests install the two PyPI projects (and a wheel
built from this checkout) into a folder put first on PYTHONPATH, the order in which a clash would
hurt most, and use all three side by side: imports, a watchdog observer, supervisor's options, real
Aura daemons, and the shim started with `python -I -S` from the installed tree.

They need the package index pip is configured with: skipped without it, except under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from aura.supervisor import nativeshim
from tests.support.harness import REPO, Project, wait_for

PYPI = ("watchdog", "supervisor")
SOURCES = ("pyproject.toml", "README.md", "aura", "supervisor", "watchdog", "ipc", "systemd", "launchd")

# Uses all three in one process and says where each came from.
CHECK = r"""
import json, pathlib, tempfile, time
import watchdog, supervisor
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer
from supervisor import options, supervisord
import aura, aura.daemon, aura.brain.main, aura.ipc.client, aura.supervisor.main, aura.watchdog.main

seen = []
class Seen(FileSystemEventHandler):
    def on_created(self, event):
        seen.append(pathlib.Path(event.src_path).name)

folder = tempfile.mkdtemp()
observer = Observer()
observer.schedule(Seen(), folder)
observer.start()
pathlib.Path(folder, "hello").write_text("x")
deadline = time.monotonic() + 10
while "hello" not in seen and time.monotonic() < deadline:
    time.sleep(0.05)
observer.stop()
observer.join()
options.ServerOptions()
print(json.dumps({
    "watchdog": watchdog.__file__, "supervisor": supervisor.__file__, "supervisor_version": options.VERSION,
    "aura": aura.__file__, "aura.watchdog": aura.watchdog.main.__file__,
    "aura.supervisor": aura.supervisor.main.__file__, "aura.ipc": aura.ipc.client.__file__,
    "seen": seen, "shim": aura.supervisor.main.SHIM,
}))
"""


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def _pip(*args: str | Path, timeout: float = 240) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        msg = f"pip {' '.join(map(str, args[:2]))} failed: {proc.stderr.strip()[-1500:]}"
        if _in_ci():
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="module")
def pypi_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PyPI's watchdog and supervisor, and nothing else, in a folder of their own."""
    target = tmp_path_factory.mktemp("pypi")
    _pip("install", "--no-deps", "--target", target, *PYPI)
    return target


@pytest.fixture(scope="module")
def installed_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regular (non-editable) install of this checkout and PyPI's watchdog and supervisor in one folder."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:  # build from a copy: a build leaves build/ and *.egg-info in the tree it reads
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, src / name)
    wheels = tmp_path_factory.mktemp("wheels")
    _pip("wheel", "--no-deps", "-w", wheels, src)
    target = tmp_path_factory.mktemp("site")
    _pip("install", "--no-deps", "--target", target, *sorted(wheels.glob("aura-*.whl")), *PYPI)
    return target


def _check(pythonpath: list[Path], cwd: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join(map(str, pythonpath))
    proc = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _under(path: str, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def test_all_three_work_beside_a_regular_install(installed_site: Path, tmp_path: Path) -> None:
    got = _check([installed_site], tmp_path)
    for name in ("watchdog", "supervisor", "aura", "aura.watchdog", "aura.supervisor", "aura.ipc", "shim"):
        assert _under(got[name], installed_site), (name, got[name])
    assert not (installed_site / "ipc").exists()
    assert (installed_site / "aura" / "supervisor" / "shim.py").is_file()
    assert got["seen"] == ["hello"], "PyPI's watchdog saw no file created"
    assert got["supervisor_version"]


def test_daemon_entry_point_runs_from_any_folder(installed_site: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(installed_site)}
    proc = subprocess.run(
        [sys.executable, "-m", "aura.daemon", "--help"],
        cwd=tmp_path,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "{supervisor,watchdog,brain}" in proc.stdout


@pytest.mark.parametrize("shim", ["native", "python"])
def test_daemons_and_shim_run_from_a_regular_install(
    installed_site: Path, project: Project, rig: Any, tmp_path: Path, shim: str
) -> None:
    """The real supervisor and watchdog, from the installed tree, start a worker through the shim:
    the native one built from the installed source into the installed tree's `__pycache__` (its
    hand-over script the installed shim.py), or `python -I -S .../aura/supervisor/shim.py`, with
    PyPI's packages first on the path."""
    if shim == "native" and nativeshim.find().path is None:
        pytest.skip("the native shim cannot be built here")
    project.env["PYTHONPATH"] = str(installed_site)
    project.env["AURA_SHIM"] = shim
    rig.start("supervisor", "watchdog")
    release = tmp_path / "release"
    rec = rig.spawn(
        "w1", "import os, sys, time\nwhile not os.path.exists(sys.argv[1]):\n    time.sleep(0.05)\n", str(release)
    )
    cmdline = psutil.Process(rec["shim_pid"]).cmdline()
    release.write_text("go")
    script = next(a for a in cmdline if a.endswith("shim.py"))
    assert _under(script, installed_site / "aura" / "supervisor"), cmdline
    if shim == "native":
        assert _under(cmdline[0], installed_site / "aura" / "supervisor" / "__pycache__"), cmdline
        assert cmdline[cmdline.index("--script") + 1] == script, cmdline
    else:
        assert "-I" in cmdline and "-S" in cmdline, cmdline
    done = wait_for(lambda: rig.exited("w1"), 30, what="the worker's exit record")
    assert done["outcome"] == "succeeded" and done["exit"]["exit_code"] == 0, done
    assert rig.call("watchdog", "hello")["daemon"] == "watchdog"


def test_all_three_work_beside_the_checkout(pypi_site: Path, tmp_path: Path) -> None:
    """From the source tree (PYTHONPATH=checkout, as the test daemons run) and from whatever install
    this environment has (editable in development): aura.* always from one tree, PyPI's from theirs."""
    from_tree = _check([pypi_site, REPO], tmp_path)
    for name in ("aura", "aura.watchdog", "aura.supervisor", "aura.ipc", "shim"):
        assert _under(from_tree[name], REPO), (name, from_tree[name])
    installed = _check([pypi_site], tmp_path)
    tree = Path(installed["aura"]).resolve().parent.parent
    for name in ("aura.watchdog", "aura.supervisor", "aura.ipc"):
        assert _under(installed[name], tree), (name, installed[name], tree)
    for got in (from_tree, installed):
        assert _under(got["watchdog"], pypi_site) and _under(got["supervisor"], pypi_site), got
        assert got["seen"] == ["hello"], "PyPI's watchdog saw no file created"
