"""HTTP for the web tools. A fetch goes to public addresses only, redirects included, unless
AURA_WEB_FETCH_ALLOW_PRIVATE is set: the model must not reach the machine's or the network's own
services through a URL it was shown."""

from __future__ import annotations

import html
import ipaddress
import json
import re
import socket
import urllib.parse
import urllib.request
from typing import Any

from .errors import ToolError

FETCH_TIMEOUT = 30.0
MAX_FETCH_BYTES = 4 << 20
USER_AGENT = "Mozilla/5.0 AuraAgent/1.0"


def check_public_url(url: str, allow_private: bool) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError("web_fetch takes an http or https URL")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except OSError as exc:
        raise ToolError(f"cannot resolve {parts.hostname}: {exc}") from None
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_reserved or addr.is_multicast:
            raise ToolError(
                f"{parts.hostname} resolves to a non-public address ({addr}); refused "
                "(AURA_WEB_FETCH_ALLOW_PRIVATE=1 allows it)"
            )


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, allow_private: bool):
        self.allow_private = allow_private

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        check_public_url(newurl, self.allow_private)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_text(url: str, allow_private: bool) -> str:
    """The page at `url` as text (HTML reduced to its words)."""
    check_public_url(url, allow_private)
    opener = urllib.request.build_opener(_CheckedRedirects(allow_private))
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with opener.open(req, timeout=FETCH_TIMEOUT) as resp:
            raw = resp.read(MAX_FETCH_BYTES).decode(resp.headers.get_content_charset() or "utf-8", "replace")
            kind = resp.headers.get_content_type()
    except OSError as exc:
        raise ToolError(f"fetch failed: {exc}") from None
    return html_to_text(raw) if "html" in kind else raw


def post_json(url: str, body: dict, what: str) -> Any:
    """POST `body` as JSON to a fixed service and parse the reply; `what` names the call in errors."""
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=FETCH_TIMEOUT) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError) as exc:
        raise ToolError(f"{what} failed: {exc}") from None


def html_to_text(raw: str) -> str:
    raw = re.sub(r"(?is)<(script|style|noscript)[^>]*>.*?</\1>", " ", raw)
    raw = re.sub(r"(?s)<[^>]+>", " ", raw)
    return re.sub(r"\s+", " ", html.unescape(raw)).strip()
