"""Every kind of event the daemons publish: who publishes it, what it means in one line, and what it
sets off (a brain cycle, a notification).

The one table the event stream of `aura up`, the brain's wake-up rule, the notification hooks and
docs/architecture.md read. A kind missing here is still journaled and delivered, but never shown,
never wakes the brain and never notifies: add it here when a daemon starts publishing it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from .vocab import DISK_OUTCOMES

Text = Callable[[dict], str]

# kinds by name, for their publishers (the table below says what each one means)
WORKER_RESOURCE_KILLED = "worker_resource_killed"
RESOURCE_VIOLATION = "resource_violation"
LIMITS_CHANGED = "limits_changed"
DISK_LOW = "disk_low"
DISK_OK = "disk_ok"


@dataclass(frozen=True)
class EventKind:
    name: str
    source: str  # the daemon that publishes it ("any": every daemon)
    text: Text  # one readable line from the event's data
    shown: bool = True  # printed by a foreground `aura up`
    wakes_brain: bool = False  # the brain runs a cycle soon after it
    notify: bool = False  # sent to the notification hooks at AURA_NOTIFY_LEVEL=state_changes
    urgent: bool = False  # sent at AURA_NOTIFY_LEVEL=done_only too: the run ended or cannot go on


def _exited(d: dict) -> str:
    detail = d.get("error") or (f"signal {d['signal']}" if d.get("signal") else f"exit {d.get('exit_code')}")
    return f"worker {d['worker_id']} ended: {d.get('outcome')} ({detail})"


def _resource_killed(d: dict) -> str:
    what = "stopped" if d.get("reason_code") in DISK_OUTCOMES else "killed for resources"
    return f"worker {d['worker_id']} {what}: {d.get('reason')}"


def _said(prefix: str) -> Text:
    """Events whose data carries its own `message` (budget events): that, else the data."""
    return lambda d: str(d.get("message") or f"{prefix}: {json.dumps(d, default=str)[:300]}")


def _question(d: dict) -> str:
    """The whole question, so the notification itself says what to answer and how."""
    about = f" about task {d['task_id']}" if d.get("task_id") else ""
    options = f" [{' / '.join(map(str, d['options']))}]" if d.get("options") else ""
    how = "aura approve|deny" if d.get("question_kind") == "approval" else "aura answer"
    return f"question {d.get('question_id')}{about}: {d.get('text')}{options} ({how} {d.get('question_id')})"


def _worker(what: str) -> Text:
    return lambda d: f"worker {d['worker_id']} {what}"


KINDS: tuple[EventKind, ...] = (
    # every daemon
    EventKind("daemon_started", "any", lambda d: f"{d['daemon']} started (pid {d.get('pid')})", shown=False),
    EventKind("daemon_stopped", "any", lambda d: f"{d['daemon']} stopped: {d.get('reason')}", shown=False),
    EventKind(
        "daemon_restarted",
        "any",
        lambda d: f"{d['daemon']} restarted by {d.get('by')} (pid {d.get('pid')})",
        wakes_brain=True,
    ),
    EventKind(
        "daemon_down",
        "any",
        lambda d: f"{d['daemon']} is down and will not be restarted: {d.get('reason')}",
        notify=True,
    ),
    # supervisor
    EventKind(
        "worker_started",
        "supervisor",
        lambda d: f"worker {d['worker_id']} started (pid {d.get('pid')}, {d.get('backend')})",
    ),
    EventKind(
        "worker_queued",
        "supervisor",
        lambda d: f"worker {d['worker_id']} queued as Slurm job {d.get('job_id')}",
    ),
    EventKind("worker_exited", "supervisor", _exited, wakes_brain=True),
    EventKind("worker_killed", "supervisor", lambda d: f"worker {d['worker_id']} stopping: {d.get('reason')}"),
    EventKind(
        "worker_adopted",
        "supervisor",
        lambda d: f"worker {d['worker_id']} re-adopted (pid {d.get('pid')})",
        wakes_brain=True,
    ),
    EventKind("worker_managed", "supervisor", _worker("ended; the jobs it registered run on"), shown=False),
    EventKind(
        "spawn_refused", "supervisor", lambda d: f"start of {d['worker_id']} refused: {d.get('reason')}", shown=False
    ),
    EventKind("worker_stuck", "supervisor", _worker("looks stuck"), shown=False, wakes_brain=True),
    EventKind("worker_unstuck", "supervisor", _worker("moves again"), shown=False),
    EventKind("worker_loop", "supervisor", _worker("repeats the same tool call"), shown=False, wakes_brain=True),
    EventKind("worker_loop_ended", "supervisor", _worker("stopped repeating itself"), shown=False),
    # watchdog
    EventKind(WORKER_RESOURCE_KILLED, "watchdog", _resource_killed, wakes_brain=True),
    EventKind(
        RESOURCE_VIOLATION,
        "watchdog",
        lambda d: f"worker {d['worker_id']} would be killed (dry run): {d.get('reason')}",
    ),
    EventKind(LIMITS_CHANGED, "watchdog", lambda d: f"limits changed: {d.get('changed')}", wakes_brain=True),
    EventKind(
        DISK_LOW,
        "any",
        lambda d: (
            f"disk low: {d.get('free_mb')} MB free in {d.get('path')} (reserve {d.get('reserve_mb')} "
            "MB); no new workers start until space is back"
        ),
        notify=True,
        urgent=True,
    ),
    EventKind(
        DISK_OK, "any", lambda d: f"disk space is back: {d.get('free_mb')} MB free in {d.get('path')}", notify=True
    ),
    # brain
    EventKind(
        "task_status", "brain", lambda d: f"task {d['task_id']}: {d.get('old')} -> {d.get('new')} ({d.get('reason')})"
    ),
    EventKind(
        "task_done",
        "brain",
        lambda d: f"task {d.get('task_id')} done: {d.get('title') or ''}".strip(),
        shown=False,
        notify=True,
    ),
    EventKind(
        "task_blocked",
        "brain",
        lambda d: f"task {d.get('task_id')} blocked: {d.get('reason') or ''}".strip(),
        shown=False,
        notify=True,
    ),
    EventKind("task_parked", "brain", lambda d: f"task {d['task_id']} parked until {d.get('resume_at')}", shown=False),
    EventKind("cycle_done", "brain", lambda d: f"cycle {d.get('cycle')} done", shown=False),
    EventKind(
        "run_finished",
        "brain",
        lambda d: (
            f"run finished: {d.get('completed', 0)} done, {d.get('blocked', 0)} blocked, {d.get('failed', 0)} failed"
        ),
    ),
    EventKind(
        "goal_done",
        "brain",
        lambda d: f"goal done: {d.get('mission') or ''}".strip(),
        shown=False,
        notify=True,
        urgent=True,
    ),
    EventKind("budget_warning", "brain", _said("budget warning"), notify=True),
    EventKind("budget_reached", "brain", _said("budget reached"), notify=True, urgent=True),
    EventKind("budget_resumed", "brain", _said("budget raised"), shown=False),
    EventKind(
        "safe_mode_entered",
        "brain",
        lambda d: f"safe mode: no new workers until it ends ({d.get('reason') or 'no reason given'})",
        shown=False,
        notify=True,
    ),
    EventKind(
        "safe_mode_left",
        "brain",
        lambda d: f"safe mode ended: {d.get('reason') or ''}".strip(),
        shown=False,
        notify=True,
    ),
    EventKind("no_progress", "brain", _said("no progress"), shown=False, notify=True),
    EventKind("question", "brain", _question, notify=True, urgent=True),
    EventKind("question_answered", "brain", lambda d: f"question {d.get('question_id')} answered: {d.get('answer')}"),
)
BY_NAME: dict[str, EventKind] = {k.name: k for k in KINDS}
WAKES_BRAIN = frozenset(k.name for k in KINDS if k.wakes_brain)
NOTIFIED = frozenset(k.name for k in KINDS if k.notify)
URGENT = frozenset(k.name for k in KINDS if k.urgent)


def text_of(kind: str, data: dict) -> str:
    """The event's line; the kind and its data for a kind the table does not know or data it cannot read."""
    known = BY_NAME.get(kind)
    if known is not None:
        try:
            return known.text(data)
        except (KeyError, TypeError, ValueError):
            pass
    return f"{kind} {json.dumps(data, default=str)[:300]}"


