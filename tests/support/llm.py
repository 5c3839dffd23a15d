"""Helpers for the tests that run the `llm` brain against the scripted server.

The brain runs as a real daemon (started by `aura up -d` in a temporary project) and talks to a
ScriptedServer in the test process through the real `anthropic` SDK over 127.0.0.1.
"""

from __future__ import annotations

from typing import Any

from aura.runtime.fsutil import read_json, read_jsonl
from aura.scripted_server import ScriptedServer
from tests.support.harness import Project, wait_for

NO_OP = {"tool": "no_op", "input": {"reason": "nothing to do"}}


def use_llm(project: Project, server: ScriptedServer, **env: str) -> None:
    """Point the project's brain at the scripted server, with fast retries."""
    project.env.update(
        AURA_API_KEY="sk-test-key",
        AURA_API_BASE_URL=server.url,
        AURA_API_PROVIDER="anthropic",
        AURA_API_MODEL="scripted-model",
        AURA_API_RETRY_BASE_DELAY="0.05",
        AURA_API_TIMEOUT="20",
        AURA_LLM_DEAD_THROTTLE="1",
    )
    project.env.update(env)


def state(project: Project) -> dict:
    return read_json(project.paths.state_dir / "state.json") or {}


def decisions(project: Project, kind: str | None = None) -> list[dict]:
    out = read_jsonl(project.paths.state_dir / "decisions.jsonl")
    return [d for d in out if kind is None or d.get("kind") == kind]


def events(project: Project, daemon: str = "brain") -> list[dict]:
    return read_jsonl(project.paths.journal(daemon))


def wait_finished(project: Project, timeout: float = 60.0) -> dict:
    return wait_for(
        lambda: state(project) if (state(project).get("run") or {}).get("finished") else None,
        timeout,
        what="the run to finish",
    )


def tool_results(request: dict) -> list[dict]:
    """The tool_result blocks of a recorded request's last user message."""
    last = request["body"]["messages"][-1]
    return (
        [b for b in last["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]
        if isinstance(last["content"], list)
        else []
    )


def first_user_text(request: dict) -> str:
    content = request["body"]["messages"][0]["content"]
    return content if isinstance(content, str) else "\n".join(b.get("text", "") for b in content)


def tool_step(name: str, **kw: Any) -> dict:
    return {"tool": name, "input": kw}
