"""The `local` planner: no model, no network, deterministic.

Each `- [ ]` checklist item of the task file becomes a task; an item with a command in
backticks runs it with the `shell` backend, any other item goes to the configured Layer 2
backend. A goal with no checklist becomes one task for that backend. It is the default
when no API key is configured, so `aura up` does real work on a fresh machine. A task for a
backend that cannot start here (its CLI is missing, or the backend is `shell`) is blocked with
the reason, never spawned to fail.
"""

from __future__ import annotations

from collections.abc import Iterator

from aura.runtime.eventkinds import Kind
from aura.runtime.vocab import ARCHIVED, BLOCKED, PENDING, TASK_DONE, TASK_FAILED
from aura.runtime.workercli import agent_task_problem

from .core import BrainCore
from .state import ROOT
from .taskfile import TaskFile
from .workerspec import spawn_spec

WHOLE_GOAL = "GOAL"
ACCEPT = "ACCEPT"


class LocalPlanner:
    name = "local"
    event_delay = 0.0  # a cycle calls no model: an event is taken in at once, those that come meanwhile by the next

    def __init__(self) -> None:
        self.synced: TaskFile | None = None  # the task file the tree was last brought in line with

    def cycle(self, core: BrainCore) -> dict:
        tf = core.task_file()
        if tf is not None:
            if tf is not self.synced:  # parsed again only when it changed: its items are in the tree
                self.sync(core, tf)
                self.synced = tf
            self.sync_acceptance(core, tf)
        core.reconcile()
        started = self.dispatch(core)
        return {"spawned": started}

    def sync(self, core: BrainCore, tf: TaskFile) -> None:
        """Bring the tree in line with the checklist: new items become tasks, removed pending ones are archived."""
        root = core.tasks[ROOT]
        root["title"] = tf.mission
        core.state["mission"] = tf.mission
        wanted = {item.id: item for item in tf.items}
        if not tf.items:
            wanted = {}
            if WHOLE_GOAL not in core.tasks:
                core.add_task(WHOLE_GOAL, tf.mission, kind="agent", description=tf.text)
        for item in tf.items:
            task = core.tasks.get(item.id)
            if task is None:
                task = core.add_task(
                    item.id,
                    item.text,
                    kind="command" if item.command else "agent",
                    command=item.command,
                    artifacts=list(item.artifacts),
                    line=item.line,
                    executor=item.executor,
                )
                if item.checked:
                    core.set_status(
                        task, ARCHIVED, "checked in the task file by the user", f"task file line {item.line}"
                    )
            task["line"] = item.line
            task["executor"] = item.executor
            core.touch(task["id"])
        for task in list(core.tasks.values()):
            ours = task.get("added_by") != "user"  # a task the user added (`aura task add`) is theirs to remove
            if (
                ours
                and task.get("parent") == ROOT
                and task["id"] not in (WHOLE_GOAL, ACCEPT)
                and task["id"] not in wanted
            ):
                if task["status"] == PENDING:
                    core.set_status(task, ARCHIVED, "removed from the task file", "task file no longer lists it")
        root["children"].sort(key=lambda tid: core.tasks[tid].get("line", 0))

    def sync_acceptance(self, core: BrainCore, tf: TaskFile) -> None:
        """The task file's `Accept:` lines (a command in backticks) become one last task, run after all the others."""
        if not tf.acceptance:
            return
        command = " && ".join(f"( {c} )" for c in tf.acceptance)
        task = core.tasks.get(ACCEPT)
        if task is None:
            task = core.add_task(
                ACCEPT,
                "Acceptance checks from the task file",
                kind="command",
                command=command,
                artifacts=[],
                line=10**9,
            )
        elif task["status"] == PENDING:
            task["command"] = command
        others = [t for t in core.tasks[ROOT]["children"] if t != ACCEPT]
        unfinished = [core.tasks[t] for t in others if core.tasks[t]["status"] in (BLOCKED, TASK_FAILED)]
        if unfinished and task["status"] == PENDING:
            core.set_status(
                task,
                BLOCKED,
                "not run: other tasks did not complete",
                ", ".join(f"{t['id']} {t['status']}" for t in unfinished),
            )

    def dispatch(self, core: BrainCore) -> int:
        """Start the ready tasks there is room for, their requests sent together (BrainCore.spawn_many)."""
        if not core.supervisor_ok:
            return 0
        return core.spawn_many(self.startable(core), core.capacity())

    def startable(self, core: BrainCore) -> Iterator[tuple[dict, dict]]:
        """The ready tasks with their spawn specs, as many as the caller takes; a task whose agent
        backend cannot start here is blocked on the way."""
        for task in self.ready(core):
            spec = spawn_spec(task, core.cfg, core.paths.root, core.paths.task_dir(task["id"]))
            if not task.get("command") and self.cannot_start(core, task, spec["backend"]):
                continue
            yield task, spec

    def cannot_start(self, core: BrainCore, task: dict, backend: str) -> bool:
        """An agent task (the goal, an item without a command, a resource fix) whose backend cannot
        start here is blocked with the reason and the setting to change, not spawned to fail."""
        problem = agent_task_problem(core.cfg, backend)
        if problem is None:
            return False
        core.set_status(task, BLOCKED, f"not started: {problem}", f"checked before the spawn: {backend} backend")
        core.publish(Kind.TASK_BLOCKED, task_id=task["id"], reason=problem)
        return True

    def ready(self, core: BrainCore) -> Iterator[dict]:
        """The pending tasks in the task file's order, as many as the caller takes."""
        tasks = core.tasks
        top = tasks[ROOT]["children"]
        for tid in top:
            task = tasks[tid]
            if tid == ACCEPT and not all(tasks[t]["status"] in TASK_DONE for t in top if t != ACCEPT):
                continue
            if task["status"] == PENDING and not task.get("children"):
                yield task
            for sub in task.get("children", []):  # subtasks, resource fixes included (Layer 2 backend)
                st = tasks.get(sub)
                if st and st["status"] == PENDING:
                    yield st
