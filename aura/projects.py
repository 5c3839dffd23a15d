"""The index of projects this user has run (`aura projects`): `~/.aura/projects.json`.

`aura up` adds the project; the listing reads each project's own state from disk, so it stays
right whatever happened to the daemons. A project folder that no longer exists is shown as gone.
"""

from __future__ import annotations

import time
from pathlib import Path

from .runtime.config import global_config_path
from .runtime.fsutil import atomic_write_json, read_json


def index_path() -> Path:
    return global_config_path().parent / "projects.json"


def register(root: Path, task: Path) -> None:
    """Remember that `aura up` ran here (best effort: an unwritable home must not stop a run)."""
    path = index_path()
    try:
        doc = read_json(path) or {}
        entry = doc.setdefault(str(root), {"first_up": time.time()})
        entry.update(task=str(task), last_up=time.time())
        atomic_write_json(path, doc, mode=0o600)
    except OSError:
        pass


def listing() -> list[dict]:
    """One row per known project: mission, cycles, run state, spend, whether it runs now."""
    from .brain import costs as costmod
    from .brain.state import read_state
    from .control import running_daemons
    from .runtime.paths import ProjectPaths

    rows = []
    for root, entry in sorted((read_json(index_path()) or {}).items(), key=lambda kv: -kv[1].get("last_up", 0)):
        paths = ProjectPaths.for_root(Path(root))
        row = {"root": root, "task": entry.get("task"), "last_up": entry.get("last_up"), "exists": Path(root).is_dir()}
        state = read_state(paths.state_dir) if row["exists"] else None
        if state is not None:
            row.update(
                mission=state.get("mission"),
                cycles=state.get("total_cycles", 0),
                finished=bool((state.get("run") or {}).get("finished")),
                spent_usd=costmod.summary(state)["total_usd"],
            )
        row["running"] = bool(row["exists"] and running_daemons(paths))
        rows.append(row)
    return rows
