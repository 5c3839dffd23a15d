"""`aura service`: rendered units and plists, and install/uninstall against a temporary home.

No test touches a real service manager: systemctl, loginctl and launchctl are replaced by a
small script that records its arguments, and the home and system unit folders are temp folders.
systemd's own checks of the rendered units are in tests/real/test_service_systemd.py.
"""

from __future__ import annotations

import dataclasses
import os
import plistlib
import pwd
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aura import service as svcmod
from aura.cli.service import service
from aura.daemon import EXIT_CONFIG
from aura.runtime import paths
from aura.service import Machine, ServiceError, render_launchd, render_systemd
from tests.support.service import odd_project, svc_for

DAEMONS = ("supervisor", "watchdog", "brain")

FAKE_CTL = r"""#!/bin/sh
# Records every call as one tab-separated line, answers the few queries the code makes.
name="$(basename "$0")"
{ printf '%s' "$name"; for a in "$@"; do printf '\t%s' "$a"; done; printf '\n'; } >> "$FAKE_LOG"
if [ -n "$FAKE_FAIL" ] && [ "$name" = "$FAKE_FAIL" ]; then echo "$name: Failed to connect to bus" >&2; exit 1; fi
case "$name:$1:$2" in
  loginctl:show-user:*) echo "Linger=${FAKE_LINGER:-no}" ;;
  systemctl:--user:show|systemctl:show:*)
    printf 'ActiveState=active\nSubState=running\nStatusText=3 workers\nNRestarts=0\n' ;;
  launchctl:print:*) printf '\tstate = running\n\tpid = 4242\n' ;;
esac
exit 0
"""


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root whose path needs quoting everywhere: blank, %, $, & and <."""
    return odd_project(tmp_path)


@pytest.fixture
def machine(tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A temp home, a temp system unit folder and recording fake commands, wired in via env."""
    home, bindir, sysdir = tmp_path / "home", tmp_path / "bin", tmp_path / "etc-systemd-system"
    home.mkdir()
    bindir.mkdir()
    log = tmp_path / "calls.log"
    for name in ("systemctl", "loginctl", "launchctl"):
        script = bindir / name
        script.write_text(FAKE_CTL)
        script.chmod(0o755)
        monkeypatch.setenv(f"AURA_{name.upper()}", str(script))
    monkeypatch.setenv("AURA_SERVICE_HOME", str(home))
    monkeypatch.setenv("AURA_SYSTEM_UNIT_DIR", str(sysdir))
    monkeypatch.setenv("AURA_SERVICE_MANAGER", "systemd")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.delenv("FAKE_FAIL", raising=False)
    monkeypatch.delenv("FAKE_LINGER", raising=False)
    monkeypatch.setenv("USER", "alice")
    monkeypatch.chdir(project)
    return {"home": home, "sysdir": sysdir, "log": log, "bin": bindir}


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(service, list(args), catch_exceptions=False)


def calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [line.split("\t") for line in log.read_text().splitlines()]


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in files_under(folder)}


def listed(output: str, verb: str) -> list[Path]:
    """The paths the command printed after `verb: ` (wrote / removed / would write ...)."""
    prefix = verb + ": "
    return [Path(line[len(prefix) :]) for line in output.splitlines() if line.startswith(prefix)]


def printed_contents(output: str) -> dict[Path, str]:
    """File -> content from --dry-run output (content runs until the next blank line + marker)."""
    out: dict[Path, str] = {}
    current: Path | None = None
    buf: list[str] = []
    for line in output.splitlines():
        if line.startswith(("would write: ", "would run: ")) or current is None:
            if current is not None:
                out[current] = "\n".join(buf).rstrip("\n") + "\n"
            current = Path(line[len("would write: ") :]) if line.startswith("would write: ") else None
            buf = []
        else:
            buf.append(line)
    if current is not None:
        out[current] = "\n".join(buf).rstrip("\n") + "\n"
    return out


# --------------------------------------------------------------------------- systemd rendering


def test_interpreter_path_systemd_cannot_run_is_refused(project: Path) -> None:
    with pytest.raises(ServiceError, match="quotes or backslashes"):
        render_systemd(svc_for(project, python='/opt/it"s/python'), "user")


def test_newline_in_a_path_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "two\nlines"
    root.mkdir()
    (root / "task.md").write_text("x")
    with pytest.raises(ServiceError, match="control character"):
        render_systemd(svc_for(root), "user")
    with pytest.raises(ServiceError, match="control character"):
        render_launchd(svc_for(root))


