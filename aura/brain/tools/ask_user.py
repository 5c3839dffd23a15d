"""ask_user: put a question to the person running Aura; the task it concerns waits, the rest goes on."""

from __future__ import annotations

from aura.runtime.vocab import IN_PROGRESS, TASK_DONE

from .. import questions
from ..state import ROOT
from .base import Tool, ToolContext, ToolError, ToolResult, string


def ask_user(box: ToolContext, a: dict) -> ToolResult:
    text = a["question"].strip()
    task_id = a.get("task_id") or None
    blocking = bool(a.get("blocks_task", True)) and task_id is not None
    if task_id is not None:
        task = box.task(task_id)
        if task["id"] == ROOT:
            task_id, blocking = None, False
        elif blocking and task["status"] == IN_PROGRESS:
            raise ToolError(f"{task_id} is running: ask with blocks_task false, or kill_task it first")
        elif blocking and task["status"] in TASK_DONE:
            raise ToolError(f"{task_id} is {task['status']}: nothing of it waits; ask with blocks_task false")
    same = next((q for q in questions.open_questions(box.core.state) if q["text"] == text), None)
    if same is not None:
        return ToolResult(f"{same['id']} already asks this and is still open; the answer comes in a later cycle")
    q = questions.ask(box.core, text, options=a.get("options") or [], task_id=task_id, blocking=blocking, by="model")
    held = f"; {task_id} waits for it, other tasks go on" if blocking else ""
    return ToolResult(f"asked {q['id']}{held}. The answer reaches you in a later cycle (`## Answers from the user`).")


TOOL = Tool(
    name="ask_user",
    description="Ask the person running Aura a question only they can answer (which data set, may I delete "
    "this, which of two designs). The task it concerns waits as waiting_for_user unless blocks_task is "
    "false; other tasks go on. The answer arrives in a later cycle. Decide yourself whatever you can.",
    properties={
        "question": string("the question, with the context needed to answer it", minLength=1),
        "options": {"type": "array", "items": {"type": "string"}, "description": "the choices, if any"},
        "task_id": string("the task it concerns (omit for the whole run)", minLength=1),
        "blocks_task": {
            "type": "boolean",
            "description": "true (default): the task waits for the answer; false: work on it can go on meanwhile",
        },
    },
    required=["question"],
    run=ask_user,
)
