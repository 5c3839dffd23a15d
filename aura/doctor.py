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

OWN_PACKAGES = ("aura", "supervisor", "watchdog", "ipc")
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
            out.append(Check(f"package {name}", False,
                             f"`import {name}` is also provided by {who}; install Aura into its own virtual "
                             f"environment (python3 -m venv .venv && .venv/bin/pip install aura)", fatal=True))
        else:
            out.append(Check(f"package {name}", True, f"from {where.parent}"))
    return out


def environment_checks() -> list[Check]:
    out = [Check("python", sys.version_info >= (3, 10), sys.version.split()[0] + " at " + sys.executable,
                 fatal=sys.version_info < (3, 10))]
    in_venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
    out.append(Check("virtual environment", in_venv, sys.prefix if in_venv else
                     "not in a virtual environment: other packages may shadow Aura's `supervisor`, `watchdog`, `ipc`"))
    claude = os.environ.get("AURA_CLAUDE_BIN") or shutil.which("claude")
    out.append(Check("claude CLI", bool(claude), claude or "not found (only needed for the claude backend: "
                                                           "npm install -g @anthropic-ai/claude-code)"))
    try:
        from watchdog.gpu import GpuSampler
        gpu = GpuSampler("")
        out.append(Check("GPU (NVML)", gpu.available, gpu.reason or "available"))
    except Exception as exc:  # a GPU probe must never break the doctor
        out.append(Check("GPU (NVML)", False, f"probe failed: {exc}"))
    from .paths import runtime_base
    base = runtime_base()
    out.append(Check("runtime folder", True, f"{base} (sockets, mode 0700)"))
    return out


def run_checks() -> list[Check]:
    return import_conflicts() + environment_checks()


def fatal_problems() -> list[str]:
    """What must stop `aura up`: only the import-name conflicts (cheap enough for every start)."""
    return [c.detail for c in import_conflicts() if c.fatal and not c.ok]
