"""sd_notify against a real datagram socket standing in for systemd's notify socket."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aura.runtime import sdnotify


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A bound AF_UNIX datagram socket whose path is exported as NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def _receive(sock: socket.socket) -> str:
    return sock.recv(4096).decode("utf-8")


def test_ready_arrives(notify_socket: socket.socket) -> None:
    assert sdnotify.ready() is True
    assert _receive(notify_socket) == "READY=1"


def test_watchdog_ping_arrives(notify_socket: socket.socket) -> None:
    assert sdnotify.watchdog_ping() is True
    assert _receive(notify_socket) == "WATCHDOG=1"


def test_fields_share_one_datagram_and_status_stays_one_line(notify_socket: socket.socket) -> None:
    assert sdnotify.notify("READY=1", "STATUS=starting")
    assert _receive(notify_socket) == "READY=1\nSTATUS=starting"
    assert sdnotify.status("3 workers\n1 strike")
    assert _receive(notify_socket) == "STATUS=3 workers 1 strike"
    assert sdnotify.stopping()
    assert _receive(notify_socket) == "STOPPING=1"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux-only")
def test_abstract_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"aura-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.ready()
        assert _receive(sock) == "READY=1"


def test_unset_socket_is_a_quiet_no(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready() is False
    assert sdnotify.watchdog_ping() is False


def test_gone_socket_does_not_raise(notify_socket: socket.socket, tmp_path: Path) -> None:
    notify_socket.close()
    (tmp_path / "notify.sock").unlink()
    assert sdnotify.ready() is False
    assert sdnotify.status("still fine") is False


def test_socket_path_that_is_not_a_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain-file"
    plain.write_text("x")
    monkeypatch.setenv("NOTIFY_SOCKET", str(plain))
    assert sdnotify.ready() is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert sdnotify.watchdog_interval(env) == expected


def test_watchdog_interval_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval() == 2.0


def test_scrub_env_removes_manager_variables() -> None:
    env = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "2", "HOME": "/h"}
    assert sdnotify.scrub_env(env) == {"HOME": "/h"}
