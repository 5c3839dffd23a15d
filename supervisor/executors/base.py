"""Where a worker runs: the one interface between the supervisor's bookkeeping and the processes.

The supervisor keeps the records, decides outcomes, enforces budgets and asks for kills; an
executor starts a worker, tells when it ended, signals it, and finds it again after a supervisor
restart. Today's executor runs each worker as a local process under its shim (`local`). A cluster
executor (Slurm: sbatch, squeue, scancel, with its shim on the node writing the same start report and
exit record into a shared data folder) goes beside it, implementing the same methods.

The records are the common ground: every executor's shim writes its start report (`launch.json`)
and `exit.json` in the worker's folder (aura.runtime.records), and `facts` says which of the start
report's facts the worker's record keeps (for a local process: its pid, start time and process group, which the
watchdog samples and signals).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

StartReport = Callable[[str, "dict | None"], None]  # (worker id, the shim's report, or None: none came)
Ended = Callable[[str], None]  # (worker id): what was watched has ended


@dataclass(frozen=True)
class StartOrder:
    """One worker to start: what to run, where, with which environment, and where its records go."""

    worker_id: str
    worker_dir: Path  # the shim writes its start report and exit record here
    task_dir: Path
    cwd: str
    argv: list[str]
    stdout: Path
    stderr: Path
    env: dict[str, str]
    executor: str = "local"  # which executor runs it (AURA_EXECUTOR, or the task's own choice)
    budget_s: float = 0.0  # a cluster executor asks its scheduler for this much time (plus grace)
    limits: dict = field(default_factory=dict)  # the worker's limit overrides: a scheduler's requests


class Executor(ABC):
    """Starts, watches, signals and re-finds workers. Each method takes the worker's record (a dict
    the supervisor owns; an executor reads it and never writes it) or its id."""

    name = ""
    start_timeout = 15.0  # seconds from a spawn until its shim must have reported the start
    on_this_machine = True  # its workers use this machine's memory and cores (the watchdog's preflight)

    def __init__(self, on_start_report: StartReport, on_end: Ended):
        self.on_start_report = on_start_report  # called once per `start`, with the shim's report or None
        self.on_end = on_end  # called once per `watch`, when the watched worker has ended

    def setup(self) -> None:  # noqa: B027
        """Called once before the first start or adoption."""

    @abstractmethod
    def start(self, order: StartOrder) -> None:
        """Start the worker; `on_start_report` follows with the shim's report, or None when none came
        in time. OSError: it could not be started at all."""

    @abstractmethod
    def facts(self, report: dict) -> dict:
        """What the worker's record keeps of a successful start report (ids to watch, sample and
        signal it by, and `started_at`)."""

    @abstractmethod
    def watch(self, rec: dict) -> None:
        """Call `on_end` once the worker has ended (an orphaned worker: the worker itself; else its
        shim, which writes the exit record first)."""

    @abstractmethod
    def collect(self, worker_id: str) -> dict | None:
        """Stop watching; the worker's exit as the executor alone knows it (for when the shim could
        not write the exit record), or None."""

    @abstractmethod
    def supervised(self, rec: dict) -> bool:
        """Does the worker still run under its shim? (adoption after a supervisor restart)"""

    @abstractmethod
    def orphan(self, rec: dict, start_report: dict) -> dict | None:
        """The facts to follow a worker that runs on without its shim by, or None: it ended too."""

    @abstractmethod
    def running(self, rec: dict) -> bool:
        """Does the worker's own process still run?"""

    @abstractmethod
    def terminate(self, rec: dict) -> bool:
        """Ask the worker and everything it started to stop (SIGTERM); False: nothing was there."""

    @abstractmethod
    def force_kill(self, rec: dict) -> bool:
        """Stop whatever of the worker is left, now (SIGKILL); False: nothing was there."""

    def ending(self, running: Collection[str]) -> set[str]:
        """Those of the `running` workers (all the supervisor holds as running) whose own process
        has ended while the end is not taken in: what `list` shows as exiting (none where the
        executor cannot see the process)."""
        return set()

    def any_running(self, recs: list[dict]) -> bool:
        """Does any of these workers still run? (one question for many, where the executor can batch it)"""
        return any(self.running(rec) for rec in recs)

    def select(self, name: str | None) -> Executor:
        """The executor a worker that asks for `name` runs under (a single executor: itself)."""
        return self

    def ready(self) -> str | None:
        """None when a worker can be started now; else why not (a scheduler that does not answer)."""
        return None

    def find(self, rec: dict) -> dict | None:
        """A start whose answer was lost (the supervisor died between asking and hearing): what the
        executor itself knows of it (a cluster job found by its name), or None."""
        return None

    def place(self, rec: dict, ceiling: float, in_use: list[int]) -> list[int] | None:
        """Keep the worker to the share of CPUs `ceiling` (percent) allows, away from the cores in
        `in_use`; the cores chosen, or None where the executor does not place workers."""
        return None

    def reap(self) -> None:  # noqa: B027
        """Periodic: release what is left of workers that ended."""

    def close(self) -> None:  # noqa: B027
        """The supervisor stops: report starts still pending (as None), stop watching."""
