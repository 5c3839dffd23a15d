"""The control plane in isolation: envelope, server loop helper, client retry, events + journal."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import zmq

from aura.ipc import envelope as env
from aura.ipc.client import Client, DaemonUnavailable, RemoteError
from aura.ipc.events import EventFeed, Publisher, last_seq, read_journal
from aura.ipc.server import RequestServer
from aura.runtime.loop import POLL_MAX_MS, poll_timeout


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def _serve(ctx: zmq.Context, endpoint: str, handlers: dict, stop: threading.Event) -> threading.Thread:
    server = RequestServer(ctx, endpoint, handlers)

    def loop() -> None:
        while not stop.is_set():
            if server.sock.poll(20):
                server.handle_ready()
        server.close()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def test_round_trip_errors_and_handler_failures(ctx: zmq.Context, tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/s.sock"
    stop = threading.Event()

    def boom(args: dict) -> None:
        raise RuntimeError("kaput")

    t = _serve(ctx, endpoint, {"echo": lambda a: a, "boom": boom, "typed": lambda a: env.arg(a, "n", int) * 2}, stop)
    try:
        c = Client(endpoint, "test", timeout=2.0, ctx=ctx)
        assert c.call("echo", {"x": [1, "two"]}) == {"x": [1, "two"]}
        assert c.call("typed", {"n": 21}) == 42
        with pytest.raises(RemoteError) as e:
            c.call("typed", {"n": "21"})
        assert e.value.code == env.BAD_ARGS and "must be int" in e.value.message
        with pytest.raises(RemoteError) as e:
            c.call("boom")
        assert e.value.code == env.INTERNAL and "kaput" in e.value.message
        assert c.call("echo", {"after": True}) == {"after": True}  # the server survived
        c.close()
    finally:
        stop.set()
        t.join(2)


def test_client_fails_fast_without_a_socket_and_times_out_on_a_silent_peer(ctx: zmq.Context, tmp_path: Path) -> None:
    c = Client(f"ipc://{tmp_path}/none.sock", "brain", timeout=0.3, ctx=ctx)
    started = time.monotonic()
    with pytest.raises(DaemonUnavailable) as e:
        c.call("ping")
    assert time.monotonic() - started < 0.2 and "no socket" in str(e.value)
    silent = ctx.socket(zmq.ROUTER)
    silent.bind(f"ipc://{tmp_path}/silent.sock")
    c = Client(f"ipc://{tmp_path}/silent.sock", "brain", timeout=0.2, retries=2, ctx=ctx)
    started = time.monotonic()
    with pytest.raises(DaemonUnavailable) as e:
        c.call("ping")
    elapsed = time.monotonic() - started
    assert 0.55 < elapsed < 2.0 and "3 tries" in str(e.value)
    silent.close(0)


def _call_into(client: Client, op: str, answers: list) -> None:
    answers.append(client.call(op))


def test_the_answer_reaches_the_caller_when_the_server_closes_right_after_sending_it(
    ctx: zmq.Context, tmp_path: Path
) -> None:
    """The answer to `shutdown` is the last thing a daemon sends before it closes its socket."""
    delivered = 0
    for n in range(40):
        endpoint = f"ipc://{tmp_path}/bye{n}.sock"
        server = RequestServer(ctx, endpoint, {"shutdown": lambda a: {"stopping": True}})
        answers: list = []
        caller = Client(endpoint, "daemon", timeout=1.0, retries=0, ctx=ctx)
        t = threading.Thread(target=_call_into, args=(caller, "shutdown", answers), daemon=True)
        t.start()
        if server.sock.poll(3000):
            server.handle_ready()
        server.close(linger_ms=500)
        t.join(5)
        caller.close()
        delivered += answers == [{"stopping": True}]
        if delivered <= n:
            break  # the caller timed out: lost
    assert delivered == 40


def test_lazy_pirate_retry_gets_the_answer_after_a_lost_reply(ctx: zmq.Context, tmp_path: Path) -> None:
    """The first request is dropped (no reply); the retry on a fresh socket is answered."""
    endpoint = f"ipc://{tmp_path}/flaky.sock"
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(endpoint)
    seen = []

    def flaky() -> None:
        for _ in range(2):
            if not sock.poll(3000):
                return
            frames = sock.recv_multipart()
            req = env.parse_request(frames[-1])
            seen.append(req.id)
            if len(seen) == 2:
                sock.send_multipart([frames[0], env.ok_reply(req.id, "second time")])

    t = threading.Thread(target=flaky, daemon=True)
    t.start()
    c = Client(endpoint, "flaky", timeout=0.3, retries=1, ctx=ctx)
    assert c.call("ping") == "second time"
    assert seen[0] == seen[1], "the retry carries the same request id (the server can de-duplicate)"
    t.join(2)
    sock.close(0)


def test_events_are_journaled_numbered_and_caught_up_after_a_gap(ctx: zmq.Context, tmp_path: Path) -> None:
    journal = tmp_path / "sup.jsonl"
    pub = Publisher(ctx, "supervisor", f"ipc://{tmp_path}/sup.pub", journal)
    for i in range(3):
        pub.publish("early", i=i)  # nobody subscribed yet: PUB drops them
    feed = EventFeed(ctx, {"supervisor": (f"ipc://{tmp_path}/sup.pub", journal)})
    assert [e["data"]["i"] for e in feed.catch_up()] == [0, 1, 2]
    time.sleep(0.2)  # let the SUB connect
    pub.publish("live", i=3)
    got = []
    deadline = time.monotonic() + 3
    while not got and time.monotonic() < deadline:
        if feed.sock.poll(100):
            got = feed.drain()
    assert [e["seq"] for e in got] == [4]
    # a gap (events published while nobody listened) is repaired from the journal
    feed.sock.setsockopt(zmq.UNSUBSCRIBE, b"")
    pub.publish("missed", i=4)
    pub.publish("missed", i=5)
    time.sleep(0.1)
    feed.sock.setsockopt(zmq.SUBSCRIBE, b"")
    time.sleep(0.2)
    pub.publish("after", i=6)
    got = []
    deadline = time.monotonic() + 3
    while len(got) < 3 and time.monotonic() < deadline:
        if feed.sock.poll(100):
            got += feed.drain()
    assert [e["seq"] for e in got] == [5, 6, 7]
    pub.close()
    # a new publisher continues the numbering from the journal
    pub2 = Publisher(ctx, "supervisor", f"ipc://{tmp_path}/sup2.pub", journal)
    assert pub2.publish("next")["seq"] == 8 == last_seq(journal)
    assert [e["seq"] for e in read_journal(journal, 6)] == [7, 8]
    pub2.close()
    feed.close()


def test_journal_reader_skips_a_torn_last_line(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    journal.write_text('{"seq": 1, "kind": "a"}\n{"seq": 2, "kind": "b"}\n{"seq": 3, "ki')
    assert [e["seq"] for e in read_journal(journal)] == [1, 2]
    assert last_seq(journal) == 2


def test_a_new_publisher_does_not_glue_its_first_event_to_a_torn_line(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    journal.write_text('{"seq": 1, "kind": "a"}\n{"seq": 2, "ki')
    ctx = zmq.Context()
    try:
        pub = Publisher(ctx, "supervisor", f"ipc://{tmp_path}/p.pub", journal)
        assert pub.publish("after_crash")["seq"] == 2
        pub.close()
    finally:
        ctx.destroy(linger=0)
    assert [e["kind"] for e in read_journal(journal)] == ["a", "after_crash"]


def test_the_loop_polls_without_waiting_when_a_timer_is_due_and_never_wakes_before_one() -> None:
    """A callback scheduled for now (`call_later(0, ...)` from another callback, as the supervisor
    announces a burst of exits) must not wait a millisecond; a timer due later must not run early."""
    assert poll_timeout(None) == POLL_MAX_MS
    assert poll_timeout(-0.0004) == 0 and poll_timeout(0.0) == 0
    assert poll_timeout(0.0004) == 1 and poll_timeout(0.0021) == 3  # rounded up, never early
    assert poll_timeout(3600.0) == POLL_MAX_MS
