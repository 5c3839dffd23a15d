"""`shell`: any command. A string runs through /bin/sh -c; a list runs as argv."""

from __future__ import annotations

from typing import Any

from aura.runtime.config import Config

from .base import BackendError, WorkerCommand, basic_outcome


class ShellBackend:
    name = "shell"

    def plan(self, spec: dict, cfg: Config) -> WorkerCommand:
        argv = spec.get("argv")
        command = spec.get("command")
        if argv:
            if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
                raise BackendError("shell backend: `argv` must be a list of strings")
            cmd = list(argv)
        elif isinstance(command, str) and command.strip():
            cmd = ["/bin/sh", "-c", command]
        else:
            raise BackendError("shell backend needs `argv` (a list) or `command` (a string)")
        return WorkerCommand(argv=cmd, cwd=spec.get("cwd") or spec["task_dir"], stdout_name="output.txt")

    def new_parser(self) -> Any | None:
        return None

    def outcome(self, exit_rec: dict, kill: dict | None, progress: dict | None) -> str:
        return basic_outcome(exit_rec, kill)
