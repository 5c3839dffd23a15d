"""Measures one process manager from inside a client: request round trips, and N workers
spawned, released at once and reaped.

The same loop measures Aura, circus and supervisord, each through an adapter, so the three
figures mean the same thing. It runs in two interpreters: in Aura's own (the `aura`
adapter), and in the throwaway environment that holds circus and supervisord, so it imports
nothing of Aura at module level: only the standard library and psutil (which circus needs).

    python bench/driver.py rtt   --kind circus --endpoint ipc://... --n 5000
    python bench/driver.py scale --kind supervisord --endpoint unix://... --n 32 --fifo F --group w
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil

POLL_S = 0.02  # how often each manager's API is asked during a scale run (the same for all three)
EXIT_POLL_S = 0.005  # how often each manager is asked once the workers are let go: finer than the exits timed
REAP_POLL_S = 0.0005  # how often the processes left are looked at meanwhile: signal 0, no manager asked
BARRIER_WAIT = "wait_for_partner"  # /proc/PID/wchan of a process blocked opening a FIFO no one writes


# -- adapters -------------------------------------------------------------------------------------


class CircusAdapter:
    """circusd through its own client (a DEALER socket speaking JSON)."""

    def __init__(self, endpoint: str, group: str = "w"):
        from circus.client import CircusClient

        self.client = CircusClient(endpoint=endpoint, timeout=30.0)
        self.group = group

    def light(self) -> Any:
        return self._call("list")

    def listing(self) -> Any:
        return self._call("status")

    def start(self, n: int) -> None:
        self._call("start", name=self.group, waiting=True)

    def running_pids(self) -> list[int]:
        return list(self._call("list", name=self.group).get("pids") or [])

    def _call(self, command: str, **props: Any) -> dict:
        reply = self.client.call({"command": command, "properties": props})
        if reply.get("status") != "ok":
            raise RuntimeError(f"circus {command}: {reply.get('reason')}")
        return reply

    def close(self) -> None:
        self.client.stop()


class SupervisordAdapter:
    """supervisord through XML-RPC on its Unix socket, with supervisor's own transport."""

    def __init__(self, endpoint: str, group: str = "w"):
        import xmlrpc.client

        from supervisor.xmlrpc import SupervisorTransport

        self.proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=SupervisorTransport(None, None, endpoint))
        self.group = group

    def light(self) -> Any:
        return self.proxy.supervisor.getState()

    def listing(self) -> Any:
        return self.proxy.supervisor.getAllProcessInfo()

    def start(self, n: int) -> None:
        self.proxy.supervisor.startProcessGroup(self.group, True)

    def running_pids(self) -> list[int]:
        return [
            p["pid"]
            for p in self.proxy.supervisor.getAllProcessInfo()
            if p["group"] == self.group and p["statename"] in ("RUNNING", "STARTING", "STOPPING") and p["pid"]
        ]

    def close(self) -> None:
        pass


class AuraAdapter:
    """Aura's supervisor through Aura's own client; workers are started with one `spawn` request
    each, sent together (circus and supervisord start a group with one command)."""

    def __init__(self, endpoint: str, group: str = "w", argv: list[str] | None = None):
        from aura.ipc.client import Client

        self.client = Client(endpoint, "supervisor", timeout=30.0, retries=0)
        self.group = group
        self.argv = argv or []
        self.ids: list[str] = []

    def light(self) -> Any:
        return self.client.call("ping")

    def listing(self) -> Any:
        return self.client.call("list")

    def start(self, n: int) -> None:
        requests = [
            (
                "spawn",
                {
                    "worker_id": f"{self.group}-{i}",
                    "task_id": self.group,
                    "backend": "shell",
                    "argv": self.argv,
                    "budget_s": 0,
                },
            )
            for i in range(n)
        ]
        for i, rec in enumerate(self.client.call_many(requests, timeout=120.0)):
            if isinstance(rec, Exception):
                raise RuntimeError(f"aura spawn {self.group}-{i}: {rec}")
            if rec.get("state") != "running":
                raise RuntimeError(f"aura spawn {self.group}-{i}: {rec.get('state')} {rec.get('exit')}")
            self.ids.append(rec["worker_id"])

    def _mine(self, fields: list[str], include_exited: bool = True) -> list[dict]:
        """Only the fields asked for, as circus's `list` answers with pids alone."""
        args = {"worker_ids": self.ids, "include_exited": include_exited, "fields": fields}
        return self.client.call("list", args)

    def running_pids(self) -> list[int]:
        listed = self._mine(["state", "worker_pid"], include_exited=False)
        return [w["worker_pid"] for w in listed if w.get("state") in ("running", "orphaned")]

    def tracked_pids(self) -> list[int]:
        """Workers and their shims: a shim left unreaped would be Aura's zombie."""
        out: list[int] = []
        for w in self._mine(["worker_pid", "shim_pid"]):
            out += [p for p in (w.get("worker_pid"), w.get("shim_pid")) if p]
        return out

    def close(self) -> None:
        self.client.close()


