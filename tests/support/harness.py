"""A throwaway Aura project for the bench and the chaos run, driven through the real CLI.

Every process it causes (daemons, shims, workers) is remembered with its start time and,
at the end, stopped by PID, never by name, and never a PID that was reused meanwhile.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import psutil

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aura.runtime.fsutil import read_json  # noqa: E402
from aura.runtime.paths import DAEMONS, ProjectPaths  # noqa: E402
from aura.ipc.client import Client  # noqa: E402

# Settings that make a bench or chaos project react in seconds rather than minutes.
QUICK_ENV = {
    "AURA_CYCLE_INTERVAL": "2",
    "AURA_WORKER_RESOURCE_POLL_SECONDS": "0.5",
    "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS": "2",
    "AURA_WORKER_RESOURCE_VIOLATION_STRIKES": "3",
    "AURA_WORKER_RESOURCE_COOLDOWN_SECONDS": "0",
    "AURA_KILL_GRACE_SECONDS": "1",
    "AURA_LAYER2_BACKEND": "shell",
    "AURA_WORKER_MAX_CPU_PERCENT": "0",
    "AURA_WORKER_MAX_SYSTEM_MEMORY_PERCENT": "0",
    "AURA_TASK_BUDGET": "30",
}


class TimedOut(Exception):
    """A bench step waited longer than it allows; the message names what it waited for."""


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy; TimedOut naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimedOut(f"timed out after {timeout:g}s waiting for {what}")
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
        """SIGKILL every remembered process still alive; returns the PIDs that had to be killed."""
        left = self.survivors()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(alive(p, self.seen[p]) for p in left):
            time.sleep(0.02)
        return left


class BenchProject:
    """One temporary Aura project: `up` through the CLI, clients to its daemons, cleanup by PID."""

    def __init__(self, env: dict[str, str] | None = None, root: Path | None = None, keep: bool = False):
        self._tmp = Path(tempfile.mkdtemp(prefix="aura-bench-")) if root is None else None
        base = self._tmp or Path(root)  # type: ignore[arg-type]
        self.root = base / "proj"
        self.root.mkdir(parents=True, exist_ok=True)
        home = base / "home"
        home.mkdir(exist_ok=True)
        self.paths = ProjectPaths.for_root(self.root)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AURA_")}
        self.env.update(QUICK_ENV)
        self.env.update(env or {})
        self.env["HOME"] = str(home)
        self.env.pop("XDG_RUNTIME_DIR", None)
        self.env["PYTHONPATH"] = str(REPO)
        self.keep = keep
        self.pids = PidBook()
        self.clients: list[Client] = []

    # -- the CLI ------------------------------------------------------------------------------
    def aura_argv(self, *args: str) -> list[str]:
        return [*entry_point("aura"), *args]

    def aura(self, *args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.aura_argv(*args), cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        self.remember()
        if check and proc.returncode != 0:
            raise RuntimeError(f"aura {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def write_task(self, body: str, name: str = "task.md") -> Path:
        """Replace the task file atomically, so the brain never reads half of an edit."""
        path = self.root / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(body)
        os.replace(tmp, path)
        return path

    def up(self, task: str = "task.md") -> None:
        self.aura("up", "-d", task)

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

    def remember(self) -> None:
        """Note every daemon, shim and worker of this project, to stop them by PID at the end."""
        for name in DAEMONS:
            rec = self.pidfile(name)
            self.pids.add(rec.get("pid"), rec.get("create_time"))
        for wdir in self.worker_dirs():
            launch = read_json(wdir / "launch.json") or {}
            for key in ("shim", "worker"):
                self.pids.add(launch.get(f"{key}_pid"), launch.get(f"{key}_create_time"))

    # -- the end -------------------------------------------------------------------------------------
    def cleanup(self) -> list[int]:
        """`aura down`, then SIGKILL by PID what is left; returns the PIDs that had to be killed."""
        for c in self.clients:
            c.close()
        self.remember()
        if any(self.daemon_pid(n) for n in DAEMONS):
            try:
                self.aura("down", check=False, timeout=90)
            except subprocess.TimeoutExpired:
                pass
        left = self.pids.kill_survivors()
        shutil.rmtree(self.paths.runtime_dir, ignore_errors=True)  # this project's own socket folder
        if self._tmp is not None and not self.keep:
            shutil.rmtree(self._tmp, ignore_errors=True)
        return left

    def __enter__(self) -> "BenchProject":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()