def test_unit_contents(project: Path) -> None:
    project_id = paths.project_id(project)
    units = render_systemd(svc_for(project), "user")
    assert set(units) == {f"aura@{project_id}.target", *(f"aura-{d}@{project_id}.service" for d in DAEMONS)}
    target = units[f"aura@{project_id}.target"]
    assert "Wants=aura-supervisor@%i.service aura-watchdog@%i.service aura-brain@%i.service" in target
    assert "WantedBy=default.target" in target
    sup = units[f"aura-supervisor@{project_id}.service"]
    assert re.search(r"^KillMode=process$", sup, re.M)
    assert "systemd-run --user --scope" in sup  # the why, next to the choice
    for d in ("watchdog", "brain"):
        assert re.search(r"^KillMode=mixed$", units[f"aura-{d}@{project_id}.service"], re.M)
    for text in (units[f"aura-{d}@{project_id}.service"] for d in DAEMONS):
        for line in (
            "Type=notify",
            "Restart=on-failure",
            "RestartSec=2",
            "StartLimitBurst=5",
            "StartLimitIntervalSec=60",
            "StandardOutput=journal",
            "RuntimeDirectory=aura/%i",
            "RuntimeDirectoryPreserve=yes",
            "PartOf=aura@%i.target",
        ):
            assert re.search(rf"^{re.escape(line)}$", text, re.M), line
        assert not re.search(r"^WatchdogSec=", text, re.M)
        # a refused setting exits EXIT_CONFIG, which no restart can fix
        assert re.search(rf"^RestartPreventExitStatus={EXIT_CONFIG}$", text, re.M)
        assert "@" + "PYTHON@" not in text and "\n# Placeholders" not in text
    assert "After=aura-supervisor@%i.service aura-watchdog@%i.service" in units[f"aura-brain@{project_id}.service"]


def test_system_scope_and_watchdog(project: Path) -> None:
    project_id = paths.project_id(project)
    units = render_systemd(svc_for(project, watchdog_sec=45), "system")
    owner = pwd.getpwuid(project.stat().st_uid).pw_name
    sup = units[f"aura-supervisor@{project_id}.service"]
    assert re.search(rf"^User={re.escape(owner)}$", sup, re.M)
    assert "RuntimeDirectory=" not in sup
    assert re.search(r"^WatchdogSec=45$", sup, re.M)
    assert "WantedBy=multi-user.target" in units[f"aura@{project_id}.target"]


# --------------------------------------------------------------------------- launchd rendering


def test_plists_hold_every_required_key(project: Path) -> None:
    project_id = paths.project_id(project)
    plists = render_launchd(svc_for(project))
    assert set(plists) == {f"dev.aura.{project_id}.{d}.plist" for d in DAEMONS}
    for daemon in DAEMONS:
        data = plistlib.loads(plists[f"dev.aura.{project_id}.{daemon}.plist"].encode())
        assert data["Label"] == f"dev.aura.{project_id}.{daemon}"
        args = data["ProgramArguments"]
        assert isinstance(args, list) and all(isinstance(a, str) for a in args)
        assert args[3:] == [
            os.path.abspath(sys.executable),
            "-m",
            "aura.daemon",
            daemon,
            "--project",
            str(project),
            "--managed",
        ]
        assert data["WorkingDirectory"] == str(project)
        assert data["RunAtLoad"] is True
        assert data["KeepAlive"] == {"SuccessfulExit": False}
        assert data["StandardOutPath"] == str(project / ".aura" / "logs" / f"{daemon}.out")
        assert data["StandardErrorPath"] == str(project / ".aura" / "logs" / f"{daemon}.err")
        env = data["EnvironmentVariables"]
        assert isinstance(env, dict) and all(isinstance(v, str) for v in env.values())
        assert env["AURA_TASK_FILE"] == str(project / "task.md")
        assert env["AURA_ENV_FILE"] == str(project / ".aura" / "service.env")
        assert isinstance(data["ThrottleInterval"], int) and isinstance(data["ExitTimeOut"], int)
        assert data["AbandonProcessGroup"] is (daemon == "supervisor")


