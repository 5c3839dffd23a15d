"""Configuration: every AURA_* key with its type, default and range, merged from several sources.

Precedence, lowest first (documented in the README):
  built-in defaults < ~/.aura/config.env < <project>/.aura/config.env < environment (AURA_*)
  < --config FILE < --override KEY=VALUE

KEYS gives every key its type and the values it allows. Values stay strings until read through a
typed getter; `aura.runtime.settings_check` checks all of them once, when a run or a daemon starts, so a
getter never meets a value it cannot use and nothing runs on a value that would not work.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Setting:
    """One AURA_* key: default, meaning, type (text / int / float / bool / choice / url) and range.

    An empty number means its default; an empty choice or URL is allowed only when the default
    is empty. `above` makes `low` exclusive (a value must be greater than it)."""

    default: object
    description: str
    kind: str = "text"
    low: float | None = None
    high: float | None = None
    above: bool = False
    choices: tuple[str, ...] = ()
    secret: bool = False

    def problem(self, raw: str) -> str | None:
        """None when `raw` is allowed; else what is allowed, in words."""
        value = raw.strip()
        if self.kind == "text":
            return None
        if self.kind == "bool":
            return None if value.lower() in TRUE_WORDS + FALSE_WORDS else self.allowed()
        if value == "":
            return None if self.kind in ("int", "float") or self.default == "" else self.allowed()
        if self.kind == "choice":
            return None if self.canonical(value) in self.choices else self.allowed()
        if self.kind == "url":
            return None if value.lower().startswith(("http://", "https://")) and len(value) > 8 else self.allowed()
        try:
            number = float(value)
        except ValueError:
            return self.allowed()
        if not math.isfinite(number) or (self.kind == "int" and not number.is_integer()):
            return self.allowed()
        if self.low is not None and (number <= self.low if self.above else number < self.low):
            return self.allowed()
        if self.high is not None and number > self.high:
            return self.allowed()
        return None

    def canonical(self, raw: str) -> str:
        """A choice in the table's spelling (`LOCAL ` is `local`); other kinds unchanged."""
        if self.kind != "choice":
            return raw
        value = raw.strip().lower()
        return next((c for c in self.choices if c.lower() == value), raw)

    def allowed(self) -> str:
        if self.kind == "bool":
            return "1/0, true/false, yes/no or on/off"
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices) + (" (or empty)" if self.default == "" else "")
        if self.kind == "url":
            return "an http:// or https:// URL" + (" (or empty)" if self.default == "" else "")
        if self.kind == "text":
            return "any text"
        noun = "a whole number" if self.kind == "int" else "a number"
        low, high = _num(self.low), _num(self.high)
        if low is not None and high is not None and not self.above:
            return f"{noun} from {low} to {high}"
        parts = [
            f"{'>' if self.above else '>='} {low}" if low is not None else "",
            f"<= {high}" if high is not None else "",
        ]
        return f"{noun} " + " and ".join(p for p in parts if p) if any(parts) else noun


def _num(x: float | None) -> str | None:
    return None if x is None else f"{x:g}"


def text(default: str, description: str, secret: bool = False) -> Setting:
    return Setting(default, description, secret=secret)


def url(default: str, description: str, secret: bool = False) -> Setting:
    return Setting(default, description, "url", secret=secret)


def flag(default: bool, description: str) -> Setting:
    return Setting(default, description, "bool")


def whole(default: int, description: str, low: int = 0, high: int | None = None) -> Setting:
    return Setting(default, description, "int", low=low, high=high)


def number(
    default: float | str, description: str, low: float = 0.0, high: float | None = None, above: bool = False
) -> Setting:
    return Setting(default, description, "float", low=low, high=high, above=above)


def positive(default: float, description: str, high: float | None = None) -> Setting:
    return number(default, description, 0.0, high, above=True)


def one_of(default: str, description: str, *choices: str) -> Setting:
    return Setting(default, description, "choice", choices=choices)


def percent(default: float, description: str) -> Setting:
    return number(default, description, 0.0, 100.0)


