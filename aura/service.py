"""Run one project's three daemons under the platform's service manager (systemd or launchd).

The manager then owns restarts and logs: each daemon runs with `--managed`, so it leaves
restarting its peers to the manager and reports readiness through sd_notify. This module
renders the unit files / LaunchAgents from the templates in `systemd/` and `launchd/`,
installs and removes exactly those files, and asks the manager for their state.

Everything that touches the machine (home folder, unit folder, the systemctl / loginctl /
launchctl commands) comes from a `Machine`, which tests point at a temporary folder and fake
commands, so no test ever reaches a real service manager.
"""

from __future__ import annotations

import os
import plistlib
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aura.runtime import paths
from aura.runtime.fsutil import atomic_write_text
from aura.runtime.paths import DAEMONS, DATA_DIRNAME

Scope = Literal["user", "system"]
SYSTEMD, LAUNCHD, NONE = "systemd", "launchd", "none"
MANAGERS = (SYSTEMD, LAUNCHD, NONE)


#: Where `systemd/` and `launchd/` live: the repository (or source tree) holding this package.
def _templates_root() -> Path:
    """The source tree's systemd/ and launchd/ folders; a wheel install puts them under share/aura."""
    source = Path(__file__).resolve().parent.parent
    if (source / "systemd").is_dir():
        return source
    return Path(sys.prefix) / "share" / "aura"


TEMPLATES_ROOT = _templates_root()
TASK_ENV_VAR = "AURA_TASK_FILE"
NO_MANAGER_MESSAGE = (
    "No service manager found here: neither systemd (systemctl) nor launchd (launchctl).\n"
    "Run the daemons in the background instead:  aura up -d TASK"
)

Echo = Callable[[str], None]


class ServiceError(Exception):
    """A step failed in a way the user has to act on; the message says what happened."""


class NoServiceManager(ServiceError):
    """Neither systemd nor launchd is available on this machine."""

    def __init__(self) -> None:
        super().__init__(NO_MANAGER_MESSAGE)


# --------------------------------------------------------------------------- the machine


def _current_user() -> str:
    return os.environ.get("USER") or pwd.getpwuid(os.getuid()).pw_name


def _command(value: str | None, default: str) -> tuple[str, ...]:
    return tuple(shlex.split(value)) if value else (default,)


@dataclass(frozen=True)
class Machine:
    """What install touches on this machine; every field can be redirected for tests."""

    home: Path
    systemctl: tuple[str, ...] = ("systemctl",)
    loginctl: tuple[str, ...] = ("loginctl",)
    launchctl: tuple[str, ...] = ("launchctl",)
    system_unit_dir: Path = Path("/etc/systemd/system")
    #: A manager forced by the caller (systemd, launchd, none); None means detect it.
    manager: str | None = None
    #: Present only when systemd is the running init (what sd_booted() checks).
    systemd_marker: Path = Path("/run/systemd/system")
    templates: Path = TEMPLATES_ROOT
    uid: int = field(default_factory=os.getuid)
    user: str = field(default_factory=_current_user)
    platform: str = sys.platform

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Machine:
        """The real machine, with `AURA_SERVICE_*` / `AURA_SYSTEMCTL`-style overrides honoured."""
        env = os.environ if environ is None else environ
        home = env.get("AURA_SERVICE_HOME") or str(Path.home())
        return cls(
            home=Path(home),
            systemctl=_command(env.get("AURA_SYSTEMCTL"), "systemctl"),
            loginctl=_command(env.get("AURA_LOGINCTL"), "loginctl"),
            launchctl=_command(env.get("AURA_LAUNCHCTL"), "launchctl"),
            system_unit_dir=Path(env.get("AURA_SYSTEM_UNIT_DIR") or "/etc/systemd/system"),
            manager=env.get("AURA_SERVICE_MANAGER") or None,
            templates=Path(env.get("AURA_SERVICE_TEMPLATES") or TEMPLATES_ROOT),
        )


