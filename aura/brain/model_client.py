"""The Layer 1 model client: one small interface over two wire protocols.

`anthropic` and `deepseek` speak the Messages API through the `anthropic` SDK (DeepSeek's
Anthropic-compatible endpoint is the default); `openai` speaks OpenAI-style
chat completions with tools over plain HTTP (a local vLLM, llama.cpp or Ollama server), so no
second SDK is needed. Messages, tools and replies use the Messages API shapes everywhere; the
`openai` provider converts at its edge.

Why Aura retries itself (the SDK's own retries are off): the brain must know how many attempts
a call took, honour `retry-after`, and stop retrying when the daemon is asked to stop. A call
that still fails raises ModelError; the planner then skips the cycle, never the process.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aura.runtime.config import Config

PROVIDERS = ("anthropic", "deepseek", "openai")
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MAX_RETRY_DELAY = 60.0
SLEEP_SLICE = 0.1
CALL_POLL = 0.02  # how often a waiting brain checks whether its model call came back


class ModelError(Exception):
    """A failed model call; `retryable` says whether another attempt may succeed."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        kind: str = "api_error",
    ):
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.kind = kind
        self.attempts = 1


@dataclass
class Usage:
    """Token counts of one call; `input_tokens` is the uncached part only. `cache_write_1h_tokens`
    is the part of the cache writes made with a 1-hour TTL, None when the reply did not say."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_1h_tokens: int | None = None

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_1h_tokens": self.cache_write_1h_tokens or 0,
        }


def _count(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def messages_usage(usage: Any) -> Usage:
    """A Messages API usage object as Usage. DeepSeek's own `prompt_cache_hit_tokens` /
    `prompt_cache_miss_tokens`, where its Anthropic-compatible endpoint sends them, win over the
    Anthropic fields; Anthropic's `cache_creation` splits the cache writes by TTL."""
    field = (lambda name: usage.get(name)) if isinstance(usage, dict) else (lambda name: getattr(usage, name, None))
    hit, miss = field("prompt_cache_hit_tokens"), field("prompt_cache_miss_tokens")
    if hit is not None or miss is not None:
        return Usage(
            input_tokens=_count(miss), output_tokens=_count(field("output_tokens")), cache_read_tokens=_count(hit)
        )
    written = _count(field("cache_creation_input_tokens"))
    split = field("cache_creation")
    one_hour: int | None = None
    if split is not None:
        get = split.get if isinstance(split, dict) else (lambda name: getattr(split, name, None))
        one_hour = min(written, _count(get("ephemeral_1h_input_tokens")))
    return Usage(
        input_tokens=_count(field("input_tokens")),
        output_tokens=_count(field("output_tokens")),
        cache_write_tokens=written,
        cache_read_tokens=_count(field("cache_read_input_tokens")),
        cache_write_1h_tokens=one_hour,
    )


def chat_usage(u: dict) -> Usage:
    """An OpenAI-style usage dict as Usage: `prompt_tokens` includes the cached part, given as
    `prompt_tokens_details.cached_tokens` (OpenAI, vLLM) or `prompt_cache_hit_tokens` (DeepSeek)."""
    found = u.get("prompt_tokens_details")
    details: dict = found if isinstance(found, dict) else {}
    cached = _count(details.get("cached_tokens") or u.get("prompt_cache_hit_tokens"))
    if u.get("prompt_cache_miss_tokens") is not None:
        uncached = _count(u.get("prompt_cache_miss_tokens"))
    else:
        uncached = max(0, _count(u.get("prompt_tokens")) - cached)
    return Usage(input_tokens=uncached, output_tokens=_count(u.get("completion_tokens")), cache_read_tokens=cached)


@dataclass
class Reply:
    content: list[dict]
    stop_reason: str
    usage: Usage
    model: str
    attempts: int = 1
    errors: list[str] = field(default_factory=list)

    def tool_uses(self) -> list[dict]:
        return [b for b in self.content if b.get("type") == "tool_use"]

    def text(self) -> str:
        return "\n".join(b["text"] for b in self.content if b.get("type") == "text" and b.get("text"))