@pytest.mark.parametrize("with_env_file", [True, False])
def test_plist_wrapper_reads_the_env_file_then_execs(project: Path, tmp_path: Path, with_env_file: bool) -> None:
    """The /bin/sh prefix of ProgramArguments loads the env file (when present) and runs argv."""
    plist = render_launchd(svc_for(project))[f"dev.aura.{paths.project_id(project)}.brain.plist"]
    data = plistlib.loads(plist.encode())
    env_file = tmp_path / "service env"
    if with_env_file:
        env_file.write_text('AURA_TEST_VALUE="two words"\n')
    argv = data["ProgramArguments"][:3] + [
        sys.executable,
        "-c",
        "import os,sys; print(os.environ.get('AURA_TEST_VALUE'), sys.argv[1])",
        "arg with blank",
    ]
    env = {"PATH": os.environ.get("PATH", ""), "AURA_ENV_FILE": str(env_file)}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30, check=True)
    assert done.stdout.strip() == ("two words" if with_env_file else "None") + " arg with blank"


# --------------------------------------------------------------------------- detection


def test_detect_manager(tmp_path: Path) -> None:
    marker = tmp_path / "run-systemd-system"
    base = Machine(
        home=tmp_path, systemctl=(sys.executable,), launchctl=(sys.executable,), systemd_marker=marker, platform="linux"
    )
    assert svcmod.detect_manager(base) == "none"
    marker.mkdir()
    assert svcmod.detect_manager(base) == "systemd"
    assert svcmod.detect_manager(dataclasses.replace(base, systemctl=("no-such-systemctl-here",))) == "none"
    assert svcmod.detect_manager(dataclasses.replace(base, platform="darwin")) == "launchd"
    with pytest.raises(ServiceError, match="unknown service manager"):
        svcmod.detect_manager(dataclasses.replace(base, manager="upstart"))


# --------------------------------------------------------------------------- the CLI


