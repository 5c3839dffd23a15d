"""Every setting checked once when a run or a daemon starts, and each change made while it runs.

A value outside its range, a misspelt key, or settings that cannot work together refuse the start
with one line per problem naming the key, the value, where it came from and what is allowed. The
types and ranges are aura.runtime.config.KEYS; the rules that tie several keys together live here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from .approvals import EXPECTED as APPROVALS
from .approvals import ApprovalError
from .approvals import parse as parse_approvals
from .config import ALIASES, KEYS, Config, ConfigError

# AURA_* names that Aura, its service units, its hooks and its tests put in an environment, and
# that are not settings: an environment holding them gets no warning.
NOT_SETTINGS = frozenset(
    {
        "AURA_DATA_DIR",
        "AURA_PROJECT_ROOT",
        "AURA_HOME",  # where a run lives, read before any config file
        "AURA_TASK_FILE",
        "AURA_ENV_FILE",  # systemd / launchd units
        "AURA_SERVICE_HOME",
        "AURA_SERVICE_MANAGER",
        "AURA_SERVICE_TEMPLATES",
        "AURA_SYSTEMCTL",
        "AURA_LOGINCTL",
        "AURA_LAUNCHCTL",
        "AURA_SYSTEM_UNIT_DIR",  # `aura service` pointed at another machine (tests)
        "AURA_EVENT",
        "AURA_MESSAGE",
        "AURA_EVENT_JSON",
        "AURA_TASK_ID",  # notification hooks
        "AURA_WORKER_ID",
        "AURA_TASK_DIR",
        "AURA_WORKER_FORBID_OFFLOAD",
        "AURA_DSCODE_STDIN",  # workers
        "AURA_CLAUDE_CODE_VERSION",
        "AURA_TEST_CACHE",
        "AURA_TEST_CLAUDE_RESULTS",
        "AURA_FUZZ_EXAMPLES",
        "AURA_UPDATE_FIXTURES",  # the test suite's own switches
    }
)
SECRET_NAME = re.compile(r"(KEY|TOKEN)$|SECRET|PASSWORD|PASSWD|CREDENTIAL")
POLL = "AURA_WORKER_RESOURCE_POLL_SECONDS"
WINDOW = "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS"
MIN_POLLS_PER_WINDOW = 2  # a strike compares a window average, which needs two samples
HANG = "AURA_PEER_HANG_SECONDS"
MIN_HANG_SECONDS = 2.0
RAM_RESERVE = "AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB"
APPROVE = "AURA_APPROVE"


def is_secret(key: str) -> bool:
    """A credential, by the table or by its name (`*_KEY`, `*_TOKEN`, `*SECRET*`)."""
    setting = KEYS.get(ALIASES.get(key, key))
    return bool(setting and setting.secret) or bool(SECRET_NAME.search(key))


def shown(key: str, value: str) -> str:
    """`KEY='value'` for a message; a credential's value is never printed."""
    return f"{key}=<hidden>" if is_secret(key) and value else f"{key}={value!r}"


def suggestion(key: str, names: Iterable[str] | None = None) -> str:
    """ "; did you mean X?" with the nearest known names (every setting, or `names`)."""
    scored = sorted(
        (
            (difflib.SequenceMatcher(None, key, name).ratio(), name)
            for name in (names if names is not None else [*KEYS, *ALIASES])
        ),
        reverse=True,
    )
    best = scored[0][0] if scored else 0.0
    close = [name for ratio, name in scored[:3] if ratio >= max(0.6, best - 0.1)]  # a clear winner stands alone
    if close:
        return "; did you mean " + (f"{', '.join(close[:-1])} or " if len(close) > 1 else "") + close[-1] + "?"
    return "" if names is not None else "; aura/runtime/config.py lists every setting"


def value_problem(key: str, raw: str, source: str) -> str | None:
    """One line when `raw` is not allowed for the known key `key`; None when it is."""
    setting = KEYS[ALIASES.get(key, key)]
    allowed = setting.problem(raw)
    if allowed is None:
        return None
    meaning = "" if setting.kind == "choice" else f" ({setting.description})"
    return f"{shown(key, raw)} from {source}: expected {allowed}{meaning}"


def unknown_problem(key: str, source: str) -> str:
    return f"{key} from {source} is not an Aura setting{suggestion(key)}"


