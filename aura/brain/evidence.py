"""Evidence before status: what the brain checks itself before it accepts "done".

A worker's word is not evidence. The brain reads the worker's exit record, checks that each
artifact the task named exists and was written by *this* attempt (not left by an earlier
one), reads the status line of `result.md`, and runs the task file's acceptance commands.

`result.md` format (documented in the README): any line `Status: <word>` (markdown bold
allowed), where the word is one of done / completed / success / succeeded (accepted) or
partial / failed / blocked (refused); the rest of the file is free text.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aura.runtime.vocab import DISK_OUTCOMES, SUCCEEDED

ACCEPTED = ("done", "completed", "complete", "success", "succeeded", "ok")
MTIME_SLACK = 1.0  # file-system timestamps can be coarser than process start times
_STATUS = re.compile(r"^\W*status\W*[:=]\s*\**\s*([A-Za-z_-]+)", re.I | re.M)


@dataclass
class Evidence:
    ok: bool
    facts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return "; ".join(self.facts if self.ok else self.problems + self.facts)


def result_status(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:20000]
    except OSError:
        return None
    m = _STATUS.search(text)
    return m.group(1).lower() if m else None


def resolve_inside(root: Path, rel: str) -> Path | None:
    """A path named by a task, refused when it escapes the project folder."""
    p = (root / rel).resolve() if not Path(rel).is_absolute() else Path(rel).resolve()
    try:
        p.relative_to(root.resolve())
    except ValueError:
        return None
    return p


def check_artifact(root: Path, rel: str, since: float) -> tuple[bool, str]:
    path = resolve_inside(root, rel)
    if path is None:
        return False, f"artifact {rel} is outside the project folder"
    try:
        st = path.stat()
    except FileNotFoundError:
        return False, f"artifact {rel} does not exist"
    if st.st_mtime + MTIME_SLACK < since:
        return False, f"artifact {rel} is older than this attempt (written {time.ctime(st.st_mtime)})"
    return True, f"artifact {rel} written by this attempt ({st.st_size} bytes)"


def check_worker(worker: dict, root: Path, artifacts: list[str], need_result_md: bool) -> Evidence:
    """Evidence that one worker attempt did its task."""
    ev = Evidence(ok=True)
    exit_rec = worker.get("exit") or {}
    outcome = worker.get("outcome")
    code = exit_rec.get("exit_code")
    if outcome != SUCCEEDED:
        detail = exit_rec.get("error") or (
            f"signal {exit_rec.get('signal')}" if exit_rec.get("signal") else f"exit code {code}"
        )
        detail += disk_context(worker)
        ev.ok = False
        ev.problems.append(f"worker {worker.get('worker_id')} outcome {outcome} ({detail})")
    else:
        ev.facts.append(f"worker {worker.get('worker_id')} exited 0 (outcome succeeded)")
    since = float(worker.get("started_at") or worker.get("created_at") or 0)
    for rel in artifacts:
        ok, fact = check_artifact(root, rel, since)
        (ev.facts if ok else ev.problems).append(fact)
        ev.ok = ev.ok and ok
    if need_result_md:
        _check_result_md(ev, Path(worker.get("task_dir", "")) / "result.md", since)
    return ev


def disk_context(worker: dict) -> str:
    """Why a worker's end had to do with the disk: the watchdog stopped it for its output or for the
    disk, or its output was cut down (which says the disk or the cap was hit)."""
    kill = worker.get("kill") or {}
    if kill.get("reason_code") in DISK_OUTCOMES:
        return f"; stopped by the watchdog: {kill.get('reason')}"
    trimmed = worker.get("output_trimmed") or {}
    return f"; its output was cut down to head and tail: {trimmed['why']}" if trimmed.get("why") else ""


def _check_result_md(ev: Evidence, path: Path, since: float) -> None:
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        ev.ok = False
        ev.problems.append("result.md is missing")
        return
    if mtime + MTIME_SLACK < since:
        ev.ok = False
        ev.problems.append("result.md was left by an earlier attempt")
        return
    status = result_status(path)
    if status in ACCEPTED:
        ev.facts.append(f"result.md says Status: {status}")
    else:
        ev.ok = False
        ev.problems.append(f"result.md status is {status or 'missing'} (need one of {', '.join(ACCEPTED)})")


def run_acceptance(
    commands: list[str], cwd: Path, timeout: float = 300.0, wait: Callable[[float], None] | None = None
) -> Evidence:
    """Run each acceptance command (bounded in time); all must exit 0. `wait` (the daemon's
    pump) runs while a command does, so the brain keeps answering its peers' pings."""
    ev = Evidence(ok=True)
    for cmd in commands:
        try:
            proc = _run_shell(cmd, cwd, timeout, wait or time.sleep)
        except subprocess.TimeoutExpired:
            ev.ok = False
            ev.problems.append(f"acceptance `{cmd}` timed out after {timeout:g}s")
            continue
        tail = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip().splitlines()[-3:]
        if proc.returncode == 0:
            ev.facts.append(f"acceptance `{cmd}` exited 0")
        else:
            ev.ok = False
            ev.problems.append(f"acceptance `{cmd}` exited {proc.returncode}: {' | '.join(tail)[:300]}")
    return ev


def _run_shell(cmd: str, cwd: Path, timeout: float, wait: Callable[[float], None]) -> subprocess.CompletedProcess:
    """subprocess.run with its output captured, calling `wait` between short looks at the command."""
    proc = subprocess.Popen(
        ["/bin/sh", "-c", cmd],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            out, err = proc.communicate(timeout=0.05)
            return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                proc.kill()
                proc.communicate()
                raise
            wait(0.1)
