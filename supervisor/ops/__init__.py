"""The supervisor's operations, one module each (aura.runtime.ops): importing this package
registers them for the daemon named "supervisor"."""

from aura.runtime import ops

NAMES = ("spawn", "kill", "list", "get")

ops.load(__name__, NAMES)
