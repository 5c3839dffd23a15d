"""Aura: run an autonomous agent on one goal for hours or days.

Kept import-free on purpose: the CLI's read-only commands must start fast.
"""

from __future__ import annotations

import os as _os
import sys as _sys

__version__ = "0.2.0"


# In a checkout, supervisor/, watchdog/ and ipc/ sit beside aura/; a wheel puts them inside it
# (pyproject.toml's package-dir). This finder imports them as aura.supervisor, aura.watchdog and
# aura.ipc from the same tree as this package: no install needed, and it works under `python -I -S`
# (the shim), where no editable-install finder is loaded. Inert in an installed wheel.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType


class _BesideFinder:
    root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    names = ("aura.supervisor", "aura.watchdog", "aura.ipc")

    @classmethod
    def find_spec(cls, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname not in cls.names or getattr(_sys.modules.get("aura"), "__dict__", None) is not globals():
            return None
        from importlib.machinery import PathFinder

        return PathFinder.find_spec(fullname, [cls.root])


if not _os.path.isdir(_os.path.join(_BesideFinder.root, "aura", "supervisor")) and _os.path.isfile(
        _os.path.join(_BesideFinder.root, "supervisor", "__init__.py")):
    _sys.meta_path.insert(0, _BesideFinder)
