"""spawn: start a worker under its shim; the reply comes once the shim reports it running.

Request: {worker_id: str = "<task_id>-<6 hex>", task_id: str = "", backend: str = AURA_LAYER2_BACKEND,
          argv: [str], command: str, prompt: str, cwd: str, task_dir: str, env: {str: str},
          budget_s: float = AURA_TASK_BUDGET * 60, max_turns: int, model: str, max_budget_usd: float,
          resume_session: str, isolation: str, mounts: [str], limits: {str: any}, meta: {str: any},
          executor: str = AURA_EXECUTOR}
Reply: {worker_id: str, task_id: str, state: str, worker_pid: int, ..., existing: true}

The reply is the worker's record as `get` returns it, with `existing` when the id was already known.

Errors: bad_args; spawn_failed (the backend cannot run it, the disk is full); spawn_refused and
reserve_short (the watchdog's preflight: never, or not now).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from aura.ipc.envelope import RESERVE_SHORT, BadArgs, IpcError
from aura.ipc.server import Deferred
from aura.runtime.ops import Arg, operation
from aura.runtime.paths import safe_name

from ..backends import BackendError, get_backend, plan_worker
from ..starting import SPAWN_FAILED

EXECUTORS = ("local", "slurm")

if TYPE_CHECKING:
    from ..main import SupervisorDaemon

ARGS = (
    Arg("task_id", str, ""),
    Arg("worker_id", str, ""),
    Arg("backend", str, None),
    Arg("task_dir", str, ""),
    Arg("cwd", str, ""),
    Arg("env", dict, None),
    Arg("budget_s", float, None),
    Arg("argv", list, None),
    Arg("command", str, None),
    Arg("prompt", str, None),
    Arg("max_turns", int, None),
    Arg("model", str, None),
    Arg("max_budget_usd", float, None),
    Arg("resume_session", str, None),
    Arg("isolation", str, None),
    Arg("mounts", list, None),
    Arg("limits", dict, None),
    Arg("meta", dict, None),
    Arg("executor", str, None),
)


@operation("spawn", "supervisor", *ARGS)
def spawn(sup: SupervisorDaemon, args: dict) -> dict | Deferred:
    task_id = args["task_id"]
    wid = args["worker_id"] or new_worker_id(task_id)
    if safe_name(wid) != wid:
        raise BadArgs(f"worker_id {wid!r} may hold only letters, digits, '.', '_' and '-'")
    existing = sup.workers.find(wid)
    if existing is not None:
        return {**sup.public(existing), "existing": True}
    spec = worker_spec(sup, args, wid, task_id)
    try:
        plan = plan_worker(get_backend(spec["backend"]), spec, sup.cfg)
    except BackendError as exc:
        raise IpcError(SPAWN_FAILED, str(exc)) from None
    executor = sup.executor.select(spec["executor"])
    not_ready = executor.ready()
    if not_ready:  # the same spawn may pass later: the brain waits, and no attempt is spent
        raise IpcError(RESERVE_SHORT, f"the {executor.name} executor cannot take a worker now: {not_ready}")
    if not executor.on_this_machine:  # the cluster's scheduler places it; this machine's reserves are not its node's
        return sup.starter.start(wid, spec, plan, 0.0)
    return sup.spawns.add(wid, spec, plan)  # preflighted with the spawns of its round (spawnbatch.py)


def new_worker_id(task_id: str) -> str:
    base = safe_name(task_id) if task_id else "w"
    return f"{base}-{uuid.uuid4().hex[:6]}"


def worker_spec(sup: SupervisorDaemon, args: dict, wid: str, task_id: str) -> dict:
    """The request with the configuration's defaults filled in: what the backend plans from."""
    extra_env = args["env"] or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in extra_env.items()):
        raise BadArgs("`env` must map strings to strings")
    budget_s = args["budget_s"] if args["budget_s"] is not None else sup.cfg.number("AURA_TASK_BUDGET") * 60
    if budget_s < 0:
        raise BadArgs("`budget_s` must not be negative")
    backend = args["backend"] if args["backend"] is not None else sup.cfg.text("AURA_LAYER2_BACKEND")
    executor = args["executor"] or sup.cfg.text("AURA_EXECUTOR")
    if executor not in EXECUTORS:
        raise BadArgs(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    return {
        "executor": executor,
        "worker_id": wid,
        "task_id": task_id,
        "backend": backend,
        "task_dir": str(Path(args["task_dir"] or sup.paths.task_dir(task_id or wid))),
        "cwd": args["cwd"] or None,
        "argv": args["argv"],
        "command": args["command"],
        "prompt": args["prompt"],
        "env": extra_env,
        "budget_s": budget_s,
        "max_turns": args["max_turns"],
        "model": args["model"],
        "max_budget_usd": args["max_budget_usd"],
        "resume_session": args["resume_session"],
        "isolation": args["isolation"],
        "mounts": args["mounts"] or [],
        "project_root": str(sup.paths.root),
        "data_dir": str(sup.paths.data),
        "limits": args["limits"] or {},
        "meta": args["meta"] or {},
    }
