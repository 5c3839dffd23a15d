"""list: the workers' records (`aura ps`, the brain's reconcile), without their environment and
with their live progress; ended workers no longer held in memory are read from their folders. A
running worker whose process has ended shows state `exiting` until its shim's exit record is in.

Request: {include_exited: bool = true, worker_ids: [str] = all, from_disk: bool = true, fields: [str] = all}
(`from_disk: false`: only the records held in memory, the live workers and the latest ended ones, so
a view refreshed every second costs nothing that grows with the run; `fields`: only these keys of
each record, and `worker_id` always, as `ps -o` does, so a poll for states and pids does not pay
for whole records; a key a record does not have yet, such as `exit`, is left out of it)
Reply: [{worker_id: str, task_id: str, state: str, backend: str, worker_pid: int, outcome: str, ...}, ...]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from aura.runtime.ops import Arg, operation
from aura.runtime.vocab import LIVE_STATES

if TYPE_CHECKING:
    from ..main import SupervisorDaemon


@operation(
    "list",
    "supervisor",
    Arg("include_exited", bool, True),
    Arg("worker_ids", list, None),
    Arg("from_disk", bool, True),
    Arg("fields", list, None),
)
def list_workers(sup: SupervisorDaemon, args: dict) -> list[dict]:
    ids, include_exited = args["worker_ids"], args["include_exited"]
    if ids is not None:  # the brain asks for its running tasks' workers: as many reads as ids
        # a live worker's record is always held in memory: only ended ones are read from disk
        lookup = sup.workers.find if include_exited and args["from_disk"] else sup.workers.get
        found: Iterable[dict | None] = (lookup(wid) for wid in dict.fromkeys(ids))
    else:
        older = list(sup.workers.on_disk_only()) if include_exited and args["from_disk"] else []
        found = older + list(sup.workers.values())
    shown = (r for r in found if r is not None and (include_exited or r.get("state") in LIVE_STATES))
    fields = args["fields"]
    keys = None if fields is None else ["worker_id", *(str(f) for f in fields if f != "worker_id")]
    ending = sup.ending()  # one question for every worker listed
    return [sup.public(r, keys, ending) for r in shown]
