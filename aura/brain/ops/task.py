"""task: change the task tree as the user (`aura task add|retry|block|unblock|note`), by the model's rules.

Request: {action: "add" | "retry" | "block" | "unblock" | "note", task_id: str = "", text: str = "",
    parent: str = "", accept: [str] = []}
Reply: {task: {id, status, title, parent, reason}}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aura.ipc.envelope import BadArgs
from aura.runtime.ops import Arg, operation

from .. import steering

if TYPE_CHECKING:
    from ..main import BrainDaemon


@operation(
    "task",
    "brain",
    Arg("action", str),
    Arg("task_id", str, ""),
    Arg("text", str, ""),
    Arg("parent", str, ""),
    Arg("accept", list, []),
)
def task(brain: BrainDaemon, args: dict) -> dict:
    core = brain.core
    assert core is not None
    action, tid, text = args["action"], args["task_id"], args["text"]
    try:
        if action == "add":
            changed = steering.add(core, text, args["parent"], [str(c) for c in args["accept"]])
        elif action == "note":
            changed = steering.note(core, tid, text)
        elif action in ("retry", "block", "unblock"):
            changed = steering.move(core, action, tid, text)
        else:
            raise steering.SteerError(f"unknown action {action!r}; one of {', '.join(steering.ACTIONS)}")
    except steering.SteerError as exc:
        core.decisions.record("steer_refused", action=action, task_id=tid or None, reason=str(exc), by="user")
        raise BadArgs(str(exc)) from None
    core.touch(changed["id"])
    core.decisions.record(
        "steer", action=action, task_id=changed["id"], message=f"user: {action} {changed['id']}", text=text, by="user"
    )
    core.save()
    brain.log.info("steered", action=action, task=changed["id"])
    brain.request_cycle(f"wake: aura task {action} {changed['id']}", 0)
    fields = ("id", "status", "title", "parent", "reason")
    return {"task": {k: changed.get(k) for k in fields}}
