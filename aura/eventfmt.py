"""Events as one readable line each, for `aura up` (foreground) and `aura events`."""

from __future__ import annotations

import time


def _when(ev: dict) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ev.get("ts", 0)))


def format_event(ev: dict) -> str | None:
    d = ev.get("data") or {}
    kind = ev.get("kind")
    text = _TEXT.get(kind)
    if text is None:
        return None
    try:
        body = text(d)
    except (KeyError, TypeError, ValueError):
        body = f"{kind} {d}"
    return f"{_when(ev)} {ev.get('src', '?'):<10} {body}"


def _exited(d: dict) -> str:
    detail = d.get("error") or (f"signal {d['signal']}" if d.get("signal") else f"exit {d.get('exit_code')}")
    return f"worker {d['worker_id']} ended: {d.get('outcome')} ({detail})"


_TEXT = {
    "worker_started": lambda d: f"worker {d['worker_id']} started (pid {d.get('pid')}, {d.get('backend')})",
    "worker_exited": _exited,
    "worker_killed": lambda d: f"worker {d['worker_id']} stopping: {d.get('reason')}",
    "worker_adopted": lambda d: f"worker {d['worker_id']} re-adopted (pid {d.get('pid')})",
    "worker_resource_killed": lambda d: (f"worker {d['worker_id']} "
                                         + ("stopped" if d.get("reason_code") in ("output_limit", "disk_low")
                                            else "killed for resources") + f": {d.get('reason')}"),
    "resource_violation": lambda d: f"worker {d['worker_id']} would be killed (dry run): {d.get('reason')}",
    "task_status": lambda d: f"task {d['task_id']}: {d.get('old')} -> {d.get('new')} ({d.get('reason')})",
    "run_finished": lambda d: (f"run finished: {d.get('completed', 0)} done, {d.get('blocked', 0)} blocked, "
                               f"{d.get('failed', 0)} failed"),
    "daemon_restarted": lambda d: f"{d['daemon']} restarted by {d.get('by')} (pid {d.get('pid')})",
    "daemon_down": lambda d: f"{d['daemon']} is down and will not be restarted: {d.get('reason')}",
    "limits_changed": lambda d: f"limits changed: {d.get('changed')}",
    "budget_warning": lambda d: f"budget warning: {d}",
    "budget_reached": lambda d: f"budget reached: {d}",
    "disk_low": lambda d: (f"disk low: {d.get('free_mb')} MB free in {d.get('path')} (reserve {d.get('reserve_mb')} MB); "
                           "no new workers start until space is back"),
    "disk_ok": lambda d: f"disk space is back: {d.get('free_mb')} MB free in {d.get('path')}",
}
