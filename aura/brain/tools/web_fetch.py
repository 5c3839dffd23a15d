"""web_fetch: a public http(s) page as text."""

from __future__ import annotations

from .base import Tool, ToolContext, ToolResult, string
from .filecache import MAX_READ_CHARS, excerpt
from .web import fetch_text


def web_fetch(box: ToolContext, a: dict) -> ToolResult:
    text = fetch_text(a["url"], box.planner.cfg.flag("AURA_WEB_FETCH_ALLOW_PRIVATE"))
    return ToolResult(excerpt(text, a.get("max_chars", 5000), "head"))


TOOL = Tool(
    name="web_fetch",
    description="Fetch a public http(s) page as text.",
    properties={
        "url": string("http or https URL", minLength=1),
        "max_chars": {"type": "integer", "minimum": 100, "maximum": MAX_READ_CHARS, "description": "default 5000"},
    },
    required=["url"],
    run=web_fetch,
)
