"""What every worker backend provides: how to launch it and how to read its outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from aura.config import Config

OUTCOMES = ("succeeded", "failed", "timed_out", "budget_exceeded", "turns_exceeded", "api_error",
            "rate_limited", "killed", "lost", "unknown")


class BackendError(Exception):
    """The worker cannot be started (missing binary, unsafe setting); the message says what to do."""


@dataclass
class LaunchPlan:
    argv: list[str]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    stdout_name: str = "output.txt"
    stderr_name: str = "error.log"


class Backend(Protocol):
    name: str

    def plan(self, spec: dict, cfg: Config) -> LaunchPlan:
        """argv, cwd and environment for one worker; raises BackendError."""

    def new_parser(self) -> Any | None:
        """An incremental output parser with `feed(line)` and `summary()`, or None for plain text."""

    def outcome(self, exit_rec: dict, kill: dict | None, progress: dict | None) -> str:
        """One of OUTCOMES."""


def basic_outcome(exit_rec: dict, kill: dict | None) -> str:
    """Outcome from the exit record and who asked for a kill: shared by every backend."""
    if exit_rec.get("error"):
        return "failed"
    if kill:
        if kill.get("reason_code") == "timed_out":
            return "timed_out"
        if exit_rec.get("signal") or exit_rec.get("exit_code") not in (0, None):
            return "killed"
    if exit_rec.get("exit_code") == 0:
        return "succeeded"
    if exit_rec.get("exit_code") is None and exit_rec.get("signal") is None:
        return "unknown"
    return "failed"
