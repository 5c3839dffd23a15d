"""get: one worker's record, as `list` shows it (`exiting` included).

Request: {worker_id: str}
Reply: {worker_id: str, task_id: str, state: str, backend: str, worker_pid: int, outcome: str, exit: {...},
       kill: {...}, progress: {...}, ...}

Error not_found: the supervisor knows no such worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aura.ipc import envelope as env
from aura.ipc.envelope import IpcError
from aura.runtime.ops import Arg, operation

if TYPE_CHECKING:
    from ..main import SupervisorDaemon


@operation("get", "supervisor", Arg("worker_id", str))
def get(sup: SupervisorDaemon, args: dict) -> dict:
    rec = sup.workers.find(args["worker_id"])
    if rec is None:
        raise IpcError(env.NOT_FOUND, f"no worker {args['worker_id']!r}")
    return sup.public(rec, ending=sup.ending())