def make_adapter(kind: str, endpoint: str, group: str, argv: list[str] | None = None) -> Any:
    if kind == "circus":
        return CircusAdapter(endpoint, group)
    if kind == "supervisord":
        return SupervisordAdapter(endpoint, group)
    if kind == "aura":
        return AuraAdapter(endpoint, group, argv)
    raise SystemExit(f"unknown kind {kind!r}")


# -- measurements --------------------------------------------------------------------------------


def round_trips(call: Callable[[], Any], n: int, warmup: int = 50) -> list[float]:
    """Seconds per request, `n` requests one after another on one connection."""
    for _ in range(warmup):
        call()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        out.append(time.perf_counter() - t)
    return out


def identities(pids: list[int]) -> list[list[float]]:
    """[pid, start time] pairs, so whoever cleans up can stop them by PID without hitting a reused one."""
    out = []
    for pid in pids:
        try:
            out.append([pid, psutil.Process(pid).create_time()])
        except psutil.NoSuchProcess:
            continue
    return out


def gone(pid: int) -> bool:
    """True once nobody has to reap `pid` any more: a zombie still answers signal 0, and this costs
    the cores the exits are timed on a system call, not a read of /proc."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # there, and not ours to signal
        pass
    return False


def at_barrier(pids: list[int], timeout: float = 10.0) -> bool:
    """Wait until every worker blocks opening the FIFO, so one open by the bench lets all go at
    once and nothing is left to retry while the exits are timed. False where the kernel does not
    say what a process waits in (no /proc wchan): then the release retries as it goes."""
    deadline = time.monotonic() + timeout
    waiting = set(pids)
    while waiting and time.monotonic() < deadline:
        for pid in list(waiting):
            where = _wchan(pid)
            if where is None:
                return False
            if where == BARRIER_WAIT:
                waiting.discard(pid)
        if waiting:
            time.sleep(0.005)
    return not waiting


def _wchan(pid: int) -> str | None:
    """What `pid` is blocked in ("0" while it runs); None where /proc cannot say."""
    try:
        with open(f"/proc/{pid}/wchan") as fh:
            return fh.read().strip()
    except OSError:
        return None


def release_once(fifo: str) -> None:
    """Open and close the barrier FIFO: every worker blocked opening it reads EOF."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while no worker has it open
    except OSError:
        return
    os.close(fd)


def release(fifo: str, pids: list[int], timeout: float = 30.0) -> None:
    """Open and close the barrier FIFO until every worker got past it (each waits for EOF on it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        release_once(fifo)
        if not any(_waiting_on_fifo(p) for p in pids):
            return
        time.sleep(0.05)


def _waiting_on_fifo(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False


def scale(adapter: Any, n: int, fifo: str, timeout: float = 120.0, on_running: Callable[[], Any] | None = None) -> dict:
    """Start `n` workers, wait until the manager reports all running, release them together, then
    time until the manager reports none running (asked every EXIT_POLL_S) and until every process
    has been reaped (looked at every REAP_POLL_S in between, so that figure never waits on a
    manager's answer or on the phase of its poll). `on_running` is called while all run, before
    the release (outside every timed span)."""
    t0 = time.time()
    adapter.start(n)
    t_started = time.time()
    pids = _wait(lambda: (p := adapter.running_pids()) and len(p) >= n and p, timeout, "all workers running")
    t_running = time.time()
    tracked = adapter.tracked_pids() if hasattr(adapter, "tracked_pids") else list(pids)
    ids = identities(tracked)
    if on_running is not None:
        on_running()
    if at_barrier(pids):
        release_once(fifo)  # all go at once; watched from now on
    else:
        release(fifo, pids)
    t_released = time.time()
    seen = reaped = None
    left = list(tracked)  # each look asks only until a process is still there: one call, whatever N
    deadline = time.monotonic() + timeout
    ask_at = 0.0
    while (seen is None or reaped is None) and time.monotonic() < deadline:
        if seen is None and time.monotonic() >= ask_at:
            ask_at = time.monotonic() + EXIT_POLL_S
            if not adapter.running_pids():
                seen = time.time()
        if reaped is None:
            while left and gone(left[-1]):
                left.pop()
            if not left:
                reaped = time.time()
        time.sleep(REAP_POLL_S if reaped is None else max(0.0, ask_at - time.monotonic()))
    return {
        "n": n,
        "t0": t0,
        "start_returned": t_started,
        "all_running": t_running,
        "released": t_released,
        "exit_seen": seen,
        "reaped": reaped,
        "pids": ids,
    }


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(POLL_S)
    raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["rtt", "scale"])
    parser.add_argument("--kind", required=True, choices=["circus", "supervisord", "aura"])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--group", default="w")
    parser.add_argument("--fifo")
    args = parser.parse_args(argv)
    adapter = make_adapter(args.kind, args.endpoint, args.group)
    try:
        if args.what == "rtt":
            out = {"light": round_trips(adapter.light, args.n), "listing": round_trips(adapter.listing, args.n)}
        else:
            out = scale(adapter, args.n, args.fifo)
    finally:
        adapter.close()
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
