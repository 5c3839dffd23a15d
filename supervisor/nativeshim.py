"""The native shim (supervisor/nativeshim.c): found, or built with the C compiler on first use.

Like Python's own bytecode cache, the program is kept in `__pycache__` beside its source, named by a
hash of the source and the build flags, so an edit builds a new one; where that
folder cannot be written (a system-wide install) it goes under the user's cache folder. A build
writes a temp file and renames it into place, so supervisors starting at once never run half a file.

AURA_SHIM picks the shim: `auto` (the default) the native one where it can be built, else the
Python shim forked by the fork server; `native` refuses a start where it cannot be built;
`python` never builds it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).resolve().with_name("nativeshim.c")
CFLAGS = ("-O2", "-Wall")
BUILD_TIMEOUT = 120.0
AUTO, NATIVE, PYTHON = "auto", "native", "python"  # AURA_SHIM


@dataclass(frozen=True)
class Found:
    """The program to run, or None and why there is none."""

    path: Path | None
    why: str = ""


def find(mode: str = AUTO) -> Found:
    """The native shim for `mode` (AUTO, NATIVE or PYTHON), built when missing."""
    if mode == PYTHON:
        return Found(None, "AURA_SHIM=python")
    if not sys.platform.startswith("linux"):
        return Found(None, "the native shim is for Linux (it reads /proc)")
    try:
        source = SOURCE.read_bytes()
    except OSError as exc:
        return Found(None, f"its source is missing: {exc}")
    name = f"aura-shim-{_digest(source)}"
    for folder in _folders():
        target = folder / name
        if os.access(target, os.X_OK):
            return Found(target)
    compiler = _compiler()
    if compiler is None:
        return Found(None, "no C compiler (cc, gcc or clang) on PATH")
    errors = []
    for folder in _folders():
        try:
            return Found(_build(compiler, folder / name))
        except OSError as exc:
            errors.append(f"{folder}: {exc}")
        except subprocess.SubprocessError as exc:
            return Found(None, f"{compiler} could not build it: {exc}")
    return Found(None, "nowhere to keep it: " + "; ".join(errors))


def _compiler() -> str | None:
    for name in (os.environ.get("CC", ""), "cc", "gcc", "clang"):
        found = shutil.which(name) if name else None
        if found:
            return found
    return None


def _digest(source: bytes) -> str:
    """The source and the flags it is built with: a change to either is another program."""
    h = hashlib.sha256(source)
    h.update(" ".join(CFLAGS).encode())
    return h.hexdigest()[:16]


def _folders() -> list[Path]:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return [SOURCE.parent / "__pycache__", cache / "aura"]


def _build(compiler: str, target: Path) -> Path:
    """Compile into a temp file beside `target` and rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        try:
            done = subprocess.run(
                [compiler, *CFLAGS, "-o", str(tmp), str(SOURCE)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
            )
        except OSError as exc:  # the compiler itself, not the folder
            raise subprocess.SubprocessError(f"cannot run it: {exc}") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            raise subprocess.SubprocessError(last)
        os.replace(tmp, target)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    return target
