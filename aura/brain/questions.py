"""Questions to the person running Aura, and the approvals AURA_APPROVE asks for.

Both live in the state dict (`state["questions"]`, id -> record), so they are saved with the tree
and survive a brain that dies. A question never holds a daemon: only the task it concerns waits
(`waiting_for_user`), and every other task goes on. An answer wakes the brain; the model reads it
in its next request, a worker in its next attempt's task.md (or its resumed session).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aura.runtime.approvals import SPEND_OVER, ApprovalError, parse
from aura.runtime.eventkinds import Kind
from aura.runtime.vocab import (
    ANSWERED,
    APPROVE,
    BLOCKED,
    DENY,
    IN_PROGRESS,
    OPEN,
    PENDING,
    TASK_KILLED,
    WAITING_FOR_USER,
)

from .costs import summary as cost_summary

QUESTION = "question"
APPROVAL = "approval"
WORKER_FILE = "question.md"  # what a worker writes in its task folder to ask (documented in its task.md)
MAX_TEXT = 4000
ANSWER_PROMPT = (
    "The person running Aura answered your question. Question: {question}\nAnswer: {answer}\n"
    "Continue the task described in {task_md} with this answer; finish it and write its result.md."
)


class QuestionError(ValueError):
    """A request about a question that cannot be done (no such id, already answered, empty answer)."""


def items(state: dict) -> dict[str, dict]:
    return state.setdefault("questions", {})


def open_questions(state: dict) -> list[dict]:
    return [q for q in (state.get("questions") or {}).values() if q.get("status") == OPEN]


def rules(cfg: Any) -> dict[str, float | None]:
    """AURA_APPROVE as action -> figure (checked at start; a value that slipped through holds nothing)."""
    try:
        return parse(cfg.text("AURA_APPROVE"))
    except ApprovalError:
        return {}


# -- asking ---------------------------------------------------------------------------------------------


def ask(
    core: Any,
    text: str,
    *,
    options: list[str] | None = None,
    task_id: str | None = None,
    blocking: bool = True,
    by: str = "model",
    kind: str = QUESTION,
    action: str | None = None,
    spec: dict | None = None,
) -> dict:
    """Record a question, hold its task (when it blocks), log, notify and save."""
    qs = items(core.state)
    qid = f"Q{len(qs) + 1}"
    q: dict[str, Any] = {
        "id": qid,
        "kind": kind,
        "text": text.strip()[:MAX_TEXT],
        "options": [str(o) for o in options or []],
        "task_id": task_id,
        "blocking": blocking,
        "asked_by": by,
        "asked_at": time.time(),
        "status": OPEN,
    }
    if action:
        q["action"] = action
    if spec is not None:
        q["spec"] = spec
    qs[qid] = q
    core.decisions.record(
        "question",
        question_id=qid,
        question_kind=kind,
        task_id=task_id,
        text=q["text"],
        options=q["options"],
        blocking=blocking,
        by=by,
        cycle=core.state.get("total_cycles"),
    )
    task = core.tasks.get(task_id) if task_id else None
    if task is not None and blocking:
        hold(core, task, q)
    core.publish(
        Kind.QUESTION, question_id=qid, task_id=task_id, text=q["text"], options=q["options"], question_kind=kind
    )
    core.save()
    return q


def hold(core: Any, task: dict, q: dict) -> None:
    """The task waits for this question's answer (its worker, if any, has ended)."""
    task["waiting_for"] = q["id"]
    what = "approval" if q["kind"] == APPROVAL else "the answer to"
    core.set_status(task, WAITING_FOR_USER, f"waits for {what} {q['id']}: {q['text'][:200]}", f"{q['kind']} {q['id']}")


def worker_question(core: Any, task: dict, worker: dict) -> dict | None:
    """A worker that wrote question.md and ended asked a question: it becomes one, the attempt is not
    counted as failed, and the task waits; its claude session is resumed with the answer."""
    task_dir: Path = core.paths.task_dir(task["id"])
    path = task_dir / WORKER_FILE
    try:
        raw = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    path.replace(task_dir / f"question-{worker.get('worker_id')}.md")  # asked once, kept for the record
    lines = [ln.rstrip() for ln in raw.strip().splitlines()]
    options = [ln[2:].strip() for ln in lines if ln.startswith(("- ", "* ")) and ln[2:].strip()]
    text = "\n".join(ln for ln in lines if not ln.startswith(("- ", "* "))).strip() or raw.strip()
    if not text:
        return None
    task["attempts"] = max(0, int(task.get("attempts", 1)) - 1)
    session = (worker.get("progress") or {}).get("session_id")
    if session:
        task["resume_session"] = session
    return ask(core, text, options=options, task_id=task["id"], by="worker")


