"""Every daemon answers bad input with an error reply and stays up."""

from __future__ import annotations

import msgpack
import pytest
import zmq

from aura.control import daemon_record
from tests.support.harness import Project, wait_for

WRONG_TYPES = {
    "supervisor": ("kill", {"worker_id": 5}),
    "watchdog": ("usage", {"worker_ids": "not-a-list"}),
    "brain": ("wake", {"reason": ["not", "a", "string"]}),
}


def _exchange(endpoint: str, frames: list[bytes], timeout_ms: int = 3000) -> dict:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send_multipart(frames)
        assert sock.poll(timeout_ms), "no reply"
        return msgpack.unpackb(sock.recv_multipart()[-1], raw=False)
    finally:
        sock.close(0)


def _req(op: str, args: dict | None = None, v: int = 1, rid: str = "t1") -> bytes:
    return msgpack.packb({"v": v, "id": rid, "op": op, "args": args or {}})


@pytest.fixture
def running(project: Project) -> Project:
    project.write_task("# Idle\n\n- [ ] wait `sleep 60`\n")
    project.up()
    return project


@pytest.mark.parametrize("daemon", ["supervisor", "watchdog", "brain"])
def test_bad_frames_get_error_replies_and_the_daemon_stays_up(running: Project, daemon: str) -> None:
    rec = daemon_record(running.paths, daemon)
    endpoint, pid = rec["endpoint"], rec["pid"]
    cases = [
        ([b"\xc1\xc1 not msgpack"], "bad_frame"),
        ([msgpack.packb([1, 2, 3])], "bad_frame"),
        ([msgpack.packb({"id": "x", "op": "ping"})], "bad_frame"),  # no version
        ([_req("no_such_op")], "unknown_op"),
        ([_req(*WRONG_TYPES[daemon])], "bad_args"),
        ([msgpack.packb({"v": 1, "id": "a", "op": "ping", "args": "not-a-map"})], "bad_args"),
        ([_req("ping", {"pad": "x" * (2 << 20)})], "too_large"),
        ([_req("ping", v=99)], "bad_version"),
        ([_req("ping"), _req("ping")], "bad_frame"),  # two body frames
    ]
    for frames, code in cases:
        reply = _exchange(endpoint, frames)
        assert reply["ok"] is False, (frames[0][:20], reply)
        assert reply["error"]["code"] == code, (code, reply)
        assert reply["error"]["message"]
    assert _exchange(endpoint, [_req("ping", rid="alive")])["result"]["pid"] == pid
    assert daemon_record(running.paths, daemon)["pid"] == pid
    # REQ-style clients (with an empty delimiter frame) get answers too
    assert _exchange(endpoint, [b"", _req("ping", rid="req")])["ok"] is True


def test_unknown_op_reply_names_the_ops_the_daemon_answers(running: Project) -> None:
    rec = daemon_record(running.paths, "brain")
    reply = _exchange(rec["endpoint"], [_req("explode")])
    assert "wake" in reply["error"]["message"] and "status" in reply["error"]["message"]


def test_unknown_fields_are_ignored_for_forward_compatibility(running: Project) -> None:
    rec = daemon_record(running.paths, "watchdog")
    frame = msgpack.packb({"v": 1, "id": "f", "op": "ping", "args": {}, "trace": {"span": 1}})
    assert _exchange(rec["endpoint"], [frame])["ok"] is True


def test_cli_reports_a_daemon_that_does_not_answer(running: Project) -> None:
    """A stopped (SIGSTOP) brain: `aura wake` gives up within its timeout with a clear message."""
    import os
    import signal

    pid = running.daemon_pid("brain")
    os.kill(pid, signal.SIGSTOP)
    try:
        proc = running.aura("wake", check=False, timeout=30)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert proc.returncode != 0 and "brain did not answer" in proc.stderr
    wait_for(lambda: running.aura("wake", check=False).returncode == 0, 10, what="the brain to answer again")
