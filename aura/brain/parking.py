"""Parking a task whose worker was stopped by a rate or usage limit, and resuming it later.

Why: a limit is not the task's failure and retrying at once only hits it again. The task goes
back to `pending` with a resume time (when the limit says it lifts, else AURA_RESUME_DELAY_SECONDS)
and, when it is due, the next attempt continues the same CLI session (`--resume`, opencode
`--session`, `codex exec resume`) instead of starting over. At most AURA_MAX_RESUMES times per
task; with AURA_AUTO_RESUME=0 the task is blocked with the reason instead, for a human to resume.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from aura.runtime.config import Config
from aura.runtime.vocab import CLAUDE, CODEX, OPENCODE

RESUMABLE = (CLAUDE, OPENCODE, CODEX)
MAX_PARK_S = 6 * 3600.0  # never believe a limit message that names a time further away than this
RESUME_PROMPT = (
    "Continue the task from where you stopped: you were interrupted by an API rate or usage "
    "limit. The task is described in {task_md}; finish it and write its result.md."
)


@dataclass
class ParkDecision:
    park: bool  # False: block the task instead
    reason: str
    resume_at: float | None = None
    session_id: str | None = None


def decide(task: dict, worker: dict, cfg: Config, now: float | None = None) -> ParkDecision:
    """Park (with a resume time and session) or block a task whose worker hit a limit."""
    now = time.time() if now is None else now
    progress = worker.get("progress") or {}
    what = (progress.get("error") or "rate or usage limit").strip()[:200]
    if not cfg.flag("AURA_AUTO_RESUME"):
        return ParkDecision(
            False,
            f"stopped by a rate or usage limit ({what}); auto-resume is off (AURA_AUTO_RESUME=0), so resume it by hand",
        )
    parks = int(task.get("parks", 0))
    if parks >= cfg.integer("AURA_MAX_RESUMES"):
        return ParkDecision(
            False,
            f"stopped by a rate or usage limit {parks + 1} times (AURA_MAX_RESUMES="
            f"{cfg.integer('AURA_MAX_RESUMES')}); last: {what}",
        )
    reset = progress.get("rate_limit_reset_at")
    if isinstance(reset, (int, float)) and reset > 0:
        resume_at = min(max(float(reset), now), now + MAX_PARK_S)
    else:
        resume_at = now + cfg.number("AURA_RESUME_DELAY_SECONDS")
    session = progress.get("session_id") if worker.get("backend") in RESUMABLE else None
    when = time.strftime("%H:%M:%S", time.localtime(resume_at))
    return ParkDecision(
        True,
        f"parked until {when} by a rate or usage limit ({what}); resume {parks + 1} of "
        f"{cfg.integer('AURA_MAX_RESUMES')}",
        resume_at,
        session,
    )


def park(task: dict, decision: ParkDecision) -> None:
    """Record the parking on the task; the limited attempt does not count as a failed one."""
    task["parks"] = int(task.get("parks", 0)) + 1
    task["parked_until"] = decision.resume_at
    task["resume_session"] = decision.session_id
    task["attempts"] = max(0, int(task.get("attempts", 1)) - 1)


def resume_spec(task: dict, spec: dict, task_dir: Path) -> dict:
    """The spawn spec of the attempt that continues a parked task's session (the spec unchanged when
    there is no session to continue); clears the parking."""
    task.pop("parked_until", None)
    session = task.pop("resume_session", None)
    if not session or spec.get("backend") not in RESUMABLE:
        task.pop("resume_prompt", None)
        return spec
    prompt = task.pop("resume_prompt", None) or RESUME_PROMPT.format(task_md=task_dir / "task.md")
    return {**spec, "resume_session": session, "prompt": prompt}
