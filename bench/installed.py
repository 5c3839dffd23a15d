"""Aura as a user installs it, for the whole-command timings (`aura ps`, `aura wake`).

The bench itself runs from the development checkout, usually an editable install: its import hook
(setuptools' finder, loaded by `site` at every interpreter start, and asked for every module of
Aura's) makes every command slower than after a `pip install`. circus and supervisord are timed as
installed from the package index, so Aura is timed as installed too: a regular (non-editable)
install of this checkout into a virtual environment of its own, its dependencies from the package
index. The environment is kept where the caller names it (`--aura-venv DIR`), and Aura itself is
installed again on every run, so the timings are of the code in the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_SOURCE = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".aura", ".cache", ".*_cache", "results")


def ensure_installed(folder: Path) -> Path:
    """A virtual environment in `folder` holding this checkout, installed; returns its `aura`."""
    bindir = folder / "bin"
    pip = [str(bindir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if not (bindir / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    with tempfile.TemporaryDirectory(prefix="aura-source-") as tmp:
        source = Path(tmp) / "aura"  # a copy: a build in the checkout would leave build/ there, stale files and all
        shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
        again = (bindir / "aura").exists()  # else with its dependencies, from the package index
        argv = [*pip, "--no-deps", "--force-reinstall", str(source)] if again else [*pip, str(source)]
        got = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if got.returncode != 0:
        why = got.stderr.strip().splitlines()[-1:] or [f"pip exited {got.returncode}"]
        hint = "--dev-aura times this environment's aura instead"
        raise SystemExit(f"bench: could not install Aura into {folder}: {why[0]} ({hint})")
    return bindir / "aura"
