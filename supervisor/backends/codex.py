"""`codex`: the OpenAI Codex CLI headless.

    codex exec --json --skip-git-repo-check SANDBOX [-m MODEL] [-C CWD] PROMPT
    codex exec --json --skip-git-repo-check SANDBOX [-m MODEL] [-C CWD] resume THREAD_ID PROMPT

SANDBOX follows AURA_CODEX_SANDBOX: `bypass` (the default, like claude's bypassPermissions; use
Aura's own bubblewrap or Docker isolation) gives `--dangerously-bypass-approvals-and-sandbox`,
anything else is passed as `--sandbox VALUE` (read-only, workspace-write, danger-full-access).
"""

from __future__ import annotations

from typing import Any

from aura.runtime.config import Config

from .base import BackendError, WorkerCommand, decide_outcome, pass_env, resolve_exe

INSTALL_HINT = "install it with `npm install -g @openai/codex` or set AURA_CODEX_BIN"
PASS_PREFIXES = ("OPENAI_", "CODEX_", "AZURE_OPENAI_")
SANDBOXES = ("read-only", "workspace-write", "danger-full-access")


def sandbox_args(value: str) -> list[str]:
    if value == "bypass":
        return ["--dangerously-bypass-approvals-and-sandbox"]
    if value in SANDBOXES:
        return ["--sandbox", value]
    raise BackendError(f"AURA_CODEX_SANDBOX={value!r}: use bypass, {', '.join(SANDBOXES)}")


class CodexBackend:
    name = "codex"

    def plan(self, spec: dict, cfg: Config) -> WorkerCommand:
        exe = resolve_exe(cfg, "AURA_CODEX_BIN", "codex", INSTALL_HINT)
        cwd = spec.get("cwd") or spec["task_dir"]
        prompt = spec.get("prompt") or f"Read the task file {spec['task_dir']}/task.md and carry out the task."
        argv = [exe, "exec", "--json", "--skip-git-repo-check", *sandbox_args(cfg.text("AURA_CODEX_SANDBOX"))]
        model = spec.get("model") or cfg.text("AURA_CODEX_MODEL")
        if model:
            argv += ["-m", model]
        argv += ["-C", cwd]
        if spec.get("resume_session"):
            argv += ["resume", str(spec["resume_session"])]
        argv.append(prompt)
        env = pass_env(PASS_PREFIXES)
        env.update(spec.get("env") or {})
        return WorkerCommand(exe=exe, argv=argv, cwd=cwd, env=env, stdout_name="output.jsonl", home_writable=[".codex"])

    def new_parser(self) -> Any | None:
        from aura.supervisor.streams.codex import CodexStream

        return CodexStream()

    def outcome(self, exit_rec: dict, kill: dict | None, progress: dict | None) -> str:
        return decide_outcome(exit_rec, kill, progress, needs_final=True)