def test_dry_run_writes_nothing_and_prints_every_file(machine: dict[str, Path], project: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    result = run_cli("install", "--dry-run", "task.md")
    assert result.exit_code == 0, result.output
    after = snapshot(tmp_path)
    after.pop(machine["log"], None)  # the fake commands' own record
    assert after == before
    assert not [c for c in calls(machine["log"]) if c[0] != "loginctl"]  # only the read-only linger query
    unit_dir = machine["home"] / ".config/systemd/user"
    expected = {unit_dir / name: text for name, text in render_systemd(svc_for(project), "user").items()}
    assert printed_contents(result.output) == expected
    assert f"would run: {machine['bin'] / 'systemctl'} --user daemon-reload" in result.output


def test_uninstall_dry_run_changes_nothing(machine: dict[str, Path]) -> None:
    assert run_cli("install", "task.md").exit_code == 0
    before, log_before = snapshot(machine["home"]), calls(machine["log"])
    result = run_cli("uninstall", "--dry-run")
    assert result.exit_code == 0, result.output
    assert snapshot(machine["home"]) == before and calls(machine["log"]) == log_before
    assert set(listed(result.output, "would remove")) == set(before)


def test_systemd_user_install_and_uninstall(machine: dict[str, Path], project: Path) -> None:
    project_id = paths.project_id(project)
    dry = run_cli("install", "--dry-run", "task.md")
    result = run_cli("install", "task.md")
    assert result.exit_code == 0, result.output
    written = listed(result.output, "wrote")
    assert len(written) == 4
    assert files_under(machine["home"]) == set(written)
    assert {p: p.read_text() for p in written} == printed_contents(dry.output)
    systemctl = [c[1:] for c in calls(machine["log"]) if c[0] == "systemctl"]
    assert systemctl == [["--user", "daemon-reload"], ["--user", "enable", "--now", f"aura@{project_id}.target"]]
    assert "loginctl enable-linger alice" in result.output

    removed = run_cli("uninstall")
    assert removed.exit_code == 0, removed.output
    assert set(listed(removed.output, "removed")) == set(written)
    assert files_under(machine["home"]) == set()
    after = [c[1:] for c in calls(machine["log"]) if c[0] == "systemctl"][2:]
    assert after[0] == ["--user", "disable", "--now", f"aura@{project_id}.target"]
    assert ["--user", "daemon-reload"] in after


def test_uninstall_removes_only_this_projects_files(
    machine: dict[str, Path], project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    (other / ".aura").mkdir(parents=True)
    (other / "task.md").write_text("x")
    monkeypatch.chdir(other)
    kept = listed(run_cli("install", "task.md").output, "wrote")
    monkeypatch.chdir(project)
    assert run_cli("install", "task.md").exit_code == 0
    assert run_cli("uninstall").exit_code == 0
    assert files_under(machine["home"]) == set(kept)


def test_system_install_goes_to_the_system_folder(machine: dict[str, Path], project: Path) -> None:
    result = run_cli("install", "--system", "task.md")
    assert result.exit_code == 0, result.output
    assert {p.parent for p in listed(result.output, "wrote")} == {machine["sysdir"]}
    assert files_under(machine["home"]) == set()
    used = calls(machine["log"])
    assert all("--user" not in c for c in used) and not [c for c in used if c[0] == "loginctl"]
    assert run_cli("uninstall", "--system").exit_code == 0
    assert files_under(machine["sysdir"]) == set()


def test_lingering_on_gives_no_warning(machine: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_LINGER", "yes")
    result = run_cli("install", "task.md")
    assert result.exit_code == 0 and "enable-linger" not in result.output


def test_install_from_a_subfolder_uses_the_project_root(
    machine: dict[str, Path], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = project / "src" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    result = run_cli("install", "--dry-run", "../../task.md")
    assert result.exit_code == 0, result.output
    assert f"WorkingDirectory={str(project).replace('%', '%%')}\n" in result.output
    assert f"aura@{paths.project_id(project)}.target" in result.output


def test_failing_systemctl_is_reported(machine: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL", "systemctl")
    result = CliRunner().invoke(service, ["install", "task.md"])
    assert result.exit_code == 1
    assert "daemon-reload failed (exit 1)" in result.output and "Failed to connect to bus" in result.output


def test_launchd_install_and_uninstall(
    machine: dict[str, Path], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AURA_SERVICE_MANAGER", "launchd")
    project_id, uid = paths.project_id(project), os.getuid()
    result = run_cli("install", "task.md")
    assert result.exit_code == 0, result.output
    written = listed(result.output, "wrote")
    agents = machine["home"] / "Library/LaunchAgents"
    assert (
        set(written) == {agents / f"dev.aura.{project_id}.{d}.plist" for d in DAEMONS} == files_under(machine["home"])
    )
    assert (project / ".aura" / "logs").is_dir()
    launchctl = [c[1:] for c in calls(machine["log"]) if c[0] == "launchctl"]
    assert ["bootstrap", f"gui/{uid}", str(agents / f"dev.aura.{project_id}.supervisor.plist")] in launchctl
    assert not [c for c in calls(machine["log"]) if c[0] == "loginctl"]
    assert run_cli("install", "--system", "task.md").exit_code != 0

    removed = run_cli("uninstall")
    assert set(listed(removed.output, "removed")) == set(written)
    assert files_under(machine["home"]) == set()
    assert ["bootout", f"gui/{uid}/dev.aura.{project_id}.brain"] in [c[1:] for c in calls(machine["log"])]


def test_status(machine: dict[str, Path], project: Path) -> None:
    project_id = paths.project_id(project)
    before = run_cli("status")
    assert before.exit_code == 0 and "not installed" in before.output
    run_cli("install", "task.md")
    result = run_cli("status")
    assert result.exit_code == 0, result.output
    assert (
        f"aura-supervisor@{project_id}.service: active (running), NRestarts: 0, StatusText: 3 workers" in result.output
    )
    assert str(machine["home"] / ".config/systemd/user" / f"aura@{project_id}.target") in result.output


def test_uninstall_with_nothing_installed(machine: dict[str, Path]) -> None:
    result = run_cli("uninstall")
    assert result.exit_code == 0 and "nothing installed" in result.output
    assert calls(machine["log"]) == []


@pytest.mark.parametrize("args", [["install", "task.md"], ["status"]])  # a dry run previews: test_service_preview.py
def test_no_service_manager(machine: dict[str, Path], monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    monkeypatch.setenv("AURA_SERVICE_MANAGER", "none")
    result = CliRunner().invoke(service, args)
    assert result.exit_code == 1
    assert "neither systemd" in result.output and "aura up -d" in result.output
    assert files_under(machine["home"]) == set() and calls(machine["log"]) == []


def test_cli_module_imports_stay_light() -> None:
    code = "import sys, aura.cli.service; heavy = {'anthropic', 'zmq'} & set(sys.modules); print(sorted(heavy))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
