"""web_search: a Tavily search; offered only when AURA_SEARCH_API_KEY is set."""

from __future__ import annotations

from .base import Tool, ToolContext, ToolResult, string
from .web import post_json

SEARCH_URL = "https://api.tavily.com/search"


def web_search(box: ToolContext, a: dict) -> ToolResult:
    body = {
        "api_key": box.planner.cfg.text("AURA_SEARCH_API_KEY"),
        "query": a["query"],
        "search_depth": a.get("search_depth", "basic"),
        "max_results": a.get("max_results", 5),
    }
    doc = post_json(SEARCH_URL, body, "search")
    rows = [f"- {r.get('title')} <{r.get('url')}>\n  {str(r.get('content', ''))[:300]}" for r in doc.get("results", [])]
    return ToolResult("\n".join(rows) or "no results")


TOOL = Tool(
    name="web_search",
    description="Search the web (Tavily).",
    properties={
        "query": string("search terms", minLength=1),
        "search_depth": {"type": "string", "enum": ["basic", "advanced"]},
        "max_results": {"type": "integer", "minimum": 1, "maximum": 20},
    },
    required=["query"],
    run=web_search,
    needs_key="AURA_SEARCH_API_KEY",
)
