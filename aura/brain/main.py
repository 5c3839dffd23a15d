"""The brain daemon: runs a planning cycle every AURA_CYCLE_INTERVAL seconds, or at once on
`aura wake`, on a worker event, or when the task file changes.

It never owns a worker: a crashed brain loses nothing, and when it comes back it catches up
on the events it missed from the journals and reconciles with the supervisor.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

from aura.ipc.events import EventFeed
from aura.runtime.config import ConfigError
from aura.runtime.eventkinds import NOTIFIED, WAKES_BRAIN, Kind
from aura.runtime.fsutil import disk_full, read_json
from aura.runtime.loop import Daemon
from aura.runtime.vocab import TASK_ENDED

from . import costs as costmod
from . import progress, stall
from .changelog import TaskFileChangelog
from .core import BrainCore
from .diskpause import CHECK_EVERY, DiskPause
from .local_planner import LocalPlanner
from .notify import Notifier
from .pricing import start_notice
from .reportchild import ReportChild
from .state import ROOT, counts
from .summaries import write_final_report, write_task_summary
from .taskfile import TaskFileError, read_task_file

RETRY_DELAY = 2.0
RETRY_MARGIN = 0.05  # run the retry cycle just after the task's retry time, never just before it
SNAPSHOT_EVERY = 1.0  # while busy, the tree is swept and progress.md rendered this often
SNAPSHOT_IDLE = 0.1  # ... and this soon after the brain went quiet
SNAPSHOT_SHARE = 0.05  # at most this share of the brain's time goes to persist (sweep, snapshot, progress.md)


GIT_RETRY_S = 2.0  # a merge git could not run now is tried again this soon
STALL_CHECK_S = 1.0  # the run is checked for a stall (aura/brain/stall.py) at most this often


def persist_due(since: float, took: float, quiet: bool) -> bool:
    """Whether to persist now, `since` seconds after the last persist, which took `took`: never
    sooner than keeps it to SNAPSHOT_SHARE of the brain's time (a big tree's progress.md and
    snapshot are spread out, not run each second), then once the brain is quiet or each second."""
    if since < took / SNAPSHOT_SHARE:
        return False
    return quiet or since >= SNAPSHOT_EVERY


class BrainDaemon(Daemon):
    name = "brain"
    ops_package = "aura.brain.ops"  # wake, status, budget
    task_file: Path | None = None

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.core: BrainCore | None = None
        self.planner: Any = None
        self.feed: EventFeed | None = None
        self.cycle_due = 0.0
        self.last_cycle_at: float | None = None
        self.interval = self.cfg.number("AURA_CYCLE_INTERVAL")
        self._task_sig: tuple | None = None
        self.wake_reasons: list[str] = []
        self.cycle_reasons: list[str] = []  # why the cycle in progress runs (the llm planner reads it)
        self.changelog = TaskFileChangelog(self.paths.state_dir)
        self.costbook = costmod.CostBook(self.paths.state_dir, self.cfg)
        self.notifier = Notifier(self.cfg, self.log, self.paths.root, self.paths.state_dir / "notifications.jsonl")
        self.disk = DiskPause(self.paths, self.cfg, self.log)
        self.active_at = self.snapshot_at = time.monotonic()  # the last cycle's end; the last snapshot
        self.snapshot_took = 0.0
        self.stall_checked_at = -STALL_CHECK_S  # monotonic: the first cycle checks
        self.rendered = -1  # the store's change count progress.md shows
        self.report = ReportChild(self.paths, self.log)

    # -- events this brain publishes: notifications and summaries ---------------------------------------
    def publish(self, kind: str, **data: Any) -> dict | None:
        ev = super().publish(kind, **data)
        try:
            self._after_event(kind, data)
        except Exception as exc:  # a summary or a hook must never break the cycle that published
            self.log.error("after_event_failed", event=kind, error=repr(exc))
        return ev

    def _after_event(self, kind: str, data: dict) -> None:
        if kind in NOTIFIED:
            self.notifier.notify(kind, data)
        core = self.core
        if core is None or not self.cfg.flag("AURA_TASK_SUMMARY"):
            return
        if kind == Kind.TASK_STATUS and data.get("new") in TASK_ENDED and data.get("task_id") != ROOT:
            task = core.tasks.get(data["task_id"])
            if task is not None:
                write_task_summary(self.paths, core.state, task, core.workers)
        elif kind == Kind.RUN_FINISHED:
            write_final_report(self.paths, core.state)
            self.report.request()

    def refresh_budget(self) -> None:
        """Recompute the spend against the budget; publish its events; stop or allow new spawns."""
        core = self.core
        assert core is not None
        for kind, data in costmod.update_budget(core.state, self.cfg):
            core.decisions.record(kind, cycle=core.state.get("total_cycles"), by="brain", **data)
            self.log.warning(kind, **data)
            self.publish(kind, **data)
        core.spawn_block = "the run budget is spent" if costmod.budget_reached(core.state) else None

    # -- start-up ---------------------------------------------------------------------------------
    def setup(self) -> None:
        self.core = BrainCore(self.paths, self.cfg, self.log, self.publish, self.ctx)
        self.core.wait = self.pump
        if self.core.load_problem:
            self.log.error("state_restored", problem=self.core.load_problem)
        self._resolve_task_file()
        self.core.start_git()
        self.planner = self._choose_planner()
        if self.core.load_problem and self.core.state.get("safe_mode") and self.planner.name == "llm":
            self.publish(Kind.SAFE_MODE_ENTERED, reason=str(self.core.load_problem))
        try:
            line, _ = start_notice(self.cfg)
        except ConfigError as exc:
            line = str(exc)
        if line:
            self.log.warning("price_unknown", detail=line)
        self.feed = EventFeed(
            self.ctx,
            {n: (self.paths.pub_endpoint(n), self.paths.journal(n)) for n in ("supervisor", "watchdog")},
            cursors=self.core.state.get("event_cursors"),
        )
        self.add_reader(self.feed.sock, self.on_events)
        missed = self.feed.catch_up()
        if missed:
            self.log.info("events_caught_up", count=len(missed))
        self.check_disk()
        self.request_cycle("start", 0)
        self.call_every(1.0, self.watch_task_file)
        self.call_every(CHECK_EVERY, self.check_disk)
        self.call_every(SNAPSHOT_IDLE, self.maybe_persist)
        self.call_every(1.0, self.report.poll)

    def _resolve_task_file(self) -> None:
        assert self.core is not None
        state = self.core.state
        launch = read_json(self.paths.launch_file) or {}
        from_env = os.environ.get("AURA_TASK_FILE")  # set by the systemd / launchd units
        path = (
            self.task_file
            or (Path(from_env) if from_env else None)
            or (Path(launch["task"]) if launch.get("task") else None)
            or (Path(state["task_file"]) if state.get("task_file") else None)
        )
        if path is None:
            self.log.error("no_task_file", hint="start with `aura up TASK`")
            return
        state["task_file"] = str(Path(path).resolve())
        try:
            tf = read_task_file(Path(state["task_file"]))
            state["mission"] = tf.mission
        except TaskFileError as exc:
            self.log.error("task_file_unusable", error=str(exc))

    def _choose_planner(self) -> Any:
        choice = self.cfg.text("AURA_PLANNER").lower()
        has_key = bool(self.cfg.text("AURA_API_KEY"))
        if choice == "llm" or (choice == "auto" and has_key):
            try:
                from .llm_planner import LlmPlanner
            except ImportError as exc:
                self.log.error("llm_planner_unavailable", error=repr(exc))
            else:
                self.log.info("planner", name="llm", model=self.cfg.text("AURA_API_MODEL"))
                return LlmPlanner(self)
        if choice == "auto" and not has_key:
            self.log.info(
                "planner", name="local", why="no API key configured (AURA_API_KEY): using the offline local planner"
            )
        else:
            self.log.info("planner", name="local")
        return LocalPlanner()

    # -- triggers ---------------------------------------------------------------------------------
    def request_cycle(self, reason: str, delay: float = 0.0) -> None:
        due = time.monotonic() + delay
        if self.cycle_due and self.cycle_due <= due:
            return
        self.cycle_due = due
        if reason != "interval":
            self.wake_reasons.append(reason)
        self.call_later(delay, self._maybe_cycle)

    def _maybe_cycle(self) -> None:
        if self.cycle_due and time.monotonic() >= self.cycle_due:
            try:
                self.run_cycle()
            finally:  # a cycle cut short (a full disk) must not be the last one
                if not self.cycle_due and not self.stopping:
                    self.request_cycle("interval", self.interval)

    def check_disk(self) -> None:
        """Pause new spawns while the data folder's disk is short; resume (and cycle) once it is back."""
        core = self.core
        assert core is not None
        if core.save_error is not None:
            core.save()
        change = self.disk.check(core.save_error)
        core.disk_block = self.disk.paused
        if change is not None:
            self.disk.announce(change, core.decisions, self.notifier, core.state.get("total_cycles", 0))
            if change == Kind.DISK_OK:
                self.request_cycle("disk space is back", 0)

    def maybe_persist(self) -> None:
        """Sweep the tree for changes no save was told of and render progress.md (see `persist`)."""
        now = time.monotonic()
        if persist_due(now - self.snapshot_at, self.snapshot_took, now - self.active_at >= SNAPSHOT_IDLE):
            self.persist(lazily=True)

    def persist(self, lazily: bool = False) -> None:
        """Fold the journal into a new state.json (`lazily`: a sweep, and a fold only once it is
        due; see StateStore.flush) and render progress.md, when the tree changed: off the cycle, so
        a cycle's cost follows its changes, not the tree's size. A lazy one with no change since
        the last does nothing, though the journal is not yet folded: a quiet brain does no work on
        an unchanged tree."""
        core = self.core
        if core is None:
            return
        if not (core.save_error or core.store.changes != self.rendered or (core.store.pending and not lazily)):
            return
        started = time.monotonic()
        core.snapshot(lazily)
        if core.save_error is None:
            progress.write(self.paths.state_dir / "progress.md", core.state, core.decisions.recent(30))
            self.rendered = core.store.changes
            if self.disk.save_error:
                self.check_disk()  # saved again: spawns resume now, not at the next check
        self.snapshot_at = time.monotonic()
        self.snapshot_took = self.snapshot_at - started

    def on_events(self) -> None:
        assert self.feed is not None
        events = self.feed.drain()
        for e in events:
            if e.get("kind") == Kind.DAEMON_DOWN:  # a peer gave up restarting another daemon
                self.notifier.notify(Kind.DAEMON_DOWN, e.get("data") or {})
        wake = [e for e in events if e.get("kind") in WAKES_BRAIN and self._concerns_run(e)]
        if wake:
            self.request_cycle(f"event {wake[-1]['kind']}", self.planner.event_delay)

    def _concerns_run(self, event: dict) -> bool:
        """An event about a worker of a task this run does not have (another client's spawn through
        the supervisor) changes nothing in the tree: no cycle for it."""
        task_id = (event.get("data") or {}).get("task_id")
        return task_id is None or self.core is None or task_id in self.core.tasks

    def watch_task_file(self) -> None:
        path = self.core.state.get("task_file") if self.core else None
        if not path:
            return
        try:
            st = os.stat(path)
            sig = (st.st_mtime_ns, st.st_size)
        except OSError:
            sig = None
        if self._task_sig is not None and sig != self._task_sig:
            self.request_cycle("task file changed", 0.2)
        self._task_sig = sig

    # -- the cycle ----------------------------------------------------------------------------------
    def run_cycle(self) -> None:
        core = self.core
        assert core is not None
        self.cycle_due = 0.0
        reasons, self.wake_reasons = self.wake_reasons or ["interval"], []
        self.cycle_reasons = reasons
        started = time.monotonic()
        core.state["total_cycles"] = core.state.get("total_cycles", 0) + 1
        core.state["event_cursors"] = dict(self.feed.cursors) if self.feed else {}
        self.check_disk()
        change = self.changelog.check(core.state, core.state["total_cycles"])
        if change and change.get("kind") == "changed":
            self.log.info("task_file_changed", summary=change["summary"], hash=change["hash"][:12])
        if not core.refresh_workers():  # at start-up the supervisor may still be binding: look again soon
            self.request_cycle("supervisor unavailable", 0.3 if time.time() - self.started_at < 10 else RETRY_DELAY)
        self.costbook.ingest_workers(core.state, core.workers)
        self.refresh_budget()
        result: dict = {}
        try:
            if core.supervisor_ok:
                result = self.planner.cycle(core) or {}
        except Exception as exc:  # a planner bug costs this cycle, never the next ones
            if disk_full(exc):
                self.log.error("cycle_disk_full", error=str(exc))
            else:
                self.log.error("planner_failed", error=repr(exc), trace=traceback.format_exc()[-3000:])
            result = {"planner_error": repr(exc)[:200]}
        finally:
            self.costbook.ingest_workers(core.state, core.workers)
            self.refresh_budget()
            finished = core.check_finished()
            self._check_stall()
            if core.git.info.get("merging"):
                self.request_cycle("a merge to finish", GIT_RETRY_S)
            elif core.git.info.get("to_remove"):
                core.git.remove_merged()  # a merged worktree a process still used
            core.save()
            if finished:
                self.persist()  # a finished run is read from state.json at once: it holds the end
        self.last_cycle_at = time.time()
        self.active_at = time.monotonic()
        self.log.info(
            "cycle",
            n=core.state["total_cycles"],
            reasons=reasons,
            ms=round((time.monotonic() - started) * 1000, 1),
            finished=finished,
            **{k: v for k, v in result.items() if isinstance(v, (int, float, str, bool))},
        )
        self.publish(
            Kind.CYCLE_DONE,
            cycle=core.state["total_cycles"],
            reasons=reasons,
            finished=finished,
            counts=counts(core.state),
        )
        if result.get("retry_in") is not None:
            self.request_cycle(
                "retry: " + str(result.get("model_error") or result.get("skipped") or "model"),
                min(self.interval, float(result["retry_in"])),
            )
        retry_at = core.next_retry_at()
        if retry_at is not None and retry_at - time.time() < self.interval:
            self.request_cycle("a task's retry is due", retry_at - time.time() + RETRY_MARGIN)
        if not self.cycle_due:
            self.request_cycle("interval", self.interval)

    def _check_stall(self) -> None:
        """At most each STALL_CHECK_S: a stall is minutes long, and a busy brain cycles many
        times a second."""
        assert self.core is not None
        now = time.monotonic()
        if now - self.stall_checked_at < STALL_CHECK_S:
            return
        self.stall_checked_at = now
        event = stall.check(self.core.state, self.cfg)
        if event:
            self.log.warning(Kind.NO_PROGRESS, **event)
            self.core.decisions.record(
                Kind.NO_PROGRESS, cycle=self.core.state.get("total_cycles"), by="brain", reason=event["message"]
            )
            self.publish(Kind.NO_PROGRESS, **event)

    def teardown(self) -> None:
        if self.core is not None:
            if self.feed is not None:
                self.core.state["event_cursors"] = dict(self.feed.cursors)
                self.feed.close()
            self.core.supervisor.close()
            self.core.save()
            self.persist()
            self.core.store.close()
        self.report.close()
        self.notifier.wait(2.0)