def hold_spawn(core: Any, task: dict, spec: dict) -> bool:
    """AURA_APPROVE=spawn (every attempt) or spend-over:USD (once the run spent more): ask before the
    worker starts. True when the spawn is held."""
    wanted = rules(core.cfg)
    approved = task.setdefault("approved", [])
    if "spawn" in wanted and "spawn" not in approved:
        asked = next(
            (q for q in open_questions(core.state) if q.get("action") == "spawn" and q["task_id"] == task["id"]), None
        )
        if asked is not None:  # a task blocked and unblocked while its approval was open: the same one holds it
            asked["spec"] = spec
            hold(core, task, asked)
            return True
        what = spec.get("command") or f"{spec.get('backend')} agent on its task.md"
        text = (
            f"start attempt {int(task.get('spawns') or 0) + 1} of {task['id']} ({task.get('title', '')[:120]}): {what}"
        )
        ask(
            core,
            text,
            options=[APPROVE, DENY],
            task_id=task["id"],
            by="brain",
            kind=APPROVAL,
            action="spawn",
            spec=spec,
        )
        return True
    limit = wanted.get(SPEND_OVER)
    spent = float(cost_summary(core.state).get("total_usd") or 0.0)
    if limit is not None and spent > limit and not core.state.get("spend_over_approved") and SPEND_OVER not in approved:
        shared = next((q for q in open_questions(core.state) if q.get("action") == SPEND_OVER), None)
        if shared is None:
            text = f"the run has spent ${spent:.4f}, over AURA_APPROVE's spend-over:{limit:g}; start more workers?"
            ask(core, text, options=[APPROVE, DENY], task_id=task["id"], by="brain", kind=APPROVAL, action=SPEND_OVER)
        else:
            hold(core, task, shared)
        task["held_spec"] = spec
        return True
    return False


def use_approval(task: dict, action: str) -> None:
    """An approval is good for one attempt: the next one asks again."""
    approved = task.get("approved") or []
    if action in approved:
        approved.remove(action)


def needs_approval(core: Any, task: dict, action: str) -> bool:
    return action in rules(core.cfg) and action not in (task.get("approved") or [])


# -- answering ------------------------------------------------------------------------------------------


def find(state: dict, qid: str) -> dict:
    """The question `qid` (any case); the only open one when `qid` is empty."""
    qs = items(state)
    if not qid:
        waiting = open_questions(state)
        if len(waiting) != 1:
            named = ", ".join(q["id"] for q in waiting)
            raise QuestionError(
                "no question is open" if not waiting else f"{len(waiting)} questions are open ({named}): name one"
            )
        return waiting[0]
    q = qs.get(qid.strip().upper())
    if q is None:
        named = ", ".join(q["id"] for q in open_questions(state)) or "none"
        raise QuestionError(f"there is no question {qid!r} (open: {named})")
    return q


def answer(core: Any, qid: str, text: str, verdict: str = "", by: str = "user") -> dict:
    """Answer a question (verdict "": a plain answer; approve / deny: an approval), free its task,
    log and save. QuestionError, with nothing changed, on a request that cannot be done."""
    q = find(core.state, qid)
    text = text.strip()
    if q["status"] != OPEN:
        raise QuestionError(f"question {q['id']} was already answered ({q.get('answer')!r}); nothing changed")
    if q["kind"] == APPROVAL and verdict not in (APPROVE, DENY):
        raise QuestionError(f"{q['id']} asks for an approval: `aura approve {q['id']}` or `aura deny {q['id']} WHY`")
    if q["kind"] == QUESTION and verdict:
        raise QuestionError(f"{q['id']} is a question, not an approval: `aura answer {q['id']} TEXT`")
    if not text and verdict != APPROVE:
        raise QuestionError("the answer is empty: say it in words" if not verdict else "say why it is denied")
    q.update(status=ANSWERED, answer=text or "approved", answered_at=time.time(), answered_by=by, told_model=False)
    if verdict:
        q["verdict"] = verdict
    core.decisions.record(
        "answer",
        question_id=q["id"],
        task_id=q.get("task_id"),
        answer=q["answer"],
        verdict=verdict or None,
        by=by,
        cycle=core.state.get("total_cycles"),
    )
    core.publish(Kind.QUESTION_ANSWERED, question_id=q["id"], task_id=q.get("task_id"), answer=q["answer"])
    release(core, q)
    core.save()
    return q


