"""`aura doctor`: what is wrong with this installation, said plainly.

The packages `supervisor`, `watchdog` and `ipc` are top-level import names that other PyPI
projects also use (Supervisor, watchdog, ...). Installed into the same environment, one
would shadow the other, so Aura belongs in a virtual environment of its own.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OWN_PACKAGES = ("aura",)
CODE_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fatal: bool = False


def import_conflicts() -> list[Check]:
    """Another distribution owning one of our top-level names, or a module shadowing ours."""
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    out: list[Check] = []
    for name in OWN_PACKAGES:
        others = sorted({d for d in owners.get(name, []) if d.lower() not in ("aura",)})
        try:
            mod = importlib.import_module(name)
            where = Path(getattr(mod, "__file__", "") or "").resolve()
            ours = CODE_ROOT in where.parents
        except ImportError:
            where, ours = Path("?"), False
        if others or not ours:
            who = ", ".join(others) or f"the module at {where}"
            out.append(
                Check(
                    f"package {name}",
                    False,
                    f"`import {name}` is also provided by {who}; install Aura into its own virtual "
                    f"environment (python3 -m venv .venv && .venv/bin/pip install aura)",
                    fatal=True,
                )
            )
        else:
            out.append(Check(f"package {name}", True, f"from {where.parent}"))
    return out


def environment_checks() -> list[Check]:
    out = [
        Check(
            "python",
            sys.version_info >= (3, 10),
            sys.version.split()[0] + " at " + sys.executable,
            fatal=sys.version_info < (3, 10),
        )
    ]
    in_venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
    out.append(
        Check(
            "virtual environment",
            in_venv,
            sys.prefix if in_venv else "not in a virtual environment: another package named `aura` may shadow Aura's",
        )
    )
    out += worker_cli_checks()
    try:
        from aura.watchdog.gpu import GpuSampler

        gpu = GpuSampler("")
        out.append(Check("GPU (NVML)", gpu.available, gpu.reason or "available"))
    except Exception as exc:  # a GPU probe must never break the doctor
        out.append(Check("GPU (NVML)", False, f"probe failed: {exc}"))
    from .runtime.paths import runtime_base

    base = runtime_base()
    out.append(Check("runtime folder", True, f"{base} (sockets, mode 0700)"))
    return out


def worker_cli_checks() -> list[Check]:
    """Each agent CLI: found, or what to do (a warning: only the backend that uses it needs it)."""
    from .runtime.config import Config
    from .runtime.workercli import AGENT_CLIS, cli_problem

    cfg = Config()
    for key in ("AURA_LAYER2_BACKEND", *(cli.setting for cli in AGENT_CLIS.values())):
        if os.environ.get(key):
            cfg.set(key, os.environ[key], "environment")
    layer2 = cfg.text("AURA_LAYER2_BACKEND")
    out = []
    for name, cli in AGENT_CLIS.items():
        problem = cli_problem(cfg, name)
        found = cfg.text(cli.setting) or shutil.which(cli.binary) or ""
        used = " (AURA_LAYER2_BACKEND)" if name == layer2 else ""
        out.append(Check(f"{name} CLI{used}", problem is None, found if problem is None else problem))
    return out


def backend_checks(cfg: Any, tf: Any) -> list[Check]:
    """What `aura up` says about the worker backends this run can use, before anything starts: a fatal
    check when the task file needs a backend that cannot start here, a warning when only some path might
    (a resource-fix subtask, an agent task the model may choose)."""
    from .runtime.workercli import LAYER2_KEY, agent_task_problem

    backend = cfg.text(LAYER2_KEY)
    problem = agent_task_problem(cfg)
    if problem is None:
        return []
    name = f"{LAYER2_KEY}={backend}"
    choice = cfg.text("AURA_PLANNER").strip().lower()
    if choice == "llm" or (choice == "auto" and cfg.text("AURA_API_KEY")):
        return [
            Check(
                name,
                False,
                f"warning: the model's agent tasks go to the {backend} backend, but {problem}; "
                "only shell commands can run",
            )
        ]
    agents = [item for item in tf.items if not item.command and not item.checked]
    if not tf.items:
        return [
            Check(
                name,
                False,
                f"the task file has no checklist, so the whole goal goes to the {backend} "
                f"backend, but {problem}. Nothing was started.",
                fatal=True,
            )
        ]
    if agents:
        lines = ", ".join(str(item.line) for item in agents[:8]) + (" ..." if len(agents) > 8 else "")
        return [
            Check(
                name,
                False,
                f"the task file's item(s) without a command (line {lines}) go to the {backend} "
                f"backend, but {problem}. Nothing was started.",
                fatal=True,
            )
        ]
    from aura.runtime.limits import guard_mode

    if guard_mode(cfg.text("AURA_WORKER_RESOURCE_GUARD")) == "on":
        return [
            Check(
                name,
                False,
                f"warning: a task the watchdog kills twice gets a resource-fix subtask for the "
                f"{backend} backend, but {problem}; such a subtask would be blocked",
            )
        ]
    return []


def run_checks() -> list[Check]:
    return import_conflicts() + environment_checks()


def fatal_problems() -> list[str]:
    """What must stop `aura up`: only the import-name conflicts (cheap enough for every start)."""
    return [c.detail for c in import_conflicts() if c.fatal and not c.ok]
