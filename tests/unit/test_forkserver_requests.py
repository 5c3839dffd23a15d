"""The fork server's answer to one request (supervisor/forkserver.py `_fork_one`), on a real socket
pair with real descriptors: whatever goes wrong with a start is that start's answer, and the server
lives on to take the next request."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from aura.supervisor import forkserver


def _request(msg: bytes, shim: forkserver.LazyShim) -> tuple[dict, list[int]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    status_r, status_w = os.pipe()
    log = os.open(os.devnull, os.O_WRONLY)
    try:
        forkserver._fork_one(theirs, msg, [status_w, log], shim, [])
        return json.loads(ours.recv(65536)), [status_w, log]
    finally:
        os.close(status_r)
        ours.close()
        theirs.close()


def _closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def test_a_request_that_is_not_json_is_answered_with_an_error_and_its_descriptors_closed(tmp_path: Path) -> None:
    answer, fds = _request(b"{not json", forkserver.LazyShim(str(tmp_path / "shim.py")))
    assert answer["id"] is None and "could not start the shim" in answer["error"]
    assert all(_closed(fd) for fd in fds)


def test_a_python_shim_that_cannot_be_loaded_fails_that_start_alone(tmp_path: Path) -> None:
    msg = json.dumps({"id": "w", "options": {}, "env": {}, "cwd": str(tmp_path)}).encode()
    answer, fds = _request(msg, forkserver.LazyShim(str(tmp_path / "no-shim.py")))
    assert answer["id"] == "w" and "no-shim.py" in answer["error"] and "pid" not in answer
    assert all(_closed(fd) for fd in fds)
    broken = tmp_path / "shim.py"
    broken.write_text('raise ImportError("aura is not importable here")\n')  # a broken install, say
    answer, fds = _request(msg, forkserver.LazyShim(str(broken)))
    assert answer["id"] == "w" and "aura is not importable here" in answer["error"]
    assert all(_closed(fd) for fd in fds)
