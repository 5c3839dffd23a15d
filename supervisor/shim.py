"""The shim between the supervisor and one worker.

It starts the worker in a session of its own, writes its start report (`launch.json`), waits for
it, stops whatever the worker left running in its group, and writes `exit.json` atomically. Children the
worker registered in its task folder's `process.json` (supervisor/jobs.py) are kept: the shim
writes `managed.json` and waits for them before it writes `exit.json`, so the task stays running
until they end. A SIGTERM to the shim (a kill) stops the worker and every descendant. The shim
outlives the supervisor on purpose (no parent-death signal): a worker that ends while the
supervisor is down still gets its exit record. The worker's output goes to files that the
shim opened, never to a pipe that a dead supervisor could break.

    python -m aura.supervisor.shim --dir WORKER_DIR --cwd CWD --stdout FILE --stderr FILE
                              [--task-dir DIR] [--status-fd N] [--grace S] [--sample-every S] -- ARGV...

With `--sample-every S` (a worker on another node: a Slurm job) the shim also samples its worker's
tree every S seconds into `usage.json` for the watchdog (supervisor/nodesample.py).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path


def _load_aura() -> None:
    """Make `aura` and `aura.supervisor` importable without site-packages.

    The shim runs as a script under `python -I -S` (a fast start; nothing of Aura's leaks into the
    worker's environment): -I leaves the script's folder off sys.path and -S leaves out the editable
    install's import mapping. So the shim puts the folder holding the `aura` package on its path
    (site-packages in a regular install, the checkout otherwise) and, in a checkout, where this
    folder is `supervisor/` beside `aura/`, maps it to `aura.supervisor` itself (pyproject.toml's
    package-dir does the same for an installed Aura)."""
    here = Path(__file__).resolve().parent
    root = next(p for p in here.parents if (p / "aura" / "__init__.py").is_file())
    sys.path.insert(0, str(root))
    if here.parent != root / "aura":
        import importlib.util

        spec = importlib.util.spec_from_file_location(
            "aura.supervisor", here / "__init__.py", submodule_search_locations=[str(here)]
        )
        assert spec is not None and spec.loader is not None
        sys.modules[spec.name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_load_aura()
from aura.runtime.exitfile import has_exit  # noqa: E402
from aura.runtime.fsutil import atomic_write_json, disk_full, open_private, sync_file  # noqa: E402
from aura.runtime.pidfile import start_time  # noqa: E402
from aura.runtime.procgroup import group_alive as _group_alive  # noqa: E402
from aura.runtime.proctitle import libc, set_process_name  # noqa: E402
from aura.supervisor import exitrecord, jobs  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Orphaned grandchildren get reparented to us, so we can reap and stop them (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _tell(status_fd: int | None, message: dict) -> None:
    """Report the start to the supervisor; it may be gone already, which is fine."""
    if status_fd is None:
        return
    try:
        os.write(status_fd, (json.dumps(message) + "\n").encode())
    except OSError:
        pass
    try:
        os.close(status_fd)
    except OSError:
        pass


def _wait_for(pid: int) -> int:
    """Wait for `pid`, reaping any adopted orphans along the way; returns the raw wait status."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if got == pid:
            return status


def _reap_all() -> None:
    while True:
        try:
            got, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if got == 0:
            return


def _children_map(root: int) -> dict[int, list[int]]:
    """pid -> children for `root`'s whole tree (the worker's and the orphans we adopted)."""
    out: dict[int, list[int]] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        kids: list[int] = []
        task_dir = f"/proc/{pid}/task"
        try:
            tids = os.listdir(task_dir)
        except OSError:
            tids = []
        for tid in tids:
            try:
                with open(f"{task_dir}/{tid}/children", "rb") as fh:
                    kids.extend(int(x) for x in fh.read().split())
            except (OSError, ValueError):
                continue
        if not tids:
            try:
                import psutil

                kids = [c.pid for c in psutil.Process(pid).children()]
            except Exception:
                kids = []
        out[pid] = kids
        todo.extend(k for k in kids if k not in out)
    return out


def _descendants() -> set[int]:
    """Every process under the shim: the worker's tree and the orphans adopted as subreaper."""
    me = os.getpid()
    return jobs.subtrees([me], _children_map(me)) - {me}


def keep_registered(task_dir: Path | None) -> tuple[list[jobs.RegisteredJob], set[int], list[dict]]:
    """The registered children to keep after the worker's exit, their whole subtrees, and the
    entries not kept (said in exit.json, so a wrong pid in process.json is not a silent kill)."""
    registered = jobs.read_registered(task_dir) if task_dir is not None else []
    if not registered:
        return [], set(), []
    children = _children_map(os.getpid())
    kept = jobs.keep(registered, _descendants(), start_time)
    refused = [
        {"pid": r.pid, "kind": r.kind, "why": "not a live descendant of the worker started at that time"}
        for r in registered
        if all(k.pid != r.pid for k in kept)
    ]
    return kept, jobs.subtrees([k.pid for k in kept], children), refused


def stop_unregistered(kept_tree: set[int], grace: float) -> int:
    """Stop what the worker left behind except the kept subtrees: one by one, not by group,
    since a kept child may share the worker's group."""
    left = sorted(_descendants() - kept_tree)
    jobs.signal_pids(left, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _descendants() - kept_tree:
        _reap_all()
        time.sleep(0.05)
    jobs.signal_pids(_descendants() - kept_tree, signal.SIGKILL)
    _reap_all()
    return len(left)


def wait_for_kept(kept: list[jobs.RegisteredJob], stop: StopRequest, grace: float) -> dict[int, dict]:
    """Reap until no descendant is left; a stop request ends them (TERM, then KILL after `grace`).
    Returns the exit of each kept child that ended as our child (reparented to us)."""
    ends: dict[int, dict] = {}
    wanted = {k.pid for k in kept}
    killed_at: float | None = None
    while True:
        if stop.requested and killed_at is None:
            killed_at = time.monotonic()
            jobs.signal_pids(_descendants(), signal.SIGTERM)
        if killed_at is not None and time.monotonic() - killed_at > grace:
            jobs.signal_pids(_descendants(), signal.SIGKILL)
        try:
            got, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ends
        if got == 0:
            time.sleep(0.2)
            continue
        if got in wanted:
            ends[got] = {**_exit_fields(status), "ended_at": time.time()}


def _exit_fields(status: int) -> dict:
    code = os.waitstatus_to_exitcode(status)
    return {"exit_code": code if code >= 0 else None, "signal": -code if code < 0 else None}


class StopRequest:
    """Set by SIGTERM: the worker is being killed, so nothing of it is kept."""

    def __init__(self) -> None:
        self.requested = False


def _forward_term(pgid: int) -> StopRequest:
    """From now on a SIGTERM to the shim goes to the worker's group and marks the stop requested."""
    stop = StopRequest()

    def forward(signum: int, _frame: object) -> None:
        stop.requested = True
        try:
            os.killpg(pgid, signum)
        except OSError:
            pass

    signal.signal(signal.SIGTERM, forward)
    return stop


def stop_leftovers(pgid: int, grace: float) -> int:
    """Stop what the worker left behind: its process group, then every other descendant."""
    left = 0
    if _group_alive(pgid):
        left += 1
        try:
            os.killpg(pgid, signal.SIGTERM)
        except OSError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(pgid):
            _reap_all()
            time.sleep(0.05)
        if _group_alive(pgid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
    left += jobs.signal_pids(_descendants(), signal.SIGKILL)  # orphans we adopted, and theirs
    _reap_all()
    return left


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aura.supervisor.shim")
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--cwd", required=True)
    parser.add_argument("--stdout", required=True)
    parser.add_argument("--stderr", required=True)
    parser.add_argument("--task-dir", type=Path, default=None)
    parser.add_argument("--status-fd", type=int, default=None)
    parser.add_argument("--grace", type=float, default=3.0)
    parser.add_argument("--sample-every", type=float, default=0.0)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run(args, args.argv[1:] if args.argv[:1] == ["--"] else args.argv)


def forked(options: dict, status_fd: int, env: dict[str, str]) -> int:
    """A shim forked by the fork server: its options as the supervisor's `shim_args` names them,
    already parsed (argparse would fault in pages that the fork server's shims otherwise share)."""
    args = argparse.Namespace(
        dir=Path(options["dir"]),
        cwd=str(options["cwd"]),
        stdout=str(options["stdout"]),
        stderr=str(options["stderr"]),
        task_dir=Path(options["task_dir"]) if options.get("task_dir") else None,
        status_fd=status_fd,
        grace=float(options["grace"]),
        sample_every=0.0,
    )
    return run(args, [str(a) for a in options["argv"]], env)


def run(args: argparse.Namespace, cmd: list[str], env: dict[str, str] | None = None) -> int:
    """Start the worker `cmd`, report, wait, record its exit; `env` is the worker's environment
    (None: the shim's own, which a shim started for the worker has)."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    subreaper = become_subreaper()
    set_process_name("aura-shim")  # a worker's `pkill python` must not take its own exit record with it
    started = time.time()
    if _started_before(args.dir):
        return _refuse_second_start(args, started)
    try:
        exitrecord.reserve(args.dir)  # no room for the exit record: the worker is not started at all
    except OSError as exc:
        return _start_failed(args, _record_error(exc, args.dir, "no room for its exit record"), started)
    try:
        out = os.fdopen(open_private(Path(args.stdout), append=False), "wb")  # in the private data folder
        err = os.fdopen(open_private(Path(args.stderr), append=False), "wb")
        proc = subprocess.Popen(
            cmd,
            cwd=args.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )
    except (OSError, ValueError) as exc:
        return _start_failed(args, _start_error(exc, cmd, args.cwd, args.dir), started)
    out.close()
    err.close()
    pid = proc.pid
    stop = _forward_term(pid)
    report = {
        "worker_pid": pid,
        "worker_create_time": start_time(pid),
        "pgid": pid,
        "shim_pid": os.getpid(),
        "shim_create_time": start_time(os.getpid()),
        "started_at": started,
        "subreaper": subreaper,
        "host": os.uname().nodename,  # a cluster job's node
    }
    try:
        atomic_write_json(args.dir / "launch.json", report, sync=False)
    except OSError as exc:  # a worker nobody could re-adopt must not run: stop it, and say why
        _kill_unrecorded(pid)
        return _start_failed(args, _record_error(exc, args.dir, "no room for its launch record"), started)
    _tell(args.status_fd, {"ok": True, **report})
    exitrecord.sync_reserve(args.dir)
    sync_file(args.dir / "launch.json")  # renamed into place already; durable now, after the supervisor heard
    sampling = _start_sampling(args.dir, args.sample_every)
    status = _wait_for(pid)
    return finish(args, pid, status, started, time.time(), stop, sampling)


def finish(
    args: argparse.Namespace,
    pid: int,
    status: int,
    started: float,
    ended: float,
    stop: StopRequest,
    sampling: threading.Event | None = None,
) -> int:
    """The worker `pid` ended with wait status `status`: keep the children it registered, stop the
    rest, and write the exit record; the shim's exit status."""
    worker_exit = _exit_fields(status)
    kept, kept_tree, refused = ([], set(), []) if stop.requested else keep_registered(args.task_dir)
    record: dict = {**worker_exit, "started_at": started}
    if refused:
        record["registered_not_kept"] = refused
    if kept:
        stopped = stop_unregistered(kept_tree, args.grace)
        try:
            atomic_write_json(
                args.dir / "managed.json", {"since": ended, "worker_exit": worker_exit, "children": jobs.describe(kept)}
            )
        except OSError:  # a full disk: the supervisor learns of the kept children from exit.json
            pass
        ends = wait_for_kept(kept, stop, args.grace)
        record["managed"] = {
            "worker_ended_at": ended,
            "stopped_by_request": stop.requested,
            "children": [{**c, **ends.get(c["pid"], {})} for c in jobs.describe(kept)],
        }
        leftovers = stopped + stop_leftovers(pid, args.grace)
    else:
        leftovers = stop_leftovers(pid, args.grace)
    if sampling is not None:
        sampling.set()
    finished = time.time()
    record.update(ended_at=finished, duration_s=round(finished - started, 3), leftovers_stopped=leftovers)
    try:
        exitrecord.write(args.dir, record)
    except OSError:  # nowhere to write it: our own exit status carries the worker's to the supervisor
        return exitrecord.encode(worker_exit["exit_code"], worker_exit["signal"])
    return 0


def _started_before(folder: Path) -> bool:
    """Did a shim already start this worker here? (a cluster job that its scheduler ran again)"""
    try:
        earlier = json.loads((folder / "launch.json").read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(earlier, dict) and bool(earlier.get("worker_pid"))


def _refuse_second_start(args: argparse.Namespace, started: float) -> int:
    """A worker runs at most once: the earlier start's records stand; an exit record is added only
    where the earlier shim never wrote one (its node died under it)."""
    if not has_exit(args.dir):
        restarts = os.environ.get("SLURM_RESTART_COUNT", "")
        why = "this worker was started before in this folder" + (f" (Slurm restart {restarts})" if restarts else "")
        record = {"exit_code": None, "signal": None, "started_at": started, "ended_at": time.time()}
        try:
            exitrecord.write(args.dir, {**record, "error": f"{why}; not run a second time"})
        except OSError:
            pass
    _tell(args.status_fd, {"ok": False, "error": "started before; not run a second time"})
    return 127


def _start_sampling(folder: Path, every: float) -> threading.Event | None:
    """The node-side sampler, for as long as the worker (and the jobs it registered) run."""
    if not every > 0:
        return None
    from aura.supervisor.nodesample import NodeSampler

    return NodeSampler(folder, every).start()


def _start_failed(args: argparse.Namespace, reason: str, started: float) -> int:
    """Record and report a worker that was not started; on a full disk the report is what gets through."""
    for write in (
        lambda: atomic_write_json(
            args.dir / "launch.json", {"error": reason, "shim_pid": os.getpid(), "started_at": started}
        ),
        lambda: exitrecord.write(
            args.dir,
            {"exit_code": None, "signal": None, "error": reason, "started_at": started, "ended_at": time.time()},
        ),
    ):
        try:
            write()
        except OSError:
            pass
    _tell(args.status_fd, {"ok": False, "error": reason})
    return 127


def _kill_unrecorded(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    _wait_for(pid)
    stop_leftovers(pid, 0.0)


def _record_error(exc: OSError, folder: Path, what: str) -> str:
    if disk_full(exc):
        return "could not start the worker: " + exitrecord.disk_message(folder, what)
    return f"could not start the worker: cannot write its records in {folder}: {exc}"


def _start_error(exc: BaseException, cmd: list[str], cwd: str, folder: Path) -> str:
    exe = cmd[0] if cmd else "(empty command)"
    if disk_full(exc):
        filename = getattr(exc, "filename", None)
        where = Path(filename).parent if isinstance(filename, str) else folder
        return "could not start the worker: " + exitrecord.disk_message(where, "no room for its output files")
    if isinstance(exc, FileNotFoundError) and getattr(exc, "filename", None) == cwd:
        return f"working folder not found: {cwd}"
    if isinstance(exc, FileNotFoundError):
        return f"executable not found: {exe}"
    if isinstance(exc, PermissionError):
        return f"executable not permitted: {exe}"
    if isinstance(exc, OSError) and exc.errno == errno.ENOEXEC:
        return f"not an executable format: {exe}"
    return f"could not start {exe}: {exc}"


# -- what the native shim (supervisor/nativeshim.c) hands over by exec, keeping its pid and children --


def after_exit(mode: list[str], argv: list[str]) -> int:
    """The worker ended and its task folder names children it registered: keep them, as `run` does.
    The native shim blocked SIGTERM across the exec; it is taken again once it is forwarded."""
    named = dict(zip(mode[::2], mode[1::2], strict=True))
    args = parser().parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    set_process_name("aura-shim")
    pid = int(named["--worker-pid"])
    stop = _forward_term(pid)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    started, ended = float(named["--started-at"]), float(named["--ended-at"])
    return finish(args, pid, int(named["--wait-status"]), started, ended, stop)


def write_exit(record: str, argv: list[str]) -> int:
    """Write the exit record the native shim could not (its reserve gone and the disk full), or
    carry the worker's exit in the shim's exit status."""
    args = parser().parse_args(argv)
    data = json.loads(record)
    try:
        exitrecord.write(args.dir, data)
    except OSError:
        return exitrecord.encode(data.get("exit_code"), data.get("signal"))
    return 0


def launch_not_written(errno_text: str, argv: list[str]) -> int:
    """The native shim could not write `launch.json` and stopped the worker: record why, and say so."""
    args = parser().parse_args(argv)
    code = int(errno_text)
    exc = OSError(code, os.strerror(code), str(args.dir / "launch.json"))
    return _start_failed(args, _record_error(exc, args.dir, "no room for its launch record"), time.time())


# the native shim's hand-overs: mode -> (how many values follow it, what takes them and the shim's options)
NATIVE_HANDOVERS: dict[str, tuple[int, Callable[[list[str], list[str]], int]]] = {
    "--after-exit": (8, after_exit),
    "--write-exit": (1, lambda values, argv: write_exit(values[0], argv)),
    "--launch-errno": (1, lambda values, argv: launch_not_written(values[0], argv)),
}


def entry(argv: list[str]) -> int:
    """A shim, or the native shim's hand-over (NATIVE_HANDOVERS)."""
    if argv and argv[0] in NATIVE_HANDOVERS:
        count, take = NATIVE_HANDOVERS[argv[0]]
        return take(argv[1 : 1 + count], argv[1 + count :])
    return main(argv)


if __name__ == "__main__":
    sys.exit(entry(sys.argv[1:]))
