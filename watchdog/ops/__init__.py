"""The requests the watchdog answers, one module each (see aura.runtime.ops); importing this
package registers them."""

from . import limits, preflight, set_limits, status, usage  # noqa: F401
