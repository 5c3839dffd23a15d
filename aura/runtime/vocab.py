"""The words the three daemons and the CLI share: worker states and outcomes, task statuses, backends.

One owner per vocabulary, as supervisord's `states.py`: code compares against these names and
groups, never against a string written out again, so a new state or outcome is added here once.
Event kinds have their own module (`eventkinds`), since each carries flags and a line of text.
"""

from __future__ import annotations

# -- a worker, as the supervisor's registry records it -------------------------------------------------
STARTING = "starting"  # the spawn is recorded; the shim has not reported the worker yet
QUEUED = "queued"  # a cluster job waits in its scheduler's queue (the shim has not started yet)
RUNNING = "running"
ORPHANED = "orphaned"  # the shim is gone but the worker runs on; followed by its own pid
EXITING = "exiting"  # shown, never recorded: the worker's process has ended, its shim still writes the exit record
EXITED = "exited"  # the exit record is in (or the worker was declared lost)
WORKER_STATES = (STARTING, QUEUED, RUNNING, ORPHANED, EXITED)  # the states a record holds
LIVE_STATES = (STARTING, QUEUED, RUNNING, ORPHANED, EXITING)

# -- where a worker runs (its record's `executor`) ------------------------------------------------------
LOCAL = "local"  # a process on this machine under its shim
SLURM = "slurm"  # a Slurm batch job: its processes are on a node this machine cannot see
EXECUTORS = (LOCAL, SLURM)
LOCAL_PLANNER = "local"  # the brain's offline planner (AURA_PLANNER), a word of another vocabulary

# -- how a worker ended: one rule for every backend (aura.supervisor.backends.base) --------------------
SUCCEEDED = "succeeded"
FAILED = "failed"
TIMED_OUT = "timed_out"
BUDGET_EXCEEDED = "budget_exceeded"
TURNS_EXCEEDED = "turns_exceeded"
API_ERROR = "api_error"
RATE_LIMITED = "rate_limited"
KILLED = "killed"
OUTPUT_LIMIT = "output_limit"  # stopped by the watchdog: its output files passed AURA_WORKER_MAX_OUTPUT_MB
DISK_LOW = "disk_low"  # stopped by the watchdog: it was filling the data folder's file system
LOST = "lost"  # its exit status could not be known
UNKNOWN = "unknown"
OUTCOMES = (
    SUCCEEDED,
    FAILED,
    TIMED_OUT,
    BUDGET_EXCEEDED,
    TURNS_EXCEEDED,
    API_ERROR,
    RATE_LIMITED,
    KILLED,
    OUTPUT_LIMIT,
    DISK_LOW,
    LOST,
    UNKNOWN,
)
DISK_OUTCOMES = (OUTPUT_LIMIT, DISK_LOW)  # the watchdog's stops that are about the disk, not a resource limit

# -- a task in the brain's tree ------------------------------------------------------------------------
PENDING = "pending"
IN_PROGRESS = "in_progress"
BLOCKED = "blocked"
COMPLETED = "completed"
TASK_FAILED = "failed"
ARCHIVED = "archived"
TASK_KILLED = "killed"
WAITING_FOR_USER = "waiting_for_user"  # held by an open question or approval; other tasks go on
TASK_STATUSES = (PENDING, IN_PROGRESS, WAITING_FOR_USER, BLOCKED, COMPLETED, TASK_FAILED, ARCHIVED, TASK_KILLED)
TASK_ENDED = (COMPLETED, ARCHIVED, BLOCKED, TASK_FAILED, TASK_KILLED)  # no worker will run for it again
TASK_DONE = (COMPLETED, ARCHIVED)
REASON_SHOWN = (BLOCKED, TASK_FAILED, TASK_KILLED, WAITING_FOR_USER)  # `aura status` prints why under these
# the moves a person's `aura task` request may make: action -> (statuses it applies to, status it sets)
USER_MOVES = {
    "retry": ((BLOCKED, TASK_FAILED, TASK_KILLED, ARCHIVED), PENDING),
    "block": ((PENDING, WAITING_FOR_USER), BLOCKED),
    "unblock": ((BLOCKED,), PENDING),
}

# -- a person's answers: what AURA_APPROVE may name, and the questions' states ---------------------------
APPROVABLE = ("spawn", "merge", "kill", "spend-over")  # spend-over takes a figure: spend-over:USD
OPEN = "open"
ANSWERED = "answered"
APPROVE = "approve"
DENY = "deny"

# -- Layer 2 backends -----------------------------------------------------------------------------------
SHELL = "shell"
CLAUDE = "claude"
OPENCODE = "opencode"
CODEX = "codex"
DS_CODE = "ds_code"
BACKENDS = (CLAUDE, DS_CODE, OPENCODE, CODEX, SHELL)
BACKEND_ALIASES = {"ds-code": DS_CODE, "dscode": DS_CODE}
AGENT_BACKENDS = (CLAUDE, DS_CODE, OPENCODE, CODEX)  # coding-agent CLIs (the rest run plain commands)


def canonical_backend(name: str) -> str:
    """A backend's own name for any accepted spelling (`ds-code` is `ds_code`)."""
    return BACKEND_ALIASES.get(name, name)