def _typed(table: Mapping[str, Setting | tuple[object, str]]) -> dict[str, Setting]:
    """The table as Settings; a plain (default, description) entry gets the type of its default
    (numbers >= 0), so a key added in that form is still checked."""
    out: dict[str, Setting] = {}
    for key, entry in table.items():
        if isinstance(entry, Setting):
            out[key] = entry
            continue
        default, description = entry
        if isinstance(default, bool):
            out[key] = flag(default, description)
        elif isinstance(default, int):
            out[key] = whole(default, description)
        elif isinstance(default, float):
            out[key] = number(default, description)
        else:
            out[key] = text(str(default), description)
    return out


GUARD_WORDS = ("1", "0", "dry-run", "on", "off", "true", "false", "yes", "no", "dry_run", "dryrun")
SCOPE_WORDS = ("auto", "on", "off", "1", "0", "true", "false", "yes", "no")
BACKEND_NAMES = ("claude", "ds_code", "opencode", "codex", "shell", "ds-code", "dscode")

KEYS: dict[str, Setting] = _typed(
    {
        # Layer 1 model
        "AURA_API_KEY": text("", "API key for the Layer 1 model (no key: the offline `local` planner)", secret=True),
        "AURA_API_BASE_URL": url("https://api.deepseek.com/anthropic", "Anthropic-compatible endpoint"),
        "AURA_API_MODEL": text("deepseek-v4-pro", "Layer 1 model"),
        "AURA_API_PROVIDER": one_of(
            "", "deepseek / anthropic / openai (auto-detected from the base URL)", "deepseek", "anthropic", "openai"
        ),
        "AURA_API_MAX_TOKENS": whole(4096, "max output tokens per Layer 1 call", low=1),
        "AURA_API_TIMEOUT": positive(300.0, "per-request timeout, seconds"),
        "AURA_PLANNER": one_of(
            "auto", "auto (llm when a key is set, else local) / llm / local", "auto", "llm", "local"
        ),
        "AURA_CYCLE_INTERVAL": number(300.0, "seconds between brain cycles", low=0.5),
        "AURA_DEEP_REFLECTION_INTERVAL": number(
            120,
            "minutes between reflection reviews, checked after model cycles; "
            "fractions allowed, 0 disables (alias AURA_DEEP_REVIEW_INTERVAL)",
        ),
        "AURA_LLM_DEAD_THROTTLE": number(300.0, "seconds between model retries in safe mode"),
        "AURA_MAX_API_ROUNDS_PER_CYCLE": whole(20, "hard cap on model calls per cycle", low=1),
        "AURA_MAX_TOOL_CALLS_PER_CYCLE": whole(40, "hard cap on tool calls per cycle", low=1),
        "AURA_SKIP_HEALTHY_CYCLES": flag(True, "skip the model call when nothing changed"),
        "AURA_MAX_SKIPPED_CYCLES": whole(8, "force a model call after this many skipped cycles"),
        "AURA_EXPLICIT_PROMPT_CACHE": flag(True, "mark the stable prompt prefix for caching"),
        "AURA_TOKEN_PRICE_CACHE_HIT": number(
            "", "USD per 1M cached input tokens (empty: the provider's price for the model)"
        ),
        "AURA_TOKEN_PRICE_CACHE_MISS": number("", "USD per 1M uncached input tokens (empty: the provider's price)"),
        "AURA_TOKEN_PRICE_OUTPUT": number("", "USD per 1M output tokens (empty: the provider's price)"),
        "AURA_TOKEN_PRICE_CACHE_WRITE": number(
            "", "USD per 1M cache-write tokens, any TTL (empty: the provider's price by TTL)"
        ),
        "AURA_TOOL_CALL_BUDGET_NORMAL": whole(12, "tool-call hint per normal cycle"),
        "AURA_TOOL_CALL_BUDGET_DIAGNOSTIC": whole(40, "tool-call hint per diagnostic cycle"),
        "AURA_TOOL_CALL_BUDGET_PLANNING": whole(40, "tool-call hint per planning cycle"),
        "AURA_BUDGET_USD": number(0.0, "run budget in USD for both layers; 0 = none"),
        "AURA_SEARCH_API_KEY": text("", "Tavily key for web_search", secret=True),
        "AURA_FILE_CACHE": flag(True, "mtime-based cache for read_file / list_directory"),
        "AURA_FILE_CACHE_TTL": number(60.0, "file cache TTL, seconds"),
        "AURA_TASK_SUMMARY": flag(True, "write a summary per finished task"),
        "AURA_TASK_CLEANUP_AGE": whole(7, "days before clean-workspaces removes a workspace"),
        "AURA_API_AUTH": one_of(
            "api_key",
            "how the key is sent: api_key (x-api-key) / auth_token (Authorization: Bearer)",
            "api_key",
            "auth_token",
        ),
        "AURA_API_RETRY_COUNT": whole(4, "attempts per model call (429/529/5xx/timeouts/connection errors)", low=1),
        "AURA_API_RETRY_BASE_DELAY": number(5.0, "first retry delay, seconds; doubles per attempt (retry-after wins)"),
        "AURA_SAFE_MODE_AFTER": whole(3, "failed model cycles in a row before safe mode (no new spawns)", low=1),
        "AURA_PROMPT_CACHE_TTL": one_of("1h", "cache TTL of the stable prompt prefix: 1h / 5m", "1h", "5m"),
        "AURA_MEMORY_CONTEXT_CHARS": whole(3000, "MEMORY.md characters shown to the model, newest first"),
        "AURA_ACCEPTANCE_TIMEOUT": positive(300.0, "seconds each acceptance command may run"),
        "AURA_WEB_FETCH_ALLOW_PRIVATE": flag(False, "let web_fetch reach loopback and private addresses"),
        "AURA_WORKER_TOKEN_PRICE_CACHE_HIT": number(
            "", "USD per 1M cached input tokens for workers (empty: the price of the worker's model, else the L1 price)"
        ),
        "AURA_WORKER_TOKEN_PRICE_CACHE_MISS": number(
            "", "USD per 1M uncached input tokens for workers (empty: as above)"
        ),
        "AURA_WORKER_TOKEN_PRICE_OUTPUT": number("", "USD per 1M output tokens for workers (empty: as above)"),
        "AURA_WORKER_TOKEN_PRICE_CACHE_WRITE": number(
            "", "USD per 1M cache-write tokens for workers (empty: as above)"
        ),
        "AURA_BUDGET_WARN_PERCENT": positive(80.0, "budget share that raises budget_warning", high=100.0),
        "AURA_NOTIFY_COMMAND": text("", "shell command run on notifications (AURA_EVENT, AURA_MESSAGE, ... set)"),
        "AURA_NOTIFY_WEBHOOK": url("", "URL that receives each notification as a JSON POST", secret=True),
        "AURA_NOTIFY_LEVEL": one_of(
            "state_changes", "state_changes / done_only / silent", "state_changes", "done_only", "silent"
        ),
        "AURA_NOTIFY_TIMEOUT": positive(10.0, "seconds a notification hook may take"),
        "AURA_APPROVE": text(
            "",
            "actions that wait for a person's yes (aura approve): spawn, merge, kill, spend-over:USD, comma-separated",
        ),
        "AURA_NO_PROGRESS_MINUTES": number(
            60.0,
            "notify (no_progress) when nothing started, ended or called the model "
            "for this long; once per stall; 0 disables",
        ),
        # where workers run
        "AURA_EXECUTOR": one_of(
            "local", "local (processes on this machine) / slurm (Slurm batch jobs)", "local", "slurm"
        ),
        "AURA_SLURM_PARTITION": text("", "sbatch --partition (empty: the cluster's default)"),
        "AURA_SLURM_ACCOUNT": text("", "sbatch --account"),
        "AURA_SLURM_QOS": text("", "sbatch --qos"),
        "AURA_SLURM_ARGS": text("", "extra sbatch options, shell-quoted"),
        "AURA_SLURM_GPUS": whole(0, "sbatch --gpus per worker; 0 asks for none"),
        "AURA_SLURM_PROBE_SECONDS": number(
            60.0, "seconds `aura up` waits for its probe job to show a node can write into the data folder", low=1
        ),
        "AURA_SLURM_QUEUE_TIMEOUT": number(
            3600.0,
            "seconds a Slurm job may wait in the queue before it is cancelled and its attempt fails; 0: no limit",
        ),
        # git mode
        "AURA_GIT": one_of(
            "auto",
            "auto (git mode when the project folder is a git work tree) / on (refuse to start without one) / off",
            "auto",
            "on",
            "off",
        ),
        "AURA_GIT_BRANCH": text("", "the run's integration branch (empty: aura/<run id>)"),
        "AURA_GIT_DIRTY": one_of(
            "warn",
            "uncommitted changes in the project folder at start: warn (workers do not see them) / refuse",
            "warn",
            "refuse",
        ),
        # Layer 2 workers
        "AURA_LAYER2_BACKEND": one_of("claude", "claude / ds_code / opencode / codex / shell", *BACKEND_NAMES),
        "AURA_MAX_CONCURRENT_TASKS": whole(2, "max concurrent Layer 2 workers", low=1),
        "AURA_TASK_BUDGET": positive(30.0, "default worker time budget, minutes (enforced)"),
        "AURA_MAX_TURNS": whole(50, "--max-turns for claude workers", low=1),
        "AURA_CLAUDE_BIN": text("", "explicit claude executable"),
        "AURA_CLAUDE_PERMISSION_MODE": text("bypassPermissions", "claude --permission-mode"),
        "AURA_CLAUDE_MODEL": text("", "claude --model (empty: the CLI's default)"),
        "AURA_OPENCODE_BIN": text("", "explicit opencode executable"),
        "AURA_OPENCODE_MODEL": text("deepseek-v4-pro", "opencode model"),
        "AURA_OPENCODE_MAX_TURNS": whole(50, "opencode max turns", low=1),
        "AURA_CODEX_BIN": text("", "explicit codex executable"),
        "AURA_DSCODE_MODEL": text("deepseek-v4-pro", "ds-code model"),
        "AURA_DSCODE_MAX_TURNS": whole(0, "ds-code max turns (0: AURA_MAX_TURNS)"),
        "AURA_DSCODE_BASE_URL": url("", "ds-code base URL"),
        "AURA_DEEPSEEK_API_KEY": text("", "ds-code DEEPSEEK_API_KEY", secret=True),
        "AURA_WORKERS_IN_DOCKER": flag(False, "run claude workers in Docker"),
        "AURA_DOCKER_BIN": text("docker", "docker command"),
        "AURA_DOCKER_GPUS": text("", "docker --gpus value"),
        "AURA_DOCKER_EXTRA_ARGS": text("", "extra docker run arguments"),
        "AURA_DOCKER_CLAUDE_API_KEY": text("", "key for claude in the container", secret=True),
        "AURA_DOCKER_CLAUDE_BASE_URL": url("", "base URL for claude in the container"),
        "AURA_DOCKER_CLAUDE_MODEL": text("", "model in the container"),
        "AURA_DOCKER_CLAUDE_SMALL_MODEL": text("", "small model in the container"),
        "AURA_DOCKER_CLAUDE_SUBAGENT_MODEL": text("", "sub-agent model in the container"),
        "AURA_STUCK_MINUTES": positive(10.0, "minutes of agreeing stuck signals before a worker is reported stuck"),
        "AURA_KILL_GRACE_SECONDS": number(5.0, "SIGTERM-to-SIGKILL grace when stopping a worker"),
        "AURA_STUCK_CPU_PERCENT": number(5.0, "a worker tree above this CPU (% of one core) is busy, not stuck"),
        "AURA_LOOP_REPEAT": whole(5, "the same tool call this many times in a row is a loop", low=2),
        "AURA_RESULT_GRACE_SECONDS": number(15.0, "seconds a CLI may linger after its final line before it is stopped"),
        "AURA_CLAUDE_MAX_RETRIES": whole(2, "CLAUDE_CODE_MAX_RETRIES for claude workers (Aura owns the retry policy)"),
        "AURA_CODEX_MODEL": text("", "codex -m (empty: the CLI's default)"),
        "AURA_CODEX_SANDBOX": one_of(
            "bypass",
            "codex: bypass / read-only / workspace-write / danger-full-access",
            "bypass",
            "read-only",
            "workspace-write",
            "danger-full-access",
        ),
        "AURA_DSCODE_BIN": text("", "explicit ds-code executable"),
        "AURA_AUTO_RESUME": flag(True, "resume a worker stopped by a rate or usage limit with its session id"),
        "AURA_MAX_RESUMES": whole(3, "how many times one task may be parked and resumed"),
        "AURA_RESUME_DELAY_SECONDS": number(300.0, "wait before resuming when the limit does not say when it lifts"),
        "AURA_WORKER_ISOLATION": one_of(
            "none", "none / bwrap / docker (AURA_WORKERS_IN_DOCKER=1 means docker)", "none", "bwrap", "docker"
        ),
        "AURA_WORKER_MOUNTS": text("", "extra paths a sandboxed worker may write (comma-separated)"),
        "AURA_BWRAP_BIN": text("bwrap", "bubblewrap command"),
        "AURA_BWRAP_SHARE_NET": flag(True, "bubblewrap workers keep the network (agent CLIs need their API)"),
        "AURA_BWRAP_HIDE": text("", "more paths hidden from bubblewrap workers (comma-separated)"),
        "AURA_DOCKER_IMAGE": text("", "image for Docker workers (must hold the worker CLI)"),
        "AURA_SHIM": one_of(
            "auto",
            "auto / native / python: the C shim per worker where it can be built, or the Python one",
            "auto",
            "native",
            "python",
        ),
        "AURA_WORKER_SCOPE": one_of(
            "auto", "auto / on / off: each worker in its own systemd scope when under systemd", *SCOPE_WORDS
        ),
        # Watchdog
        "AURA_WORKER_RESOURCE_GUARD": one_of("1", "1 / 0 / dry-run", *GUARD_WORDS),
        "AURA_WORKER_RESOURCE_POLL_SECONDS": number(10.0, "seconds between watchdog samples", low=0.05, high=3600.0),
        "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS": positive(
            180.0, "rolling window for averages, seconds (at least two polls)"
        ),
        "AURA_WORKER_RESOURCE_VIOLATION_STRIKES": whole(
            3, "consecutive over-limit samples before a kill", low=1, high=100_000
        ),
        "AURA_WORKER_RESOURCE_COOLDOWN_SECONDS": number(
            15.0, "after a kill, no other kill for this long (strikes keep counting)", high=86_400.0
        ),
        "AURA_WORKER_MAX_CPU_PERCENT": percent(80.0, "per-worker CPU, % of the whole machine; 0 disables"),
        "AURA_WORKER_MAX_SYSTEM_MEMORY_PERCENT": percent(80.0, "per-worker RSS, % of RAM; 0 disables"),
        "AURA_WORKER_MAX_GPU_UTIL_PERCENT": percent(80.0, "per-worker GPU SM utilisation %; 0 disables"),
        "AURA_WORKER_MAX_GPU_MEMORY_PERCENT": percent(
            80.0, "per-worker GPU memory, % of visible GPU memory; 0 disables"
        ),
        "AURA_WORKER_MAX_SYSTEM_MEMORY_GB": number(0.0, "per-worker RSS ceiling, GB; 0 disables"),
        "AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB": number(0.0, "free RAM reserve, GB; 0 disables"),
        "AURA_WORKER_MAX_GPU_MEMORY_GB": number(0.0, "per-worker GPU memory ceiling, GB; 0 disables"),
        "AURA_WORKER_MIN_GPU_MEMORY_FREE_GB": number(0.0, "free GPU memory reserve, GB; 0 disables"),
        "AURA_WORKER_CUDA_VISIBLE_DEVICES": text("", "CUDA_VISIBLE_DEVICES injected into workers"),
        "AURA_WORKER_ENV_PASS": text(
            "",
            "more variables workers get from the daemon's environment (comma-separated names, `*` allowed at the end)",
        ),
        # Daemons
        "AURA_LOG_LEVEL": one_of("info", "debug / info / warning / error", "debug", "info", "warning", "error"),
        "AURA_RESTART_MAX": whole(5, "restarts of a crashed daemon allowed per AURA_RESTART_WINDOW_SECONDS (0: none)"),
        "AURA_RESTART_WINDOW_SECONDS": positive(60.0, "window of the restart-intensity limit"),
        "AURA_PEER_HANG_SECONDS": number(
            60.0,
            "a daemon that answers no ping for this long is killed and restarted by "
            "its peer (counts against AURA_RESTART_MAX); 0 disables, else at least 2",
        ),
        # Disk
        "AURA_MIN_DISK_FREE_MB": number(
            200.0,
            "free-space reserve on the data folder's file system, MB: below it no new "
            "worker starts and the worker filling it is stopped; 0 disables",
        ),
        "AURA_WORKER_MAX_OUTPUT_MB": number(
            1024.0,
            "cap on each worker's output files (output and error log), MB: over "
            "it the worker is stopped and its output cut to head and tail; "
            "0 disables",
        ),
    }
)