def platform_manager(machine: Machine) -> str:
    """The manager this kind of machine would use: launchd on macOS, systemd elsewhere."""
    return LAUNCHD if machine.platform == "darwin" else SYSTEMD


def preview_manager(machine: Machine, chosen: str | None = None) -> tuple[str, str | None]:
    """The manager a dry run renders for, and a note when it is not the one running here: a
    preview writes and runs nothing, so it needs no service manager."""
    if chosen:
        if chosen not in (SYSTEMD, LAUNCHD):
            raise ServiceError(f"unknown service manager {chosen!r}; use systemd or launchd")
        found = detect_manager(machine)
        return chosen, None if found == chosen else f"preview for {chosen} (--manager), which is not running here"
    found = detect_manager(machine)
    if found != NONE:
        return found, None
    manager = platform_manager(machine)
    return manager, (
        f"preview for {manager}: no service manager was found here, so these files could not be "
        "installed on this machine"
    )


def running_manager(machine: Machine, chosen: str | None = None) -> str:
    """The manager a real install uses: the one running here; `chosen` (--manager) must be it."""
    found = detect_manager(machine)
    if chosen and found != chosen:
        where = "no service manager" if found == NONE else found
        raise ServiceError(
            f"--manager {chosen}: {chosen} is not running here (found {where}); "
            f"`aura service install --dry-run --manager {chosen}` previews its files"
        )
    return found


def detect_manager(machine: Machine) -> str:
    """systemd when it is the running init, launchd on macOS, else none."""
    if machine.manager:
        if machine.manager not in MANAGERS:
            raise ServiceError(f"unknown service manager {machine.manager!r}; use one of {', '.join(MANAGERS)}")
        return machine.manager
    if machine.platform == "darwin":
        return LAUNCHD if shutil.which(machine.launchctl[0]) else NONE
    if shutil.which(machine.systemctl[0]) and machine.systemd_marker.is_dir():
        return SYSTEMD
    return NONE


# --------------------------------------------------------------------------- names


def target_name(project_id: str) -> str:
    return f"aura@{project_id}.target"


def unit_name(daemon: str, project_id: str) -> str:
    return f"aura-{daemon}@{project_id}.service"


def service_units(project_id: str) -> list[str]:
    return [unit_name(d, project_id) for d in DAEMONS]


def agent_label(daemon: str, project_id: str) -> str:
    return f"dev.aura.{project_id}.{daemon}"


def install_dir(machine: Machine, manager: str, scope: Scope) -> Path:
    """Where the manager looks for our files."""
    if manager == SYSTEMD:
        return machine.home / ".config/systemd/user" if scope == "user" else machine.system_unit_dir
    if manager == LAUNCHD:
        if scope != "user":
            raise ServiceError("launchd: only --user (a LaunchAgent) is supported")
        return machine.home / "Library/LaunchAgents"
    raise NoServiceManager()


def file_names(manager: str, project_id: str) -> list[str]:
    """The names of every file install writes for one project (uninstall removes these)."""
    if manager == SYSTEMD:
        return [target_name(project_id), *service_units(project_id)]
    return [agent_label(d, project_id) + ".plist" for d in DAEMONS]


# --------------------------------------------------------------------------- what runs


@dataclass(frozen=True)
class ProjectService:
    """One project's daemons as the manager starts them: interpreter, root, task, environment."""

    root: Path
    task_file: Path
    env_file: Path
    python: str
    path_env: str
    watchdog_sec: int = 0

    @property
    def id(self) -> str:
        return paths.project_id(self.root)

    @property
    def log_dir(self) -> Path:
        return self.root / DATA_DIRNAME / "logs"

    @classmethod
    def for_project(
        cls, root: Path, task_file: Path, env_file: Path | None = None, watchdog_sec: int = 0
    ) -> ProjectService:
        """Absolute paths throughout; the interpreter is this venv's, symlink kept (not resolved)."""
        root = Path(root).resolve()
        python = os.path.abspath(sys.executable)
        path_env = os.pathsep.join(
            dict.fromkeys([os.path.dirname(python), *os.environ.get("PATH", os.defpath).split(os.pathsep)])
        )
        return cls(
            root=root,
            task_file=Path(task_file).resolve(),
            env_file=Path(env_file).resolve() if env_file else root / DATA_DIRNAME / "service.env",
            python=python,
            path_env=path_env,
            watchdog_sec=watchdog_sec,
        )


