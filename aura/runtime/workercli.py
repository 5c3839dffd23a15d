"""Can a worker backend start here? One answer for `aura up`, `aura doctor` and the brain.

Why: a backend whose CLI is missing fails every spawn, and the run then waits on retries that
cannot succeed. `aura up` refuses a run whose task file needs such a backend and warns when only
some path might (a resource-fix subtask, the model's choice); the `local` planner blocks a task
with the same sentence instead of spawning something that cannot run.
"""

from __future__ import annotations

from dataclasses import dataclass

from aura.runtime.config import Config

SHELL = "shell"
LAYER2_KEY = "AURA_LAYER2_BACKEND"


@dataclass(frozen=True)
class AgentCli:
    setting: str  # the config key that names the executable
    binary: str  # the name looked for on PATH
    install: str  # how to get it, as a clause


AGENT_CLIS = {
    "claude": AgentCli("AURA_CLAUDE_BIN", "claude", "install it with `npm install -g @anthropic-ai/claude-code`"),
    "opencode": AgentCli("AURA_OPENCODE_BIN", "opencode", "install it with `npm install -g opencode-ai`"),
    "codex": AgentCli("AURA_CODEX_BIN", "codex", "install it with `npm install -g @openai/codex`"),
    "ds_code": AgentCli("AURA_DSCODE_BIN", "ds-code", "install ds-code"),
}
ALIASES = {"ds-code": "ds_code", "dscode": "ds_code"}


def canonical(backend: str) -> str:
    name = backend.strip().lower()
    return ALIASES.get(name, name)


def cli_problem(cfg: Config, backend: str) -> str | None:
    """None when `backend` can start a worker here; else why not, naming the binary looked for and
    the settings that change it."""
    import os
    import shutil

    name = canonical(backend)
    if name == SHELL:
        return None
    cli = AGENT_CLIS.get(name)
    if cli is None:
        return (
            f"{backend!r} is not a worker backend (known: {', '.join([SHELL, *AGENT_CLIS])}); "
            f"set {LAYER2_KEY} to one of them"
        )
    explicit = cfg.text(cli.setting)
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return None
        return (
            f"the {name} backend's {cli.setting}={explicit} is not an executable file: point {cli.setting} "
            f"at the {cli.binary} CLI, or set {LAYER2_KEY} to another backend"
        )
    if shutil.which(cli.binary):
        return None
    return (
        f"the {name} backend needs the `{cli.binary}` CLI, which is not on PATH: {cli.install}, set "
        f"{cli.setting} to it, or set {LAYER2_KEY} to another backend"
    )


def agent_task_problem(cfg: Config, backend: str | None = None) -> str | None:
    """Why a task without a command (it needs an agent) cannot start with `backend` (default: the
    Layer 2 backend); None when it can."""
    name = canonical(backend or cfg.text(LAYER2_KEY))
    if name == SHELL:
        return (
            f"{LAYER2_KEY}=shell runs only commands and this task has none: give it a command in "
            f"backticks, or set {LAYER2_KEY} to an agent CLI ({', '.join(AGENT_CLIS)})"
        )
    return cli_problem(cfg, name)
