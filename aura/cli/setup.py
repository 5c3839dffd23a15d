"""`aura setup`: write the global config file (`~/.aura/config.env`), interactively or from flags.

Why it is careful with the key: the file is written with mode 0600 (atomically, so it is never
readable by others even for an instant), the key is read with hidden input or from stdin
(`--api-key-stdin` keeps it out of the process list and shell history), and it is never printed.
Existing values are the defaults, so `aura setup -y --budget 20` changes only the budget.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from ..runtime.vocab import BACKENDS

PROVIDERS = {
    "deepseek": ("https://api.deepseek.com/anthropic", "deepseek-v4-pro"),
    "anthropic": ("https://api.anthropic.com", "claude-sonnet-4-6-20250514"),
    "openai": ("http://127.0.0.1:8000/v1", ""),
}
LEVELS = ("state_changes", "done_only", "silent")
ORDER = (
    "AURA_API_KEY",
    "AURA_API_PROVIDER",
    "AURA_API_BASE_URL",
    "AURA_API_MODEL",
    "AURA_API_MAX_TOKENS",
    "AURA_CYCLE_INTERVAL",
    "AURA_LAYER2_BACKEND",
    "AURA_BUDGET_USD",
    "AURA_SEARCH_API_KEY",
    "AURA_NOTIFY_COMMAND",
    "AURA_NOTIFY_WEBHOOK",
    "AURA_NOTIFY_LEVEL",
)


def render(values: dict[str, str]) -> str:
    """The file: known keys in a fixed order, then any other key the old file had; empty ones left out."""
    keys = [k for k in ORDER if values.get(k)] + sorted(k for k in values if k not in ORDER and values[k])
    lines = [
        "# Aura configuration, written by `aura setup` " + time.strftime("%Y-%m-%d %H:%M:%S"),
        "# Precedence: this file < <project>/.aura/config.env < environment < --config < --override",
        "",
    ]
    for key in keys:
        lines.append(f"{key}={quote(values[key])}")
    return "\n".join(lines) + "\n"


def quote(value: str) -> str:
    """Quote only where the config parser would otherwise change the value (see aura.runtime.config)."""
    risky = " #" in value or value != value.strip() or (len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"")
    if not risky:
        return value
    for q in ('"', "'"):
        if q not in value:
            return f"{q}{value}{q}"
    raise click.ClickException("a value holds both quote kinds and ' #'; the config format cannot store it")


def write_config(path: Path, values: dict[str, str]) -> None:
    from ..runtime.fsutil import atomic_write_text

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write_text(path, render(values), mode=0o600)


def _ask(values: dict[str, str], key: str, text: str, default: str = "", **kw: Any) -> None:
    values[key] = str(click.prompt(text, default=values.get(key) or default or "", show_default=True, **kw)).strip()


def interactive(values: dict[str, str]) -> None:
    had_key = bool(values.get("AURA_API_KEY"))
    key = click.prompt(
        "API key for the brain (input hidden" + (", Enter keeps the current one)" if had_key else ")"),
        default="" if had_key else None,
        hide_input=True,
        show_default=False,
    )
    if key.strip():
        values["AURA_API_KEY"] = key.strip()
    click.echo("Provider: 1) DeepSeek (recommended)  2) Anthropic  3) OpenAI-compatible (vLLM, llama.cpp, Ollama)")
    current = values.get("AURA_API_PROVIDER") or "deepseek"
    choice = click.prompt(
        "Choose",
        type=click.Choice(["1", "2", "3"]),
        default={"deepseek": "1", "anthropic": "2", "openai": "3"}.get(current, "1"),
    )
    provider = {"1": "deepseek", "2": "anthropic", "3": "openai"}[choice]
    if provider != current:
        values.pop("AURA_API_BASE_URL", None)
        values.pop("AURA_API_MODEL", None)
    values["AURA_API_PROVIDER"] = provider
    _ask(values, "AURA_API_BASE_URL", "Base URL", PROVIDERS[provider][0])
    _ask(values, "AURA_API_MODEL", "Model", PROVIDERS[provider][1])
    _ask(values, "AURA_API_MAX_TOKENS", "Max output tokens per call", "4096")
    _ask(values, "AURA_CYCLE_INTERVAL", "Seconds between brain cycles", "300")
    _ask(values, "AURA_LAYER2_BACKEND", "Worker CLI", "claude", type=click.Choice(BACKENDS))
    _ask(values, "AURA_BUDGET_USD", "Run budget in USD for both layers (0: none; strongly recommended)", "20")
    search = click.prompt(
        "Tavily key for web_search (optional, input hidden, Enter skips)",
        default="",
        hide_input=True,
        show_default=False,
    )
    if search.strip():
        values["AURA_SEARCH_API_KEY"] = search.strip()
    _ask(values, "AURA_NOTIFY_COMMAND", 'Notification command (optional, e.g. notify-send Aura "$AURA_MESSAGE")', "")
    if values.get("AURA_NOTIFY_COMMAND"):
        _ask(values, "AURA_NOTIFY_LEVEL", "Notify on", "state_changes", type=click.Choice(LEVELS))


def connectivity(values: dict[str, str]) -> tuple[bool, str]:
    """One tiny call through the same client the brain uses."""
    from ..brain.model_client import ClientSettings, ModelClient, ModelError
    from ..runtime.config import Config

    cfg = Config()
    for k, v in values.items():
        cfg.set(k, v, "setup")
    started = time.monotonic()
    try:
        client = ModelClient(ClientSettings.from_config(cfg))
        reply = client.create(
            [{"type": "text", "text": "Reply with just the word OK."}],
            [],
            [{"role": "user", "content": "ping"}],
            max_tokens=4,
            attempts=1,
        )
    except ModelError as exc:
        return False, str(exc)[:300]
    return True, f"answered in {time.monotonic() - started:.1f}s ({reply.text()[:20]!r})"


@click.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: ~/.aura/config.env).",
)
@click.option(
    "-f", "--force", is_flag=True, help="Accepted for the original tool's scripts (values are merged anyway)."
)
@click.option("-y", "--yes", "non_interactive", is_flag=True, help="Do not ask: use the flags, the file and defaults.")
@click.option("--api-key", default=None, help="The key (visible in the process list: prefer --api-key-stdin).")
@click.option("--api-key-stdin", is_flag=True, help="Read the key from the first line of stdin.")
@click.option("--provider", type=click.Choice(sorted(PROVIDERS)), default=None)
@click.option("--base-url", default=None)
@click.option("--model", default=None)
@click.option("--max-tokens", type=click.IntRange(min=1), default=None)
@click.option("--cycle-interval", type=click.FloatRange(min=1), default=None)
@click.option("--backend", type=click.Choice(BACKENDS), default=None)
@click.option("--budget", type=click.FloatRange(min=0), default=None, help="Run budget in USD (0: none).")
@click.option("--search-key", default=None, help="Tavily key for web_search.")
@click.option("--notify-command", default=None)
@click.option("--notify-webhook", default=None)
@click.option("--notify-level", type=click.Choice(LEVELS), default=None)
@click.option(
    "--test/--no-test", "test_api", default=None, help="Make one tiny API call (default: ask, or no with -y)."
)
def setup(
    output: Path | None,
    force: bool,
    non_interactive: bool,
    api_key: str | None,
    api_key_stdin: bool,
    provider: str | None,
    base_url: str | None,
    model: str | None,
    max_tokens: int | None,
    cycle_interval: float | None,
    backend: str | None,
    budget: float | None,
    search_key: str | None,
    notify_command: str | None,
    notify_webhook: str | None,
    notify_level: str | None,
    test_api: bool | None,
) -> None:
    """Write the global configuration (API key, provider, model, budget, notifications)."""
    from ..runtime.config import global_config_path, parse_env_file

    path = output or global_config_path()
    values: dict[str, str] = parse_env_file(path.read_text(encoding="utf-8")) if path.exists() else {}
    if api_key_stdin:
        api_key = sys.stdin.readline().strip()
    if provider and provider != values.get("AURA_API_PROVIDER"):
        values.update(AURA_API_BASE_URL=PROVIDERS[provider][0], AURA_API_MODEL=PROVIDERS[provider][1])
    flags = {
        "AURA_API_KEY": api_key,
        "AURA_API_PROVIDER": provider,
        "AURA_API_BASE_URL": base_url,
        "AURA_API_MODEL": model,
        "AURA_API_MAX_TOKENS": max_tokens,
        "AURA_CYCLE_INTERVAL": cycle_interval,
        "AURA_LAYER2_BACKEND": backend,
        "AURA_BUDGET_USD": budget,
        "AURA_SEARCH_API_KEY": search_key,
        "AURA_NOTIFY_COMMAND": notify_command,
        "AURA_NOTIFY_WEBHOOK": notify_webhook,
        "AURA_NOTIFY_LEVEL": notify_level,
    }
    values.update({k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in flags.items() if v is not None})
    if not non_interactive:
        interactive(values)
    if values.get("AURA_API_BASE_URL") and not values.get("AURA_API_PROVIDER"):
        from ..brain.model_client import detect_provider

        values["AURA_API_PROVIDER"] = detect_provider(values["AURA_API_BASE_URL"])
    write_config(path, values)
    click.echo(f"Wrote {path} (mode 0600).")
    click.echo(
        "  API key: "
        + ("set (not shown)" if values.get("AURA_API_KEY") else "NOT SET: the offline local planner will run")
    )
    for key in ORDER[1:]:
        if values.get(key) and "KEY" not in key:
            click.echo(f"  {key}={values[key]}")
    if not float(values.get("AURA_BUDGET_USD") or 0):
        click.echo("  No run budget: set one with `aura setup -y --budget USD` (or AURA_BUDGET_USD).")
    if test_api is None:
        test_api = (
            (not non_interactive)
            and bool(values.get("AURA_API_KEY"))
            and click.confirm("Test the API now?", default=True)
        )
    if test_api:
        ok, detail = connectivity(values)
        click.echo(f"[{'OK' if ok else 'WARN'}] API {'connected' if ok else 'test failed'}: {detail}")
