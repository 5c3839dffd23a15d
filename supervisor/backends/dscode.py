"""`ds_code`: the ds-code CLI.

    ds-code run --workspace TASK_DIR --no-color [--model M]   < task.md   > output.txt

The task file goes to its standard input (the shim gives every worker /dev/null, so a tiny
`sh -c 'exec ... < task.md'` puts it there; the exec keeps one process). Environment:
DEEPSEEK_API_KEY (AURA_DEEPSEEK_API_KEY, else the daemon's DEEPSEEK_API_KEY, else
AURA_API_KEY), DEEPSEEK_BASE_URL (AURA_DSCODE_BASE_URL), DS_CODE_MAX_TURNS.
"""

from __future__ import annotations

import os
from typing import Any

from aura.runtime.config import Config
from aura.runtime.vocab import FAILED, RATE_LIMITED

from .base import WorkerCommand, decide_outcome, resolve_exe, task_file

INSTALL_HINT = "install ds-code and put it on PATH, or set AURA_DSCODE_BIN"
STDIN_EXEC = 'exec "$0" "$@" < "$AURA_DSCODE_STDIN"'


def dscode_env(cfg: Config) -> dict[str, str]:
    key = cfg.text("AURA_DEEPSEEK_API_KEY") or os.environ.get("DEEPSEEK_API_KEY") or cfg.text("AURA_API_KEY")
    turns = cfg.integer("AURA_DSCODE_MAX_TURNS") or cfg.integer("AURA_MAX_TURNS")
    env = {"DS_CODE_MAX_TURNS": str(turns)}
    if key:
        env["DEEPSEEK_API_KEY"] = key
    if cfg.text("AURA_DSCODE_BASE_URL"):
        env["DEEPSEEK_BASE_URL"] = cfg.text("AURA_DSCODE_BASE_URL")
    return env


class DsCodeBackend:
    name = "ds_code"

    def plan(self, spec: dict, cfg: Config) -> WorkerCommand:
        exe = resolve_exe(cfg, "AURA_DSCODE_BIN", "ds-code", INSTALL_HINT)
        task_md = task_file(spec)
        cmd = [exe, "run", "--workspace", spec["task_dir"], "--no-color"]
        model = spec.get("model") or cfg.text("AURA_DSCODE_MODEL")
        if model:
            cmd += ["--model", model]
        env = dscode_env(cfg)
        env.update(spec.get("env") or {})
        env["AURA_DSCODE_STDIN"] = task_md
        return WorkerCommand(
            exe=exe,
            argv=["/bin/sh", "-c", STDIN_EXEC, *cmd],
            cwd=spec.get("cwd") or spec["task_dir"],
            env=env,
            stdout_name="output.txt",
        )

    def new_parser(self) -> Any | None:
        from aura.supervisor.streams.text import TextStream

        return TextStream()

    def outcome(self, exit_rec: dict, kill: dict | None, progress: dict | None) -> str:
        outcome = decide_outcome(exit_rec, kill, progress)
        if outcome == FAILED and (progress or {}).get("rate_limit_hint"):
            return RATE_LIMITED
        return outcome
