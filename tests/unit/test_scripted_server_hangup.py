"""A client that hangs up on the scripted model server is normal (a client timeout, a cancelled stream,
a killed CLI) and is not reported as a crash: the server, run as its own process, prints no traceback
and keeps answering."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"steps": [{"text": "x" * 4000, "delay": 0.3, "repeat": 50}]}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "aura.scripted_server", "--script", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = proc.stdout.readline().strip() if proc.stdout else ""
    yield proc, url
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a killed client's kernel does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_clients_that_go_away_leave_no_traceback(server) -> None:  # type: ignore[no-untyped-def]
    proc, url = server
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(
        {"model": "m", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    head = (
        f"POST /v1/messages HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    for how in ("before the request line", "mid body", "while the reply waits", "mid stream"):
        sock = socket.create_connection((host, int(port)), timeout=5)
        if how == "mid body":
            sock.sendall(head + body[:10])
        elif how in ("while the reply waits", "mid stream"):
            sock.sendall(head + body)
            if how == "mid stream":
                sock.recv(200)  # the reply has started
        else:
            sock.sendall(b"POST /v1/mess")
        _reset(sock)
    # still serving
    req = urllib.request.Request(
        url + "/v1/messages",
        data=json.dumps({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["content"][0]["type"] == "text"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "Traceback" not in err and "ConnectionResetError" not in err and "BrokenPipeError" not in err, err
