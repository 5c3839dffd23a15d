"""Helpers for the worker tests: a real supervisor daemon alone in a temporary project (spawn, kill,
list through its IPC), and stand-in CLIs that replay recorded output of CLIs not installable here.

Every process is recorded in the Project (tests/support/harness.py), whose cleanup stops them by PID."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from aura.control import call
from aura.runtime.fsutil import read_json, read_jsonl
from tests.support.harness import Project, wait_for

FIXTURES = Path(__file__).parents[1] / "fixtures"

# Prints a recorded output file line by line (with <TASK> replaced by the task folder), records its
# argv, cwd, stdin and some variables, optionally writes result.md, lingers, and exits as told.
REPLAY_SCRIPT = """#!{python}
import json, os, sys, time
task = os.environ.get("AURA_TASK_DIR", "")
record = os.environ.get("REPLAY_RECORD")
if record:
    keep = ("DEEPSEEK_", "DS_CODE_", "OPENAI_", "AURA_TASK", "SECRET_")
    json.dump({{"argv": sys.argv, "cwd": os.getcwd(), "stdin": sys.stdin.read(),
               "env": {{k: v for k, v in os.environ.items() if k.startswith(keep)}}}}, open(record, "w"))
for line in open(os.environ["REPLAY_FILE"]):
    sys.stdout.write(line.replace("<TASK>", task))
    sys.stdout.flush()
    time.sleep(float(os.environ.get("REPLAY_DELAY", "0")))
if os.environ.get("REPLAY_RESULT_MD"):
    open(os.path.join(task, "result.md"), "w").write(os.environ["REPLAY_RESULT_MD"])
time.sleep(float(os.environ.get("REPLAY_LINGER", "0")))
sys.exit(int(os.environ.get("REPLAY_EXIT", "0")))
"""


def write_replay_cli(folder: Path, name: str) -> Path:
    """An executable stand-in for CLI `name` (opencode, codex, ds-code) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(REPLAY_SCRIPT.format(python=sys.executable))
    path.chmod(0o755)
    return path


class Supervisor:
    """The supervisor daemon of `project`, started alone (--managed: it restarts no peers)."""

    def __init__(self, project: Project):
        self.project = project
        self.proc: subprocess.Popen | None = None

    def start(self) -> Supervisor:
        paths = self.project.paths
        paths.ensure()
        log = open(self.project.root / "supervisor.stdio", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aura.daemon", "supervisor", "--project", str(self.project.root), "--managed"],
            cwd=self.project.root,
            env=self.project.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.project.seen[self.proc.pid] = None
        wait_for(self._answers, 20, what="the supervisor to answer")
        self.project.remember()
        return self

    def _answers(self) -> bool:
        try:
            return bool(self.call("ping", timeout=1.0))
        except Exception:
            return False

    def call(self, op: str, args: dict | None = None, timeout: float = 5.0) -> Any:
        return call(self.project.paths, "supervisor", op, args, timeout=timeout)

    def spawn(self, **args: Any) -> dict:
        rec = self.call("spawn", args, timeout=25.0)
        self.project.remember()
        return rec

    def get(self, wid: str) -> dict:
        return self.call("get", {"worker_id": wid})

    def wait_exited(self, wid: str, timeout: float = 60.0) -> dict:
        """The worker's record once it says exited and its `worker_exited` event is journaled (the
        supervisor marks a burst of ends before it announces them: supervisor/exits.py)."""
        rec = wait_for(
            lambda: (w := self.get(wid)).get("state") == "exited" and w, timeout, what=f"worker {wid} to exit"
        )
        wait_for(
            lambda: any(e["data"].get("worker_id") == wid for e in self.events("worker_exited")),
            timeout,
            what=f"worker {wid}'s end to be published",
        )
        return rec

    def events(self, kind: str | None = None) -> list[dict]:
        events = read_jsonl(self.project.paths.journal("supervisor"))
        return [e for e in events if kind is None or e.get("kind") == kind]

    def record(self, wid: str) -> dict:
        return read_json(self.project.paths.worker_dir(wid) / "record.json") or {}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.call("shutdown", {"stop_workers": True}, timeout=5.0)
            except Exception:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass


def tree_of(pid: int) -> dict[int, float]:
    """pid -> create time of `pid`'s descendants (not `pid` itself)."""
    import psutil

    out = {}
    try:
        for child in psutil.Process(pid).children(recursive=True):
            try:
                out[child.pid] = child.create_time()
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return out


def clean_env(env: dict[str, str]) -> dict[str, str]:
    """The test project's environment without the caller's model and Claude settings."""
    return {k: v for k, v in env.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_", "OPENAI_", "DEEPSEEK_"))}


def uses_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
