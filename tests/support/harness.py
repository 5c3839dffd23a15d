"""A throwaway Aura project driven through the real CLI: the one harness of the tests and the bench.

Every process it causes (daemons, shims, workers) is remembered with its start time and, at the
end, stopped by PID, never by name, and never a PID that was reused meanwhile.

It imports no pytest, so that `python bench/run.py` and `python bench/chaos.py` use it as it is: a
wait that times out or a command that fails raises an AssertionError subclass, which pytest
reports as a test failure and the bench catches by name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aura.ipc.client import Client  # noqa: E402
from aura.runtime.fsutil import read_json  # noqa: E402
from aura.runtime.paths import DAEMONS, ProjectPaths  # noqa: E402

# Settings that make a test project react in fractions of a second.
FAST_ENV = {
    "AURA_CYCLE_INTERVAL": "2",
    "AURA_WORKER_RESOURCE_POLL_SECONDS": "0.2",
    "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS": "1",
    "AURA_WORKER_RESOURCE_VIOLATION_STRIKES": "3",
    "AURA_WORKER_RESOURCE_COOLDOWN_SECONDS": "0",
    "AURA_KILL_GRACE_SECONDS": "1",
    "AURA_LAYER2_BACKEND": "shell",
    "AURA_WORKER_MAX_CPU_PERCENT": "0",
    "AURA_WORKER_MAX_SYSTEM_MEMORY_PERCENT": "0",
}

# Settings that make a bench or chaos project react in seconds, with a poll a measurement can afford.
QUICK_ENV = {
    **FAST_ENV,
    "AURA_WORKER_RESOURCE_POLL_SECONDS": "0.5",
    "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS": "2",
    "AURA_TASK_BUDGET": "30",
}


class TimedOut(AssertionError):
    """A wait lasted longer than it allows; the message names what it waited for."""


class CommandFailed(AssertionError):
    """An `aura` command that had to succeed exited non-zero; the message holds its output."""


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "", interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy, and return that; TimedOut naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimedOut(f"timed out after {timeout:g}s waiting for {what or predicate}")
        time.sleep(interval)


def alive(pid: Any, created: Any) -> bool:
    """True when `pid` runs, is not a zombie and (when known) started at `created`."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - float(created)) > 0.05:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie counts: it no longer runs)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def entry_point(name: str) -> list[str]:
    """The console script `name` next to this interpreter (what a user types), else `python -m`."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "aura.cli"]


class PidBook:
    """PIDs with their start times, of every process a run caused, to stop them by PID at the end."""

    def __init__(self) -> None:
        self.seen: dict[int, float | None] = {}

    def add(self, pid: Any, created: Any) -> None:
        if isinstance(pid, int) and pid > 0:
            self.seen.setdefault(pid, created)

    def add_tree(self, pid: int) -> None:
        """A process and all its descendants, as they are now."""
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for proc in procs:
            try:
                self.add(proc.pid, proc.create_time())
            except psutil.NoSuchProcess:
                continue

    def survivors(self) -> list[int]:
        return [pid for pid, created in self.seen.items() if alive(pid, created)]

    def kill_survivors(self, timeout: float = 10.0) -> list[int]:
        """SIGKILL every remembered process still alive; returns the PIDs that had to be killed.

        Raises TimedOut when one of them still runs after `timeout` seconds."""
        left = self.survivors()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in left:
            wait_for(lambda pid=pid: not alive(pid, self.seen[pid]), timeout, what=f"pid {pid} to die", interval=0.02)
        return left


class Project:
    """One temporary Aura project: the real CLI in its folder, clients to its daemons, cleanup by PID.

    The tests make one per test with FAST_ENV and `python -m aura.cli`; the bench makes one with
    `Project.temporary()`: QUICK_ENV and the `aura` console script, as a user runs it.
    """

    def __init__(
        self,
        root: Path,
        home: Path,
        env: Mapping[str, str] | None = None,
        *,
        base_env: Mapping[str, str] = FAST_ENV,
        command: Sequence[str] | None = None,
    ):
        self.root = root
        self.paths = ProjectPaths.for_root(root)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AURA_")}
        self.env.update(base_env)
        self.env.update(env or {})
        self.env["HOME"] = str(home)
        self.env.pop("XDG_RUNTIME_DIR", None)
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        self.command = list(command or [sys.executable, "-m", "aura.cli"])
        self.pids = PidBook()
        self.seen = self.pids.seen  # pid -> create time, of every process the project caused
        self.clients: list[Client] = []
        self.owned: Path | None = None  # a temporary folder that cleanup() removes
        self.keep = False

    @classmethod
    def temporary(cls, env: Mapping[str, str] | None = None, root: Path | None = None, keep: bool = False) -> Project:
        """A bench project in a new temporary folder (or under `root`); `keep` leaves the folder."""
        owned = Path(tempfile.mkdtemp(prefix="aura-bench-")) if root is None else None
        base = owned or Path(root)  # type: ignore[arg-type]
        (base / "proj").mkdir(parents=True, exist_ok=True)
        (base / "home").mkdir(exist_ok=True)
        project = cls(base / "proj", base / "home", env, base_env=QUICK_ENV, command=entry_point("aura"))
        project.owned = owned
        project.keep = keep
        return project

    # -- the CLI ------------------------------------------------------------------------------
    def aura_argv(self, *args: str) -> list[str]:
        return [*self.command, *args]

    def aura(
        self, *args: str, check: bool = True, timeout: float = 60.0, input: str | None = None
    ) -> subprocess.CompletedProcess:
        stdin = None if input is not None else subprocess.DEVNULL
        proc = subprocess.run(
            self.aura_argv(*args),
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=stdin,
        )
        self.remember()
        if check and proc.returncode != 0:
            raise CommandFailed(
                f"aura {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def write_task(self, body: str, name: str = "task.md") -> Path:
        """Replace the task file atomically, so the brain never reads half of an edit."""
        path = self.root / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(body)
        os.replace(tmp, path)
        return path

    def up(self, task: str = "task.md", *extra: str) -> subprocess.CompletedProcess:
        return self.aura(*extra, "up", "-d", task)

    def status(self) -> dict:
        return json.loads(self.aura("status", "--json", check=False).stdout)

    # -- the daemons ----------------------------------------------------------------------------
    def pidfile(self, name: str) -> dict:
        rec = read_json(self.paths.pidfile(name))
        return rec if isinstance(rec, dict) else {}

    def daemon_pid(self, name: str) -> int | None:
        rec = self.pidfile(name)
        if rec.get("state") == "running" and alive(rec.get("pid"), rec.get("create_time")):
            self.pids.add(rec["pid"], rec.get("create_time"))
            return rec["pid"]
        return None

    def all_up(self) -> dict[str, int] | None:
        pids = {n: self.daemon_pid(n) for n in DAEMONS}
        return pids if all(pids.values()) else None  # type: ignore[return-value]

    def kill9(self, name: str) -> int:
        pid = self.daemon_pid(name)
        assert pid, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: gone(pid), 10, what=f"{name} pid {pid} to die")
        return pid

    def client(self, name: str, timeout: float = 5.0) -> Client:
        c = Client(self.paths.endpoint(name), name, timeout=timeout, retries=0)
        self.clients.append(c)
        return c

    # -- workers ----------------------------------------------------------------------------------
    def worker_dirs(self) -> list[Path]:
        try:
            return sorted(p for p in self.paths.workers_dir.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def workers(self) -> dict[str, dict]:
        """worker id -> its shim's start report and its record merged, with its exit record as `exit_file`."""
        out = {}
        for d in self.worker_dirs():
            rec = _record(d / "record.json")
            if rec:
                out[rec["worker_id"]] = {**_record(d / "launch.json"), **rec, "exit_file": read_json(d / "exit.json")}
        return out

    def remember(self) -> None:
        """Note every daemon, shim and worker of this project, to stop them by PID at the end."""
        for name in DAEMONS:
            rec = self.pidfile(name)
            self.pids.add(rec.get("pid"), rec.get("create_time"))
        for wdir in self.worker_dirs():
            info = {**_record(wdir / "launch.json"), **_record(wdir / "record.json")}
            for key in ("shim", "worker"):
                self.pids.add(info.get(f"{key}_pid"), info.get(f"{key}_create_time"))

    def survivors(self) -> list[int]:
        self.remember()
        return self.pids.survivors()

    # -- the end -------------------------------------------------------------------------------------
    def cleanup(self) -> list[int]:
        """`aura down`, then SIGKILL by PID what is left; returns the PIDs that had to be killed."""
        for c in self.clients:
            c.close()
        self.clients.clear()
        self.remember()
        if any(self.daemon_pid(n) for n in DAEMONS):
            try:
                self.aura("down", check=False, timeout=90)
            except subprocess.TimeoutExpired:
                pass
        left = self.pids.kill_survivors()
        shutil.rmtree(self.paths.runtime_dir, ignore_errors=True)  # this project's own socket folder
        if self.owned is not None and not self.keep:
            shutil.rmtree(self.owned, ignore_errors=True)
        return left

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()


def _record(path: Path) -> dict:
    rec = read_json(path)
    return rec if isinstance(rec, dict) else {}


def run_in(project: Project, data: Path) -> Project:
    """The same project folder, seen through another data folder (AURA_DATA_DIR)."""
    other = Project(project.root, Path(project.env["HOME"]))
    other.env = dict(project.env, AURA_DATA_DIR=str(data))
    other.paths = ProjectPaths.for_root(project.root, data)
    return other
