"""`claude`: the Claude Code CLI in headless mode, the original tool's command line.

    claude -p @task.md --max-turns N --output-format stream-json --verbose --permission-mode MODE

Aura owns the retry policy (CLAUDE_CODE_MAX_RETRIES is kept low), and the CLI's own
scheduling tools are disabled so that a worker cannot leave work behind that outlives it.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from aura.config import Config

from .base import BackendError, LaunchPlan, basic_outcome

INSTALL_HINT = "install it with `npm install -g @anthropic-ai/claude-code` or set AURA_CLAUDE_BIN"
PASS_PREFIXES = ("ANTHROPIC_", "CLAUDE_CODE_", "CLAUDE_CONFIG_DIR", "DISABLE_", "IS_SANDBOX", "AWS_", "GOOGLE_")
SCHEDULING_TOOLS = "CronCreate ScheduleWakeup"


def resolve_claude(cfg: Config) -> str:
    explicit = cfg.str("AURA_CLAUDE_BIN")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise BackendError(f"AURA_CLAUDE_BIN={explicit} is not an executable file")
    found = shutil.which("claude")
    if not found:
        raise BackendError(f"the claude CLI is not installed: {INSTALL_HINT}")
    return found


class ClaudeBackend:
    name = "claude"

    def plan(self, spec: dict, cfg: Config) -> LaunchPlan:
        exe = resolve_claude(cfg)
        mode = cfg.str("AURA_CLAUDE_PERMISSION_MODE")
        env = {k: v for k, v in os.environ.items() if k.startswith(PASS_PREFIXES)}
        env.update(spec.get("env") or {})
        if mode == "bypassPermissions" and os.geteuid() == 0 and env.get("IS_SANDBOX") != "1":
            raise BackendError(
                "claude refuses --permission-mode bypassPermissions when run as root unless IS_SANDBOX=1 is set; "
                "set IS_SANDBOX=1 if this machine is a disposable sandbox, or choose another mode with "
                "AURA_CLAUDE_PERMISSION_MODE (e.g. acceptEdits)")
        env.setdefault("CLAUDE_CODE_MAX_RETRIES", "2")
        env.setdefault("DISABLE_AUTOUPDATER", "1")
        turns = int(spec.get("max_turns") or cfg.int("AURA_MAX_TURNS"))
        argv = [exe, "-p", spec.get("prompt") or "@task.md", "--max-turns", str(turns),
                "--output-format", "stream-json", "--verbose", "--permission-mode", mode]
        model = spec.get("model") or cfg.str("AURA_CLAUDE_MODEL")
        if model:
            argv += ["--model", model]
        if spec.get("max_budget_usd"):
            argv += ["--max-budget-usd", f"{float(spec['max_budget_usd']):.4f}"]
        if spec.get("resume_session"):
            argv += ["--resume", str(spec["resume_session"])]
        argv += ["--disallowedTools", SCHEDULING_TOOLS]
        return LaunchPlan(argv=argv, cwd=spec.get("cwd") or spec["task_dir"], env=env, stdout_name="output.jsonl")

    def new_parser(self) -> Any | None:
        from supervisor.streams.claude import ClaudeStream
        return ClaudeStream()

    def outcome(self, exit_rec: dict, kill: dict | None, progress: dict | None) -> str:
        if exit_rec.get("error"):
            return "failed"
        if kill and kill.get("reason_code") == "timed_out":
            return "timed_out"
        if kill and not (progress or {}).get("result"):
            return "killed"
        from supervisor.streams.claude import classify_claude
        result = (progress or {}).get("result")
        return classify_claude(result, exit_rec.get("exit_code"), exit_rec.get("signal"))
