"""A person's direct changes to the task tree (`aura task ...`): the same tree update, decision log
and evidence rules as the model's tools, recorded `by: user`.

Each change is checked first; a request that cannot be done raises SteerError with one line and
changes nothing.
"""

from __future__ import annotations

import time
from typing import Any

from aura.runtime.eventkinds import Kind
from aura.runtime.vocab import BLOCKED, IN_PROGRESS, USER_MOVES

from .state import ROOT

USER_PREFIX = "U"  # ids of the tasks a person adds: U1, U2, ...
ACTIONS = ("add", "retry", "block", "unblock", "note")


class SteerError(ValueError):
    """A request that cannot be done; nothing was changed."""


def task_of(core: Any, task_id: str) -> dict:
    task = core.tasks.get(task_id.strip())
    if task is None:
        raise SteerError(f"there is no task {task_id!r} (`aura status` shows the tree)")
    if task["id"] == ROOT:
        raise SteerError("ROOT is the goal, not a task; name one of its tasks")
    return task


def add(core: Any, description: str, parent: str = "", accept: list[str] | None = None) -> dict:
    description = description.strip()
    if not description:
        raise SteerError("the task's description is empty")
    commands = [c.strip() for c in accept or []]
    if any(not c for c in commands):
        raise SteerError("an acceptance command is empty")
    parent_task = core.tasks[ROOT] if not parent.strip() else core.tasks.get(parent.strip())
    if parent_task is None:
        raise SteerError(f"there is no task {parent!r} to add under (`aura status` shows the tree)")
    if parent_task["status"] == IN_PROGRESS:
        raise SteerError(f"{parent_task['id']} is running: add the task under its parent, or once it ends")
    n = 1 + sum(1 for tid in core.tasks if tid.startswith(USER_PREFIX) and tid[len(USER_PREFIX) :].isdigit())
    while f"{USER_PREFIX}{n}" in core.tasks:
        n += 1
    task = core.add_task(
        f"{USER_PREFIX}{n}",
        description.splitlines()[0][:120],
        parent=parent_task["id"],
        by="user",
        kind="agent",
        description=description,
        accept_commands=commands,
        added_by="user",
    )
    reopen(core)
    return task


def move(core: Any, action: str, task_id: str, reason: str = "") -> dict:
    """retry, block or unblock: a status change a person may make, with their reason."""
    task = task_of(core, task_id)
    allowed, new = USER_MOVES[action]
    if task["status"] not in allowed:
        raise SteerError(
            f"{task['id']} is {task['status']}: `aura task {action}` applies to a task that is "
            + " or ".join(allowed)
            + ("; kill its worker first" if task["status"] == IN_PROGRESS else "")
        )
    if action == "block" and not reason.strip():
        raise SteerError("say why the task is blocked")
    why = reason.strip() or {"retry": "retried by the user", "unblock": "unblocked by the user"}[action]
    if action == "retry":
        task.update(attempts=0, resource_kills=0)
        for key in ("retry_at", "parked_until", "resource_retry_required"):
            task.pop(key, None)
    task.pop("waiting_for", None)
    core.set_status(task, new, why, f"`aura task {action}` by the user", by="user")
    if new == BLOCKED:
        core.publish(Kind.TASK_BLOCKED, task_id=task["id"], reason=why)
    else:
        reopen(core)
    return task


def note(core: Any, task_id: str, text: str) -> dict:
    task = task_of(core, task_id)
    if not text.strip():
        raise SteerError("the note is empty")
    task.setdefault("notes", []).append({"ts": time.time(), "text": text.strip(), "by": "user"})
    core.decisions.record(
        "note", task_id=task["id"], text=text.strip(), by="user", cycle=core.state.get("total_cycles")
    )
    return task


def reopen(core: Any) -> None:
    """Work the person added or reopened is work the model must look at before the goal closes."""
    if "llm" in core.state:
        core.state["llm"]["goal_closed"] = False
