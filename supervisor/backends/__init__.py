"""Worker backends by name."""

from __future__ import annotations

from .base import OUTCOMES, Backend, BackendError, LaunchPlan
from .claude import ClaudeBackend
from .shell import ShellBackend

_BACKENDS: dict[str, Backend] = {"shell": ShellBackend(), "claude": ClaudeBackend()}


def get_backend(name: str) -> Backend:
    try:
        return _BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; known: {', '.join(sorted(_BACKENDS))}") from None


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


__all__ = ["OUTCOMES", "Backend", "BackendError", "LaunchPlan", "get_backend", "backend_names"]
