"""The real Claude Code CLI as a test fixture.

Why: Aura's Layer-2 workers are real coding CLIs; testing the supervisor and the stream parser against
hand-written imitations only proves they agree with our guesses. This module installs the real
``@anthropic-ai/claude-code`` package once into a cache folder outside the repository and runs it
headless against Aura's scripted server on 127.0.0.1, with a throw-away HOME.

* ``ensure_claude_cli()`` -> native binary path, or None (``unavailable_reason()`` says why).
* ``require_claude_cli()`` -> the path, or skips the test; under ``CI=true`` it fails the test instead,
  so a CI image without npm cannot silently stop testing the real CLI.
* ``run_claude(...)`` runs ``claude -p`` with the flags and environment a supervisor uses.

Environment knobs: ``AURA_TEST_CACHE`` (cache root, default ``~/.cache/aura-tests``),
``AURA_CLAUDE_BIN`` (use this binary, no install), ``AURA_CLAUDE_CODE_VERSION`` (npm version spec).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

PACKAGE = "@anthropic-ai/claude-code"
# The version whose behaviour the tests and supervisor/streams/claude.py were checked against.
DEFAULT_VERSION = "2.1.197"
INSTALL_TIMEOUT_S = 600

_state: dict[str, Any] = {"checked": False, "path": None, "reason": ""}


def cache_dir() -> Path:
    """Where the npm package lives: outside the repository, shared by test runs."""
    root = os.environ.get("AURA_TEST_CACHE") or str(Path.home() / ".cache" / "aura-tests")
    return Path(root) / "claude-code"


def _platform_packages() -> list[str]:
    """npm sub-packages that may hold the native binary for this machine, best first."""
    system = {"linux": "linux", "darwin": "darwin"}.get(sys.platform, sys.platform)
    machine = platform.machine().lower()
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    base = f"{PACKAGE}-{system}-{arch}"
    return [base, f"{base}-musl"] if system == "linux" else [base]


def find_binary(prefix: Path) -> Path | None:
    """The native ``claude`` binary under an npm prefix, or None.

    npm 11 does not run the package's postinstall script, so ``bin/claude.exe`` may be a small stub;
    the real binary is in the platform's optional dependency package.
    """
    modules = prefix / "node_modules"
    for package in _platform_packages():
        candidate = modules / package / "claude"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    placed = modules / PACKAGE / "bin" / "claude.exe"
    if placed.is_file() and placed.stat().st_size > 1_000_000 and os.access(placed, os.X_OK):
        return placed
    return None


def _install(prefix: Path) -> str:
    """Run npm into ``prefix``; return an error text, or '' on success."""
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed, so the real Claude Code CLI cannot be installed"
    version = os.environ.get("AURA_CLAUDE_CODE_VERSION", DEFAULT_VERSION)
    cmd = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), f"{PACKAGE}@{version}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"npm install took longer than {INSTALL_TIMEOUT_S}s"
    if proc.returncode != 0:
        return f"npm install failed ({proc.returncode}): {proc.stderr.strip()[-800:]}"
    return ""


def ensure_claude_cli() -> Path | None:
    """Install the CLI into the cache once (file-locked against parallel runs); return its binary."""
    if _state["checked"]:
        return _state["path"]
    _state["checked"] = True
    override = os.environ.get("AURA_CLAUDE_BIN")
    if override:
        path = Path(override)
        ok = path.is_file() and os.access(path, os.X_OK)
        _state.update(path=path if ok else None, reason="" if ok else f"AURA_CLAUDE_BIN={override} is not executable")
        return _state["path"]
    prefix = cache_dir()
    prefix.mkdir(parents=True, exist_ok=True)
    with FileLock(str(prefix) + ".lock", timeout=INSTALL_TIMEOUT_S + 60):
        binary = find_binary(prefix)
        if binary is None:
            error = _install(prefix)
            binary = None if error else find_binary(prefix)
            if binary is None:
                _state["reason"] = error or f"npm installed {PACKAGE} but no native binary for this platform"
    _state["path"] = binary
    return binary


def unavailable_reason() -> str:
    """Why ``ensure_claude_cli()`` returned None ('' when it did not)."""
    return str(_state["reason"])


def require_claude_cli() -> Path:
    """The binary, or skip the test — but fail it under CI, where a missing CLI is a broken image."""
    binary = ensure_claude_cli()
    if binary is not None:
        return binary
    reason = f"real Claude Code CLI unavailable: {unavailable_reason()}"
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)
    raise AssertionError("unreachable")  # pytest.skip raises; keeps type checkers honest


def claude_version(binary: Path) -> str:
    """``claude --version`` output, e.g. ``2.1.197 (Claude Code)``."""
    argv = [str(binary), "--version"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    return proc.stdout.strip()


def claude_env(base_url: str, home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: the scripted server, a throw-away HOME, no telemetry, no user's keys."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "scripted-test-key",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "1",
    }
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"  # bypassPermissions is refused as root without it
    env.update(extra or {})
    return env


@dataclass
class ClaudeRun:
    """What one ``claude -p`` run produced."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def result(self) -> dict[str, Any] | None:
        """The final ``result`` event, if the CLI printed one."""
        found = [e for e in self.events if e.get("type") == "result"]
        return found[-1] if found else None


def claude_argv(binary: Path, prompt: str, max_turns: int, extra_args: Sequence[str] = ()) -> list[str]:
    """The headless command line a supervisor uses."""
    return [
        str(binary), "-p", prompt,
        "--output-format", "stream-json", "--verbose",
        "--max-turns", str(max_turns),
        "--permission-mode", "bypassPermissions",
        *extra_args,
    ]  # fmt: skip


def run_claude(
    binary: Path,
    prompt: str,
    *,
    base_url: str,
    cwd: Path,
    home: Path,
    max_turns: int = 5,
    extra_env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 180,
    interrupt_when: Callable[[], bool] | None = None,
) -> ClaudeRun:
    """Run the CLI to completion (stdin from /dev/null, own process group).

    ``interrupt_when``: polled while it runs; once true the CLI gets SIGTERM, as a supervisor's kill would.
    """
    home.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    # Output goes to files, not pipes, as in the supervisor: a full pipe must not stall the CLI.
    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        proc = subprocess.Popen(
            claude_argv(binary, prompt, max_turns, extra_args),
            cwd=cwd,
            env=claude_env(base_url, home, extra_env),
            stdin=subprocess.DEVNULL,
            stdout=out_file,
            stderr=err_file,
            text=True,
            start_new_session=True,
        )
        try:
            if interrupt_when is not None:
                _interrupt_when(proc, interrupt_when, start + timeout)
            proc.wait(timeout=max(1.0, start + timeout - time.monotonic()))
        finally:
            _kill_group(proc)
        out_file.seek(0)
        err_file.seek(0)
        run = ClaudeRun(proc.returncode, out_file.read(), err_file.read(), time.monotonic() - start)
    run.events = [json.loads(line) for line in run.stdout.splitlines() if line.strip().startswith("{")]
    return run


def _interrupt_when(proc: subprocess.Popen[str], condition: Callable[[], bool], deadline: float) -> None:
    while proc.poll() is None and time.monotonic() < deadline:
        if condition():
            proc.send_signal(signal.SIGTERM)
            return
        time.sleep(0.05)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill what is left of the CLI's process group (its Bash tool children too)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(timeout=10)


def sanitize(text: str, replacements: Mapping[str, str]) -> str:
    """Replace machine-specific paths and the server port with placeholders, for fixtures."""
    for old, new in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(old, new)
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<PORT>", text)
