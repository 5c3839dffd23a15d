"""list: the workers' records (`aura ps`, the brain's reconcile), without their environment and
with their live progress; ended workers no longer held in memory are read from their folders.

Request: {include_exited: bool = true, worker_ids: [str] = all, from_disk: bool = true}
(`from_disk: false`: only the records held in memory, the live workers and the latest ended ones, so
a view refreshed every second costs nothing that grows with the run)
Reply: [{worker_id: str, task_id: str, state: str, backend: str, worker_pid: int, outcome: str, ...}, ...]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aura.runtime.ops import Arg, operation
from aura.runtime.vocab import LIVE_STATES

if TYPE_CHECKING:
    from ..main import SupervisorDaemon


@operation(
    "list", "supervisor", Arg("include_exited", bool, True), Arg("worker_ids", list, None), Arg("from_disk", bool, True)
)
def list_workers(sup: SupervisorDaemon, args: dict) -> list[dict]:
    ids, include_exited = args["worker_ids"], args["include_exited"]
    if ids is not None:  # the brain asks for its running tasks' workers: as many reads as ids
        # a live worker's record is always held in memory: only ended ones are read from disk
        lookup = sup.workers.find if include_exited and args["from_disk"] else sup.workers.get
        found = (lookup(wid) for wid in dict.fromkeys(ids))
        return [sup.public(r) for r in found if r is not None and (include_exited or r.get("state") in LIVE_STATES)]
    older = list(sup.workers.on_disk_only()) if include_exited and args["from_disk"] else []
    held = [r for r in sup.workers.values() if include_exited or r.get("state") in LIVE_STATES]
    return [sup.public(r) for r in older + held]
