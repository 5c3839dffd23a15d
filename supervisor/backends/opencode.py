"""`opencode`: the opencode CLI headless.

    opencode run "Complete the task" --file task.md --dangerously-skip-permissions --format json
                 [--model M] [--session ID]

opencode has no turn cap of its own, so the supervisor counts its steps and stops it past
AURA_OPENCODE_MAX_TURNS (outcome `turns_exceeded`).
"""

from __future__ import annotations

from typing import Any

from aura.runtime.config import Config

from .base import WorkerCommand, decide_outcome, pass_env, resolve_exe, task_file

INSTALL_HINT = "install it with `npm install -g opencode-ai` or set AURA_OPENCODE_BIN"
PASS_PREFIXES = (
    "OPENCODE_",
    "ANTHROPIC_",
    "OPENAI_",
    "DEEPSEEK_",
    "OPENROUTER_",
    "GEMINI_",
    "GOOGLE_",
    "AWS_",
    "AZURE_",
    "GROQ_",
    "MISTRAL_",
    "XAI_",
)
MESSAGE = "Complete the task"
RESUME_MESSAGE = "Continue the task in the attached task.md from where you stopped"


class OpenCodeBackend:
    name = "opencode"

    def plan(self, spec: dict, cfg: Config) -> WorkerCommand:
        exe = resolve_exe(cfg, "AURA_OPENCODE_BIN", "opencode", INSTALL_HINT)
        task_md = task_file(spec)
        message = RESUME_MESSAGE if spec.get("resume_session") else MESSAGE
        argv = [exe, "run", message, "--file", task_md, "--dangerously-skip-permissions", "--format", "json"]
        model = spec.get("model") or cfg.text("AURA_OPENCODE_MODEL")
        if model:
            argv += ["--model", model]
        if spec.get("resume_session"):
            argv += ["--session", str(spec["resume_session"])]
        env = pass_env(PASS_PREFIXES)
        env.update(spec.get("env") or {})
        turns = int(spec.get("max_turns") or cfg.integer("AURA_OPENCODE_MAX_TURNS"))
        return WorkerCommand(
            exe=exe,
            argv=argv,
            cwd=spec.get("cwd") or spec["task_dir"],
            env=env,
            stdout_name="output.jsonl",
            max_turns=turns or None,
            home_writable=[".local/share/opencode", ".config/opencode", ".cache/opencode"],
        )

    def new_parser(self) -> Any | None:
        from aura.supervisor.streams.opencode import OpenCodeStream

        return OpenCodeStream()

    def outcome(self, exit_rec: dict, kill: dict | None, progress: dict | None) -> str:
        return decide_outcome(exit_rec, kill, progress, needs_final=True)
