"""The sd_notify protocol, spoken directly (no libsystemd, no extra package).

Under `Type=notify` systemd passes `NOTIFY_SOCKET`; a daemon reports readiness, status and
liveness by sending one AF_UNIX datagram of newline-separated `KEY=VALUE` fields to it.
A name starting with `@` is in the abstract namespace. Outside systemd the variable is unset
and every call here is a cheap no-op, so daemons can call these helpers unconditionally.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, MutableMapping

#: Variables a managed daemon must not hand down to workers (they could spoof it).
MANAGER_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _address(name: str) -> str | bytes:
    """The socket address for `NOTIFY_SOCKET`: `@name` means the abstract namespace."""
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


def notify(*fields: str) -> bool:
    """Send `fields` (e.g. "READY=1") as one datagram; True when it was sent.

    False when not running under a service manager or when sending fails: a lost
    notification must never take the daemon down.
    """
    name = os.environ.get("NOTIFY_SOCKET")
    if not name or not fields:
        return False
    payload = "\n".join(fields).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(_address(name))
            sock.sendall(payload)
    except (OSError, ValueError):
        return False
    return True


def ready() -> bool:
    """Tell the manager we answer requests now (ends the start-up phase of Type=notify)."""
    return notify("READY=1")


def stopping() -> bool:
    """Tell the manager a shutdown is under way, so a slow stop is not taken for a hang."""
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """One line shown by `systemctl status` (newlines would split the protocol's fields)."""
    return notify("STATUS=" + " ".join(text.splitlines()))


def watchdog_ping() -> bool:
    """Prove liveness; with `WatchdogSec=` a missed ping gets the daemon killed and restarted."""
    return notify("WATCHDOG=1")


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout in seconds, or None when no watchdog applies to this process.

    Ping at half this interval. `WATCHDOG_PID`, when set, names the process the watchdog is
    meant for; a child that merely inherited the variables must not ping.
    """
    env = os.environ if environ is None else environ
    pid = env.get("WATCHDOG_PID")
    if pid is not None and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


def scrub_env(env: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Drop the manager's variables from a worker's environment (in place; returned for chaining)."""
    for key in MANAGER_VARS:
        env.pop(key, None)
    return env