def release(core: Any, q: dict) -> None:
    """What the answer lets happen: the task's next attempt, a held spawn, kill or merge, or its block."""
    action, approved = q.get("action"), q.get("verdict") == APPROVE
    waiting = [t for t in core.tasks.values() if t.get("waiting_for") == q["id"]]
    task = core.tasks.get(q.get("task_id") or "")
    if task is not None and q["kind"] == QUESTION:
        task.setdefault("answers", []).append({"question": q["text"], "answer": q["answer"], "id": q["id"]})
        if task.get("resume_session"):
            task["resume_prompt"] = ANSWER_PROMPT.format(
                question=q["text"], answer=q["answer"], task_md=core.paths.task_dir(task["id"]) / "task.md"
            )
    if action == SPEND_OVER and approved:
        core.state["spend_over_approved"] = True
    if action == "kill" and task is not None:
        release_kill(core, task, q, approved)
        return
    for t in waiting:
        t.pop("waiting_for", None)
        if q["kind"] == APPROVAL and not approved:
            why = f"denied by the user ({q['id']}): {q['answer']}"
            core.set_status(t, BLOCKED, why, f"approval {q['id']} denied", by="user")
            core.publish(Kind.TASK_BLOCKED, task_id=t["id"], reason=why)
            continue
        if action in ("spawn", "merge"):
            t.setdefault("approved", []).append(action)
        if action == "spawn" and q.get("spec"):
            t["held_spec"] = q["spec"]
        if action == "merge":  # settled again at the next reconcile, now allowed to merge
            core.set_status(t, IN_PROGRESS, f"merge approved ({q['id']})", f"approval {q['id']}", by="user")
            continue
        what = "approved" if q["kind"] == APPROVAL else "answered"
        core.set_status(t, PENDING, f"{what} ({q['id']}): {q['answer'][:200]}", f"{q['kind']} {q['id']}", by="user")


def release_kill(core: Any, task: dict, q: dict, approved: bool) -> None:
    if not approved or task["status"] != IN_PROGRESS:
        return
    result = core.kill(task, f"kill approved by the user ({q['id']})")
    if result.get("killed"):
        core.set_status(task, TASK_KILLED, f"kill approved ({q['id']})", f"approval {q['id']}", by="user")


def start_held(core: Any) -> None:
    """Spawns an approval released: started by the brain itself, whichever planner asked."""
    for task in list(core.tasks.values()):
        spec = task.get("held_spec")
        if spec is None or task["status"] != PENDING or task.get("waiting_for"):
            continue
        if core.capacity() <= 0 or not core.supervisor_ok:
            return
        task.pop("held_spec", None)
        core.spawn(task, spec)


# -- what the model and the worker read -------------------------------------------------------------------


def context_lines(state: dict) -> list[str]:
    """The model's snapshot: answers it has not read yet, and the questions still open."""
    fresh = [items(state)[qid] for qid in untold(state)]
    waiting = open_questions(state)
    out: list[str] = []
    if fresh:
        out += ["## Answers from the user", *[_answered_line(q) for q in fresh], ""]
    if waiting:
        out += ["## Questions waiting for the user (do not ask them again)", *[_open_line(q) for q in waiting], ""]
    return out


def untold(state: dict) -> list[str]:
    """The answers the model has not read yet (ids)."""
    return [
        qid
        for qid, q in (state.get("questions") or {}).items()
        if q.get("status") == ANSWERED and not q.get("told_model")
    ]


def mark_told(state: dict, ids: list[str]) -> None:
    """After a model cycle that read them (an answer that came in meanwhile waits for the next one)."""
    for qid in ids:
        items(state)[qid]["told_model"] = True


def has_news(state: dict) -> bool:
    return bool(untold(state))


def _answered_line(q: dict) -> str:
    about = f" (task {q['task_id']})" if q.get("task_id") else ""
    verdict = f" [{q['verdict']}]" if q.get("verdict") else ""
    return f"- {q['id']}{about}: {q['text'][:300]} -> {q.get('answer', '')[:600]}{verdict}"


def _open_line(q: dict) -> str:
    about = f" (task {q['task_id']})" if q.get("task_id") else ""
    options = f" [{' / '.join(q['options'])}]" if q.get("options") else ""
    return f"- {q['id']}{about}: {q['text'][:300]}{options}"


def task_md_lines(task: dict) -> list[str]:
    """The next attempt's task.md: what the user answered, and the notes they left on the task."""
    out: list[str] = []
    if task.get("answers"):
        out += ["## Answers from the person running Aura", ""]
        out += [f"- {a['id']}: {a['question'][:500]}\n  Answer: {a['answer']}" for a in task["answers"]] + [""]
    if task.get("notes"):
        out += ["## Notes from the person running Aura", ""]
        out += [f"- {n['text']}" for n in task["notes"]] + [""]
    return out


def shown(q: dict) -> dict:
    """A question as `aura questions` and `aura status` show it (no spawn spec)."""
    return {k: v for k, v in q.items() if k != "spec"}
