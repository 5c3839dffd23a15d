"""The workers as `aura ps` shows them when the supervisor is down: read from the registry on disk.

Why: a worker that ended while the supervisor was down has an exit record from its shim but no
outcome or end time in its record (the supervisor writes those when it takes the exit in), so
`ps` would show its state as "-" and its age as still growing. Here the outcome comes from the
same rule the supervisor applies (the backend's, with a watchdog kill counted) and the end time
from the shim's exit record.
"""

from __future__ import annotations

from aura.runtime.paths import ProjectPaths
from aura.runtime.records import watchdog_kill


def workers_from_disk(paths: ProjectPaths) -> list[dict]:
    from aura.runtime.records import WorkerRecords

    reg = WorkerRecords(paths)
    out = []
    for rec in reg.records():
        view = reg.view(rec)
        if view.get("state") == "exited" and not view.get("outcome"):
            view = settled_view(paths, view, reg.start_report(rec["worker_id"]) or {})
        out.append(view)
    return out


def settled_view(paths: ProjectPaths, view: dict, start_report: dict) -> dict:
    """An exited worker's outcome, end and start times, from its exit record and its shim's start report."""
    from aura.supervisor.backends import BackendError, decide_outcome, get_backend

    exit_rec = view.get("exit") or {}
    kill = view.get("kill") or watchdog_kill(paths, view["worker_id"])
    try:
        outcome = get_backend(str(view.get("backend") or "shell")).outcome(exit_rec, kill, None)
    except BackendError:
        outcome = decide_outcome(exit_rec, kill, None)
    if outcome == "unknown":  # an agent's final line is read by the supervisor, not here
        outcome = f"exit {exit_rec.get('exit_code')}"
    started = view.get("started_at") or start_report.get("started_at") or exit_rec.get("started_at")
    return {**view, "outcome": outcome, "ended_at": exit_rec.get("ended_at"), "started_at": started}