# --------------------------------------------------------------------------- rendering

_PLACEHOLDER = re.compile(r"@([A-Z][A-Z_]*)@")


def fill(text: str, values: Mapping[str, str]) -> str:
    """Replace each @NAME@ in one pass (values are never re-scanned); unknown names are errors."""

    def one(match: re.Match[str]) -> str:
        try:
            return values[match.group(1)]
        except KeyError:
            raise ServiceError(f"template placeholder @{match.group(1)}@ has no value") from None

    return _PLACEHOLDER.sub(one, text)


def _check_value(text: str) -> str:
    """Refuse what a unit line or a plist path cannot carry safely."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ServiceError(f"control character in {text!r}: cannot go into a service file")
    if text != text.strip() or text.endswith("\\"):
        raise ServiceError(f"leading/trailing blank or backslash in {text!r}: cannot go into a unit file")
    return text


def _spec(text: str) -> str:
    """A literal for a systemd setting that expands %-specifiers."""
    return _check_value(text).replace("%", "%%")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _exec_word(text: str) -> str:
    """One ExecStart= argument: quoted (spaces), with %-specifiers and $-variables disarmed."""
    return _quoted(_spec(text)).replace("$", "$$")


def _exec_program(path: str) -> str:
    """The ExecStart= program: quoted and %-escaped; systemd does no $-expansion there.

    systemd refuses an executable path holding quotes or backslashes ("special characters").
    """
    if any(c in path for c in "\"'\\"):
        raise ServiceError(
            f"systemd cannot start an interpreter whose path holds quotes or backslashes: "
            f"{path!r}; create the virtual environment in another folder"
        )
    return _quoted(_spec(path))


def _env_word(key: str, value: str) -> str:
    """One Environment= assignment, quoted so spaces survive (no $-expansion happens there)."""
    return _quoted(_spec(f"{key}={value}"))


def _scope_settings(scope: Scope, root: Path) -> str:
    if scope == "user":
        return (
            "# Sockets live in $XDG_RUNTIME_DIR/aura/<project-id> (see aura/runtime/paths.py). The three units\n"
            "# share the folder, so it is kept when one of them stops.\n"
            "RuntimeDirectory=aura/%i\nRuntimeDirectoryMode=0700\nRuntimeDirectoryPreserve=yes"
        )
    owner = pwd.getpwuid(root.stat().st_uid).pw_name
    return (
        "# A system unit runs as the project's owner, who owns .aura/; without a user manager the\n"
        "# sockets fall back to the per-user temp folder (see aura/runtime/paths.py).\n"
        f"User={_spec(owner)}"
    )


def _watchdog_line(seconds: int) -> str:
    if seconds > 0:
        return (
            "# The daemon sends WATCHDOG=1 every WatchdogSec/2; a miss means a hang: abort, restart.\n"
            f"WatchdogSec={seconds}"
        )
    return "# WatchdogSec= is off (`aura service install --watchdog-sec N` turns it on)."


def _drop_header(text: str) -> str:
    """Drop the template's leading comment block (it documents placeholders, not the unit)."""
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        i += 1
    return "".join(lines[i:]).lstrip("\n")


def _banner(svc: ProjectService) -> str:
    return (
        f"# Written by `aura service install` for {_check_value(str(svc.root))}.\n"
        "# `aura service uninstall`, run in that folder, removes it.\n\n"
    )


