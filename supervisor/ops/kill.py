"""kill: stop one worker: SIGTERM to its process group and its shim, SIGKILL after the grace period.

Request: {worker_id: str, reason: str = "killed on request", reason_code: str = "killed",
          grace_s: float = AURA_KILL_GRACE_SECONDS, by: str = "brain"}
Reply: {killed: true, worker_id: str, signal: "SIGTERM", grace_s: float}
       or {killed: false, worker_id: str, message: str, state: str}

Error not_found: the supervisor knows no such worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aura.ipc import envelope as env
from aura.ipc.envelope import IpcError
from aura.runtime.ops import Arg, operation
from aura.runtime.vocab import KILLED, LIVE_STATES

if TYPE_CHECKING:
    from ..main import SupervisorDaemon


@operation(
    "kill",
    "supervisor",
    Arg("worker_id", str),
    Arg("reason", str, "killed on request"),
    Arg("grace_s", float, None),
    Arg("reason_code", str, KILLED),
    Arg("by", str, "brain"),
)
def kill(sup: SupervisorDaemon, args: dict) -> dict:
    wid = args["worker_id"]
    rec = sup.workers.find(wid)
    if rec is None:
        raise IpcError(env.NOT_FOUND, f"no worker {wid!r}")
    if rec.get("state") not in LIVE_STATES:
        return {"killed": False, "worker_id": wid, "state": rec.get("state"), "message": "worker is not running"}
    grace = sup.kills.grace if args["grace_s"] is None else args["grace_s"]
    return sup.kills.request(wid, args["reason"], args["reason_code"], grace, args["by"])
