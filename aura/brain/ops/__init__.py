"""The brain's operations, one module each (aura.runtime.ops); importing this package registers them."""

from . import answer, budget, questions, status, task, wake

__all__ = ["answer", "budget", "questions", "status", "task", "wake"]
