"""The command: ``python -m aura.scripted_server --script FILE [--port N] [--record FILE]``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .script import ScriptError
from .server import ScriptedServer

PROG = "python -m aura.scripted_server"
DESCRIPTION = "A scripted Anthropic-compatible HTTP server on 127.0.0.1."


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT; print its URL first so a parent process can read it."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("--script", help="script JSON file (default: always answer 'done')")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--record", help="append every request to this JSONL file")
    args = parser.parse_args(argv)
    try:
        server = ScriptedServer(args.script, port=args.port, record_path=args.record).start()
    except (ScriptError, OSError) as exc:
        print(f"scripted_server: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(server.url, flush=True)
    while not done.wait(0.5):
        pass
    server.stop()
    return 0
