"""Transient systemd scopes for workers, so a restart of the supervisor's unit never kills them.

Under systemd the supervisor's unit owns a cgroup; without a scope of their own, workers live
in it and a unit restart (KillMode=control-group) would kill them. With AURA_WORKER_SCOPE=auto
(the default) a supervisor that runs under systemd (`INVOCATION_ID` is set) starts each worker's
shim through `systemd-run --scope`, which moves it into a transient scope and then execs it (the
PID stays the same). Where that is unavailable (no bus, no user manager, not under systemd) the
shim starts as before and the unit's KillMode=process keeps restarts from killing workers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from aura.runtime.paths import project_id, safe_name


def _probe(argv: list[str]) -> bool:
    try:
        return subprocess.run([*argv, "true"], stdin=subprocess.DEVNULL, capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def scope_command(mode: str, environ: dict[str, str] | None = None, log: Any = None) -> list[str]:
    """The `systemd-run ... --scope` prefix to use, or [] (decided once, at supervisor start)."""
    env = os.environ if environ is None else environ
    mode = mode.strip().lower()
    if mode in ("0", "off", "no", "false"):
        return []
    if mode == "auto" and not env.get("INVOCATION_ID"):
        return []
    exe = shutil.which("systemd-run")
    if not exe:
        _say(log, "systemd-run not found")
        return []
    for manager in (["--user"], []):
        argv = [exe, *manager, "--scope", "--quiet", "--collect"]
        if _probe(argv):
            return argv
    _say(log, "systemd-run --scope does not work here (no bus or no manager)")
    return []


def scoped(prefix: list[str], root: Any, worker_id: str, argv: list[str]) -> list[str]:
    if not prefix:
        return argv
    unit = f"aura-{project_id(root)}-{safe_name(worker_id)}.scope"
    return [*prefix, f"--unit={unit}", "--", *argv]


def _say(log: Any, why: str) -> None:
    if log is not None:
        log.info(
            "worker_scopes_off",
            reason=why,
            fallback="workers stay in the supervisor's cgroup; the unit's KillMode=process keeps them alive",
        )