def cross_problems(values: Mapping[str, str], sources: Mapping[str, str]) -> list[str]:
    """Settings each valid alone that cannot work together, or that a plain range cannot say
    (values: raw strings; absent or empty means the default)."""

    def number(key: str) -> float | None:
        raw = (values.get(key) or "").strip() or str(KEYS[key].default)
        return float(raw) if KEYS[key].problem(raw) is None else None

    found = []
    poll, window = number(POLL), number(WINDOW)
    if poll is not None and window is not None and window < MIN_POLLS_PER_WINDOW * poll:
        found.append(
            f"{shown(WINDOW, values.get(WINDOW) or str(window))} from {sources.get(WINDOW, 'the default')} "
            f"is shorter than two polls of {POLL}={poll:g} (from {sources.get(POLL, 'the default')}): a "
            f"strike compares a window average, which needs two samples, so no limit would ever be "
            f"enforced; expected a window of at least {MIN_POLLS_PER_WINDOW * poll:g} s, or a shorter poll"
        )
    hang = number(HANG)
    if hang is not None and 0 < hang < MIN_HANG_SECONDS:
        found.append(
            f"{shown(HANG, values.get(HANG) or str(hang))} from {sources.get(HANG, 'the default')}: a peer "
            f"pings about once a second, so a bound this short would kill daemons that are merely busy; "
            f"expected 0 (no hang check) or at least {MIN_HANG_SECONDS:g}"
        )
    approve = (values.get(APPROVE) or "").strip()
    if approve:
        try:
            parse_approvals(approve)
        except ApprovalError as exc:
            found.append(
                f"{shown(APPROVE, approve)} from {sources.get(APPROVE, 'the default')}: {exc}; expected {APPROVALS}"
            )
    reserve = number(RAM_RESERVE)
    if reserve:
        import psutil

        total = psutil.virtual_memory().total / 1024**3
        if reserve >= total:
            found.append(
                f"{shown(RAM_RESERVE, values.get(RAM_RESERVE) or str(reserve))} from "
                f"{sources.get(RAM_RESERVE, 'the default')}: this machine has {total:.1f} GB of RAM in "
                f"all, so no worker could ever start; expected less than {total:.1f}, or 0"
            )
    return found


def problems(values: Mapping[str, str], sources: Mapping[str, str]) -> list[str]:
    """One line per unknown AURA_* key or value out of range, then one per broken cross-key rule.
    Names without the AURA_ prefix (a config file may hold other variables) are left alone."""
    found = []
    for key, raw in values.items():
        source = sources.get(key, "the configuration")
        if key in KEYS or key in ALIASES:
            line = value_problem(key, raw, source)
            if line:
                found.append(line)
        elif key.startswith("AURA_"):
            found.append(unknown_problem(key, source))
    return found + cross_problems(values, sources)


def env_warnings(cfg: Config) -> list[str]:
    """AURA_* names in the environment that are no setting: other programs may use the prefix,
    so these are warned about, not refused."""
    return [
        f"{name} in the environment is not an Aura setting and is ignored{suggestion(name)}"
        for name in sorted(cfg.unknown_env)
        if name not in NOT_SETTINGS
    ]


def check_start(cfg: Config, watchdog_dir: Path | None = None, warn: Callable[[str], None] = lambda line: None) -> None:
    """Refuse a start on any problem (ConfigError, one line each); pass warnings to `warn`.

    With `watchdog_dir`, the limits changed at run time and kept there are checked too, since the
    watchdog will start with them."""
    values, sources = dict(cfg.values), dict(cfg.sources)
    if watchdog_dir is not None:
        from .records import run_time_limits, run_time_limits_path

        kept = run_time_limits(watchdog_dir)
        values.update(kept)
        label = f"`aura limits` (kept in {run_time_limits_path(watchdog_dir)}; delete that file to drop them)"
        sources.update({k: label for k in kept})
    for line in env_warnings(cfg):
        warn(line)
    found = problems(values, sources)
    if found:
        raise ConfigError("\n".join(found))


def refused(exc: ConfigError) -> str:
    """The message that refuses a start: the problems, then that nothing started."""
    text = str(exc).rstrip()
    return f"{text}{'' if text.endswith(('.', '?')) else '.'} Nothing was started."
