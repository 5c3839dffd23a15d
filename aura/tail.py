"""`aura tail TASK [-f]`: a worker's output as readable lines.

Why: agent CLIs write one JSON event per line (claude stream-json, opencode and codex JSON); a
person following a worker wants "→ Bash: pytest -q", "← 3 passed", "assistant: done", not JSON.
Plain-text workers (shell, ds-code) are printed as they are. It reads the worker's files directly,
so it works while the supervisor is down.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from aura.supervisor.streams.common import mapping_at

INPUT_KEYS = ("command", "file_path", "filePath", "path", "pattern", "url", "query", "description", "prompt")
WIDTH = 240


class TailError(Exception):
    """No such worker or output; the message says what exists."""


def _short(text: Any, width: int = WIDTH) -> str:
    one = " ".join(str(text or "").split())
    return one if len(one) <= width else one[: width - 1] + "…"


def _first_line(text: Any) -> str:
    lines = [ln for ln in str(text or "").splitlines() if ln.strip()]
    more = f" (+{len(lines) - 1} lines)" if len(lines) > 1 else ""
    return _short(lines[0] if lines else "", 160) + more


def describe_input(tool_input: Any) -> str:
    """The one argument that says what a tool call does (its command, file, pattern...)."""
    if isinstance(tool_input, Mapping):
        for key in INPUT_KEYS:
            if tool_input.get(key):
                return _short(tool_input[key], 160)
        return _short(json.dumps(tool_input, default=str), 160)
    return _short(tool_input, 160)


def _result_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, Mapping))
    return str(content or "")


# -- one formatter per output format: raw line -> readable lines -----------------------------------------


def claude_lines(event: Mapping[str, Any]) -> list[str]:
    kind, sub = event.get("type"), event.get("subtype")
    if kind == "system" and sub == "init":
        return [
            f"● session {event.get('session_id')} · model {event.get('model')} · claude "
            f"{event.get('claude_code_version', '?')}"
        ]
    if kind == "system" and sub == "api_retry":
        return [
            f"! API retry {event.get('attempt')}/{event.get('max_retries')}: "
            f"{event.get('error_status')} {event.get('error')}"
        ]
    message = mapping_at(event, "message")
    blocks = [b for b in message.get("content") or [] if isinstance(b, Mapping)]
    if kind == "assistant":
        out = [f"! {event['error']}"] if isinstance(event.get("error"), str) else []
        for b in blocks:
            if b.get("type") == "text" and str(b.get("text", "")).strip():
                out.append(f"assistant: {_short(b['text'])}")
            elif b.get("type") == "tool_use":
                out.append(f"→ {b.get('name')}: {describe_input(b.get('input'))}")
        return out
    if kind == "user":
        return [
            f"← {'error: ' if b.get('is_error') else ''}{_first_line(_result_text(b.get('content')))}"
            for b in blocks
            if b.get("type") == "tool_result"
        ]
    if kind == "result":
        cost, ms = event.get("total_cost_usd"), event.get("duration_ms")
        head = (
            f"■ {event.get('subtype')}{' (error)' if event.get('is_error') else ''} · "
            f"{event.get('num_turns')} turns"
            + (f" · ${cost:.4f}" if isinstance(cost, (int, float)) else "")
            + (f" · {ms / 1000:.1f}s" if isinstance(ms, (int, float)) else "")
        )
        return [head] + ([f"  {_short(event.get('result'))}"] if event.get("result") else [])
    return []


def opencode_lines(event: Mapping[str, Any]) -> list[str]:
    kind = event.get("type")
    part = mapping_at(event, "part")
    if kind == "text" and str(part.get("text", "")).strip():
        return [f"assistant: {_short(part['text'])}"]
    if kind == "tool_use":
        state = mapping_at(part, "state")
        out = [f"→ {part.get('tool')}: {describe_input(state.get('input'))}"]
        if state.get("status") == "error":
            return out + [f"← error: {_first_line(state.get('error'))}"]
        return out + ([f"← {_first_line(state.get('output'))}"] if state.get("output") else [])
    if kind == "step_finish":
        cost = part.get("cost")
        return [f"· step done ({part.get('reason')})" + (f" · ${cost:.4f}" if isinstance(cost, (int, float)) else "")]
    if kind == "error":
        err = mapping_at(event, "error")
        data = mapping_at(err, "data")
        return [f"! {err.get('name', 'error')}: {_short(data.get('message') or err.get('message') or err)}"]
    return []


def _codex_item(item: Mapping[str, Any], completed: bool) -> list[str]:
    kind = item.get("type")
    if kind == "command_execution":
        if not completed:
            return [f"→ $ {_short(item.get('command'), 160)}"]
        return [f"← exit {item.get('exit_code')}: {_first_line(item.get('aggregated_output'))}"]
    if not completed:
        return []
    if kind == "agent_message":
        return [f"assistant: {_short(item.get('text'))}"]
    if kind == "file_change":
        files = [c.get("path") for c in item.get("changes") or [] if isinstance(c, Mapping)]
        return [f"→ edit {', '.join(map(str, files))} ({item.get('status')})"]
    if kind == "mcp_tool_call":
        return [f"→ {item.get('server')}.{item.get('tool')}: {describe_input(item.get('arguments'))}"]
    if kind == "web_search":
        return [f"→ search: {_short(item.get('query'), 160)}"]
    if kind == "error":
        return [f"! {_short(item.get('message'))}"]
    return []


def codex_lines(event: Mapping[str, Any]) -> list[str]:
    kind = event.get("type")
    if kind == "thread.started":
        return [f"● session {event.get('thread_id')}"]
    if kind in ("item.started", "item.completed") and isinstance(event.get("item"), Mapping):
        return _codex_item(event["item"], kind == "item.completed")
    if kind == "turn.completed":
        usage = mapping_at(event, "usage")
        return [
            f"■ turn completed · in {usage.get('input_tokens')} (cached {usage.get('cached_input_tokens')}) · "
            f"out {usage.get('output_tokens')}"
        ]
    if kind == "turn.failed":
        err = mapping_at(event, "error")
        return [f"! turn failed: {_short(err.get('message'))}"]
    if kind == "error":
        return [f"! {_short(event.get('message'))}"]
    return []


JSON_FORMATTERS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "claude": claude_lines,
    "opencode": opencode_lines,
    "codex": codex_lines,
}


def formatter(backend: str, raw: bool = False) -> Callable[[str], list[str]]:
    """A function from one output line to readable lines, for this backend's output format."""
    fmt = None if raw else JSON_FORMATTERS.get(backend)
    if fmt is None:
        return lambda line: [line]

    def one(line: str) -> list[str]:
        try:
            event = json.loads(line)
        except ValueError:
            return [line] if line.strip() else []
        return fmt(event) if isinstance(event, dict) else [line]

    return one