def detect_provider(base_url: str) -> str:
    """The provider named in the URL, else anthropic (the endpoints people use name their vendor)."""
    url = base_url.lower()
    for name in ("deepseek", "anthropic", "openai"):
        if name in url:
            return name
    return "anthropic"


@dataclass
class ClientSettings:
    provider: str
    base_url: str
    model: str
    key: str
    auth: str = "api_key"
    max_tokens: int = 4096
    timeout: float = 300.0
    attempts: int = 4
    base_delay: float = 5.0

    @classmethod
    def from_config(cls, cfg: Config) -> ClientSettings:
        base_url = cfg.text("AURA_API_BASE_URL").rstrip("/")
        provider = (cfg.text("AURA_API_PROVIDER") or detect_provider(base_url)).lower()
        return cls(
            provider=provider,
            base_url=base_url,
            model=cfg.text("AURA_API_MODEL"),
            key=cfg.text("AURA_API_KEY"),
            auth=cfg.text("AURA_API_AUTH").lower(),
            max_tokens=cfg.integer("AURA_API_MAX_TOKENS"),
            timeout=cfg.number("AURA_API_TIMEOUT"),
            attempts=max(1, cfg.integer("AURA_API_RETRY_COUNT")),
            base_delay=max(0.0, cfg.number("AURA_API_RETRY_BASE_DELAY")),
        )


class ModelClient:
    """Builds the provider (construction errors become ModelError) and retries failed calls."""

    def __init__(
        self,
        settings: ClientSettings,
        should_stop: Callable[[], bool] = lambda: False,
        wait: Callable[[float], None] = time.sleep,
    ):
        self.settings = settings
        self.should_stop = should_stop
        self.wait = wait
        if settings.provider not in PROVIDERS:
            raise ModelError(
                f"unknown AURA_API_PROVIDER {settings.provider!r}; use one of {', '.join(PROVIDERS)}", kind="client"
            )
        if not settings.key:
            raise ModelError("no API key: set AURA_API_KEY (aura setup)", kind="client")
        try:
            self.provider = OpenAIChat(settings) if settings.provider == "openai" else MessagesApi(settings)
        except ModelError:
            raise
        except Exception as exc:  # the SDK refuses its arguments: a setup problem, not a crash
            raise ModelError(
                f"could not build the {settings.provider} client: {type(exc).__name__}: {exc}", kind="client"
            ) from exc

    @property
    def provider_name(self) -> str:
        return self.settings.provider

    def create(
        self,
        system: list[dict],
        tools: list[dict],
        messages: list[dict],
        *,
        max_tokens: int | None = None,
        attempts: int | None = None,
    ) -> Reply:
        """One model call with up to `attempts` tries (backoff doubling from the base delay)."""
        tries = attempts or self.settings.attempts
        errors: list[str] = []
        for attempt in range(1, tries + 1):
            try:
                reply = self._in_background(
                    lambda: self.provider.create(system, tools, messages, max_tokens or self.settings.max_tokens)
                )
            except ModelError as exc:
                errors.append(f"{exc.status or exc.kind}: {exc}"[:300])
                exc.attempts = attempt
                if not exc.retryable or attempt == tries or self.should_stop():
                    raise
                self._sleep(self._delay(exc, attempt))
                continue
            reply.attempts, reply.errors = attempt, errors
            return reply
        raise AssertionError("unreachable")

    def _in_background(self, call: Callable[[], Reply]) -> Reply:
        """Run the HTTP call in a helper thread while `wait` keeps the daemon answering (`aura wake`,
        `aura status` must not hang for the length of a model call)."""
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["reply"] = call()
            except BaseException as exc:  # handed to the caller below
                box["error"] = exc

        thread = threading.Thread(target=run, name="model-call", daemon=True)
        thread.start()
        while thread.is_alive():
            if self.should_stop():
                raise ModelError("the brain is stopping; the model call was abandoned", kind="stopped")
            self.wait(CALL_POLL)
            thread.join(0)
        if "error" in box:
            raise box["error"]
        return box["reply"]

    def _delay(self, exc: ModelError, attempt: int) -> float:
        if exc.retry_after is not None:
            return min(MAX_RETRY_DELAY, max(0.0, exc.retry_after))
        return min(MAX_RETRY_DELAY, self.settings.base_delay * 2 ** (attempt - 1))

    def _sleep(self, seconds: float) -> None:
        """Sleep in slices, so a daemon asked to stop is not held by a backoff."""
        end = time.monotonic() + seconds
        while not self.should_stop():
            left = end - time.monotonic()
            if left <= 0:
                return
            self.wait(min(SLEEP_SLICE, left))


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("retry-after") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP date: use our own backoff


