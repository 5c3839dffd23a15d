"""A scripted Anthropic-compatible HTTP server on 127.0.0.1 (docs/scripted-server.md).

Why: users dry-run a task file without spending money, and every Aura test needs a model that answers
the same way every time. The server speaks the Messages API closely enough that both the ``anthropic``
Python SDK and the real Claude Code CLI accept it (JSON and ``"stream": true`` SSE replies). It is
tooling on top of Aura: no daemon imports it.

Use it in-process::

    with ScriptedServer({"steps": [{"text": "hello"}]}) as srv:
        client = anthropic.Anthropic(base_url=srv.url, api_key="x")
        ...
        srv.requests   # every request seen, newest last

or as a command (prints its URL on the first stdout line, runs until SIGTERM/SIGINT)::

    python -m aura.scripted_server --script script.json [--port N] [--record requests.jsonl]

The modules: ``script`` (the script document, its steps and routes), ``prompt_cache`` (token estimates
and the simulated prompt cache), ``messages`` (the Messages API's replies, streams and errors),
``handler`` (HTTP on the wire), ``server`` (``ScriptedServer``: lifecycle, dispatch, the request
log), ``cli`` (the command).
"""

from .prompt_cache import estimate_tokens
from .script import ScriptError, load_script
from .server import ScriptedServer

__all__ = ["ScriptError", "ScriptedServer", "estimate_tokens", "load_script"]
