"""The brain's operations, one module each (aura.runtime.ops); importing this package registers them."""

from . import budget, status, wake

__all__ = ["budget", "status", "wake"]
