"""Daemons restart each other when no service manager does it for them.

The supervisor restarts the brain and the watchdog; the watchdog restarts the supervisor.
Like an OTP supervisor: exponential backoff between tries, and at most AURA_RESTART_MAX
restarts per AURA_RESTART_WINDOW_SECONDS, after which it stops trying and says so (the
record in `.aura/run/<restarter>.peers.json` is what `aura status` shows).

A peer counts as gone when its process is, and also when it has answered no ping for
AURA_PEER_HANG_SECONDS (stopped, deadlocked): then it is killed by PID and start time and
restarted like a crashed one. Peers that `aura up` is still starting are left to it.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

from .fsutil import atomic_write_json, open_private, read_json
from .liveness import PingWatch, kill_instance
from .pidfile import is_alive, live_record

if TYPE_CHECKING:
    from .loop import Daemon

CHECK_INTERVAL = 0.5
START_GRACE = 30.0  # how long a copy we started may take to take its lock before we give up on it


def lock_is_held(path: Path) -> bool:
    """Whether some process holds a daemon's single-instance lock (i.e. it is running or starting)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def launch_spec(run_dir: Path) -> dict | None:
    spec = read_json(run_dir / "launch.json")
    return spec if isinstance(spec, dict) else None


def up_is_starting(spec: dict) -> bool:
    """Whether the `aura up` that wrote `spec` is still starting the daemons (it is alive and
    its start deadline has not passed): until then the peers it starts are its business."""
    starting = spec.get("starting")
    if not isinstance(starting, dict):
        return False
    try:
        until = float(starting.get("until", 0))
    except (TypeError, ValueError):
        return False
    return time.time() < until and is_alive(starting.get("pid"), starting.get("create_time"))