def systemd_values(svc: ProjectService, scope: Scope) -> dict[str, str]:
    """Every placeholder of the systemd templates, escaped for the setting it lands in."""
    return {
        "PYTHON": _exec_program(svc.python),
        "PROJECT_ARG": _exec_word(str(svc.root)),
        "PROJECT_DIR": _spec(str(svc.root)),
        "PROJECT_DESC": _spec(str(svc.root)),
        "ENV_FILE": _spec(str(svc.env_file)),
        "TASK_ENV": _env_word(TASK_ENV_VAR, str(svc.task_file)),
        "PATH_ENV": _env_word("PATH", svc.path_env),
        "SCOPE_SETTINGS": _scope_settings(scope, svc.root),
        "WATCHDOG": _watchdog_line(svc.watchdog_sec),
        "WANTED_BY": "default.target" if scope == "user" else "multi-user.target",
    }


def render_systemd(svc: ProjectService, scope: Scope, templates: Path = TEMPLATES_ROOT) -> dict[str, str]:
    """File name -> content of the target and the three service units of one project."""
    values = systemd_values(svc, scope)
    sources = {target_name(svc.id): "aura@.target"}
    sources.update({unit_name(d, svc.id): f"aura-{d}@.service" for d in DAEMONS})
    return {
        name: _banner(svc) + fill(_drop_header((templates / "systemd" / src).read_text()), values)
        for name, src in sources.items()
    }


def _fill_tree(node: Any, values: Mapping[str, str]) -> Any:
    """Fill placeholders in every string of a parsed plist (keys included)."""
    if isinstance(node, str):
        return fill(node, values)
    if isinstance(node, list):
        return [_fill_tree(x, values) for x in node]
    if isinstance(node, dict):
        return {fill(k, values): _fill_tree(v, values) for k, v in node.items()}
    return node


def launchd_values(svc: ProjectService) -> dict[str, str]:
    """Every placeholder of the launchd templates (plistlib does the XML escaping)."""
    return {
        "ID": svc.id,
        "PYTHON": _check_value(svc.python),
        "PROJECT": _check_value(str(svc.root)),
        "TASK_FILE": _check_value(str(svc.task_file)),
        "ENV_FILE": _check_value(str(svc.env_file)),
        "PATH": _check_value(svc.path_env),
        "LOG_DIR": _check_value(str(svc.log_dir)),
    }


def render_launchd(svc: ProjectService, templates: Path = TEMPLATES_ROOT) -> dict[str, str]:
    """File name -> plist text of the three LaunchAgents of one project."""
    values = launchd_values(svc)
    out: dict[str, str] = {}
    for daemon in DAEMONS:
        tree = plistlib.loads((templates / "launchd" / f"aura-{daemon}.plist").read_bytes())
        out[agent_label(daemon, svc.id) + ".plist"] = plistlib.dumps(_fill_tree(tree, values), sort_keys=False).decode(
            "utf-8"
        )
    return out


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Step:
    """One manager command; `required` steps abort the plan when they fail."""

    argv: tuple[str, ...]
    required: bool = True


@dataclass(frozen=True)
class FileChange:
    """A file to write (content) or to remove (content None)."""

    path: Path
    content: str | None


@dataclass(frozen=True)
class Plan:
    """Everything install or uninstall will do, computed before anything is touched."""

    manager: str
    scope: Scope
    project_id: str
    before: tuple[Step, ...]
    files: tuple[FileChange, ...]
    after: tuple[Step, ...]
    folders: tuple[Path, ...] = ()
    notes: tuple[str, ...] = ()


def _systemctl(machine: Machine, scope: Scope, *args: str) -> tuple[str, ...]:
    return (*machine.systemctl, *(("--user",) if scope == "user" else ()), *args)


def _gui(machine: Machine) -> str:
    return f"gui/{machine.uid}"


