"""set_limits: change limits while the run runs (`aura limits KEY=VALUE`).

Checked by the same rules as a start, together with the run's other settings; kept in
watchdog/limits.json before it takes effect (a change that would not survive a restart is not
made); then in force for every worker at the next sample, logged, and published (`limits_changed`).

Request: {values: {AURA_*: str}, by: str = "cli"}
Reply: {limits: {AURA_*: value}, changed: {AURA_*: {old, new}}}
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aura.ipc import envelope as env
from aura.ipc.envelope import BadArgs, IpcError
from aura.runtime.config import ConfigError
from aura.runtime.diskspace import DISK_KEYS, parse_mb
from aura.runtime.eventkinds import LIMITS_CHANGED
from aura.runtime.fsutil import atomic_write_json, disk_full
from aura.runtime.limits import LIMITS
from aura.runtime.ops import Arg, operation
from aura.runtime.records import run_time_limits_path
from aura.runtime.settings_check import suggestion

from ..policy import POLICY_KEYS, Policy

if TYPE_CHECKING:
    from ..main import WatchdogDaemon


@operation("set_limits", "watchdog", Arg("values", dict), Arg("by", str, "cli"))
def set_limits(dog: WatchdogDaemon, args: dict) -> dict:
    clean = known_values(args["values"])
    merged = {**dog.overrides, **clean}
    try:
        policy = Policy.from_config(dog.cfg, {k: v for k, v in merged.items() if k not in DISK_KEYS})
        disk = {**dog.disk.settings, **{k: parse_mb(k, v) for k, v in clean.items() if k in DISK_KEYS}}
    except ConfigError as exc:
        raise BadArgs(str(exc)) from None
    keep(dog, merged)
    old = {**dog.policy.as_dict(), **dog.disk.settings}
    dog.use_policy(policy, merged, disk)
    changed = {k: {"old": old.get(k), "new": v} for k, v in {**policy.as_dict(), **disk}.items() if old.get(k) != v}
    dog.log.warning(LIMITS_CHANGED, changed=changed, by=args["by"])
    dog.publish(LIMITS_CHANGED, changed=changed)
    return {"limits": {**policy.as_dict(), **disk}, "changed": changed}


def known_values(values: dict) -> dict[str, str]:
    """The requested values as strings; BadArgs naming the closest key for one that is no limit."""
    known = [*LIMITS, *POLICY_KEYS, *DISK_KEYS]
    clean: dict[str, str] = {}
    for key, value in values.items():
        if key not in known:
            raise BadArgs(f"unknown limit {key!r}{suggestion(str(key), known)} (known: {', '.join(known)})")
        clean[key] = str(value)
    return clean


def keep(dog: WatchdogDaemon, overrides: dict[str, str]) -> None:
    """Write the changes down first; on a full disk the request fails and nothing changes."""
    try:
        atomic_write_json(
            run_time_limits_path(dog.paths.watchdog_dir), {"overrides": overrides, "updated_at": time.time()}
        )
    except OSError as exc:
        if not disk_full(exc):
            raise
        raise IpcError(env.UNAVAILABLE, f"the change was not made: the disk is full ({exc.strerror})") from None
