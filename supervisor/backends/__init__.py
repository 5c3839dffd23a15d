"""Worker backends by name, and the one entry point that plans a worker (backend + isolation)."""

from __future__ import annotations

from aura.runtime.config import Config

from .base import OUTCOMES, Backend, BackendError, WorkerCommand, decide_outcome
from .claude import ClaudeBackend
from .codex import CodexBackend
from .dscode import DsCodeBackend
from .isolation import apply_isolation
from .opencode import OpenCodeBackend
from .shell import ShellBackend

_BACKENDS: dict[str, Backend] = {
    b.name: b for b in (ShellBackend(), ClaudeBackend(), OpenCodeBackend(), CodexBackend(), DsCodeBackend())
}
ALIASES = {"ds-code": "ds_code", "dscode": "ds_code"}


def get_backend(name: str) -> Backend:
    try:
        return _BACKENDS[ALIASES.get(name, name)]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; known: {', '.join(sorted(_BACKENDS))}") from None


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def plan_worker(backend: Backend, spec: dict, cfg: Config) -> WorkerCommand:
    """The backend's command line, wrapped in the isolation the spec or the config asks for."""
    return apply_isolation(backend.plan(spec, cfg), spec, cfg)


__all__ = [
    "OUTCOMES",
    "Backend",
    "BackendError",
    "WorkerCommand",
    "backend_names",
    "decide_outcome",
    "get_backend",
    "plan_worker",
]