def plan_install(svc: ProjectService, machine: Machine, scope: Scope, manager: str | None = None) -> Plan:
    """The files for this project and the commands that load and start them (for `manager`, else
    the one detected here)."""
    manager = manager or detect_manager(machine)
    folder = install_dir(machine, manager, scope)
    if manager == SYSTEMD:
        rendered = render_systemd(svc, scope, machine.templates)
        after: tuple[Step, ...] = (
            Step(_systemctl(machine, scope, "daemon-reload")),
            Step(_systemctl(machine, scope, "enable", "--now", target_name(svc.id))),
        )
        return Plan(manager, scope, svc.id, (), _writes(folder, rendered), after, notes=_systemd_notes(svc, scope))
    rendered = render_launchd(svc, machine.templates)
    labels = [agent_label(d, svc.id) for d in DAEMONS]
    before = tuple(Step((*machine.launchctl, "bootout", f"{_gui(machine)}/{lb}"), required=False) for lb in labels)
    after = tuple(
        step
        for lb in labels
        for step in (
            Step((*machine.launchctl, "enable", f"{_gui(machine)}/{lb}")),
            Step((*machine.launchctl, "bootstrap", _gui(machine), str(folder / f"{lb}.plist"))),
        )
    )
    notes = (f"logs: {svc.log_dir}/<daemon>.out and .err",)
    return Plan(manager, scope, svc.id, before, _writes(folder, rendered), after, (svc.log_dir,), notes)


def _writes(folder: Path, rendered: Mapping[str, str]) -> tuple[FileChange, ...]:
    return tuple(FileChange(folder / name, text) for name, text in rendered.items())


def _systemd_notes(svc: ProjectService, scope: Scope) -> tuple[str, ...]:
    user = " --user" if scope == "user" else ""
    return (
        f"logs: journalctl{user} -u 'aura-*@{svc.id}.service' -f",
        f"environment file (optional, not created): {svc.env_file}",
    )


def plan_uninstall(root: Path, machine: Machine, scope: Scope) -> Plan:
    """Stop and disable this project's units, then remove the files install wrote (those present)."""
    manager = detect_manager(machine)
    project_id = paths.project_id(root)
    folder = install_dir(machine, manager, scope)
    removals = tuple(FileChange(folder / n, None) for n in file_names(manager, project_id) if (folder / n).exists())
    if manager == SYSTEMD:
        units = service_units(project_id)
        before: tuple[Step, ...] = (
            Step(_systemctl(machine, scope, "disable", "--now", target_name(project_id)), required=False),
            Step(_systemctl(machine, scope, "stop", *units), required=False),
        )
        after: tuple[Step, ...] = (
            Step(_systemctl(machine, scope, "daemon-reload")),
            Step(_systemctl(machine, scope, "reset-failed", target_name(project_id), *units), required=False),
        )
        return Plan(manager, scope, project_id, before if removals else (), removals, after if removals else ())
    before = tuple(
        Step((*machine.launchctl, "bootout", f"{_gui(machine)}/{agent_label(d, project_id)}"), required=False)
        for d in DAEMONS
    )
    return Plan(manager, scope, project_id, before if removals else (), removals, ())


# --------------------------------------------------------------------------- doing it


def describe(plan: Plan, echo: Echo) -> None:
    """Print what `apply` would do, with every file's full content (the --dry-run output)."""
    for step in plan.before:
        echo(f"would run: {shlex.join(step.argv)}")
    for change in plan.files:
        if change.content is None:
            echo(f"would remove: {change.path}")
        else:
            echo(f"would write: {change.path}")
            echo(change.content.rstrip("\n"))
            echo("")
    for step in plan.after:
        echo(f"would run: {shlex.join(step.argv)}")


def apply(plan: Plan, echo: Echo) -> None:
    """Run the plan, printing each file written or removed and each command run."""
    for step in plan.before:
        run_step(step, echo)
    try:
        for folder in plan.folders:
            folder.mkdir(parents=True, exist_ok=True)
        for change in plan.files:
            _change_file(change, echo)
    except PermissionError as exc:
        raise ServiceError(f"{exc}; --system needs root (sudo)") from exc
    for step in plan.after:
        run_step(step, echo)


def _change_file(change: FileChange, echo: Echo) -> None:
    if change.content is None:
        change.path.unlink(missing_ok=True)
        echo(f"removed: {change.path}")
    else:
        atomic_write_text(change.path, change.content, mode=0o644)
        echo(f"wrote: {change.path}")


