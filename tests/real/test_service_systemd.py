"""`aura service`'s systemd units, checked by systemd itself: `systemd-analyze verify` and the offline
`systemd --test`. Skipped where those are not installed, except under CI=true, where a missing
systemd-analyze is a failure (see tests/unit/test_service.py for everything else about the service)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from aura.runtime import paths
from aura.service import render_systemd
from tests.support.service import odd_project, svc_for

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root whose path needs quoting everywhere: blank, %, $, & and <."""
    return odd_project(tmp_path)


def require_tool(name: str) -> str:
    """The tool's path; skip when it is missing, except under CI=true where that is a failure."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required under CI=true but is not installed")
        pytest.skip(f"{name} is not installed (and CI is not set)")
    return path


def verify_units(units: dict[str, str], folder: Path, scope: str) -> str:
    """Run `systemd-analyze verify` on rendered units; return everything it said (empty = clean).

    verify exits 0 even for settings it ignores ("Failed to parse ..., ignoring"), so callers
    check that it said nothing at all, not only the exit status.
    """
    tool = require_tool("systemd-analyze")
    folder.mkdir(parents=True, exist_ok=True)
    runtime = Path(tempfile.mkdtemp(prefix="xdg-", dir=folder))
    for name, text in units.items():
        (folder / name).write_text(text)
    argv = [tool, *(["--user"] if scope == "user" else []), "verify", *(str(folder / n) for n in units)]
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    said = (done.stdout + done.stderr).strip()
    return said if done.returncode == 0 or said else f"exit {done.returncode}"


@pytest.mark.parametrize("scope", ["user", "system"])
def test_rendered_units_pass_systemd_analyze_verify(project: Path, tmp_path: Path, scope: str) -> None:
    units = render_systemd(svc_for(project, watchdog_sec=30), scope)  # type: ignore[arg-type]
    assert verify_units(units, tmp_path / "units", scope) == ""


def test_verify_check_catches_a_broken_unit(project: Path, tmp_path: Path) -> None:
    """The check above is not vacuous: a setting systemd ignores, or a missing binary, is reported."""
    units = render_systemd(svc_for(project), "user")
    name = f"aura-supervisor@{paths.project_id(project)}.service"
    bad_setting = {**units, name: units[name].replace("KillMode=process", "KillMode=keep-them")}
    assert "keep-them" in verify_units(bad_setting, tmp_path / "a", "user")
    missing_python = render_systemd(svc_for(project, python=str(tmp_path / "no such python")), "user")
    assert "no such python" in verify_units(missing_python, tmp_path / "b", "user")


def test_interpreter_path_with_blank_percent_and_dollar_verifies(project: Path, tmp_path: Path) -> None:
    """verify checks that the ExecStart program exists, so this proves its quoting and escaping."""
    odd = tmp_path / "venv dir %n $PATH"
    odd.mkdir()
    (odd / "python").symlink_to(sys.executable)
    units = render_systemd(svc_for(project, python=str(odd / "python")), "user")
    assert verify_units(units, tmp_path / "units", "user") == ""


def _offline_systemd() -> str:
    for candidate in ("/lib/systemd/systemd", "/usr/lib/systemd/systemd"):
        if os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("the systemd binary is not installed")


def _dump_units(units: dict[str, str], project_id: str) -> str:
    """Load the units with `systemd --test` (offline, no manager) and return its dump.

    The dump shows each setting as systemd parsed it, so quoting mistakes show up here
    even where verify stays silent. Test mode refuses root, so root drops to nobody.
    """
    binary = _offline_systemd()
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop to nobody")
        prefix = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    folder = Path(tempfile.mkdtemp(prefix="aura-units-"))
    try:
        os.chmod(folder, 0o755)
        runtime = folder / "runtime"
        runtime.mkdir(mode=0o700)
        if prefix:
            os.chown(runtime, pwd.getpwnam("nobody").pw_uid, -1)
        for name, text in units.items():
            (folder / name).write_text(text)
            os.chmod(folder / name, 0o644)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(folder),
            "XDG_RUNTIME_DIR": str(runtime),
            "SYSTEMD_UNIT_PATH": f"{folder}:",
        }
        done = subprocess.run(
            [*prefix, binary, "--test", "--user", f"--unit=aura@{project_id}.target"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if done.returncode != 0 or "-> Unit" not in done.stdout:
        pytest.skip(f"systemd --test does not work here: {(done.stderr or done.stdout)[-300:]}")
    return done.stdout


def _unit_block(dump: str, unit: str) -> str:
    start = dump.index(f"-> Unit {unit}:")
    nxt = dump.find("\n\t-> Unit ", start + 1)
    return dump[start : nxt if nxt != -1 else len(dump)]


def test_systemd_parses_the_settings_as_meant(project: Path) -> None:
    project_id = paths.project_id(project)
    dump = _dump_units(render_systemd(svc_for(project), "user"), project_id)
    for daemon, kill_mode in (("supervisor", "process"), ("watchdog", "mixed"), ("brain", "mixed")):
        block = _unit_block(dump, f"aura-{daemon}@{project_id}.service")
        assert f"\tKillMode: {kill_mode}\n" in block
        assert f"\tWorkingDirectory: {project}\n" in block
        assert f"\tEnvironment: AURA_TASK_FILE={project / 'task.md'}\n" in block
        assert f"\tRuntimeDirectory: aura/{project_id}\n" in block
        assert "\tType: notify\n" in block and "\tRestart: on-failure\n" in block
        line = re.search(r"Command Line: (.*)", block).group(1)  # type: ignore[union-attr]
        assert line.startswith(f"{sys.executable} -m aura.daemon {daemon} --project ")
        assert line.endswith(" --managed")
        assert _exec_time_arg(line.split(" --project ", 1)[1].rsplit(" --managed", 1)[0]) == str(project)


def _exec_time_arg(shown: str) -> str:
    """One dumped ExecStart argument as the program will get it.

    The dump shows it double-quoted with backslash escapes, before the $-substitution done at
    start time: there `$$` becomes `$`, and any other `$NAME` would be replaced by a variable.
    """
    raw = re.sub(r"\\(.)", r"\1", shown[1:-1]) if shown.startswith('"') else shown
    assert "$" not in raw.replace("$$", ""), f"{raw!r} would be $-expanded at start"
    return raw.replace("$$", "$")
