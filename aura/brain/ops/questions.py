"""questions: the questions and approvals put to the user (`aura questions`), open ones first.

Request: {all: bool = false}
Reply: {questions: [{id, kind, text, options, task_id, blocking, asked_by, asked_at, status, answer, ...}]}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aura.runtime.ops import Arg, operation

from .. import questions as qmod

if TYPE_CHECKING:
    from ..main import BrainDaemon


@operation("questions", "brain", Arg("all", bool, False))
def questions(brain: BrainDaemon, args: dict) -> dict:
    assert brain.core is not None
    every = list(qmod.items(brain.core.state).values())
    chosen = every if args["all"] else qmod.open_questions(brain.core.state)
    return {"questions": [qmod.shown(q) for q in sorted(chosen, key=lambda q: q["status"] != qmod.OPEN)]}