# -- the Messages API (anthropic, deepseek) --------------------------------------------------------


class MessagesApi:
    """The `anthropic` SDK, built with exactly one credential (current SDK majors refuse two)."""

    def __init__(self, s: ClientSettings):
        import anthropic  # only the brain imports the SDK, and only when it uses a model

        self.sdk = anthropic
        self.settings = s
        if s.auth == "auth_token":
            self.client = anthropic.Anthropic(base_url=s.base_url, timeout=s.timeout, max_retries=0, auth_token=s.key)
        else:
            self.client = anthropic.Anthropic(base_url=s.base_url, timeout=s.timeout, max_retries=0, api_key=s.key)

    def create(self, system: list[dict], tools: list[dict], messages: list[dict], max_tokens: int) -> Reply:
        sdk = self.sdk
        kwargs: dict[str, Any] = {"model": self.settings.model, "max_tokens": max_tokens, "messages": messages}
        if system:
            kwargs["system"] = system
        if tools:
            kwargs["tools"] = tools
        try:
            msg = self.client.messages.create(**kwargs)
        except sdk.APITimeoutError as exc:
            raise ModelError(f"timed out after {self.settings.timeout:g}s", retryable=True, kind="timeout") from exc
        except sdk.APIConnectionError as exc:
            raise ModelError(f"connection error: {exc}", retryable=True, kind="connection") from exc
        except sdk.APIStatusError as exc:
            status = exc.status_code
            raise ModelError(
                _status_message(exc),
                status=status,
                retryable=status in RETRY_STATUS,
                retry_after=_retry_after(getattr(exc.response, "headers", None)),
            ) from exc
        except sdk.APIError as exc:  # e.g. a reply the SDK cannot parse
            raise ModelError(f"bad reply: {exc}", kind="bad_reply") from exc
        return Reply(
            content=[b for b in (_plain_block(x) for x in msg.content) if b],
            stop_reason=str(msg.stop_reason or "end_turn"),
            usage=messages_usage(msg.usage),
            model=str(msg.model),
        )


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        err = inner if isinstance(inner, dict) else body
        return f"HTTP {exc.status_code} {err.get('type', '')}: {err.get('message', '')}".strip()
    return f"HTTP {exc.status_code}: {exc}"


def _plain_block(block: Any) -> dict | None:
    """A reply block as the minimal dict the API accepts back (thinking blocks kept for DeepSeek)."""
    kind = getattr(block, "type", None)
    if kind == "text":
        return {"type": "text", "text": block.text}
    if kind == "tool_use":
        return {
            "type": "tool_use",
            "id": block.id,
            "name": block.name,
            "input": block.input if isinstance(block.input, dict) else {"_input": block.input},
        }
    if kind == "thinking":
        return {"type": "thinking", "thinking": block.thinking, "signature": getattr(block, "signature", "")}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data}
    return None


# -- OpenAI-compatible chat completions (openai) ---------------------------------------------------


def chat_url(base_url: str) -> str:
    url = base_url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