ALIASES = {
    "AURA_DEEP_REVIEW_INTERVAL": "AURA_DEEP_REFLECTION_INTERVAL",
}


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key and source."""


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines; `export ` prefixes, quotes and trailing ` # comments` allowed."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value
    return out


def global_config_path() -> Path:
    return Path(os.environ.get("AURA_HOME", Path.home() / ".aura")) / "config.env"


@dataclass
class Config:
    """Resolved configuration: raw string values plus where each came from."""

    values: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    unknown_env: list[str] = field(default_factory=list)  # AURA_* names in the environment that are no key

    def set(self, key: str, value: str, source: str) -> None:
        key = ALIASES.get(key, key)
        self.values[key] = value
        self.sources[key] = source

    def raw(self, key: str) -> str | None:
        return self.values.get(key)

    def _default(self, key: str) -> object:
        if key not in KEYS:
            raise KeyError(f"unknown configuration key {key}")
        return KEYS[key].default

    def text(self, key: str) -> str:
        v = self.values.get(key)
        if v is None or (v.strip() == "" and KEYS[key].kind == "choice"):
            return str(self._default(key))
        return KEYS[key].canonical(v)

    def integer(self, key: str) -> int:
        v = self.values.get(key)
        if v is None or v == "":
            return int(self._default(key))  # type: ignore[call-overload]
        try:
            return int(float(v))
        except ValueError:
            raise ConfigError(f"{key}={v!r} ({self.sources.get(key)}): expected a whole number") from None

    def number(self, key: str) -> float:
        v = self.values.get(key)
        if v is None or v == "":
            return float(self._default(key))  # type: ignore[arg-type]
        try:
            return float(v)
        except ValueError:
            raise ConfigError(f"{key}={v!r} ({self.sources.get(key)}): expected a number") from None

    def flag(self, key: str) -> bool:
        v = self.values.get(key)
        if v is None:
            return bool(self._default(key))
        return v.strip().lower() not in FALSE_WORDS

    def as_env(self) -> dict[str, str]:
        """Only the keys that were set somewhere, for passing to a child daemon."""
        return dict(self.values)


def load_config(
    project_root: Path | None = None,
    config_file: Path | None = None,
    overrides: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Merge every source in precedence order (see the module docstring)."""
    env = os.environ if environ is None else environ
    cfg = Config()
    files: list[tuple[Path, str]] = [(global_config_path(), "global config")]
    if project_root is not None:
        files.append((Path(project_root) / ".aura" / "config.env", "project config"))
    for path, label in files:
        _merge_file(cfg, path, label, required=False)
    for key, value in env.items():
        if key in KEYS or key in ALIASES:
            cfg.set(key, value, "environment")
        elif key.startswith("AURA_"):
            cfg.unknown_env.append(key)
    if config_file is not None:
        _merge_file(cfg, Path(config_file), f"--config {config_file}", required=True)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--override expects KEY=VALUE, got {item!r}")
        cfg.set(key.strip(), value, "--override")
    return cfg


def _merge_file(cfg: Config, path: Path, label: str, required: bool) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} does not exist") from None
        return
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    for key, value in parse_env_file(text).items():
        cfg.set(key, value, f"{label} {path}")
