"""Fixtures that run the real daemons in a temporary project and stop every process they
started, by PID (never by name), checking start times so a reused PID is never killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aura.runtime.fsutil import read_json  # noqa: E402
from aura.runtime.paths import DAEMONS, ProjectPaths  # noqa: E402

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

# A free-RAM reserve this machine has (so it passes the start check) but can never meet while anything
# runs: a spawn against it is refused with reserve_short.
UNMET_RAM_RESERVE_GB = round(psutil.virtual_memory().total / 1024 ** 3 * 0.999, 3)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; fail the test with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


class Project:
    """One temporary Aura project with helpers to drive it through the real CLI."""

    def __init__(self, root: Path, home: Path):
        self.root = root
        self.paths = ProjectPaths.for_root(root)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AURA_")}
        self.env.update(FAST_ENV)
        self.env["HOME"] = str(home)
        self.env.pop("XDG_RUNTIME_DIR", None)
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        self.seen: dict[int, float] = {}  # pid -> create time, of every process the test caused

    # -- running the CLI -----------------------------------------------------------------------
    def aura(self, *args: str, check: bool = True, timeout: float = 60.0, input: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "aura.cli", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout, input=input)
        self.remember()
        if check and proc.returncode != 0:
            pytest.fail(f"aura {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def write_task(self, body: str, name: str = "task.md") -> Path:
        path = self.root / name
        path.write_text(body)
        return path

    def up(self, task: str = "task.md", *extra: str) -> subprocess.CompletedProcess:
        return self.aura(*extra, "up", "-d", task)

    def status(self) -> dict:
        proc = self.aura("status", "--json", check=False)
        return json.loads(proc.stdout)

    # -- processes ------------------------------------------------------------------------------
    def pidfile(self, name: str) -> dict:
        return read_json(self.paths.pidfile(name)) or {}

    def daemon_pid(self, name: str) -> int | None:
        rec = self.pidfile(name)
        if rec.get("state") == "running" and _alive(rec.get("pid"), rec.get("create_time")):
            return rec["pid"]
        return None

    def kill9(self, name: str) -> int:
        pid = self.daemon_pid(name)
        assert pid, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not psutil.pid_exists(pid) or _zombie(pid), 10, what=f"{name} pid {pid} to die")
        return pid

    def workers(self) -> dict[str, dict]:
        out = {}
        for d in sorted(self.paths.workers_dir.glob("*")):
            rec = read_json(d / "record.json") or {}
            launch = read_json(d / "launch.json") or {}
            exit_rec = read_json(d / "exit.json")
            if rec:
                out[rec["worker_id"]] = {**launch, **rec, "exit_file": exit_rec}
        return out

    def remember(self) -> None:
        """Note every daemon, shim and worker this project has, to stop them by PID at the end."""
        for name in DAEMONS:
            rec = self.pidfile(name)
            if rec.get("pid"):
                self.seen.setdefault(rec["pid"], rec.get("create_time"))
        for w in self.workers().values():
            for key in ("shim", "worker"):
                if w.get(f"{key}_pid"):
                    self.seen.setdefault(w[f"{key}_pid"], w.get(f"{key}_create_time"))

    def survivors(self) -> list[int]:
        self.remember()
        return [pid for pid, ct in self.seen.items() if _alive(pid, ct)]

    def cleanup(self) -> list[int]:
        """`aura down`, then SIGKILL by PID whatever is left; returns what had to be killed."""
        if any(self.daemon_pid(n) for n in DAEMONS):
            self.aura("down", check=False, timeout=60)
        left = self.survivors()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in left:
            wait_for(lambda: not _alive(pid, self.seen[pid]), 10, what=f"pid {pid} to die")
        return left


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _alive(pid: Any, created: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - float(created)) > 0.05:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def project(tmp_path: Path) -> Any:
    root = tmp_path / "proj"
    root.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    proj = Project(root, home)
    yield proj
    proj.cleanup()


@pytest.fixture
def rig(project: Project, tmp_path: Path) -> Any:
    """The supervisor and the watchdog of `project` as real daemons (see daemon_rig.Rig)."""
    from daemon_rig import Rig  # it imports this module

    r = Rig(project, tmp_path)
    yield r
    r.stop()


@pytest.fixture
def serve() -> Any:
    """Start scripted model servers (aura.scripted_server) for a test; each is stopped after it."""
    from aura.scripted_server import ScriptedServer

    started: list[ScriptedServer] = []

    def start(script: dict) -> ScriptedServer:
        server = ScriptedServer(script).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