def run_step(step: Step, echo: Echo) -> subprocess.CompletedProcess[str] | None:
    """Run one manager command; a failing required one raises with the command's own message."""
    echo(f"ran: {shlex.join(step.argv)}")
    try:
        done = subprocess.run(step.argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        if step.required:
            raise ServiceError(f"could not run {shlex.join(step.argv)}: {exc}") from exc
        return None
    if done.returncode != 0 and step.required:
        detail = (done.stderr or done.stdout).strip()
        raise ServiceError(f"{shlex.join(step.argv)} failed (exit {done.returncode}): {detail}")
    return done


def _query(argv: tuple[str, ...]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def linger_warning(machine: Machine) -> str | None:
    """None when lingering is on; else why a --user install may stop at logout, and the fix."""
    fix = f"loginctl enable-linger {machine.user}"
    done = _query((*machine.loginctl, "show-user", machine.user, "-p", "Linger"))
    value = ""
    if done is not None and done.returncode == 0:
        value = _key_values(done.stdout).get("Linger", "")
    if value == "yes":
        return None
    if value == "no":
        return (
            f"Lingering is off for {machine.user}: the user manager, and these daemons, stop when "
            f"you log out. To keep them running:  {fix}"
        )
    return f"Could not tell whether lingering is on for {machine.user}. If the run must outlive your login:  {fix}"


def _key_values(text: str) -> dict[str, str]:
    """`KEY=VALUE` lines (systemctl show, loginctl show-user) as a dict."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key: value for key, value in pairs}


# --------------------------------------------------------------------------- status


def status_lines(root: Path, machine: Machine) -> tuple[bool, list[str]]:
    """(installed?, report lines) for this project, in whichever scope holds its files."""
    manager = detect_manager(machine)
    if manager == NONE:
        raise NoServiceManager()
    project_id = paths.project_id(root)
    lines: list[str] = []
    scopes: tuple[Scope, ...] = ("user", "system") if manager == SYSTEMD else ("user",)
    for scope in scopes:
        folder = install_dir(machine, manager, scope)
        present = [folder / n for n in file_names(manager, project_id) if (folder / n).exists()]
        if not present:
            continue
        lines.append(f"{manager} ({scope}) for {root}, project id {project_id}:")
        lines += [f"  file: {p}" for p in present]
        lines += (
            _systemd_states(machine, scope, project_id) if manager == SYSTEMD else _launchd_states(machine, project_id)
        )
    if not lines:
        return False, [f"not installed for {root} (project id {project_id}); see `aura service install --help`"]
    return True, lines


def _systemd_states(machine: Machine, scope: Scope, project_id: str) -> list[str]:
    out = []
    for unit in [target_name(project_id), *service_units(project_id)]:
        done = _query(
            _systemctl(
                machine,
                scope,
                "show",
                unit,
                "-p",
                "ActiveState",
                "-p",
                "SubState",
                "-p",
                "StatusText",
                "-p",
                "NRestarts",
            )
        )
        if done is None or done.returncode != 0:
            out.append(f"  {unit}: unknown ({(done.stderr.strip() if done else 'systemctl not found')})")
            continue
        kv = _key_values(done.stdout)
        state = f"{kv.get('ActiveState', '?')} ({kv.get('SubState', '?')})"
        extra = "".join(f", {k}: {kv[k]}" for k in ("NRestarts", "StatusText") if kv.get(k))
        out.append(f"  {unit}: {state}{extra}")
    return out


def _launchd_states(machine: Machine, project_id: str) -> list[str]:
    out = []
    for daemon in DAEMONS:
        label = agent_label(daemon, project_id)
        done = _query((*machine.launchctl, "print", f"{_gui(machine)}/{label}"))
        if done is None or done.returncode != 0:
            out.append(f"  {label}: not loaded")
            continue
        facts = [
            ln.strip()
            for ln in done.stdout.splitlines()
            if ln.strip().startswith(("state =", "pid =", "last exit code ="))
        ]
        out.append(f"  {label}: {'; '.join(facts) or 'loaded'}")
    return out
