"""Token estimates and the simulated prompt cache.

Usage numbers: tokens are estimated as characters / 4 per content block. Prompt caching is simulated:
when the tools/system/messages (in that order) carry ``cache_control`` markers, the prefix up to each
marker is hashed with the model name and remembered. A later request reads the longest remembered
prefix found at one of its markers or up to 20 blocks before one (``cache_read_input_tokens``), writes
the rest up to its last marker (``cache_creation_input_tokens``, split by TTL in ``cache_creation``),
and pays ``input_tokens`` for what follows. Entries live 5 minutes (1 hour with ``"ttl": "1h"``),
refreshed on each hit, as the API does.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

CACHE_TTL_S = {"5m": 300.0, "1h": 3600.0}


def estimate_tokens(text: str) -> int:
    """Rough token estimate: four characters a token, at least one for non-empty text."""
    return math.ceil(len(text) / 4)


def _prompt_blocks(body: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Yield (canonical text, cache_control or None) in cache-key order: tools, system, messages."""
    for tool in body.get("tools", []) or []:
        yield _canonical(tool), _marker(tool)
    system = body.get("system")
    if isinstance(system, str) and system:
        yield _canonical({"type": "text", "text": system}), None
    elif isinstance(system, list):
        for block in system:
            yield _canonical(block), _marker(block)
    for message in body.get("messages", []) or []:
        content = message.get("content")
        role = message.get("role", "")
        if isinstance(content, str):
            yield role + _canonical({"type": "text", "text": content}), None
        else:
            for block in content or []:
                yield role + _canonical(block), _marker(block)


def _marker(block: Any) -> Any:
    return block.get("cache_control") if isinstance(block, dict) else None


def _canonical(block: Any) -> str:
    if isinstance(block, dict):
        block = {k: v for k, v in block.items() if k != "cache_control"}
    return json.dumps(block, sort_keys=True, ensure_ascii=False)


@dataclass
class PromptUsage:
    input_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_1h_tokens: int = 0  # the part of the cache writes made with a 1-hour TTL

    @property
    def total(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens


class PromptCache:
    """Simulated prompt cache: prefix hash -> expiry. Thread-safe; shared by all routes, like an account.

    Writes happen at ``cache_control`` breakpoints only; a lookup checks each breakpoint and up to
    ``LOOKBACK`` block boundaries before it, as the API does, so a marker that moves forward with the
    conversation still hits the prefix cached by the previous request.
    """

    LOOKBACK = 20

    def __init__(self, min_tokens: int = 0, clock: Any = time.monotonic) -> None:
        self._entries: dict[str, tuple[float, float]] = {}  # key -> (expires at, ttl)
        self._lock = threading.Lock()
        self._min_tokens = min_tokens
        self._clock = clock

    def account(self, body: Mapping[str, Any], *, update: bool = True) -> PromptUsage:
        """Split the prompt's tokens into uncached, cache-written and cache-read parts."""
        prefixes, breakpoints = _prefix_hashes(body)
        total = max(prefixes[-1][1] if prefixes else 0, 1)
        if not breakpoints or prefixes[breakpoints[-1][0]][1] < self._min_tokens:
            return PromptUsage(input_tokens=total)
        with self._lock:
            now = self._clock()
            hits = [tokens for key, tokens in self._candidates(prefixes, breakpoints) if self._hit(key, now, update)]
            read = max(hits, default=0)
            if update:
                for position, ttl in breakpoints:
                    key, tokens = prefixes[position]
                    if tokens >= self._min_tokens:  # shorter prefixes are silently not cached
                        expires, old_ttl = self._entries.get(key, (0.0, 0.0))
                        self._entries[key] = (max(expires, now + ttl), max(old_ttl, ttl))
        cached_to = prefixes[breakpoints[-1][0]][1]
        return PromptUsage(
            input_tokens=total - cached_to,
            cache_creation_input_tokens=cached_to - read,
            cache_read_input_tokens=read,
            cache_creation_1h_tokens=_written_1h(prefixes, breakpoints, read),
        )

    def _candidates(
        self, prefixes: list[tuple[str, int]], breakpoints: list[tuple[int, float]]
    ) -> Iterator[tuple[str, int]]:
        """Prefixes a lookup may hit: each breakpoint and the LOOKBACK boundaries before it."""
        for position, _ in breakpoints:
            yield from prefixes[max(0, position - self.LOOKBACK + 1) : position + 1]

    def _hit(self, key: str, now: float, refresh: bool) -> bool:
        """Whether ``key`` is cached and alive; a hit refreshes its lifetime when ``refresh``."""
        expires, ttl = self._entries.get(key, (0.0, 0.0))
        if expires <= now:
            return False
        if refresh:
            self._entries[key] = (now + ttl, ttl)
        return True


def _written_1h(prefixes: list[tuple[str, int]], breakpoints: list[tuple[int, float]], read: int) -> int:
    """Written tokens that fall under a 1-hour breakpoint: each span between breakpoints takes the
    TTL of the breakpoint that ends it."""
    out, start = 0, 0
    for position, ttl in breakpoints:
        end = prefixes[position][1]
        if ttl >= CACHE_TTL_S["1h"]:
            out += max(0, end - max(start, read))
        start = max(start, end)
    return out


def _prefix_hashes(body: Mapping[str, Any]) -> tuple[list[tuple[str, int]], list[tuple[int, float]]]:
    """(hash, cumulative tokens) at every block boundary, and (position, ttl) of each breakpoint."""
    digest = hashlib.sha256(str(body.get("model", "")).encode())
    total = 0
    prefixes: list[tuple[str, int]] = []
    breakpoints: list[tuple[int, float]] = []
    for text, marker in _prompt_blocks(body):
        digest.update(text.encode())
        digest.update(b"\x00")
        total += estimate_tokens(text)
        prefixes.append((digest.hexdigest(), total))
        if isinstance(marker, dict):
            ttl = CACHE_TTL_S.get(str(marker.get("ttl", "5m")), CACHE_TTL_S["5m"])
            breakpoints.append((len(prefixes) - 1, ttl))
    return prefixes, breakpoints
