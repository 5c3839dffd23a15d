"""Fuzzing every daemon socket with hypothesis: random and mutated msgpack frames.

The property: every frame sent to a daemon's request socket gets exactly one well-formed
reply, the daemon never crashes or restarts (same PID from start to end), and between the
fuzz frames it keeps answering real requests. The event (PUB) sockets and the raw Unix
sockets under them get garbage too. The bounded example counts keep this under a minute;
AURA_FUZZ_EXAMPLES raises them for a longer hunt.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aura.ipc import envelope as env
from aura.watchdog.policy import LIMITS, POLICY_KEYS
from tests.support.harness import Project, wait_for

EXAMPLES = int(os.environ.get("AURA_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DAEMON_NAMES = ("supervisor", "watchdog", "brain")
# Ops the fuzzer may call with random arguments: all but those that stop a daemon or run commands.
OPS = {
    "supervisor": ["ping", "hello", "list", "get", "kill"],
    "watchdog": ["ping", "hello", "usage", "limits", "set_limits", "status", "preflight"],
    "brain": ["ping", "hello", "wake", "status"],
}
REAL = {"supervisor": ("list", {}), "watchdog": ("status", {}), "brain": ("status", {})}
ERROR_CODES = {
    env.BAD_FRAME,
    env.BAD_VERSION,
    env.UNKNOWN_OP,
    env.BAD_ARGS,
    env.TOO_LARGE,
    env.INTERNAL,
    env.UNAVAILABLE,
    env.CONFLICT,
    env.NOT_FOUND,
    "spawn_failed",
}
ARG_NAMES = [
    "worker_id",
    "worker_ids",
    "include_exited",
    "reason",
    "reason_code",
    "grace_s",
    "by",
    "values",
    "limits",
    "task_id",
    "stop_workers",
]

# -- strategies ----------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.builds(msgpack.ExtType, st.integers(min_value=0, max_value=127), st.binary(max_size=16)),
    st.builds(msgpack.Timestamp, st.integers(min_value=0, max_value=2**34 - 1), st.integers(0, 999_999_999)),
)
values = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=5),
        st.dictionaries(st.one_of(st.text(max_size=10), st.integers(-5, 5)), kids, max_size=5),
    ),
    max_leaves=20,
)
# Numbers as a user might type them into `aura limits`, including the awkward ones.
limit_values = st.one_of(
    st.floats().map(repr),
    st.floats(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=8),
    st.sampled_from(["inf", "-inf", "nan", "1e309", "-1", "0", "on", "off", "dry-run"]),
)
limit_maps = st.dictionaries(st.sampled_from([*LIMITS, *POLICY_KEYS]), limit_values, max_size=3)
args_maps = st.dictionaries(
    st.one_of(st.sampled_from(ARG_NAMES), st.text(max_size=12)), st.one_of(values, limit_maps, limit_values), max_size=4
)


def requests(ops: list[str]) -> st.SearchStrategy[dict]:
    """Envelopes close enough to real ones to reach the handlers, with wrong types anywhere."""
    return st.fixed_dictionaries(
        {
            "v": st.one_of(st.just(1), st.just(0), values),
            "id": values,
            "op": st.one_of(st.sampled_from(ops), st.text(max_size=16), values),
            "args": st.one_of(args_maps, values),
        },
        optional={"extra": values},
    )


@st.composite
def mutations(draw: Any, base: bytes) -> bytes:
    """A valid frame with bytes flipped, inserted, deleted, duplicated or cut off."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "dup", "truncate"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 4))]
        elif kind == "dup":
            data += data[pos : pos + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[pos:]
    return bytes(data)


# -- the daemons under fuzz ------------------------------------------------------------------------


class Target:
    """One daemon: a DEALER for fuzz frames, another for real requests, and its PID at the start."""

    def __init__(self, project: Project, name: str, ctx: zmq.Context):
        self.name = name
        self.pid = project.daemon_pid(name)
        assert self.pid, f"{name} is not running"
        self.endpoint = project.paths.endpoint(name)
        self.pub = project.paths.pub_endpoint(name)
        self.fuzz = self._socket(ctx)
        self.real = self._socket(ctx)
        self.sent = 0

    def _socket(self, ctx: zmq.Context) -> zmq.Socket:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        return sock

    def exchange(self, frames: list[bytes], timeout_s: float = 5.0) -> Any:
        """Send one (multipart) message and return the single reply it must get."""
        assert not self.fuzz.poll(0), f"{self.name} sent a second reply to the previous frame"
        self.fuzz.send_multipart(frames)
        self.sent += 1
        assert self.fuzz.poll(int(timeout_s * 1000)), f"{self.name} sent no reply to {frames!r:.200}"
        return msgpack.unpackb(self.fuzz.recv_multipart()[-1], raw=False, strict_map_key=False)

    def call(self, op: str, args: dict | None = None) -> Any:
        self.real.send(env.make_request(f"real-{op}", op, args))
        assert self.real.poll(5000), f"{self.name} did not answer a real {op!r} during fuzzing"
        reply = msgpack.unpackb(self.real.recv_multipart()[-1], raw=False)
        assert reply["ok"] is True and reply["id"] == f"real-{op}", reply
        return reply["result"]

    def still_serving(self) -> None:
        assert self.call("ping")["pid"] == self.pid, f"{self.name} was restarted: it crashed under fuzzing"


def well_formed(reply: Any) -> None:
    assert isinstance(reply, dict) and reply.get("v") == env.PROTOCOL and isinstance(reply.get("ok"), bool), reply
    if not reply["ok"]:
        err = reply.get("error") or {}
        assert err.get("code") in ERROR_CODES and isinstance(err.get("message"), str), reply


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """One project for the whole module: the daemons must survive every fuzz test in turn."""
    base = tmp_path_factory.mktemp("fuzz")
    (base / "proj").mkdir()
    (base / "home").mkdir()
    project = Project(base / "proj", base / "home")
    try:
        project.write_task("# Fuzz\n\n- [ ] wait `sleep 600`\n")
        project.up()
        wait_for(lambda: any(w.get("worker_pid") for w in project.workers().values()), what="the idle worker")
        yield project
    finally:
        project.cleanup()


@pytest.fixture(scope="module")
def targets(fuzzed: Project) -> Iterator[dict[str, Target]]:
    ctx = zmq.Context()
    try:
        found = {name: Target(fuzzed, name, ctx) for name in DAEMON_NAMES}
        yield found
        for name in DAEMON_NAMES:
            assert fuzzed.daemon_pid(name) == found[name].pid, f"{name} restarted during the fuzz run"
    finally:
        ctx.destroy(linger=0)


# -- request sockets -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DAEMON_NAMES)
@FUZZ
@given(frames=st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_random_bytes_get_one_error_reply(targets: dict[str, Target], name: str, frames: list[bytes]) -> None:
    t = targets[name]
    well_formed(t.exchange(frames))
    t.still_serving()


@pytest.mark.parametrize("name", DAEMON_NAMES)
@FUZZ
@given(value=values)
def test_random_msgpack_values_get_one_reply(targets: dict[str, Target], name: str, value: Any) -> None:
    t = targets[name]
    reply = t.exchange([msgpack.packb(value, use_bin_type=True)])
    well_formed(reply)
    if not isinstance(value, dict):
        assert reply["ok"] is False and reply["error"]["code"] == env.BAD_FRAME
    t.still_serving()


@pytest.mark.parametrize("name", DAEMON_NAMES)
@FUZZ
@given(data=st.data())
def test_requests_with_wrong_types_get_one_reply(targets: dict[str, Target], name: str, data: Any) -> None:
    t = targets[name]
    req = data.draw(requests(OPS[name]))
    reply = t.exchange([msgpack.packb(req, use_bin_type=True)])
    well_formed(reply)
    t.still_serving()


@pytest.mark.parametrize("name", DAEMON_NAMES)
@FUZZ
@given(data=st.data())
def test_mutated_real_requests_get_one_reply(targets: dict[str, Target], name: str, data: Any) -> None:
    t = targets[name]
    op, args = data.draw(st.sampled_from([("ping", {}), ("hello", {}), REAL[name]]))
    frame = data.draw(mutations(env.make_request(f"m-{t.sent}", op, args)))
    well_formed(t.exchange([frame]))
    t.still_serving()


SET_LIMITS = settings(FUZZ, max_examples=max(20, EXAMPLES // 3))


@SET_LIMITS
@given(values=limit_maps)
def test_limits_the_watchdog_accepts_keep_it_enforcing(targets: dict[str, Target], values: dict) -> None:
    """`aura limits KEY=VALUE` with any value: refused, or a policy that still samples and can kill.
    A non-finite poll interval, window or cool-down would switch enforcement off without a word."""
    wd = targets["watchdog"]
    baseline = wd.call("limits")["limits"]
    reply = wd.exchange([env.make_request("lim", "set_limits", {"values": values})])
    well_formed(reply)
    try:
        if reply["ok"]:
            policy = reply["result"]["limits"]
            for key in (*LIMITS, *POLICY_KEYS):
                if isinstance(policy[key], float):
                    assert math.isfinite(policy[key]), f"{key}={policy[key]} accepted from {values}"
            assert 0 < policy["AURA_WORKER_RESOURCE_POLL_SECONDS"] <= 3600
            assert policy["AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS"] >= 0
            assert wd.call("limits")["limits"] == policy  # and `aura limits` still answers
    finally:
        wd.call("set_limits", {"values": {k: str(v) for k, v in baseline.items()}})
    wd.still_serving()


@pytest.mark.parametrize(
    "values",
    [
        {"AURA_WORKER_RESOURCE_POLL_SECONDS": "inf"},
        {"AURA_WORKER_RESOURCE_POLL_SECONDS": "1e300"},
        {"AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS": "nan"},
        {"AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS": "-1"},
        {"AURA_WORKER_RESOURCE_VIOLATION_STRIKES": "1.8446744073709552e+19"},
        {"AURA_WORKER_RESOURCE_COOLDOWN_SECONDS": "inf"},
        {"AURA_WORKER_MAX_SYSTEM_MEMORY_GB": "nan"},
    ],
)
def test_regression_limits_that_would_stop_enforcement_are_refused(targets: dict[str, Target], values: dict) -> None:
    """Values the fuzzer above can draw (though not on every run), each of which, if accepted,
    would stop enforcement: the watchdog would never sample again (poll inf or 1e300), never strike
    (nan or negative window, nan limit), or could not answer `aura limits` (strikes beyond 64 bits)."""
    wd = targets["watchdog"]
    before = wd.call("limits")["limits"]
    reply = wd.exchange([env.make_request("reg", "set_limits", {"values": values})])
    assert reply["ok"] is False and reply["error"]["code"] == env.BAD_ARGS, reply
    assert next(iter(values)) in reply["error"]["message"]
    assert wd.call("limits")["limits"] == before
    sampled = wd.call("status")["last_sample_at"]
    wait_for(lambda: wd.call("status")["last_sample_at"] != sampled, 10, what="the next watchdog sample")


# -- event sockets and the raw Unix sockets ----------------------------------------------------------


@FUZZ
@given(frames=st.lists(st.binary(max_size=64), min_size=1, max_size=3))
def test_garbage_sent_up_an_event_socket_is_ignored(targets: dict[str, Target], frames: list[bytes]) -> None:
    """An XSUB may send anything to a PUB (subscriptions and other frames); the daemon carries on."""
    ctx = zmq.Context.instance()
    for name in DAEMON_NAMES:
        sock = ctx.socket(zmq.XSUB)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(targets[name].pub)
            sock.send_multipart(frames)
        finally:
            sock.close(0)
    for name in DAEMON_NAMES:
        targets[name].still_serving()


GREETING = b"\xff" + b"\x00" * 8 + b"\x7f\x03\x01NULL" + b"\x00" * 16


@FUZZ
@given(blob=st.one_of(st.binary(max_size=2048), st.binary(max_size=512).map(lambda b: GREETING + b)))
def test_raw_bytes_on_every_unix_socket(targets: dict[str, Target], blob: bytes) -> None:
    """Below ZeroMQ: random bytes, or a ZMTP greeting then garbage, written straight to each socket file."""
    for name in DAEMON_NAMES:
        for endpoint in (targets[name].endpoint, targets[name].pub):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
                raw.settimeout(2.0)
                raw.connect(endpoint.removeprefix("ipc://"))
                try:
                    raw.sendall(blob)
                except OSError:
                    pass  # libzmq may hang up on a bad greeting before we finish writing
    for name in DAEMON_NAMES:
        targets[name].still_serving()


# -- afterwards: real work still gets done ------------------------------------------------------------


def test_after_fuzzing_every_daemon_answers_real_requests_and_publishes(
    fuzzed: Project, targets: dict[str, Target]
) -> None:
    """Runs after the fuzz tests of this module (pytest keeps file order)."""
    sup, wd, brain = (targets[n] for n in DAEMON_NAMES)
    assert any(w["task_id"] for w in sup.call("list")), "the supervisor lost its worker"
    limits = wd.call("limits")
    assert "AURA_WORKER_RESOURCE_POLL_SECONDS" in limits["limits"]
    before = wd.call("status")["last_sample_at"]
    wait_for(
        lambda: (wd.call("status")["last_sample_at"] or 0) > (before or 0),
        30,
        what="a watchdog sample after the fuzzing",
    )
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"cycle_done")
    sub.connect(brain.pub)
    try:
        deadline = time.monotonic() + 20
        got = False
        while not got and time.monotonic() < deadline:  # a SUB joins late: wake until one arrives
            brain.call("wake", {"reason": "after fuzz"})
            got = bool(sub.poll(1000))
        assert got, "the brain published no cycle_done after fuzzing"
    finally:
        sub.close(0)
    assert brain.call("status")["mission"] == "Fuzz"
    for t in (sup, wd, brain):
        assert fuzzed.daemon_pid(t.name) == t.pid
