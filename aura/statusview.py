"""What `aura status`, `aura ps` and `aura top` show of the brain: its status read from disk while it is
down, and the open questions as lines with the command that answers each. One module, so the CLI
and the live view say the same thing."""

from __future__ import annotations

from .runtime.paths import ProjectPaths


def brain_from_disk(paths: ProjectPaths) -> dict:
    """What `aura status` shows of the brain while it is down, read from its state.json."""
    from .brain import costs as costmod
    from .brain.gitwork import status_of
    from .brain.state import STATUS_LLM_FIELDS, counts, read_state, tree_lines, tree_rows
    from .runtime.vocab import OPEN

    state = read_state(paths.state_dir)
    if state is None:
        return {"from_disk": True}
    llm = {k: v for k, v in (state.get("llm") or {}).items() if k in STATUS_LLM_FIELDS}
    return {
        "mission": state.get("mission"),
        "run": state.get("run"),
        "cycles": state.get("total_cycles"),
        "counts": counts(state),
        "tree": tree_lines(state),
        "tree_rows": tree_rows(state),
        "from_disk": True,
        "costs": costmod.summary(state),
        "budget": state.get("budget"),
        "safe_mode": state.get("safe_mode"),
        "llm": llm or None,
        "git": status_of(state.get("git") or {}),
        "questions": [q for q in (state.get("questions") or {}).values() if q.get("status") == OPEN],
    }


def open_question_lines(listed: list[dict] | None) -> list[str]:
    """The questions the run waits on, each with the command that answers it (`aura status`, `aura ps`)."""
    out = []
    for q in listed or []:
        about = f" (task {q['task_id']})" if q.get("task_id") else ""
        options = f" [{' / '.join(q['options'])}]" if q.get("options") else ""
        how = (
            f"aura approve {q['id']} | aura deny {q['id']} WHY"
            if q.get("kind") == "approval"
            else f"aura answer {q['id']} TEXT"
        )
        out.append(f"Question {q['id']}{about}: {' '.join(str(q.get('text')).split())[:200]}{options} -> {how}")
    return out
