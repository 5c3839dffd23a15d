"""Each running worker's resource figures as the watchdog last sampled them, for the model.

Asked once per use (the cycle's snapshot, `list_running_tasks`) with a short timeout and no
retry: a watchdog that is down or hung costs the brain about a second, and the model reads
"watchdog down" instead of figures.
"""

from __future__ import annotations

from typing import Any

from aura.ipc.client import Client, DaemonUnavailable, RemoteError

ASK_TIMEOUT = 1.0
DOWN = "watchdog down: no CPU, RSS, GPU or strike figures"


class WorkerUsage:
    def __init__(self, endpoint: str, ctx: Any, timeout: float = ASK_TIMEOUT):
        self.client = Client(endpoint, "watchdog", timeout=timeout, retries=0, ctx=ctx)

    def fetch(self, worker_ids: list[str]) -> dict[str, dict] | None:
        """worker id -> the watchdog's figures; None when the watchdog does not answer."""
        if not worker_ids:
            return {}
        try:
            reply = self.client.call("usage", {"worker_ids": worker_ids})
        except (DaemonUnavailable, RemoteError):
            return None
        workers = reply.get("workers") if isinstance(reply, dict) else None
        return workers if isinstance(workers, dict) else {}

    def close(self) -> None:
        self.client.close()


def _size(n: Any) -> str:
    if not isinstance(n, (int, float)) or n <= 0:
        return "0"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def describe(usage: dict[str, dict] | None, worker_id: str | None, strikes_to_kill: int) -> str:
    """`cpu 85%, rss 1.2 GB (7.5% of RAM), gpu 2.0 GB at 40%, strikes rss 2/3` for one worker."""
    if usage is None:
        return "watchdog down"
    u = usage.get(worker_id or "")
    if not u:
        return "no watchdog sample yet"
    bits = [
        f"cpu {float(u.get('cpu_percent') or 0):.0f}%",
        f"rss {_size(u.get('rss_bytes'))} ({float(u.get('mem_percent') or 0):.1f}% of RAM)",
    ]
    if u.get("gpu_mem_bytes"):
        util = u.get("gpu_util_percent")
        bits.append(f"gpu {_size(u['gpu_mem_bytes'])}" + (f" at {float(util):.0f}%" if util is not None else ""))
    strikes = u.get("strikes") or {}
    bits.append(
        "strikes "
        + (
            ", ".join(f"{k.removeprefix('AURA_WORKER_')} {n}/{strikes_to_kill}" for k, n in sorted(strikes.items()))
            if strikes
            else "none"
        )
    )
    return ", ".join(bits)
