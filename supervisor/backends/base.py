"""What every worker backend provides, and the one outcome rule they all share.

A backend builds the command line and environment (`plan`), may give an incremental output parser
(`new_parser`), and names the outcome of a finished worker (`outcome`). Every backend speaks the
same outcome vocabulary, `OUTCOMES`, decided by `decide_outcome` from the shim's exit record, the
kill Aura asked for (if any) and what the parser saw (its `verdict` and `final` keys).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aura.runtime.config import Config
from aura.runtime.fsutil import atomic_write_text
from aura.runtime.vocab import (
    DISK_LOW,
    FAILED,
    KILLED,
    LOST,
    OUTCOMES,
    OUTPUT_LIMIT,
    SUCCEEDED,
    TIMED_OUT,
    TURNS_EXCEEDED,
    UNKNOWN,
)
from aura.supervisor.streams.common import KILL_SIGNALS, TIMEOUT_EXIT, effective_signal


class BackendError(Exception):
    """The worker cannot be started (missing binary, unsafe setting); the message says what to do."""


@dataclass
class WorkerCommand:
    """How to start one worker. `record` holds extra facts for the worker record (isolation,
    container); `max_turns` is a turn cap the supervisor enforces for CLIs that have none;
    `home_writable` lists what the CLI must write under $HOME (kept writable by the sandbox);
    `exe` is the CLI's host path, which a container replaces with the image's command of that name."""

    argv: list[str]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    stdout_name: str = "output.txt"
    stderr_name: str = "error.log"
    record: dict[str, Any] = field(default_factory=dict)
    max_turns: int | None = None
    home_writable: list[str] = field(default_factory=list)
    exe: str | None = None


class Backend(Protocol):
    name: str

    def plan(self, spec: dict, cfg: Config) -> WorkerCommand:
        """argv, cwd and environment for one worker; raises BackendError."""

    def new_parser(self) -> Any | None:
        """An incremental output parser with `feed(line)` and `summary()`, or None for plain text."""

    def outcome(self, exit_rec: dict, kill: dict | None, progress: dict | None) -> str:
        """One of OUTCOMES."""


def decide_outcome(exit_rec: dict, kill: dict | None, progress: dict | None, needs_final: bool = False) -> str:
    """The outcome of a finished worker, the same rule for every backend.

    1. It never started (start error) -> failed; so does a Slurm job that ended without the shim's
       exit record (Slurm's state in `slurm_state`), unless Aura had asked to stop it: then the stop
       (Slurm's KILL after the grace, which takes the shim too) ended it, and 3 or 5 applies.
    2. The CLI's own final line said success -> succeeded, even if Aura then stopped a CLI that
       printed its result and did not exit.
    3. Aura stopped it for its time budget -> timed_out; for its turn cap -> turns_exceeded; the
       watchdog for its output cap -> output_limit, for filling the data folder's disk -> disk_low.
    4. The CLI's own verdict (turns_exceeded, budget_exceeded, api_error, rate_limited, failed).
    5. Any other kill Aura asked for -> killed.
    6. Ended by SIGTERM/SIGKILL/SIGINT/SIGHUP -> killed; by another signal -> failed; exit 124 ->
       timed_out; no exit status at all -> lost.
    7. Exit 0 -> succeeded, or unknown for agent CLIs whose final line never came (`needs_final`).
    8. Any other exit code -> failed.
    """
    progress = progress or {}
    verdict = progress.get("verdict")
    if exit_rec.get("error") and not (kill and exit_rec.get("slurm_state")):
        return FAILED
    if verdict == SUCCEEDED:
        return SUCCEEDED
    code = (kill or {}).get("reason_code")
    if code in (TIMED_OUT, TURNS_EXCEEDED, OUTPUT_LIMIT, DISK_LOW):
        return code
    if verdict in OUTCOMES:
        return verdict
    if kill:
        return KILLED
    exit_code = exit_rec.get("exit_code")
    sig = effective_signal(exit_code, exit_rec.get("signal"))
    if sig is not None:
        return KILLED if sig in KILL_SIGNALS else FAILED
    if exit_code == TIMEOUT_EXIT:
        return TIMED_OUT
    if exit_code is None:
        return LOST
    if exit_code == 0:
        return UNKNOWN if needs_final else SUCCEEDED
    return FAILED


def basic_outcome(exit_rec: dict, kill: dict | None) -> str:
    """Outcome of a worker whose output is not parsed (the shell backend)."""
    return decide_outcome(exit_rec, kill, None)


def resolve_exe(cfg: Config, key: str, name: str, hint: str) -> str:
    """The executable named by config key `key`, else `name` on PATH; BackendError says how to fix it."""
    explicit = cfg.text(key)
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise BackendError(f"{key}={explicit} is not an executable file")
    found = shutil.which(name)
    if not found:
        raise BackendError(f"the {name} CLI is not installed (not on PATH): {hint}")
    return found


def pass_env(prefixes: tuple[str, ...], names: tuple[str, ...] = ()) -> dict[str, str]:
    """The daemon's variables a backend needs (its API keys and settings), by prefix or exact name."""
    return {k: v for k, v in os.environ.items() if k.startswith(prefixes) or k in names}


def task_file(spec: dict) -> str:
    """The task's `task.md`, written from the spawn prompt when the caller did not write one."""
    path = os.path.join(spec["task_dir"], "task.md")
    if not os.path.isfile(path):
        if not spec.get("prompt"):
            raise BackendError(f"{path} does not exist and the spawn request has no `prompt` to write into it")
        atomic_write_text(Path(path), spec["prompt"])
    return path
