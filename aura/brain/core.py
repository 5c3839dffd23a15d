"""What every planner acts through: the task tree, its decision log, and the supervisor.

Planners decide; the core does, and it enforces the rules a planner cannot bend: every
status change carries a reason and evidence, "completed" needs evidence the brain checked
itself, a failed attempt is retried once and then blocked, and a worker killed for its
resources is retried once smaller, then blocked with a resource-fix subtask.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aura.ipc.client import Client, DaemonUnavailable, RemoteError
from aura.ipc.envelope import RESERVE_SHORT
from aura.runtime.config import Config
from aura.runtime.eventkinds import Kind
from aura.runtime.gitrepo import GitError, while_git_runs
from aura.runtime.paths import ProjectPaths
from aura.runtime.records import kill_record
from aura.runtime.vocab import (
    BLOCKED,
    COMPLETED,
    EXITED,
    IN_PROGRESS,
    PENDING,
    RATE_LIMITED,
    SUCCEEDED,
    TASK_DONE,
    TASK_ENDED,
    TASK_FAILED,
)

from . import evidence as ev
from . import parking, questions
from .costs import remaining_usd
from .decisions import DecisionLog
from .diskpause import save_quietly
from .gitwork import GitWork
from .state import (
    ROOT,
    StateStore,
    add_task,
    attempt_no,
    counts,
    leaves,
    new_task,
    not_before,
)
from .taskfile import TaskFile, TaskFileError, read_task_file
from .workerspec import retarget_spec, write_task_md

MAX_ATTEMPTS = 2
RESOURCE_FIX_SUFFIX = ".fix"
RETRY_BASE_S = 3.0  # a spawn that failed before its worker ran is retried this soon, doubling per failure
RETRY_MAX_S = 60.0


class BrainCore:
    def __init__(self, paths: ProjectPaths, cfg: Config, log: Any, publish: Callable[..., Any], ctx: Any):
        self.paths = paths
        self.cfg = cfg
        self.log = log
        self.publish = publish
        self.store = StateStore(paths.state_dir)
        loaded = self.store.load()
        self.state = loaded.state
        self.load_problem = loaded.problem
        if loaded.source == "reset":
            self.state["safe_mode"] = {"since": time.time(), "reason": loaded.problem}
        self.decisions = DecisionLog(paths.state_dir)
        self.supervisor = Client(paths.endpoint("supervisor"), "supervisor", timeout=5.0, retries=1, ctx=ctx)
        self.workers: dict[str, dict] = {}
        self.supervisor_ok = False
        self.spawn_block: str | None = None  # why no new worker may start now (e.g. the run budget is spent)
        self.disk_block: str | None = None  # why not, while the data folder's disk is short (diskpause)
        self.save_error: str | None = None  # the last save failed on a full disk; retried
        self.finish_gate: Callable[[], bool] | None = None  # a planner that must agree before the run ends
        self.wait: Callable[[float], None] = time.sleep  # the daemon's pump: requests are answered meanwhile
        self.git = GitWork(paths, cfg, self.state, log, self.save)
        self.git_block: str | None = None  # why no worker may start: git mode refused or unusable
        self.touched: set[str] = set()  # tasks changed since the last save (their status, or new)
        self._running: dict[str, None] = {tid: None for tid, t in self.tasks.items() if t["status"] == IN_PROGRESS}
        self._held: set[str] = {tid for tid, t in self.tasks.items() if t["status"] == PENDING and not_before(t)}
        self._task_file: tuple[tuple | None, TaskFile | None] = (None, None)  # (its stat, its parse)
        self._untold: list[Callable[[], None]] | None = None  # inside `one_save`: what to tell after its save

    def start_git(self) -> None:
        self.git.wait = self.wait
        while_git_runs(self.wait)
        self.git_block = self.git.start()

    def work_root(self) -> Path:
        """Where the run's work is: the integration worktree in git mode, else the project folder."""
        return self.git.work_root()

    # -- persistence ----------------------------------------------------------------------------
    def save(self) -> None:
        """Journal what changed: the tasks that changed status or were added since the last save, the
        running ones, and every key beside the tasks (the sweep each second finds the rest)."""
        touched = self.touched | {t["id"] for t in self.running()}
        self.save_error = save_quietly(self.store, self.state, self.log, self.save_error, touched=touched)
        if self.save_error is None:
            self.touched = set()

    def touch(self, task_id: str) -> None:
        """A task changed other than by `set_status` or `add_task` (a note, its line in the task
        file): the next save compares it, where a sweep might reach an ended one much later."""
        self.touched.add(task_id)

    def snapshot(self, lazily: bool = False) -> None:
        """Journal what a sweep of the tree finds and fold the journal into a new state.json once
        it is due, while the brain runs; compare the whole tree and fold at once at the run's end
        and at its stop (see StateStore.flush)."""
        self.save_error = save_quietly(self.store, self.state, self.log, self.save_error, whole=True, lazily=lazily)

    @property
    def tasks(self) -> dict[str, dict]:
        return self.state["tasks"]

    def task_file(self) -> TaskFile | None:
        path = self.state.get("task_file")
        if not path:
            return None
        try:
            st = os.stat(path)
            sig = (path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:
            sig = None
        if sig is not None and self._task_file[0] == sig:
            return self._task_file[1]  # unchanged since the last cycle: not parsed again
        try:
            tf = read_task_file(Path(path))
        except TaskFileError as exc:
            self.log.error("task_file_unusable", error=str(exc))
            return None
        self._task_file = (sig, tf)
        return tf

    # -- status changes ---------------------------------------------------------------------------
    def set_status(self, task: dict, new: str, reason: str, evidence: str, by: str = "brain") -> None:
        """The only way a status changes: recorded with reason and evidence, published."""
        if new == PENDING and not_before(task):
            self._held.add(task["id"])  # a retry or a parking: `next_retry_at` looks only at these
        old = task["status"]
        if old == new and task.get("reason") == reason:
            return
        now = time.time()
        self.touched.add(task["id"])
        task.update(status=new, reason=reason, evidence=evidence, updated_at=now)
        if new == IN_PROGRESS:
            task["started_at"] = now
            self._running[task["id"]] = None
        else:
            self._running.pop(task["id"], None)
        if new in TASK_ENDED:
            task["finished_at"] = now
        numbered = {"attempt": attempt_no(task)} if attempt_no(task) else {}
        tell = functools.partial(
            self._tell_status, task["id"], old, new, reason, evidence, by, self.state["total_cycles"], numbered
        )
        if self._untold is not None:
            self._untold.append(tell)
            return
        self.save()  # journaled before it is logged: a kill -9 between the two never has it redone
        tell()

    def _tell_status(
        self, tid: str, old: str, new: str, reason: str, evidence: str, by: str, cycle: int, numbered: dict
    ) -> None:
        self.decisions.record(
            "status", task_id=tid, old=old, new=new, reason=reason, evidence=evidence, by=by, cycle=cycle, **numbered
        )
        self.log.info(Kind.TASK_STATUS, task=tid, old=old, new=new, reason=reason, **numbered)
        self.publish(Kind.TASK_STATUS, task_id=tid, old=old, new=new, reason=reason, evidence=evidence, **numbered)

    @contextlib.contextmanager
    def one_save(self) -> Iterator[None]:
        """The status changes made inside are journaled by one save as it ends (one flush to disk for
        a burst, not one each), and only then recorded, logged and published, as `set_status` alone
        does; so is every event published inside. Nothing inside may act outside the brain on a
        change made inside (send a spawn, merge) before an explicit `save`."""
        if self._untold is not None:
            yield
            return
        untold: list[Callable[[], None]] = []
        publish = self.publish

        def held(kind: str, **data: Any) -> None:
            untold.append(functools.partial(publish, kind, **data))

        self._untold, self.publish = untold, held
        try:
            yield
        finally:
            self._untold, self.publish = None, publish
            self.save()
            for tell in untold:
                tell()

    def add_task(self, task_id: str, title: str, parent: str = ROOT, by: str = "brain", **extra: Any) -> dict:
        task = add_task(self.state, new_task(task_id, title, parent=parent, **extra))
        if task["status"] == IN_PROGRESS:
            self._running[task_id] = None
        self.touched.update((task_id, parent))
        self.decisions.record(
            "task_added", task_id=task_id, title=title, parent=parent, by=by, cycle=self.state["total_cycles"]
        )
        return task

    # -- workers ----------------------------------------------------------------------------------
    def refresh_workers(self) -> bool:
        """The supervisor's view of every worker; False (and nothing changes) while it is down."""
        try:
            listed = self.supervisor.call("list", {"include_exited": True, "worker_ids": self.worker_ids()})
        except (DaemonUnavailable, RemoteError) as exc:
            if self.supervisor_ok:
                self.log.warning("supervisor_unavailable", error=str(exc))
            self.supervisor_ok = False
            return False
        self.workers = {w["worker_id"]: w for w in listed}
        self.supervisor_ok = True
        return True

    def worker(self, wid: str) -> dict | None:
        """A worker's record: from the last listing (the running tasks' workers), else asked for."""
        if wid not in self.workers:
            try:
                self.workers[wid] = self.supervisor.call("get", {"worker_id": wid})
            except (DaemonUnavailable, RemoteError):
                return None
        return self.workers[wid]

    def worker_ids(self) -> list[str]:
        """The workers of every running task, all its attempts: what the brain asks the supervisor
        about, so a cycle's cost follows the running tasks, not every worker the run ever had."""
        return [wid for t in self.running() for wid in t.get("workers") or ()]

    def running(self) -> list[dict]:
        """The running tasks, in the order they started. Kept as an index that `set_status` (the
        only way a status changes) and `add_task` maintain: every save asks for them, and a walk
        over the tree would make a save cost more as the tree grows."""
        tasks = self.tasks
        return [t for tid in self._running if (t := tasks.get(tid)) is not None and t["status"] == IN_PROGRESS]

    def capacity(self) -> int:
        return max(0, self.cfg.integer("AURA_MAX_CONCURRENT_TASKS") - len(self.running()))

    def spawn(self, task: dict, spec: dict) -> dict | None:
        """Start an attempt of `task`: its intent saved (`intend_spawn`), then the request sent."""
        if not self.intend_spawn(task, spec):
            return None
        self.save()
        return self.send_spawn(task)

    def spawn_many(self, starts: Iterator[tuple[dict, dict]], room: int) -> int:
        """Start attempts of up to `room` of the `starts` that may start now: every intent saved by
        one save, then every request sent at once (the supervisor starts their shims side by side),
        each answer taken in as `send_spawn` does. How many were sent."""
        if room <= 0:
            return 0
        meant: list[dict] = []
        with self.one_save():
            for task, spec in starts:
                if self.intend_spawn(task, spec):
                    meant.append(task)
                    if len(meant) >= room:
                        break
        self.send_spawns(meant)
        return len(meant)

    def intend_spawn(self, task: dict, spec: dict) -> bool:
        """Make `task` in progress with the spawn request it is to send (False: not now). The worker
        id is deterministic, so a brain that crashes once this is saved and before the request goes
        never starts the same attempt twice. A task parked by a rate limit is not started before its
        resume time, and then continues its worker's session."""
        block = self.spawn_block or self.disk_block or self.git_block
        if block:
            self.log.info(Kind.SPAWN_REFUSED, task=task["id"], reason=block)
            return False
        if not_before(task) > time.time():
            return False
        if questions.hold_spawn(self, task, spec):  # AURA_APPROVE: a person says yes first
            return False
        questions.use_approval(task, "spawn")
        task.pop("held_spec", None)
        task.pop("retry_at", None)
        spec = parking.resume_spec(task, spec, self.paths.task_dir(task["id"]))
        remaining = remaining_usd(self.state)
        if remaining is not None and not spec.get("max_budget_usd"):
            spec = {**spec, "max_budget_usd": round(remaining, 4)}  # the worker's own cap, where its CLI has one
        task["attempts"] = int(task.get("attempts", 0)) + 1
        task["spawns"] = int(task.get("spawns", 0)) + 1
        wid = f"{task['id']}-{task['spawns']}"
        task["worker_id"] = wid
        task.setdefault("workers", []).append(wid)
        task_dir = self.paths.task_dir(task["id"])
        if self.git.enabled:
            moved = self.attempt_in_worktree(task, wid, spec)
            if moved is None:
                return False
            spec = moved
        write_task_md(task_dir, self.state, task, self.cfg)
        full = {"worker_id": wid, "task_id": task["id"], "task_dir": str(task_dir), **spec}
        task["spawn_spec"] = full
        self.set_status(
            task,
            IN_PROGRESS,
            f"attempt {attempt_no(task)} started",
            f"spawn request for worker {wid} ({spec.get('backend')})",
        )
        return True

    def attempt_in_worktree(self, task: dict, wid: str, spec: dict) -> dict | None:
        """Git mode: the attempt works in its own fresh worktree of the integration head."""
        try:
            workdir = self.git.prepare_attempt(task, wid, resume=bool(spec.get("resume_session")))
            mounts = self.git.sandbox_mounts(task)
        except GitError as exc:
            self.attempt_failed(task, f"could not make its worktree: {exc}", "git", retry_in=self.retry_delay(task))
            self.save()
            return None
        spec = retarget_spec(spec, task, self.paths.root, workdir)
        worktree = task["git"]["worktree"]
        meta = {**(spec.get("meta") or {}), "branch": task["git"]["branch"], "worktree": worktree}
        return {**spec, "mounts": [worktree, *spec.get("mounts", []), *mounts], "meta": meta}

    def send_spawn(self, task: dict) -> dict | None:
        self._before_send(task)
        try:
            answer: dict | RemoteError = self.supervisor.call("spawn", task.get("spawn_spec") or {}, timeout=20.0)
        except DaemonUnavailable as exc:
            self.log.warning("spawn_deferred", task=task["id"], error=str(exc))
            return None  # the intent is saved; reconcile sends it again when the supervisor answers
        except RemoteError as exc:
            answer = exc
        return self._spawn_answered(task, answer)

    def send_spawns(self, tasks: list[dict]) -> None:
        """`send_spawn` for each of `tasks`, the requests sent together. Spawn is idempotent by worker
        id, so a batch cut short is sent again by reconcile as a single one would be."""
        if len(tasks) <= 1:
            for task in tasks:
                self.send_spawn(task)
            return
        for task in tasks:
            self._before_send(task)
        try:
            answers = self.supervisor.call_many([("spawn", t.get("spawn_spec") or {}) for t in tasks], timeout=20.0)
        except DaemonUnavailable as exc:
            for task in tasks:
                self.log.warning("spawn_deferred", task=task["id"], error=str(exc))
            return
        for task, answer in zip(tasks, answers, strict=True):
            self._spawn_answered(task, answer)

    def _before_send(self, task: dict) -> None:
        if self.git.enabled and task.get("git"):
            try:
                self.git.prepare_attempt(task, str((task.get("spawn_spec") or {}).get("worker_id")))
            except GitError as exc:  # a worktree deleted by hand comes back; one that cannot is logged
                self.log.warning("git_worktree_unusable", task=task["id"], error=str(exc))

    def _spawn_answered(self, task: dict, answer: dict | RemoteError) -> dict | None:
        if isinstance(answer, RemoteError):
            if answer.code == RESERVE_SHORT:
                self.wait_for_resources(task, answer.message)
            else:
                self.attempt_failed(
                    task,
                    f"could not start the worker: {answer.message}",
                    evidence=f"supervisor: {answer.code}",
                    retry_in=self.retry_delay(task),
                )
            self.save()
            return None
        self.workers[answer["worker_id"]] = answer
        if answer.get("state") == EXITED:
            self.settle(task, answer)
            self.save()
        return answer

    def kill(self, task: dict, reason: str) -> dict:
        wid = task.get("worker_id")
        if not wid:
            return {"killed": False, "message": f"task {task['id']} has no worker"}
        try:
            return self.supervisor.call("kill", {"worker_id": wid, "reason": reason, "by": "brain"})
        except (DaemonUnavailable, RemoteError) as exc:
            return {"killed": False, "message": str(exc)}

    # -- settling finished attempts -----------------------------------------------------------------
    def verify_done(self, task: dict, acceptance_timeout: float = 300.0) -> ev.Evidence:
        """Check a planner's claim that `task` is done on evidence the brain reads itself: all
        subtasks done (a parent), else the attempt's exit record, the named artifacts written since
        the attempt (or the task) started, result.md for agents, and the task's acceptance commands."""
        if task.get("children"):
            open_ = [c for c in task["children"] if self.tasks.get(c, {}).get("status") not in TASK_DONE]
            return ev.Evidence(
                ok=not open_,
                facts=[f"all {len(task['children'])} subtasks completed or archived"],
                problems=[f"subtasks not done: {', '.join(open_)}"] if open_ else [],
            )
        wid = task.get("worker_id")
        worker = self.worker(wid) if wid else None
        artifacts = task.get("artifacts") or []
        commands = task.get("accept_commands") or []
        if wid and worker is None:
            return ev.Evidence(ok=False, problems=[f"no record of worker {wid} at the supervisor"])
        if worker is not None and worker.get("state") != EXITED:
            return ev.Evidence(ok=False, problems=[f"worker {wid} is still running"])
        if worker is not None:
            proof = ev.check_worker(worker, self.attempt_root(task), artifacts, task.get("kind") == "agent")
            self.diff_evidence(task, proof)
            if self.in_worktree(task):
                return proof  # the acceptance commands run on the merged tree, in `accept`
        else:
            proof = ev.Evidence(
                ok=bool(artifacts or commands),
                problems=[]
                if artifacts or commands
                else ["nothing to check: no worker attempt, no named artifact and no acceptance command"],
            )
            since = float(task.get("reopened_at") or task.get("created_at") or 0)
            for rel in artifacts:
                ok, fact = ev.check_artifact(self.work_root(), rel, since)
                (proof.facts if ok else proof.problems).append(fact)
                proof.ok = proof.ok and ok
        if commands:
            acc = ev.run_acceptance(commands, self.work_root(), acceptance_timeout, wait=self.wait)
            proof.facts += acc.facts
            proof.problems += acc.problems
            proof.ok = proof.ok and acc.ok
        return proof

    def reconcile(self) -> None:
        """Match in-progress tasks with the supervisor's workers: settle the finished ones and
        re-send spawns that never reached it (together). Outside git mode, whose merges act on a
        completion as it is made, a burst of endings is journaled by one save."""
        resend: list[dict] = []
        with contextlib.nullcontext() if self.git.enabled else self.one_save():
            self._settle_ended(resend)
        self.send_spawns(resend)
        questions.start_held(self)

    def _settle_ended(self, resend: list[dict]) -> None:
        for task in self.running():
            wid = task.get("worker_id")
            worker = self.workers.get(wid) if wid else None
            if worker is None:
                if task.get("spawn_spec"):
                    self.log.info("spawn_resent", task=task["id"], worker=wid)
                    resend.append(task)
                else:
                    self.attempt_failed(task, "no worker record for this attempt", "supervisor list")
            elif worker.get("state") == EXITED:
                self.settle(task, worker)

    def settle(self, task: dict, worker: dict) -> None:
        """Decide a finished attempt on evidence the brain checks itself."""
        task.pop("spawn_spec", None)  # spent: the supervisor's record keeps what ran; a retry builds its own
        kill = worker.get("kill") or {}
        if kill.get("reason_code") == "resource":
            self.resource_killed(task, worker)
            return
        if worker.get("outcome") == RATE_LIMITED:
            self.rate_limited(task, worker)
            return
        if questions.worker_question(self, task, worker):
            return
        artifacts = task.get("artifacts") or []
        need_result = task.get("kind") in ("agent", "resource_fix")
        proof = ev.check_worker(worker, self.attempt_root(task), artifacts, need_result)
        self.diff_evidence(task, proof)
        if proof.ok:
            self.accept(task, proof)
        else:
            reason = proof.problems[0] if proof.problems else "no evidence"
            tail = (worker.get("progress") or {}).get("error_tail")
            if tail and worker.get("outcome") != SUCCEEDED:
                reason += f"; its stderr ends: {tail[-300:]}"
            never_ran = bool((worker.get("exit") or {}).get("error")) and not worker.get("worker_pid")
            self.attempt_failed(task, reason, proof.summary(), retry_in=self.retry_delay(task) if never_ran else None)

    def in_worktree(self, task: dict) -> bool:
        """Did the task's current attempt run in its own worktree (git mode)?"""
        known = task.get("git") or {}
        return self.git.enabled and bool(known.get("worktree")) and known.get("worker_id") == task.get("worker_id")

    def attempt_root(self, task: dict) -> Path:
        """Where the task's named artifacts are: its attempt's worktree in git mode."""
        if not self.in_worktree(task):
            return self.paths.root
        return Path(task["git"].get("workdir") or task["git"]["worktree"])

    def diff_evidence(self, task: dict, proof: ev.Evidence) -> None:
        """Git mode: the attempt's diffstat is evidence; an attempt that changed nothing and wrote no
        named artifact is refused when its task asked for a change."""
        if not self.in_worktree(task):
            return
        try:
            diff = self.git.attempt_diff(task)
        except GitError as exc:
            proof.ok = False
            proof.problems.append(f"its diff could not be read: {exc}")
            return
        if diff.get("missing"):
            proof.ok = False
            proof.problems.insert(0, str(diff["missing"]))  # the cause of whatever else went wrong
            return
        proof.facts.append(f"diff: {diff['diff_summary']}")
        named = bool(task.get("artifacts")) and proof.ok
        if proof.ok and not diff["changed"] and expects_change(task) and not named:
            proof.ok = False
            proof.problems.append("the attempt changed nothing in the repository and wrote no named artifact")

    def accept(
        self, task: dict, proof: ev.Evidence, by: str = "brain", claim: str = "", reason: str = "evidence checked"
    ) -> str | None:
        """Mark a task done on checked evidence; in git mode its attempt is merged first (a conflict or
        a failed acceptance command on the merged tree sends it back). Returns the problem, if any."""
        evidence = proof.summary()
        if self.in_worktree(task) and questions.needs_approval(self, task, "merge"):
            text = f"merge {task['id']} ({task.get('title', '')[:120]}) into {self.git.branch}: {evidence[:300]}"
            questions.ask(
                self, text, options=["approve", "deny"], task_id=task["id"], by="brain", kind="approval", action="merge"
            )
            return "the merge waits for the user's approval"
        questions.use_approval(task, "merge")
        if self.in_worktree(task):
            outcome = self.git.accept(
                task, evidence, list(task.get("accept_commands") or []), self.cfg.number("AURA_ACCEPTANCE_TIMEOUT")
            )
            if outcome.later:
                return outcome.problem  # the transaction is kept: the next reconcile resumes it
            if not outcome.ok:
                task["merge_conflict"] = outcome.conflict or None
                self.decisions.record(
                    "merge_refused",
                    task_id=task["id"],
                    worker_id=task.get("worker_id"),
                    reason=outcome.problem,
                    files=(outcome.conflict or {}).get("files") or [],
                    cycle=self.state["total_cycles"],
                )
                self.attempt_failed(task, outcome.problem, evidence)
                return outcome.problem
            task["git"]["merge_commit"] = outcome.commit
            task.pop("merge_conflict", None)
            evidence = "; ".join([evidence, *outcome.facts])
            self.decisions.record(
                "merged",
                task_id=task["id"],
                worker_id=task.get("worker_id"),
                branch=self.git.branch,
                commit=outcome.commit,
                cycle=self.state["total_cycles"],
            )
        self.set_status(task, COMPLETED, reason, claim + evidence, by=by)
        self.publish(Kind.TASK_DONE, task_id=task["id"], title=task.get("title"))
        if self.git.enabled:
            self.git.remove_merged()
        return None

    def rate_limited(self, task: dict, worker: dict) -> None:
        """Park the task until the limit lifts (then resume the session), or block it (see parking)."""
        decision = parking.decide(task, worker, self.cfg)
        evidence = f"worker {worker.get('worker_id')} outcome {RATE_LIMITED}"
        if not decision.park:
            self.set_status(task, BLOCKED, decision.reason, evidence)
            self.publish(Kind.TASK_BLOCKED, task_id=task["id"], reason=decision.reason)
            return
        parking.park(task, decision)
        self.set_status(task, PENDING, decision.reason, evidence)
        self.publish(Kind.TASK_PARKED, task_id=task["id"], resume_at=decision.resume_at, session_id=decision.session_id)

    def attempt_failed(self, task: dict, reason: str, evidence: str, retry_in: float | None = None) -> None:
        """Retry once (after `retry_in` seconds when given: the next cycle is brought forward to then),
        else block. Attempts are numbered once (`attempt_no`); only failures count towards the limit."""
        n = attempt_no(task)
        if task.get("attempts", 0) < MAX_ATTEMPTS:
            when = ""
            if retry_in is not None:
                task["retry_at"] = time.time() + retry_in
                when = f" in {retry_in:g}s"
            self.set_status(task, PENDING, f"attempt {n} failed: {reason}; retrying once{when}", evidence)
        else:
            self.set_status(
                task,
                BLOCKED,
                f"attempt {n} failed: {reason}; blocked after {task.get('attempts', 0)} failed attempts",
                evidence,
            )
            self.publish(Kind.TASK_BLOCKED, task_id=task["id"], reason=reason)

    def wait_for_resources(self, task: dict, message: str) -> None:
        """A reserve (free RAM or GPU memory) is short now: the attempt never started, so it is not a
        failure and keeps its number; the task waits, trying again with a growing backoff, for as
        long as it takes (a stall is reported by the no-progress notification)."""
        wid = task.get("worker_id")
        task["spawns"] = max(0, int(task.get("spawns", 1)) - 1)
        task["attempts"] = max(0, int(task.get("attempts", 1)) - 1)
        workers = task.get("workers") or []
        if wid in workers:
            workers.remove(wid)
        task["worker_id"] = workers[-1] if workers else None
        task.pop("spawn_spec", None)
        task["waits"] = int(task.get("waits", 0)) + 1
        delay = min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (task["waits"] - 1))
        task["retry_at"] = time.time() + delay
        self.set_status(
            task,
            PENDING,
            f"attempt {attempt_no(task) + 1} waits for resources: {message}; trying again in {delay:g}s",
            f"supervisor: {RESERVE_SHORT}",
        )

    def retry_delay(self, task: dict) -> float:
        """A short backoff for an attempt that failed before its worker ran (a missing CLI, a refused
        spawn), instead of the whole cycle interval."""
        return min(RETRY_MAX_S, RETRY_BASE_S * 2 ** max(0, int(task.get("attempts", 1)) - 1))

    def next_retry_at(self) -> float | None:
        """The earliest future time a pending task may start again (a retry or a parked task), so the
        brain can run a cycle then rather than at the next interval."""
        now = time.time()
        future = []
        for tid in list(self._held):  # every pending task held back was added by `set_status` or at load
            task = self.tasks.get(tid)
            when = not_before(task) if task is not None and task["status"] == PENDING else 0.0
            if when > now:
                future.append(when)
            else:
                self._held.discard(tid)
        return min(future, default=None)

    def resource_killed(self, task: dict, worker: dict) -> None:
        """Kill #1: back to pending once, with the reason, for a smaller retry. Kill #2: blocked, plus a
        resource-fix subtask carrying the samples the watchdog recorded to justify both kills."""

        kill = worker.get("kill") or {}
        wid = str(worker.get("worker_id") or "")
        record = kill_record(self.paths, wid) if wid else None
        record = record if isinstance(record, dict) else {}
        kills = int(task.get("resource_kills", 0)) + 1
        task["resource_kills"] = kills
        violation: dict[str, Any] = {
            "worker_id": wid,
            "reason": kill.get("reason") or record.get("reason"),
            "limit": kill.get("limit") or record.get("limit"),
            **{
                k: record.get(k)
                for k in (
                    "metric",
                    "average",
                    "threshold",
                    "strikes",
                    "strike_averages",
                    "window_s",
                    "poll_s",
                    "killed_at",
                )
            },
            "samples": list(record.get("samples") or []),
        }
        task.setdefault("resource_violations", []).append(violation)
        task["last_resource_violation"] = {k: violation[k] for k in ("reason", "limit", "average", "threshold")}
        evidence = (
            f"watchdog kill record for {wid}: {violation['reason']} ({len(violation['samples'])} samples recorded)"
        )
        if kills == 1:
            task["attempts"] = max(0, task.get("attempts", 1) - 1)  # a resource kill is not the task's failure
            task["resource_retry_required"] = True
            self.set_status(
                task,
                PENDING,
                f"killed by the watchdog: {violation['reason']}; retry once with "
                "smaller settings (smaller batch, fewer workers or threads, less data)",
                evidence,
            )
            return
        self.set_status(task, BLOCKED, "killed by the watchdog twice; needs a resource fix", evidence)
        self.publish(Kind.TASK_BLOCKED, task_id=task["id"], reason="resource limits exceeded twice")
        fix_id = task["id"] + RESOURCE_FIX_SUFFIX
        if fix_id in self.tasks:
            return
        violations = list(task["resource_violations"])
        lines = [
            f"Task {task['id']} ({task.get('title', '')}) was killed twice by Aura's watchdog for its "
            "resource use. Find what uses too much, change the task's parameters so it fits the limits, "
            "and explain in result.md what was over, what you changed and why it now fits.",
            "",
        ]
        for n, v in enumerate(violations, 1):
            metric = v.get("metric")
            samples = v.get("samples") or []  # a kill recorded by an older brain has none
            tail = [f"{s.get(metric)}" for s in samples[-12:] if metric and s.get(metric) is not None]
            lines.append(
                f"- kill {n} (worker {v.get('worker_id')}): {v.get('reason')}"
                + (f"; last samples of {metric}: {', '.join(tail)}" if tail else "")
            )
        lines += ["", f"The full samples are in the watchdog's kill records under {self.paths.watchdog_dir / 'kills'}."]
        self.add_task(
            fix_id,
            f"Resource fix for {task['id']}: make it fit the limits",
            parent=task["id"],
            kind="resource_fix",
            fix_for=task["id"],
            violations=violations,
            budget_minutes=20,
            description="\n".join(lines),
        )

    # -- the end ------------------------------------------------------------------------------------
    def check_finished(self) -> bool:
        """Whether every leaf of the tree has ended. A leaf at work answers no at once: the walk
        over the whole tree is left to the cycles when nothing runs."""
        todo = any(not t.get("children") for t in self.running())
        every = [] if todo else leaves(self.state)
        todo = todo or any(t["status"] not in TASK_ENDED for t in every)
        run = self.state.setdefault("run", {"finished": False})
        if todo or not every:
            if run.get("finished"):
                run.update(finished=False, reopened_at=time.time())
            return False
        if run.get("finished"):
            return True
        if self.finish_gate is not None and not self.finish_gate():
            return False
        c = counts(self.state)
        run.update(finished=True, finished_at=time.time(), counts=c)
        done_all = sum(c[s] for s in TASK_DONE) == sum(c.values())
        summary = f"run finished: {c[COMPLETED]} done, {c[BLOCKED]} blocked, {c[TASK_FAILED]} failed" + (
            "" if done_all else " (see `aura status`)"
        )
        self.set_status(
            self.tasks[ROOT],
            COMPLETED if done_all else BLOCKED,
            summary,
            f"{c[COMPLETED]} of {sum(c.values())} tasks completed with evidence",
        )
        self.log.info(Kind.RUN_FINISHED, **c)
        self.publish(Kind.RUN_FINISHED, ok=done_all, **c)
        if done_all:
            self.publish(Kind.GOAL_DONE, mission=self.state.get("mission"))
        return True


def expects_change(task: dict) -> bool:
    """An agent task is there to change the repository unless it says otherwise (`expects_change`);
    a command task runs its command."""
    if task.get("expects_change") is not None:
        return bool(task["expects_change"])
    return task.get("kind") in ("agent", "resource_fix") and not task.get("command")