def stream_line(ev: dict) -> str | None:
    """An event as `aura up` prints it (time, publisher, text), or None for a kind it does not show."""
    kind = BY_NAME.get(str(ev.get("kind")))
    if kind is None or not kind.shown:
        return None
    when = time.strftime("%H:%M:%S", time.localtime(ev.get("ts", 0)))
    return f"{when} {ev.get('src', '?'):<10} {text_of(kind.name, ev.get('data') or {})}"


class Kind:
    """Every kind by name, for code that publishes or compares one: a misspelt kind is an
    AttributeError at once rather than an event nobody reads."""

    DAEMON_STARTED = "daemon_started"
    DAEMON_STOPPED = "daemon_stopped"
    DAEMON_RESTARTED = "daemon_restarted"
    DAEMON_DOWN = "daemon_down"
    WORKER_STARTED = "worker_started"
    WORKER_QUEUED = "worker_queued"
    WORKER_EXITED = "worker_exited"
    WORKER_KILLED = "worker_killed"
    WORKER_ADOPTED = "worker_adopted"
    WORKER_MANAGED = "worker_managed"
    SPAWN_REFUSED = "spawn_refused"
    WORKER_STUCK = "worker_stuck"
    WORKER_UNSTUCK = "worker_unstuck"
    WORKER_LOOP = "worker_loop"
    WORKER_LOOP_ENDED = "worker_loop_ended"
    WORKER_RESOURCE_KILLED = "worker_resource_killed"
    RESOURCE_VIOLATION = "resource_violation"
    LIMITS_CHANGED = "limits_changed"
    DISK_LOW = "disk_low"
    DISK_OK = "disk_ok"
    TASK_STATUS = "task_status"
    TASK_DONE = "task_done"
    TASK_BLOCKED = "task_blocked"
    TASK_PARKED = "task_parked"
    CYCLE_DONE = "cycle_done"
    RUN_FINISHED = "run_finished"
    GOAL_DONE = "goal_done"
    BUDGET_WARNING = "budget_warning"
    BUDGET_REACHED = "budget_reached"
    BUDGET_RESUMED = "budget_resumed"
    SAFE_MODE_ENTERED = "safe_mode_entered"
    SAFE_MODE_LEFT = "safe_mode_left"
    NO_PROGRESS = "no_progress"
    QUESTION = "question"
    QUESTION_ANSWERED = "question_answered"
