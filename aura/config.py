"""Configuration: the original tool's keys and defaults, from several sources.

Precedence, lowest first (documented in the README):
  built-in defaults < ~/.aura/config.env < <project>/.aura/config.env < environment (AURA_*)
  < --config FILE < --override KEY=VALUE

Values stay strings until read through a typed getter, so an unknown or malformed value
is reported where it is used, with its key, instead of crashing at start-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

# name -> (default, description). Types follow the default.
KEYS: dict[str, tuple[object, str]] = {
    # Layer 1 model
    "AURA_API_KEY": ("", "API key for the Layer 1 model (no key: the offline `local` planner)"),
    "AURA_API_BASE_URL": ("https://api.deepseek.com/anthropic", "Anthropic-compatible endpoint"),
    "AURA_API_MODEL": ("deepseek-v4-pro", "Layer 1 model"),
    "AURA_API_PROVIDER": ("", "deepseek / anthropic / openai (auto-detected from the base URL)"),
    "AURA_API_MAX_TOKENS": (4096, "max output tokens per Layer 1 call"),
    "AURA_API_TIMEOUT": (300.0, "per-request timeout, seconds"),
    "AURA_PLANNER": ("auto", "auto (llm when a key is set, else local) / llm / local"),
    "AURA_CYCLE_INTERVAL": (300.0, "seconds between brain cycles"),
    "AURA_DEEP_REFLECTION_INTERVAL": (120, "minutes between reflection reviews, checked after model cycles; "
                                             "fractions allowed, 0 disables (alias AURA_DEEP_REVIEW_INTERVAL)"),
    "AURA_LLM_DEAD_THROTTLE": (300.0, "seconds between model retries in safe mode"),
    "AURA_MAX_API_ROUNDS_PER_CYCLE": (20, "hard cap on model calls per cycle"),
    "AURA_MAX_TOOL_CALLS_PER_CYCLE": (40, "hard cap on tool calls per cycle"),
    "AURA_SKIP_HEALTHY_CYCLES": (True, "skip the model call when nothing changed"),
    "AURA_MAX_SKIPPED_CYCLES": (8, "force a model call after this many skipped cycles"),
    "AURA_EXPLICIT_PROMPT_CACHE": (True, "mark the stable prompt prefix for caching"),
    "AURA_TOKEN_PRICE_CACHE_HIT": (0.145, "USD per 1M cached input tokens"),
    "AURA_TOKEN_PRICE_CACHE_MISS": (1.74, "USD per 1M uncached input tokens"),
    "AURA_TOKEN_PRICE_OUTPUT": (1.74, "USD per 1M output tokens"),
    "AURA_TOKEN_PRICE_CACHE_WRITE": (0.0, "USD per 1M cache-write tokens (0: priced as a miss)"),
    "AURA_TOOL_CALL_BUDGET_NORMAL": (12, "tool-call hint per normal cycle"),
    "AURA_TOOL_CALL_BUDGET_DIAGNOSTIC": (40, "tool-call hint per diagnostic cycle"),
    "AURA_TOOL_CALL_BUDGET_PLANNING": (40, "tool-call hint per planning cycle"),
    "AURA_BUDGET_USD": (0.0, "run budget in USD for both layers; 0 = none"),
    "AURA_SEARCH_API_KEY": ("", "Tavily key for web_search"),
    "AURA_FILE_CACHE": (True, "mtime-based cache for read_file / list_directory"),
    "AURA_FILE_CACHE_TTL": (60.0, "file cache TTL, seconds"),
    "AURA_TASK_SUMMARY": (True, "write a summary per finished task"),
    "AURA_TASK_CLEANUP_AGE": (7, "days before clean-workspaces removes a workspace"),
    "AURA_API_AUTH": ("api_key", "how the key is sent: api_key (x-api-key) / auth_token (Authorization: Bearer)"),
    "AURA_API_RETRY_COUNT": (4, "attempts per model call (429/529/5xx/timeouts/connection errors)"),
    "AURA_API_RETRY_BASE_DELAY": (5.0, "first retry delay, seconds; doubles per attempt (retry-after wins)"),
    "AURA_SAFE_MODE_AFTER": (3, "failed model cycles in a row before safe mode (no new spawns)"),
    "AURA_PROMPT_CACHE_TTL": ("1h", "cache TTL of the stable prompt prefix: 1h / 5m"),
    "AURA_MEMORY_CONTEXT_CHARS": (3000, "MEMORY.md characters shown to the model, newest first"),
    "AURA_ACCEPTANCE_TIMEOUT": (300.0, "seconds each acceptance command may run"),
    "AURA_WEB_FETCH_ALLOW_PRIVATE": (False, "let web_fetch reach loopback and private addresses"),
    "AURA_WORKER_TOKEN_PRICE_CACHE_HIT": ("", "USD per 1M cached input tokens for workers (empty: L1 price)"),
    "AURA_WORKER_TOKEN_PRICE_CACHE_MISS": ("", "USD per 1M uncached input tokens for workers (empty: L1 price)"),
    "AURA_WORKER_TOKEN_PRICE_OUTPUT": ("", "USD per 1M output tokens for workers (empty: L1 price)"),
    "AURA_WORKER_TOKEN_PRICE_CACHE_WRITE": ("", "USD per 1M cache-write tokens for workers (empty: L1 price)"),
    "AURA_BUDGET_WARN_PERCENT": (80.0, "budget share that raises budget_warning"),
    "AURA_NOTIFY_COMMAND": ("", "shell command run on notifications (AURA_EVENT, AURA_MESSAGE, ... set)"),
    "AURA_NOTIFY_WEBHOOK": ("", "URL that receives each notification as a JSON POST"),
    "AURA_NOTIFY_LEVEL": ("state_changes", "state_changes / done_only / silent"),
    "AURA_NOTIFY_TIMEOUT": (10.0, "seconds a notification hook may take"),
    # Layer 2 workers
    "AURA_LAYER2_BACKEND": ("claude", "claude / ds_code / opencode / codex / shell"),
    "AURA_MAX_CONCURRENT_TASKS": (2, "max concurrent Layer 2 workers"),
    "AURA_TASK_BUDGET": (30.0, "default worker time budget, minutes (enforced)"),
    "AURA_MAX_TURNS": (50, "--max-turns for claude workers"),
    "AURA_CLAUDE_BIN": ("", "explicit claude executable"),
    "AURA_CLAUDE_PERMISSION_MODE": ("bypassPermissions", "claude --permission-mode"),
    "AURA_CLAUDE_MODEL": ("", "claude --model (empty: the CLI's default)"),
    "AURA_OPENCODE_BIN": ("", "explicit opencode executable"),
    "AURA_OPENCODE_MODEL": ("deepseek-v4-pro", "opencode model"),
    "AURA_OPENCODE_MAX_TURNS": (50, "opencode max turns"),
    "AURA_CODEX_BIN": ("", "explicit codex executable"),
    "AURA_DSCODE_MODEL": ("deepseek-v4-pro", "ds-code model"),
    "AURA_DSCODE_MAX_TURNS": (0, "ds-code max turns (0: AURA_MAX_TURNS)"),
    "AURA_DSCODE_BASE_URL": ("", "ds-code base URL"),
    "AURA_DEEPSEEK_API_KEY": ("", "ds-code DEEPSEEK_API_KEY"),
    "AURA_WORKERS_IN_DOCKER": (False, "run claude workers in Docker"),
    "AURA_DOCKER_BIN": ("docker", "docker command"),
    "AURA_DOCKER_GPUS": ("", "docker --gpus value"),
    "AURA_DOCKER_EXTRA_ARGS": ("", "extra docker run arguments"),
    "AURA_DOCKER_CLAUDE_API_KEY": ("", "key for claude in the container"),
    "AURA_DOCKER_CLAUDE_BASE_URL": ("", "base URL for claude in the container"),
    "AURA_DOCKER_CLAUDE_MODEL": ("", "model in the container"),
    "AURA_DOCKER_CLAUDE_SMALL_MODEL": ("", "small model in the container"),
    "AURA_DOCKER_CLAUDE_SUBAGENT_MODEL": ("", "sub-agent model in the container"),
    "AURA_STUCK_MINUTES": (10.0, "minutes of agreeing stuck signals before a worker is reported stuck"),
    "AURA_KILL_GRACE_SECONDS": (5.0, "SIGTERM-to-SIGKILL grace when stopping a worker"),
    "AURA_STUCK_CPU_PERCENT": (5.0, "a worker tree above this CPU (% of one core) is busy, not stuck"),
    "AURA_LOOP_REPEAT": (5, "the same tool call this many times in a row is a loop"),
    "AURA_RESULT_GRACE_SECONDS": (15.0, "seconds a CLI may linger after its final line before it is stopped"),
    "AURA_CLAUDE_MAX_RETRIES": (2, "CLAUDE_CODE_MAX_RETRIES for claude workers (Aura owns the retry policy)"),
    "AURA_CODEX_MODEL": ("", "codex -m (empty: the CLI's default)"),
    "AURA_CODEX_SANDBOX": ("bypass", "codex: bypass / read-only / workspace-write / danger-full-access"),
    "AURA_DSCODE_BIN": ("", "explicit ds-code executable"),
    "AURA_AUTO_RESUME": (True, "resume a worker stopped by a rate or usage limit with its session id"),
    "AURA_MAX_RESUMES": (3, "how many times one task may be parked and resumed"),
    "AURA_RESUME_DELAY_SECONDS": (300.0, "wait before resuming when the limit does not say when it lifts"),
    "AURA_WORKER_ISOLATION": ("none", "none / bwrap / docker (AURA_WORKERS_IN_DOCKER=1 means docker)"),
    "AURA_WORKER_MOUNTS": ("", "extra paths a sandboxed worker may write (comma-separated)"),
    "AURA_BWRAP_BIN": ("bwrap", "bubblewrap command"),
    "AURA_BWRAP_SHARE_NET": (True, "bubblewrap workers keep the network (agent CLIs need their API)"),
    "AURA_BWRAP_HIDE": ("", "more paths hidden from bubblewrap workers (comma-separated)"),
    "AURA_DOCKER_IMAGE": ("", "image for Docker workers (must hold the worker CLI)"),
    "AURA_WORKER_SCOPE": ("auto", "auto / on / off: each worker in its own systemd scope when under systemd"),
    # Watchdog
    "AURA_WORKER_RESOURCE_GUARD": ("1", "1 / 0 / dry-run"),
    "AURA_WORKER_RESOURCE_POLL_SECONDS": (10.0, "seconds between watchdog samples"),
    "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS": (180.0, "rolling window for averages, seconds"),
    "AURA_WORKER_RESOURCE_VIOLATION_STRIKES": (3, "consecutive over-limit samples before a kill"),
    "AURA_WORKER_RESOURCE_COOLDOWN_SECONDS": (15.0, "pause after a kill before the next one"),
    "AURA_WORKER_MAX_CPU_PERCENT": (80.0, "per-worker CPU, % of the whole machine; 0 disables"),
    "AURA_WORKER_MAX_SYSTEM_MEMORY_PERCENT": (80.0, "per-worker RSS, % of RAM; 0 disables"),
    "AURA_WORKER_MAX_GPU_UTIL_PERCENT": (80.0, "per-worker GPU SM utilisation %; 0 disables"),
    "AURA_WORKER_MAX_GPU_MEMORY_PERCENT": (80.0, "per-worker GPU memory, % of visible GPU memory; 0 disables"),
    "AURA_WORKER_MAX_SYSTEM_MEMORY_GB": (0.0, "per-worker RSS ceiling, GB; 0 disables"),
    "AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB": (0.0, "free RAM reserve, GB; 0 disables"),
    "AURA_WORKER_MAX_GPU_MEMORY_GB": (0.0, "per-worker GPU memory ceiling, GB; 0 disables"),
    "AURA_WORKER_MIN_GPU_MEMORY_FREE_GB": (0.0, "free GPU memory reserve, GB; 0 disables"),
    "AURA_WORKER_CUDA_VISIBLE_DEVICES": ("", "CUDA_VISIBLE_DEVICES injected into workers"),
    "AURA_WORKER_ENV_PASS": ("", "more variables workers get from the daemon's environment "
                                 "(comma-separated names, `*` allowed at the end)"),
    # Daemons
    "AURA_LOG_LEVEL": ("info", "debug / info / warning / error"),
    "AURA_RESTART_MAX": (5, "restarts of a crashed daemon allowed per AURA_RESTART_WINDOW_SECONDS"),
    "AURA_RESTART_WINDOW_SECONDS": (60.0, "window of the restart-intensity limit"),
    # -- disk
    "AURA_MIN_DISK_FREE_MB": (200.0, ("free-space reserve on the data folder's file system, MB: below it no new "
                                      "worker starts and the worker filling it is stopped; 0 disables")),
    "AURA_WORKER_MAX_OUTPUT_MB": (1024.0, ("cap on each worker's output files (output and error log), MB: over it "
                                           "the worker is stopped and its output cut to head and tail; 0 disables")),
}

ALIASES = {
    "AURA_DEEP_REVIEW_INTERVAL": "AURA_DEEP_REFLECTION_INTERVAL",
}

_FALSE = {"0", "false", "no", "off", ""}


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

    def set(self, key: str, value: str, source: str) -> None:
        key = ALIASES.get(key, key)
        self.values[key] = value
        self.sources[key] = source

    def raw(self, key: str) -> str | None:
        return self.values.get(key)

    def _default(self, key: str) -> object:
        if key not in KEYS:
            raise KeyError(f"unknown configuration key {key}")
        return KEYS[key][0]

    def str(self, key: str) -> str:
        v = self.values.get(key)
        return str(self._default(key)) if v is None else v

    def int(self, key: str) -> int:
        v = self.values.get(key)
        if v is None or v == "":
            return int(self._default(key))  # type: ignore[arg-type]
        try:
            return int(float(v))
        except ValueError:
            raise ConfigError(f"{key}={v!r} ({self.sources.get(key)}): expected a whole number") from None

    def float(self, key: str) -> float:
        v = self.values.get(key)
        if v is None or v == "":
            return float(self._default(key))  # type: ignore[arg-type]
        try:
            return float(v)
        except ValueError:
            raise ConfigError(f"{key}={v!r} ({self.sources.get(key)}): expected a number") from None

    def bool(self, key: str) -> bool:
        v = self.values.get(key)
        if v is None:
            return bool(self._default(key))
        return v.strip().lower() not in _FALSE

    def as_env(self) -> dict[str, str]:
        """Only the keys that were set somewhere, for passing to a child daemon."""
        return dict(self.values)


def load_config(project_root: Path | None = None, config_file: Path | None = None,
                overrides: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> Config:
    """Merge every source in precedence order (see the module docstring)."""
    env = os.environ if environ is None else environ
    cfg = Config()
    files: list[tuple[Path, str]] = [(global_config_path(), "global config")]
    if project_root is not None:
        files.append((Path(project_root) / ".aura" / "config.env", "project config"))
    for path, label in files:
        _merge_file(cfg, path, label, required=False)
    for key, value in env.items():
        if key.startswith("AURA_") and (key in KEYS or key in ALIASES):
            cfg.set(key, value, "environment")
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