# -- finding and following a worker ----------------------------------------------------------------------


def find_worker(paths: Any, name: str) -> dict:
    """The worker `name`, or the latest worker of task `name` (records read from disk)."""
    from aura.runtime.records import WorkerRecords

    reg = WorkerRecords(paths)
    records = [reg.view(r) for r in reg.records()]
    exact = [r for r in records if r.get("worker_id") == name]
    of_task = sorted((r for r in records if r.get("task_id") == name), key=lambda r: r.get("created_at") or 0)
    found = exact or of_task
    if not found:
        tasks = sorted({str(r.get("task_id")) for r in records if r.get("task_id")})
        raise TailError(f"no worker for {name!r}; tasks with workers: {', '.join(tasks) or 'none yet'}")
    return found[-1]


def _lines_of(chunk: bytes, partial: bytes) -> tuple[list[str], bytes]:
    parts = (partial + chunk).split(b"\n")
    return [p.decode("utf-8", "replace") for p in parts[:-1]], parts[-1]


def read_formatted(path: Path, fmt: Callable[[str], list[str]]) -> tuple[list[str], int, bytes]:
    """Everything written so far, formatted; plus the offset read to and an unfinished last line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0, b""
    lines, partial = _lines_of(data, b"")
    return [out for line in lines for out in fmt(line)], len(data), partial


def follow(
    path: Path,
    fmt: Callable[[str], list[str]],
    offset: int,
    partial: bytes,
    done: Callable[[], bool],
    poll: float = 0.3,
) -> Iterator[str]:
    """New formatted lines as the file grows, until `done()` and nothing is left to read."""
    while True:
        finished = done()  # checked before reading, so the last lines written before the exit are read
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
        except FileNotFoundError:
            chunk = b""
        offset += len(chunk)
        lines, partial = _lines_of(chunk, partial)
        for line in lines:
            yield from fmt(line)
        if finished and not chunk:
            if partial.strip():
                yield from fmt(partial.decode("utf-8", "replace"))
            return
        if not chunk:
            time.sleep(poll)


def worker_done(paths: Any, worker_id: str) -> Callable[[], bool]:
    from aura.runtime.records import WorkerRecords
    from aura.runtime.vocab import LIVE_STATES

    def done() -> bool:
        reg = WorkerRecords(paths)
        rec = reg.record(worker_id)
        return rec is None or reg.view(rec).get("state") not in LIVE_STATES

    return done


def tail(
    paths: Any, name: str, follow_it: bool, lines: int, raw: bool, stderr: bool, echo: Callable[[str], None]
) -> dict:
    """Print a worker's output readably; with follow_it, keep printing until the worker ends."""
    worker = find_worker(paths, name)
    path = Path(worker["error_log"] if stderr else worker["output"])
    fmt = formatter("shell" if stderr else worker.get("backend", "shell"), raw)
    shown, offset, partial = read_formatted(path, fmt)
    if not follow_it and partial.strip():
        shown += fmt(partial.decode("utf-8", "replace"))
    state = worker.get("outcome") if worker.get("state") == "exited" else worker.get("state")
    echo(f"== {worker['worker_id']} ({worker.get('backend')}, {state}) {path}")
    for line in shown[-lines:] if lines > 0 else shown:
        echo(line)
    if follow_it:
        for line in follow(path, fmt, offset, partial, worker_done(paths, worker["worker_id"])):
            echo(line)
        echo(f"== {worker['worker_id']} ended: {settled_outcome(paths, worker['worker_id'])}")
    return worker


def settled_outcome(paths: Any, worker_id: str, wait: float = 5.0) -> str:
    """The outcome the supervisor records; it comes a moment after the exit record (or never, while
    the supervisor is down: then "exited")."""
    deadline = time.monotonic() + wait
    while True:
        rec = find_worker(paths, worker_id)
        if rec.get("outcome") or time.monotonic() > deadline:
            return str(rec.get("outcome") or rec.get("state"))
        time.sleep(0.1)
