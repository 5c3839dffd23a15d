"""The Messages API's shapes: a reply message built from a step, its SSE stream, error bodies, and the
``/v1/models`` page."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from .prompt_cache import PromptUsage
from .script import DEFAULT_STEP, Script

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
TEXT_CHUNK = 24  # characters per text_delta / input_json_delta, so clients see real streaming


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def build_content(step: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The assistant content blocks a reply step produces (tool ids generated)."""
    content: list[dict[str, Any]] = []
    if "text" in step:
        content.append({"type": "text", "text": str(step["text"])})
    calls = step.get("tool_use") or ([{"name": step["tool"], "input": step.get("input", {})}] if "tool" in step else [])
    for call in calls:
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or new_id("toolu"),
                "name": call["name"],
                "input": call.get("input", {}),
            }
        )
    if not content:
        content.append({"type": "text", "text": DEFAULT_STEP["text"]})
    return content


def output_tokens(content: list[dict[str, Any]]) -> int:
    """Estimate output tokens from the reply blocks."""
    size = 0
    for block in content:
        if block["type"] == "text":
            size += len(block["text"])
        else:
            size += len(block["name"]) + len(json.dumps(block["input"]))
    return max(1, math.ceil(size / 4))


def build_message(step: Mapping[str, Any], body: Mapping[str, Any], prompt: PromptUsage) -> dict[str, Any]:
    """A complete Messages API ``message`` object for a reply step."""
    content = build_content(step)
    has_tools = any(b["type"] == "tool_use" for b in content)
    usage: dict[str, Any] = {
        "input_tokens": prompt.input_tokens,
        "cache_creation_input_tokens": prompt.cache_creation_input_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": prompt.cache_creation_input_tokens - prompt.cache_creation_1h_tokens,
            "ephemeral_1h_input_tokens": prompt.cache_creation_1h_tokens,
        },
        "cache_read_input_tokens": prompt.cache_read_input_tokens,
        "output_tokens": output_tokens(content),
        "service_tier": "standard",
    }
    usage.update(step.get("usage", {}))
    return {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": step.get("model") or body.get("model") or "scripted-model",
        "content": content,
        "stop_reason": step.get("stop_reason") or ("tool_use" if has_tools else "end_turn"),
        "stop_sequence": None,
        "usage": usage,
    }


def _chunks(text: str, size: int = TEXT_CHUNK) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def sse_events(message: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The SSE events (name, data) that stream ``message`` the way the Messages API does."""
    usage = dict(message["usage"])
    start = dict(message, content=[], stop_reason=None, stop_sequence=None)
    start["usage"] = dict(usage, output_tokens=1)
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            for piece in _chunks(block["text"]):
                delta = {"type": "text_delta", "text": piece}
                yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        else:
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}},
                },
            )
            for piece in ["", *_chunks(json.dumps(block["input"]))]:
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": usage,
        },
    )
    yield "message_stop", {"type": "message_stop"}


def error_body(status: int, err: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """The API's error document for an error step."""
    kind = err.get("type") or ERROR_TYPES.get(status, "api_error")
    message = err.get("message") or f"scripted {kind} ({status})"
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}


def models_page(script: Script) -> dict[str, Any]:
    """A ``/v1/models`` page naming the models the script mentions (or one generic name)."""
    names = sorted({r.match["model"] for r in script.routes if "model" in r.match}) or ["scripted-model"]
    data = [{"type": "model", "id": n, "display_name": n, "created_at": "2025-01-01T00:00:00Z"} for n in names]
    return {"data": data, "has_more": False, "first_id": names[0], "last_id": names[-1]}
