"""Daemons under a service manager: readiness and heartbeats over NOTIFY_SOCKET, and a
supervisor whose main process is killed and started again the way a unit restart would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aura.ipc.client import Client
from aura.runtime.paths import ProjectPaths
from tests.support.harness import Project, wait_for
from tests.support.harness import alive as _alive


def _start(project: Project, name: str, extra_env: dict | None = None) -> subprocess.Popen:
    env = dict(project.env, **(extra_env or {}))
    out = open(project.root / f"{name}.out", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aura.daemon", name, "--project", str(project.root), "--managed"],
        cwd=project.root,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    project.seen[proc.pid] = None
    return proc


@pytest.fixture
def notify_socket(tmp_path: Path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    yield path, sock
    sock.close()


def test_ready_once_it_answers_then_watchdog_heartbeats(project: Project, notify_socket) -> None:
    path, sock = notify_socket
    proc = _start(project, "watchdog", {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "300000"})
    try:
        first = sock.recv(4096).decode()
        assert "READY=1" in first
        # READY means it answers requests now
        paths = ProjectPaths.for_root(project.root)
        assert Client(paths.endpoint("watchdog"), "watchdog", timeout=1.0).call("ping")["pid"] == proc.pid
        beats = [sock.recv(4096).decode() for _ in range(3)]
        assert all("WATCHDOG=1" in b for b in beats)
    finally:
        proc.terminate()
        proc.wait(10)
    assert "STOPPING=1" in sock.recv(4096).decode()


def test_no_heartbeat_unless_asked(project: Project, notify_socket) -> None:
    path, sock = notify_socket
    proc = _start(project, "watchdog", {"NOTIFY_SOCKET": str(path)})
    try:
        assert "READY=1" in sock.recv(4096).decode()
        sock.settimeout(1.0)
        with pytest.raises(socket.timeout):
            sock.recv(4096)
    finally:
        proc.terminate()
        proc.wait(10)


def test_unit_style_supervisor_restart_keeps_workers_and_readopts(project: Project) -> None:
    paths = ProjectPaths.for_root(project.root)
    sup = _start(project, "supervisor")
    wd = _start(project, "watchdog")
    client = lambda: Client(paths.endpoint("supervisor"), "supervisor", timeout=2.0)  # noqa: E731
    wait_for(lambda: _answers(client()), what="the supervisor")
    long = client().call(
        "spawn",
        {
            "task_id": "long",
            "worker_id": "long-1",
            "backend": "shell",
            "command": "sleep 6; echo done > long.txt",
            "cwd": str(project.root),
        },
    )
    client().call(
        "spawn",
        {
            "task_id": "short",
            "worker_id": "short-1",
            "backend": "shell",
            "command": "sleep 1.5; exit 4",
            "cwd": str(project.root),
        },
    )
    project.remember()
    os.kill(sup.pid, signal.SIGKILL)
    sup.wait()
    time.sleep(2.5)  # the short worker ends while no supervisor runs; nobody restarts it (managed)
    assert project.daemon_pid("supervisor") is None, "in managed mode the watchdog must not restart peers"
    assert _alive(long["worker_pid"], long["worker_create_time"])
    sup2 = _start(project, "supervisor")  # what systemd's Restart=on-failure does
    wait_for(lambda: _answers(client()), what="the restarted supervisor")
    listed = {w["worker_id"]: w for w in client().call("list")}
    assert listed["long-1"]["state"] == "running" and listed["long-1"]["worker_pid"] == long["worker_pid"]
    assert listed["short-1"]["state"] == "exited" and listed["short-1"]["exit"]["exit_code"] == 4
    assert listed["short-1"]["note"] == "ended while the supervisor was down"
    wait_for(lambda: client().call("get", {"worker_id": "long-1"})["state"] == "exited", 15, what="the long worker")
    assert (project.root / "long.txt").read_text().strip() == "done"
    for proc in (sup2, wd):
        proc.terminate()
        proc.wait(10)


def _answers(c: Client) -> bool:
    try:
        return bool(c.call("ping"))
    except Exception:
        return False
    finally:
        c.close()
