"""`claude`: the Claude Code CLI in headless mode.

    claude -p @task.md --max-turns N --output-format stream-json --verbose --permission-mode MODE
           [--model M] [--max-budget-usd X] [--resume SESSION] --disallowedTools "CronCreate ScheduleWakeup"

Aura owns the retry policy (CLAUDE_CODE_MAX_RETRIES is kept low, AURA_CLAUDE_MAX_RETRIES), and the
CLI's own scheduling tools are disabled so that a worker cannot leave work behind that outlives it
(`--disallowedTools` takes a space-separated list; checked against `claude --help` of 2.1.197).
"""

from __future__ import annotations

import os
from typing import Any

from aura.runtime.config import Config

from .base import BackendError, WorkerCommand, decide_outcome, pass_env, resolve_exe

INSTALL_HINT = "install it with `npm install -g @anthropic-ai/claude-code` or set AURA_CLAUDE_BIN"
PASS_PREFIXES = ("ANTHROPIC_", "CLAUDE_CODE_", "CLAUDE_CONFIG_DIR", "DISABLE_", "IS_SANDBOX", "AWS_", "GOOGLE_")
SCHEDULING_TOOLS = "CronCreate ScheduleWakeup"
BYPASS = "bypassPermissions"


def resolve_claude(cfg: Config) -> str:
    return resolve_exe(cfg, "AURA_CLAUDE_BIN", "claude", INSTALL_HINT)


def check_root_bypass(mode: str, env: dict[str, str]) -> None:
    """The CLI refuses bypass mode as root without IS_SANDBOX=1 and says so only on stderr: refuse
    the spawn here with the fix instead of starting a worker that fails at once."""
    if mode == BYPASS and hasattr(os, "geteuid") and os.geteuid() == 0 and env.get("IS_SANDBOX") != "1":
        raise BackendError(
            "claude refuses --permission-mode bypassPermissions when run as root unless IS_SANDBOX=1 is set; "
            "set IS_SANDBOX=1 if this machine is a disposable sandbox, or choose another mode with "
            "AURA_CLAUDE_PERMISSION_MODE (e.g. acceptEdits)"
        )


class ClaudeBackend:
    name = "claude"

    def plan(self, spec: dict, cfg: Config) -> WorkerCommand:
        exe = resolve_claude(cfg)
        mode = cfg.text("AURA_CLAUDE_PERMISSION_MODE")
        env = pass_env(PASS_PREFIXES)
        env.update(spec.get("env") or {})
        check_root_bypass(mode, env)
        env.setdefault("CLAUDE_CODE_MAX_RETRIES", str(cfg.integer("AURA_CLAUDE_MAX_RETRIES")))
        env.setdefault("DISABLE_AUTOUPDATER", "1")
        turns = int(spec.get("max_turns") or cfg.integer("AURA_MAX_TURNS"))
        argv = [
            exe,
            "-p",
            spec.get("prompt") or "@task.md",
            "--max-turns",
            str(turns),
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            mode,
        ]
        model = spec.get("model") or cfg.text("AURA_CLAUDE_MODEL")
        if model:
            argv += ["--model", model]
        if spec.get("max_budget_usd"):
            argv += ["--max-budget-usd", f"{float(spec['max_budget_usd']):.4f}"]
        if spec.get("resume_session"):
            argv += ["--resume", str(spec["resume_session"])]
        argv += ["--disallowedTools", SCHEDULING_TOOLS]  # variadic: keep it last
        return WorkerCommand(
            exe=exe,
            argv=argv,
            cwd=spec.get("cwd") or spec["task_dir"],
            env=env,
            stdout_name="output.jsonl",
            home_writable=[".claude", ".claude.json"],
        )

    def new_parser(self) -> Any | None:
        from aura.supervisor.streams.claude import ClaudeStream

        return ClaudeStream()

    def outcome(self, exit_rec: dict, kill: dict | None, progress: dict | None) -> str:
        return decide_outcome(exit_rec, kill, progress, needs_final=True)
