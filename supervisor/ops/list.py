"""list: the workers' records (`aura ps`, the brain's reconcile), without their environment and
with their live progress.

Request: {include_exited: bool = true, worker_ids: [str] = all}
Reply: [{worker_id: str, task_id: str, state: str, backend: str, worker_pid: int, outcome: str, ...}, ...]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aura.runtime.ops import Arg, operation
from aura.runtime.vocab import LIVE_STATES

if TYPE_CHECKING:
    from ..main import SupervisorDaemon


@operation("list", "supervisor", Arg("include_exited", bool, True), Arg("worker_ids", list, None))
def list_workers(sup: SupervisorDaemon, args: dict) -> list[dict]:
    ids = args["worker_ids"]
    return [
        sup.public(rec)
        for wid, rec in sup.workers.items()
        if (ids is None or wid in ids) and (args["include_exited"] or rec.get("state") in LIVE_STATES)
    ]