def start_daemon(spec: dict, name: str, stdio: Path) -> subprocess.Popen:
    """Start one daemon the way `aura up` did: own session, output to its .out file."""
    entry = spec["daemons"][name]
    env = dict(os.environ)
    env.update({k: str(v) for k, v in (spec.get("env") or {}).items()})
    with os.fdopen(open_private(stdio), "ab") as out:
        return subprocess.Popen(
            entry["argv"],
            cwd=spec.get("cwd") or None,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


class PeerKeeper:
    """Watches the pid files of some peer daemons and restarts the ones that crashed."""

    def __init__(self, daemon: Daemon, peers: list[str]):
        self.daemon = daemon
        self.peers = peers
        self.max_restarts = daemon.cfg.integer("AURA_RESTART_MAX")
        self.window = daemon.cfg.number("AURA_RESTART_WINDOW_SECONDS")
        self.hang_s = daemon.cfg.number("AURA_PEER_HANG_SECONDS")
        self.history: dict[str, deque[float]] = {p: deque() for p in peers}
        self.gave_up: dict[str, str] = {}
        self.children: dict[str, subprocess.Popen] = {}
        self.not_before: dict[str, float] = {}
        self.started_at: dict[str, float] = {}
        self.count: dict[str, int] = {p: 0 for p in peers}  # restarts since this `aura up`
        self.last_reason: dict[str, str] = {}
        self.why_gone: dict[str, str] = {}  # what ended the peer we are about to restart
        self.watches: dict[str, tuple[tuple, PingWatch]] = {}
        self.record_path = daemon.paths.run_dir / f"{daemon.name}.peers.json"
        self._load()

    def _load(self) -> None:
        """Keep the restart history across our own restarts, so a crash loop is still bounded."""
        rec = read_json(self.record_path) or {}
        spec = launch_spec(self.daemon.paths.run_dir) or {}
        if rec.get("launch") != spec.get("started_at"):
            return  # a record of an earlier `aura up`
        now = time.time()
        for peer, info in (rec.get("peers") or {}).items():
            if peer in self.history:
                self.history[peer].extend(t for t in info.get("restarts", []) if now - t < self.window)
                self.count[peer] = int(info.get("count") or 0)
                if info.get("last_reason"):
                    self.last_reason[peer] = info["last_reason"]
                if info.get("gave_up"):
                    self.gave_up[peer] = info["gave_up"]

    def start(self) -> None:
        self.daemon.call_every(CHECK_INTERVAL, self.check, first=CHECK_INTERVAL)

    def check(self) -> None:
        spec = launch_spec(self.daemon.paths.run_dir)
        if not spec or spec.get("desired") != "up" or self.daemon.stopping or up_is_starting(spec):
            return
        for peer in self.peers:
            if peer in spec.get("daemons", {}):
                self._check_peer(spec, peer)

    def _check_peer(self, spec: dict, peer: str) -> None:
        child = self.children.get(peer)
        if child is not None and child.poll() is not None:
            self.children.pop(peer, None)  # reaped
            self.why_gone.setdefault(peer, _exit_words(child.returncode))
        paths = self.daemon.paths
        pidfile = read_json(paths.pidfile(peer)) or {}
        if pidfile.get("state") == "stopped" and pidfile.get("started_at", 0) >= spec.get("started_at", 0):
            return  # it stopped cleanly on request: not a crash
        rec = live_record(paths.pidfile(peer))
        if rec is not None:
            if self.gave_up.pop(peer, None) is not None:  # someone started it again by hand: a fresh allowance
                self.history[peer].clear()
                self._save()
            if not self._hung(peer, rec):
                return
        else:
            self._forget_watch(peer)
        if lock_is_held(paths.lockfile(peer)):
            return  # starting up: locked, pid file not written yet
        if self._still_starting(peer):
            return  # our copy runs but has not taken its lock yet (a slow start under load)
        if peer in self.gave_up:
            return
        now = time.time()
        if now < self.not_before.get(peer, 0):
            return
        hist = self.history[peer]
        while hist and now - hist[0] > self.window:
            hist.popleft()
        if len(hist) >= self.max_restarts:
            self._give_up(peer, f"{len(hist)} restarts in {self.window:g}s; not restarting again")
            return
        self._restart(spec, peer, now)

    def _hung(self, peer: str, rec: dict) -> bool:
        """Ping the running peer; one that has answered nothing for AURA_PEER_HANG_SECONDS is
        killed (PID and start time checked), so that the caller restarts it."""
        if self.hang_s <= 0:
            return False
        instance = (rec.get("pid"), rec.get("create_time"))
        held = self.watches.get(peer)
        if held is None or held[0] != instance:
            self._forget_watch(peer)
            ctx = getattr(self.daemon, "ctx", None) or zmq.Context.instance()
            held = self.watches[peer] = (
                instance,
                PingWatch(ctx, rec.get("endpoint") or self.daemon.paths.endpoint(peer)),
            )
        waited = held[1].unanswered_for()
        if waited < self.hang_s:
            return False
        self._forget_watch(peer)
        reason = f"did not answer pings for {waited:.0f}s"
        killed = kill_instance(rec["pid"], rec.get("create_time"))
        self.daemon.log.error("peer_hung", peer=peer, pid=rec["pid"], unanswered_s=round(waited, 1), killed=killed)
        self.why_gone[peer] = reason
        return killed and not lock_is_held(self.daemon.paths.lockfile(peer))

    def _forget_watch(self, peer: str) -> None:
        held = self.watches.pop(peer, None)
        if held is not None:
            held[1].close()

    def _restart(self, spec: dict, peer: str, now: float) -> None:
        hist = self.history[peer]
        hist.append(now)
        self.count[peer] = self.count.get(peer, 0) + 1
        self.last_reason[peer] = self.why_gone.pop(peer, "") or "it was gone (crashed or killed)"
        backoff = min(30.0, 0.5 * 2 ** (len(hist) - 1))
        self.not_before[peer] = now + backoff
        self.started_at[peer] = time.monotonic()
        try:
            self.children[peer] = start_daemon(spec, peer, self.daemon.paths.stdio_file(peer))
        except (OSError, KeyError) as exc:
            self.daemon.log.error("peer_restart_failed", peer=peer, error=repr(exc))
        else:
            self.daemon.log.warning(
                "peer_restarted",
                peer=peer,
                pid=self.children[peer].pid,
                why=self.last_reason[peer],
                restarts_in_window=len(hist),
                next_backoff_s=backoff,
            )
            self.daemon.publish(
                "daemon_restarted",
                daemon=peer,
                by=self.daemon.name,
                why=self.last_reason[peer],
                pid=self.children[peer].pid,
                restarts_in_window=len(hist),
            )
        self._save()

    def _still_starting(self, peer: str) -> bool:
        """A copy we started that runs without its lock is starting, not dead: starting another
        would only count a restart per check. Past START_GRACE it is hung: stop it by PID."""
        child = self.children.get(peer)
        if child is None or child.poll() is not None:
            return False
        if time.monotonic() - self.started_at.get(peer, 0.0) < START_GRACE:
            return True
        self.daemon.log.error("peer_start_hung", peer=peer, pid=child.pid, grace_s=START_GRACE)
        child.kill()
        try:
            child.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        self.children.pop(peer, None)
        return False

    def _give_up(self, peer: str, reason: str) -> None:
        why = self.why_gone.pop(peer, "")
        if why:
            reason += f" (last: {why})"
        self.gave_up[peer] = reason
        self.daemon.log.error("peer_gave_up", peer=peer, reason=reason)
        self.daemon.publish("daemon_down", daemon=peer, by=self.daemon.name, reason=reason)
        self._save()

    def _save(self) -> None:
        atomic_write_json(
            self.record_path,
            {
                "restarter": self.daemon.name,
                "launch": (launch_spec(self.daemon.paths.run_dir) or {}).get("started_at"),
                "peers": {
                    p: {
                        "restarts": list(self.history[p]),
                        "gave_up": self.gave_up.get(p),
                        "count": self.count.get(p, 0),
                        "last_reason": self.last_reason.get(p),
                    }
                    for p in self.peers
                },
            },
        )

    def reap(self) -> None:
        for peer, child in list(self.children.items()):
            if child.poll() is not None:
                self.children.pop(peer, None)

    def summary(self) -> dict[str, Any]:
        return {
            p: {
                "restarts_in_window": len(self.history[p]),
                "gave_up": self.gave_up.get(p),
                "restarts": self.count.get(p, 0),
                "last_reason": self.last_reason.get(p),
            }
            for p in self.peers
        }


def _exit_words(code: int | None) -> str:
    if code is None:
        return "it was gone (crashed or killed)"
    if code < 0:
        try:
            return f"it was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"it was killed by signal {-code}"
    return f"it exited with code {code}"
