"""The supervisor daemon: starts, stops, lists and re-adopts Layer 2 workers.

It owns the worker registry. A worker's exit reaches it event-driven (a pidfd per shim in
the poll loop, where the platform has pidfds; a short poll elsewhere), so the brain hears
of it in milliseconds rather than at the next poll of a circus- or supervisord-style loop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from aura.runtime.loop import Daemon
from aura.runtime.diskspace import full_note
from aura.runtime.fsutil import disk_full, make_dirs, open_private
from aura.runtime.paths import safe_name
from aura.runtime.peers import PeerKeeper
from aura.runtime.procgroup import signal_group, terminate_worker
from aura.runtime.pidfile import is_alive, start_time
from aura.ipc import envelope as env
from aura.ipc.client import Client, DaemonUnavailable, RemoteError
from aura.ipc.envelope import BadArgs, IpcError, arg
from aura.ipc.server import Deferred

from . import exitrecord
from .backends import BackendError, get_backend, plan_worker
from .monitor import OutputMonitor
from .outputs import trim_outputs
from aura.runtime.records import watchdog_kill
from aura.runtime.vocab import LIVE_STATES

from .registry import Registry
from .scope import scope_command, scoped
from .workerenv import worker_env

SHIM = str(Path(__file__).resolve().with_name("shim.py"))
LAUNCH_TIMEOUT = 15.0
SPAWN_FAILED = "spawn_failed"
PREFLIGHT_TIMEOUT = 1.0  # seconds the spawn waits for the watchdog's preflight answer
CPU_CEILING = "AURA_WORKER_MAX_CPU_PERCENT"


@dataclass
class _PendingLaunch:
    """A spawn whose shim has not reported yet."""

    fd: int
    deferred: Deferred
    spec: dict
    cpu_ceiling: float
    buf: bytes = b""


class SupervisorDaemon(Daemon):
    name = "supervisor"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.registry = Registry(self.paths)
        self.workers: dict[str, dict] = {}
        self.children: dict[str, subprocess.Popen] = {}
        self.watch_fds: dict[str, int] = {}
        self.polled: set[str] = set()
        self.kill_deadlines: dict[str, float] = {}
        self.monitor = OutputMonitor(self.cfg)
        self.stop_workers_on_exit = False
        self.peers: PeerKeeper | None = None
        self.grace = self.cfg.float("AURA_KILL_GRACE_SECONDS")
        self.scope_prefix: list[str] = []
        self.launches: dict[str, _PendingLaunch] = {}
        self.unsaved: set[str] = set()  # records a full disk kept from being written; retried each second

    # -- daemon hooks -------------------------------------------------------------------------
    def handlers(self) -> dict:
        h = super().handlers()
        h.update({"spawn": self.op_spawn, "kill": self.op_kill, "list": self.op_list, "get": self.op_get})
        return h

    def shutdown_requested(self, reason: str, stop_workers: bool) -> None:
        self.stop_workers_on_exit = stop_workers
        super().shutdown_requested(reason, stop_workers)

    def setup(self) -> None:
        self.scope_prefix = scope_command(self.cfg.str("AURA_WORKER_SCOPE"), log=self.log)
        self.adopt_all()
        if not self.managed:
            self.peers = PeerKeeper(self, ["brain", "watchdog"])
            self.peers.start()
        self.call_every(1.0, self.housekeeping)
        self.call_every(2.0, self.scan_outputs)

    def teardown(self) -> None:
        for wid in list(self.launches):
            self._finish_launch(wid, None)
        if self.stop_workers_on_exit:
            self.stop_all_workers()
        for fd in self.watch_fds.values():
            os.close(fd)
        self.watch_fds.clear()

    def status_fields(self) -> dict:
        live = [w for w in self.workers.values() if w.get("state") in LIVE_STATES]
        return {"workers_live": len(live), "workers_known": len(self.workers),
                "peers": self.peers.summary() if self.peers else None}

    def save(self, rec: dict) -> bool:
        """Write a worker's record; on a full disk keep it in memory, retry it, and say so once."""
        wid = rec["worker_id"]
        try:
            self.registry.save(rec)
        except OSError as exc:
            if not disk_full(exc):
                raise
            if wid not in self.unsaved:
                self.log.error("record_not_saved", worker=wid, error=str(exc), retry="every second")
            self.unsaved.add(wid)
            return False
        self.unsaved.discard(wid)
        return True

    # -- adoption -----------------------------------------------------------------------------
    def adopt_all(self) -> None:
        """Take over every worker a previous supervisor left behind (PID + start time guard)."""
        for rec in self.registry.records():
            self.workers[rec["worker_id"]] = rec
            if rec.get("state") in LIVE_STATES:
                self.adopt(rec["worker_id"])

    def adopt(self, wid: str) -> None:
        rec = self.workers[wid]
        if rec.get("state") not in LIVE_STATES:
            return
        exit_rec = self.registry.exit(wid)
        if exit_rec is not None:
            self.finalize(wid, exit_rec, note="ended while the supervisor was down")
            return
        launch = self.registry.launch(wid) or {}
        if not launch and rec.get("state") == "starting":
            self.await_launch(wid)
            return
        rec.update({k: v for k, v in launch.items() if k != "started_at" and v is not None})
        if launch.get("error"):
            self.finalize(wid, {"exit_code": None, "signal": None, "error": launch["error"]})
        elif is_alive(rec.get("shim_pid"), rec.get("shim_create_time")):
            rec["state"] = "running"
            self.save(rec)
            self.watch(wid, rec["shim_pid"])
            self.log.info("worker_adopted", worker=wid, pid=rec.get("worker_pid"))
            self.publish("worker_adopted", worker_id=wid, task_id=rec.get("task_id"), pid=rec.get("worker_pid"))
        else:
            self.shim_gone(wid)

    def await_launch(self, wid: str) -> None:
        """A `starting` record with no launch record: the last supervisor died mid-spawn (found by the
        chaos run). A shim that is slow to start will still run the worker, so wait for its launch
        record until LAUNCH_TIMEOUT after the spawn; none by then means the worker never started."""
        if time.time() - float(self.workers[wid].get("created_at") or 0) < LAUNCH_TIMEOUT:
            self.call_later(0.1, lambda: self.adopt(wid))
            return
        self.finalize(wid, {"exit_code": None, "signal": None, "ended_at": time.time(),
                            "error": "never started: the supervisor stopped before the worker was launched"})

    # -- watching shims -------------------------------------------------------------------------
    def watch(self, wid: str, pid: int, *, is_worker: bool = False) -> None:
        """Get told when `pid` exits: a pidfd in the poll loop where possible, else a 0.25 s poll."""
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.polled.add(wid)
            self._ensure_polling()
            return
        rec = self.workers[wid]
        created = rec.get("worker_create_time" if is_worker else "shim_create_time")
        if not is_alive(pid, created):  # reused PID or already gone: it ended before we looked
            os.close(fd)
            self.call_later(0, lambda: self.on_watched_exit(wid))
            return
        self.watch_fds[wid] = fd
        self.add_reader(fd, lambda: self.on_watched_exit(wid))

    _polling = False

    def _ensure_polling(self) -> None:
        if not self._polling:
            self._polling = True
            self.call_every(0.25, self._poll_unwatched)

    def _poll_unwatched(self) -> None:
        for wid in list(self.polled):
            rec = self.workers.get(wid, {})
            key = "worker" if rec.get("state") == "orphaned" else "shim"
            if not is_alive(rec.get(f"{key}_pid"), rec.get(f"{key}_create_time")):
                self.polled.discard(wid)
                self.on_watched_exit(wid)

    def unwatch(self, wid: str) -> int | None:
        """Stop watching; the shim's exit status when it was our child and has ended (we reap it)."""
        fd = self.watch_fds.pop(wid, None)
        if fd is not None:
            self.remove_reader(fd)
            os.close(fd)
        self.polled.discard(wid)
        child = self.children.pop(wid, None)
        if child is not None:
            try:
                return child.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.children[wid] = child
        return None

    def on_watched_exit(self, wid: str) -> None:
        rec = self.workers.get(wid)
        if rec is None or rec.get("state") not in LIVE_STATES:
            self.unwatch(wid)
            return
        shim_status = self.unwatch(wid)
        exit_rec = self.registry.exit(wid)
        recovered = exitrecord.decode(shim_status) if exit_rec is None else None
        if exit_rec is not None:
            self.finalize(wid, exit_rec)
        elif recovered is not None:  # the shim could not write the record: its exit status carries it
            disk = full_note(self.paths.data)
            note = "exit record recovered from the shim's exit status (it could not be written" + \
                   (f": {disk})" if disk else ")")
            self.finalize(wid, {**recovered, "ended_at": time.time(), "recovered_from": "shim exit status"},
                          note=note)
        elif rec.get("state") == "orphaned":
            self.finalize(wid, {"exit_code": None, "signal": None, "ended_at": time.time(),
                                "error": "the shim died before the worker; exit status unknown"}, lost=True)
        else:
            self.shim_gone(wid)

    def shim_gone(self, wid: str) -> None:
        """The shim died without an exit record: follow the worker itself, or call it lost."""
        rec = self.workers[wid]
        launch = self.registry.launch(wid) or {}
        pid, created = rec.get("worker_pid") or launch.get("worker_pid"), rec.get("worker_create_time") or launch.get("worker_create_time")
        if pid and is_alive(pid, created):
            rec.update(state="orphaned", worker_pid=pid, worker_create_time=created)
            self.save(rec)
            self.log.warning("worker_orphaned", worker=wid, pid=pid)
            self.watch(wid, pid, is_worker=True)
        else:
            disk = full_note(self.paths.data)
            self.finalize(wid, {"exit_code": None, "signal": None, "ended_at": time.time(),
                                "error": "the worker's shim ended without an exit record"
                                         + (f"; {disk}" if disk else "")}, lost=True)

    # -- finishing --------------------------------------------------------------------------
    def finalize(self, wid: str, exit_rec: dict, note: str | None = None, lost: bool = False) -> None:
        rec = self.workers[wid]
        backend = get_backend(rec.get("backend", "shell"))
        progress = self.monitor.finish(rec)
        kill = rec.get("kill") or watchdog_kill(self.paths, wid)
        if kill and not rec.get("kill"):
            rec["kill"] = kill
        trimmed = trim_outputs(rec, kill, self.cfg, self.paths)
        if trimmed:
            rec["output_trimmed"] = trimmed
            self.log.warning("output_trimmed", worker=wid, why=trimmed["why"], dropped_bytes=trimmed["dropped"])
        outcome = "lost" if lost else backend.outcome(exit_rec, kill, progress)
        rec.update(state="exited", exit=exit_rec, outcome=outcome, ended_at=exit_rec.get("ended_at") or time.time())
        if progress:
            rec["progress"] = progress
        if note:
            rec["note"] = note
        self.kill_deadlines.pop(wid, None)
        self.save(rec)
        self.log.info("worker_exited", worker=wid, outcome=outcome, exit_code=exit_rec.get("exit_code"),
                      signal=exit_rec.get("signal"), note=note)
        self.publish("worker_exited", worker_id=wid, task_id=rec.get("task_id"), outcome=outcome,
                     exit_code=exit_rec.get("exit_code"), signal=exit_rec.get("signal"),
                     error=exit_rec.get("error"), kill=kill, note=note)

    # -- ops ----------------------------------------------------------------------------------
    def op_get(self, args: dict) -> dict:
        wid = arg(args, "worker_id", str)
        rec = self.workers.get(wid)
        if rec is None:
            raise IpcError(env.NOT_FOUND, f"no worker {wid!r}")
        return self._public(rec)

    def op_list(self, args: dict) -> list[dict]:
        include_exited = arg(args, "include_exited", bool, True)
        ids = arg(args, "worker_ids", list, None)
        out = []
        for wid, rec in self.workers.items():
            if ids is not None and wid not in ids:
                continue
            if not include_exited and rec.get("state") not in LIVE_STATES:
                continue
            out.append(self._public(rec))
        return out

    def _public(self, rec: dict) -> dict:
        out = dict(rec)
        out.pop("env", None)
        live = self.monitor.summary(rec["worker_id"])
        if live:
            out["progress"] = live
        return out

    def op_spawn(self, args: dict) -> dict | Deferred:
        task_id = arg(args, "task_id", str, "")
        wid = arg(args, "worker_id", str, "") or self._new_worker_id(task_id)
        if safe_name(wid) != wid:
            raise BadArgs(f"worker_id {wid!r} may hold only letters, digits, '.', '_' and '-'")
        if wid in self.workers:
            return {**self._public(self.workers[wid]), "existing": True}
        spec = self._spec(args, wid, task_id)
        backend_name = spec["backend"]
        try:
            backend = get_backend(backend_name)
            plan = plan_worker(backend, spec, self.cfg)
        except BackendError as exc:
            raise IpcError(SPAWN_FAILED, str(exc)) from None
        preflight = self._preflight(wid, spec)
        return self._launch(wid, spec, plan, self._cpu_ceiling(spec, preflight))

    # -- preflight and placement ------------------------------------------------------------------
    _watchdog: Client | None = None
    _affinity_note: str | None = None

    def _preflight(self, wid: str, spec: dict) -> dict | None:
        """Ask the watchdog before a spawn; raise reserve_short (with its reason, which names the
        reserve) when a free-memory reserve is not met, spawn_refused when the spawn can never pass. A watchdog that is down or slow does not
        stop the work: the spawn goes ahead after PREFLIGHT_TIMEOUT and the log says so."""
        if self._watchdog is None:
            self._watchdog = Client(self.paths.endpoint("watchdog"), "watchdog", timeout=PREFLIGHT_TIMEOUT,
                                    retries=0, ctx=self.ctx)
        try:
            reply = self._watchdog.call("preflight", {"worker_id": wid, "task_id": spec["task_id"],
                                                      "limits": spec["limits"]})
        except (DaemonUnavailable, RemoteError) as exc:
            self.log.warning("preflight_skipped", worker=wid, reason=str(exc))
            return None
        if reply.get("ok"):
            return reply
        reason = str(reply.get("reason") or "no reason given")
        self.log.warning("spawn_refused", worker=wid, task=spec["task_id"], reason=reason)
        self.publish("spawn_refused", worker_id=wid, task_id=spec["task_id"], reason=reason)
        raise IpcError(env.RESERVE_SHORT if reply.get("short") else env.SPAWN_REFUSED,
                       f"resource preflight refused the spawn: {reason}")

    def _cpu_ceiling(self, spec: dict, preflight: dict | None) -> float:
        """The worker's CPU ceiling in force: the watchdog's answer (run-time changes included),
        else the configuration with the task's own override."""
        limits = (preflight or {}).get("limits")
        value = limits.get(CPU_CEILING) if isinstance(limits, dict) else spec["limits"].get(CPU_CEILING,
                                                                                          self.cfg.str(CPU_CEILING))
        try:
            return float(value)
        except (TypeError, ValueError):
            return 0.0

    def _place(self, rec: dict, ceiling: float) -> None:
        """Under a CPU ceiling, pin the worker (its children inherit it) to the share of cores the
        ceiling allows, choosing the cores least used by other pinned workers, so workers spread
        over distinct cores (the original pinned every worker to the same ones)."""
        if not 0 < ceiling < 100:
            return
        cpus = self._pick_cpus(ceiling)
        if cpus is None:
            return
        try:
            kids = [c.pid for c in psutil.Process(rec["worker_pid"]).children(recursive=True)]
        except psutil.Error:
            kids = []
        try:
            for pid in (rec["worker_pid"], *kids):
                os.sched_setaffinity(pid, cpus)
        except ProcessLookupError:  # it ended before it could be placed: nothing to pin, nothing failed
            self.log.debug("cpu_affinity_not_needed", worker=rec["worker_id"], reason="the worker has ended")
            return
        except OSError as exc:  # not ours to pin
            self.log.warning("cpu_affinity_failed", worker=rec["worker_id"], error=str(exc))
            return
        rec["cpus"] = sorted(cpus)
        self.save(rec)
        self.log.info("worker_pinned", worker=rec["worker_id"], cpus=rec["cpus"], ceiling_percent=ceiling)

    def _pick_cpus(self, ceiling: float) -> set[int] | None:
        """floor(n * ceiling / 100) cores (at least one) of those this daemon may use; None, said
        once in the log, where the platform cannot pin."""
        if not hasattr(os, "sched_setaffinity"):
            return self._no_affinity("this platform has no CPU affinity call (sched_setaffinity)")
        allowed = sorted(os.sched_getaffinity(0))
        if len(allowed) < 2:
            return self._no_affinity(f"only {len(allowed)} CPU available: nothing to spread workers over")
        want = max(1, int(len(allowed) * ceiling / 100))
        load = {c: 0 for c in allowed}
        for w in self.workers.values():
            if w.get("state") in LIVE_STATES:
                for c in w.get("cpus") or ():
                    if c in load:
                        load[c] += 1
        return set(sorted(allowed, key=lambda c: (load[c], c))[:want])

    def _no_affinity(self, reason: str) -> None:
        if self._affinity_note != reason:
            self._affinity_note = reason
            self.log.info("cpu_affinity_skipped", reason=reason)
        return None

    def _new_worker_id(self, task_id: str) -> str:
        base = safe_name(task_id) if task_id else "w"
        return f"{base}-{uuid.uuid4().hex[:6]}"

    def _spec(self, args: dict, wid: str, task_id: str) -> dict:
        backend = arg(args, "backend", str, self.cfg.str("AURA_LAYER2_BACKEND"))
        task_dir = Path(arg(args, "task_dir", str, "") or self.paths.task_dir(task_id or wid))
        cwd = arg(args, "cwd", str, "") or None
        extra_env = arg(args, "env", dict, {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in extra_env.items()):
            raise BadArgs("`env` must map strings to strings")
        budget_s = arg(args, "budget_s", float, self.cfg.float("AURA_TASK_BUDGET") * 60)
        if budget_s < 0:
            raise BadArgs("`budget_s` must not be negative")
        return {"worker_id": wid, "task_id": task_id, "backend": backend, "task_dir": str(task_dir), "cwd": cwd,
                "argv": arg(args, "argv", list, None), "command": arg(args, "command", str, None),
                "prompt": arg(args, "prompt", str, None), "env": extra_env, "budget_s": budget_s,
                "max_turns": arg(args, "max_turns", int, None), "model": arg(args, "model", str, None),
                "max_budget_usd": arg(args, "max_budget_usd", float, None),
                "resume_session": arg(args, "resume_session", str, None),
                "isolation": arg(args, "isolation", str, None), "mounts": arg(args, "mounts", list, []),
                "project_root": str(self.paths.root), "data_dir": str(self.paths.data),
                "limits": arg(args, "limits", dict, {}), "meta": arg(args, "meta", dict, {})}

    def _launch(self, wid: str, spec: dict, plan: Any, cpu_ceiling: float) -> dict | Deferred:
        """Write the record, start the shim, and answer the spawn once the shim reports the worker's
        PID. The answer is deferred, not waited for: the loop keeps serving (other spawns, exits,
        kills) while shims start, so many workers start in parallel."""
        task_dir = Path(spec["task_dir"])
        wdir = self.registry.dir(wid)
        try:
            make_dirs(task_dir, 0o700)
            make_dirs(wdir, 0o700)
        except OSError as exc:
            if not disk_full(exc):
                raise
            raise IpcError(SPAWN_FAILED, "could not start the worker: " + exitrecord.disk_message(
                self.paths.data, "no room for its folders")) from None
        out, err = task_dir / plan.stdout_name, task_dir / plan.stderr_name
        env_vars = worker_env(self.cfg)
        env_vars.update(plan.env)
        env_vars.update(spec["env"])
        env_vars.update({"AURA_TASK_ID": spec["task_id"], "AURA_WORKER_ID": wid, "AURA_TASK_DIR": str(task_dir),
                         "AURA_PROJECT_ROOT": str(self.paths.root)})
        rec = {"worker_id": wid, "task_id": spec["task_id"], "backend": spec["backend"], "argv": plan.argv,
               "cwd": plan.cwd, "task_dir": str(task_dir), "output": str(out), "error_log": str(err),
               "budget_s": spec["budget_s"], "limits": spec["limits"], "meta": spec["meta"],
               "created_at": time.time(), "state": "starting", **plan.record}
        if plan.max_turns:
            rec["max_turns_enforced"] = plan.max_turns
        self.workers[wid] = rec
        if not self.save(rec):  # no room for its record: a worker nobody could re-adopt is not started
            del self.workers[wid]
            self.unsaved.discard(wid)
            raise IpcError(SPAWN_FAILED, "could not start the worker: " + exitrecord.disk_message(
                wdir, "no room for its record"))
        try:
            fd = self._start_shim(wid, wdir, plan, out, err, env_vars)
        except OSError as exc:
            self.finalize(wid, {"exit_code": None, "signal": None, "error": f"could not start the shim: {exc}"})
            return self._public(rec)
        pending = _PendingLaunch(fd=fd, deferred=Deferred(), spec=spec, cpu_ceiling=cpu_ceiling)
        self.launches[wid] = pending
        self.add_reader(fd, lambda: self._on_launch_report(wid))
        self.call_later(LAUNCH_TIMEOUT, lambda: self._finish_launch(wid, None))
        return pending.deferred

    def _start_shim(self, wid: str, wdir: Path, plan: Any, out: Path, err: Path, env_vars: dict) -> int:
        """Start the shim in a new session; returns the read end of its launch-report pipe."""
        r, w = os.pipe()
        cmd = [sys.executable, "-I", "-S", SHIM, "--dir", str(wdir), "--cwd", plan.cwd, "--stdout", str(out),
               "--stderr", str(err), "--task-dir", self.workers[wid]["task_dir"], "--status-fd", str(w),
               "--grace", str(min(self.grace, 5.0)), "--", *plan.argv]
        cmd = scoped(self.scope_prefix, self.paths.root, wid, cmd)
        try:
            with os.fdopen(open_private(wdir / "shim.log"), "ab") as shim_log:
                child = subprocess.Popen(cmd, env=env_vars, stdin=subprocess.DEVNULL, stdout=shim_log,
                                         stderr=shim_log, start_new_session=True, pass_fds=(w,),
                                         cwd=str(self.paths.root))
        except OSError:
            os.close(r)
            raise
        finally:
            os.close(w)
        os.set_blocking(r, False)
        self.children[wid] = child
        return r

    def _on_launch_report(self, wid: str) -> None:
        pending = self.launches.get(wid)
        if pending is None:
            return
        try:
            chunk = os.read(pending.fd, 65536)
        except BlockingIOError:
            return
        pending.buf += chunk
        if chunk and b"\n" not in pending.buf:
            return
        try:
            report = json.loads(pending.buf.split(b"\n", 1)[0]) if pending.buf else None
        except ValueError:
            report = None
        self._finish_launch(wid, report)

    def _finish_launch(self, wid: str, report: dict | None) -> None:
        """The shim reported (or did not, in time): record the launch and answer the spawn."""
        pending = self.launches.pop(wid, None)
        if pending is None:
            return
        self.remove_reader(pending.fd)
        os.close(pending.fd)
        if report is None:
            report = self.registry.launch(wid) or {}
            report.setdefault("ok", bool(report.get("worker_pid")))
            disk = full_note(self.paths.data)
            report.setdefault("error", "the shim did not report a launch" + (f": {disk}" if disk else ""))
        rec = self.workers[wid]
        if not report.get("ok"):
            self.finalize(wid, self.registry.exit(wid) or {"exit_code": None, "signal": None,
                                                            "error": report.get("error", "launch failed")})
        else:
            self._started(wid, rec, report, pending.spec)
            self._place(rec, pending.cpu_ceiling)
        if self.server is not None:
            self.server.resolve(pending.deferred, self._public(rec))

    def _started(self, wid: str, rec: dict, launch: dict, spec: dict) -> None:
        rec.update({k: launch[k] for k in ("worker_pid", "worker_create_time", "pgid", "shim_pid",
                                           "shim_create_time", "started_at")})
        for key in ("worker", "shim"):  # a shim without /proc (macOS) cannot read start times itself
            if rec.get(f"{key}_create_time") is None:
                rec[f"{key}_create_time"] = start_time(rec[f"{key}_pid"])
        rec["state"] = "running"
        if spec["budget_s"]:
            rec["deadline"] = rec["started_at"] + spec["budget_s"]
        self.save(rec)
        self.watch(wid, rec["shim_pid"])
        self.monitor.track(rec, get_backend(spec["backend"]))
        self.log.info("worker_started", worker=wid, task=spec["task_id"], pid=rec["worker_pid"],
                      backend=spec["backend"])
        self.publish("worker_started", worker_id=wid, task_id=spec["task_id"], pid=rec["worker_pid"],
                     backend=spec["backend"])

    def op_kill(self, args: dict) -> dict:
        wid = arg(args, "worker_id", str)
        reason = arg(args, "reason", str, "killed on request")
        grace = arg(args, "grace_s", float, self.grace)
        code = arg(args, "reason_code", str, "killed")
        rec = self.workers.get(wid)
        if rec is None:
            raise IpcError(env.NOT_FOUND, f"no worker {wid!r}")
        if rec.get("state") not in LIVE_STATES:
            return {"killed": False, "worker_id": wid, "state": rec.get("state"), "message": "worker is not running"}
        return self.kill_worker(wid, reason, code, grace, by=arg(args, "by", str, "brain"))

    def kill_worker(self, wid: str, reason: str, code: str, grace: float, by: str) -> dict:
        rec = self.workers[wid]
        if not terminate_worker(rec):  # the group may outlive its leader, the shim its worker
            return {"killed": False, "worker_id": wid, "message": "worker process already gone"}
        rec["kill"] = {"requested_at": time.time(), "reason": reason, "reason_code": code, "by": by}
        self.save(rec)
        self.kill_deadlines[wid] = time.monotonic() + grace
        self.log.info("worker_kill", worker=wid, reason=reason, by=by, grace_s=grace)
        self.publish("worker_killed", worker_id=wid, task_id=rec.get("task_id"), reason=reason, by=by,
                     reason_code=code)
        return {"killed": True, "worker_id": wid, "signal": "SIGTERM", "grace_s": grace}

    # -- periodic -------------------------------------------------------------------------------
    def housekeeping(self) -> None:
        now_wall, now = time.time(), time.monotonic()
        for wid in list(self.unsaved):
            if wid in self.workers and self.save(self.workers[wid]):
                self.log.info("record_saved", worker=wid, after="the disk had room again")
        for wid, rec in list(self.workers.items()):
            if rec.get("state") not in ("running", "orphaned"):
                continue
            if rec.get("deadline") and now_wall > rec["deadline"] and not rec.get("kill"):
                minutes = (rec.get("budget_s") or 0) / 60
                self.kill_worker(wid, f"time budget of {minutes:g} min exceeded", "timed_out", self.grace, "supervisor")
            due = self.kill_deadlines.get(wid)
            if due is not None and now >= due:
                self.kill_deadlines.pop(wid, None)
                if signal_group(rec.get("pgid"), signal.SIGKILL):
                    self.log.warning("worker_sigkill", worker=wid, reason="still running after the grace period")
        for wid, child in list(self.children.items()):
            if child.poll() is not None and wid not in self.watch_fds and wid not in self.polled:
                self.children.pop(wid, None)

    def scan_outputs(self) -> None:
        for wid, rec in self.workers.items():
            if rec.get("state") in ("running", "orphaned"):
                if "managed" not in rec:
                    self._note_managed(wid, rec)
                self.monitor.scan(rec)
                for kind, data in self.monitor.transitions(rec):
                    self.log.warning(kind, worker=wid, quiet_s=data.get("quiet_s"), repeat=data.get("repeat_count"))
                    self.publish(kind, **data)
                stop = self.monitor.should_stop(rec)
                if stop and not rec.get("kill"):
                    self.kill_worker(wid, stop[0], stop[1], self.grace, "supervisor")

    def _note_managed(self, wid: str, rec: dict) -> None:
        """The worker ended and left children it registered: the task runs on until they end."""
        note = self.registry.managed(wid)
        if note is None:
            return
        rec["managed"] = note
        rec.pop("deadline", None)  # the time budget bounds the agent, not the jobs it registered
        self.save(rec)
        kids = [{"pid": c.get("pid"), "kind": c.get("kind"), "log_path": c.get("log_path")}
                for c in note.get("children") or []]
        self.log.info("worker_managed", worker=wid, worker_exit=note.get("worker_exit"), children=kids)
        self.publish("worker_managed", worker_id=wid, task_id=rec.get("task_id"),
                     worker_exit=note.get("worker_exit"), children=kids)

    def stop_all_workers(self) -> None:
        """`aura down --stop-workers`: SIGTERM every group, wait the grace, SIGKILL the rest."""
        live = [w for w in self.workers.values() if w.get("state") in ("running", "orphaned")]
        for rec in live:
            rec["kill"] = {"requested_at": time.time(), "reason": "aura down --stop-workers", "reason_code": "killed",
                           "by": "supervisor"}
            self.save(rec)
            terminate_worker(rec)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and any(is_alive(r.get("worker_pid"), r.get("worker_create_time")) for r in live):
            time.sleep(0.05)
        for rec in live:
            signal_group(rec.get("pgid"), signal.SIGKILL)
        end = time.monotonic() + 3.0
        for rec in live:  # let each shim write its exit record, then take it in
            while time.monotonic() < end and self.registry.exit(rec["worker_id"]) is None:
                time.sleep(0.02)
            exit_rec = self.registry.exit(rec["worker_id"])
            if exit_rec is not None:
                self.finalize(rec["worker_id"], exit_rec)