class OpenAIChat:
    """Chat completions with tools over urllib: the local-server path needs no extra dependency."""

    def __init__(self, s: ClientSettings):
        self.settings = s
        self.url = chat_url(s.base_url)
        if not self.url.startswith(("http://", "https://")):
            raise ModelError(f"AURA_API_BASE_URL {s.base_url!r} is not an http(s) URL", kind="client")

    def create(self, system: list[dict], tools: list[dict], messages: list[dict], max_tokens: int) -> Reply:
        body: dict[str, Any] = {
            "model": self.settings.model,
            "max_tokens": max_tokens,
            "messages": to_openai_messages(system, messages),
        }
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t["name"],
                        "description": t.get("description", ""),
                        "parameters": t["input_schema"],
                    },
                }
                for t in tools
            ]
        req = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.settings.key}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.settings.timeout) as resp:
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            raise ModelError(
                f"HTTP {exc.code}: {detail}",
                status=exc.code,
                retryable=exc.code in RETRY_STATUS,
                retry_after=_retry_after(exc.headers),
            ) from exc
        except TimeoutError as exc:
            raise ModelError(f"timed out after {self.settings.timeout:g}s", retryable=True, kind="timeout") from exc
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            raise ModelError(f"connection error: {exc}", retryable=True, kind="connection") from exc
        except ValueError as exc:
            raise ModelError(f"bad reply: {exc}", kind="bad_reply") from exc
        return from_openai_reply(doc)


def to_openai_messages(system: list[dict], messages: list[dict]) -> list[dict]:
    """Messages API history -> chat-completions history (tool results become `tool` messages)."""
    out: list[dict] = []
    sys_text = "\n\n".join(b.get("text", "") for b in system if b.get("type") == "text")
    if sys_text:
        out.append({"role": "system", "content": sys_text})
    for msg in messages:
        content = msg["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if msg["role"] == "assistant":
            text = "\n".join(b["text"] for b in blocks if b.get("type") == "text")
            calls = [
                {
                    "id": b["id"],
                    "type": "function",
                    "function": {"name": b["name"], "arguments": json.dumps(b.get("input", {}))},
                }
                for b in blocks
                if b.get("type") == "tool_use"
            ]
            entry: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
            continue
        for b in blocks:
            if b.get("type") == "tool_result":
                out.append({"role": "tool", "tool_call_id": b["tool_use_id"], "content": _result_text(b)})
        texts = [b["text"] for b in blocks if b.get("type") == "text"]
        if texts:
            out.append({"role": "user", "content": "\n\n".join(texts)})
    return out


def _result_text(block: dict) -> str:
    content = block.get("content")
    if isinstance(content, list):
        content = "\n".join(c.get("text", "") for c in content if isinstance(c, dict))
    text = str(content or "")
    return ("ERROR: " + text) if block.get("is_error") else text


def from_openai_reply(doc: dict) -> Reply:
    try:
        choice = doc["choices"][0]
        msg = choice["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ModelError(f"bad reply: no choices in {str(doc)[:200]}", kind="bad_reply") from exc
    content: list[dict] = []
    if msg.get("content"):
        content.append({"type": "text", "text": str(msg["content"])})
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") or {}
        raw = fn.get("arguments") or "{}"
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            args = {"_unparsed_arguments": str(raw)[:2000]}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"call_{len(content)}",
                "name": fn.get("name", ""),
                "input": args if isinstance(args, dict) else {"_input": args},
            }
        )
    finish = choice.get("finish_reason")
    stop = (
        "tool_use"
        if content and content[-1]["type"] == "tool_use"
        else {"length": "max_tokens", "content_filter": "refusal"}.get(finish, "end_turn")
    )
    u = doc.get("usage")
    return Reply(
        content=content,
        stop_reason=stop,
        model=str(doc.get("model", "")),
        usage=chat_usage(u if isinstance(u, dict) else {}),
    )
