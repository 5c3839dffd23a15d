"""answer: answer a question, or approve or deny an approval (`aura answer`, `approve`, `deny`); wakes the brain.

Request: {question_id: str = "" (the only open one), text: str = "", verdict: str = "" | "approve" | "deny"}
Reply: {question: {id, kind, text, task_id, status, answer, verdict, ...}, task: {id, status, reason} | null}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aura.ipc.envelope import BadArgs
from aura.runtime.ops import Arg, operation

from .. import questions as qmod

if TYPE_CHECKING:
    from ..main import BrainDaemon


@operation("answer", "brain", Arg("question_id", str, ""), Arg("text", str, ""), Arg("verdict", str, ""))
def answer(brain: BrainDaemon, args: dict) -> dict:
    core = brain.core
    assert core is not None
    if args["verdict"] not in ("", qmod.APPROVE, qmod.DENY):
        raise BadArgs(f"verdict must be approve or deny, not {args['verdict']!r}")
    try:
        q = qmod.answer(core, args["question_id"], args["text"], args["verdict"])
    except qmod.QuestionError as exc:
        core.decisions.record("answer_refused", question_id=args["question_id"], reason=str(exc), by="user")
        raise BadArgs(str(exc)) from None
    brain.log.info("answered", question=q["id"], verdict=q.get("verdict"))
    brain.request_cycle(f"wake: answer to {q['id']}", 0)
    task = core.tasks.get(q.get("task_id") or "")
    return {
        "question": qmod.shown(q),
        "task": {k: task.get(k) for k in ("id", "status", "reason")} if task else None,
    }
