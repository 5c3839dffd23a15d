"""The tools the Layer 1 model may call: JSON schemas, argument checks, and what each does.

Every tool the original offered is here under its name. A bad call (unknown tool, wrong types,
missing or unknown arguments, a path outside the project) never raises out of `Toolbox.run`: it
becomes an error result the model reads and can correct. File tools are confined to the project
folder; the brain's own files (`.aura/` except `.aura/memory/`), config files holding keys and the
user's task file cannot be written.
"""

from __future__ import annotations

import html
import ipaddress
import json
import re
import socket
import time
import traceback
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from aura.runtime.fsutil import atomic_write_text
from aura.runtime.paths import safe_name

from .memory import MEM_TYPES
from .state import ROOT, STATUSES, TERMINAL, not_before
from .worker_usage import DOWN as WATCHDOG_DOWN
from .worker_usage import describe as describe_usage
from .workerspec import spawn_spec

BACKENDS = ["shell", "claude", "ds_code", "opencode", "codex"]
PROJECT_FILE_MODE = 0o644  # a file the model writes into the project is the user's, like any other
MAX_READ_CHARS = 50000
MAX_WRITE_BYTES = 1 << 20
MAX_LIST = 200
FETCH_TIMEOUT = 30.0
SECRET_NAMES = ("config.env",)


class ToolError(Exception):
    """A refused or malformed call; the message goes back to the model as an error result."""


@dataclass
class ToolResult:
    text: str
    ok: bool = True
    ends_cycle: bool = False


class Host(Protocol):
    """What the tools need from the planner (kept narrow so the tools stay testable)."""

    core: Any
    cfg: Any
    memory: Any
    log: Any

    def spawn_refusal(self) -> str | None: ...
    def worker_usage(self) -> dict[str, dict] | None: ...
    def confirm_goal(self, reason: str, evidence: str) -> tuple[bool, str]: ...
    def close_goal(self, status: str, reason: str, evidence: str) -> str: ...
    def record(self, kind: str, **fields: Any) -> None: ...


# -- schemas ------------------------------------------------------------------------------------------

def _s(desc: str, **kw: Any) -> dict:
    return {"type": "string", "description": desc, **kw}


SUBTASK = {"type": "object", "properties": {
    "id": _s("optional id; root children take the current batch prefix (A1, A2 ...), others <parent>.<n>"),
    "description": _s("what to do, with the context a fresh worker needs", minLength=1),
    "acceptance_criteria": _s("what proves it done"),
    "artifacts": {"type": "array", "items": {"type": "string"}, "description": "files (project-relative) it must write"},
    "command": _s("a shell command that does the task (runs with the shell backend)"),
    "accept_commands": {"type": "array", "items": {"type": "string"},
                        "description": "commands that must exit 0 before it counts as done"},
    "budget_minutes": {"type": "number", "minimum": 0.1, "description": "time budget of each attempt"},
}, "required": ["description"]}

SCHEMAS: dict[str, tuple[str, dict]] = {
    "read_file": ("Read a file inside the project (bounded). Use the snapshot first; read only what you need.", {
        "path": _s("project-relative path", minLength=1),
        "max_chars": {"type": "integer", "minimum": 1, "maximum": MAX_READ_CHARS, "description": "default 2000"},
        "mode": {"type": "string", "enum": ["auto", "head", "tail", "full"], "description": "auto: head and tail"},
        "start_line": {"type": "integer", "minimum": 0}, "end_line": {"type": "integer", "minimum": 0},
    }, ["path"]),
    "write_file": ("Write a text file inside the project (not under .aura/ except .aura/memory/, not the task file).", {
        "path": _s("project-relative path", minLength=1), "content": _s("the whole new content"),
    }, ["path", "content"]),
    "list_directory": ("List a folder inside the project with file sizes.", {
        "path": _s("project-relative path (default: the project folder)"),
    }, []),
    "web_fetch": ("Fetch a public http(s) page as text.", {
        "url": _s("http or https URL", minLength=1),
        "max_chars": {"type": "integer", "minimum": 100, "maximum": MAX_READ_CHARS, "description": "default 5000"},
    }, ["url"]),
    "web_search": ("Search the web (Tavily).", {
        "query": _s("search terms", minLength=1),
        "search_depth": {"type": "string", "enum": ["basic", "advanced"]},
        "max_results": {"type": "integer", "minimum": 1, "maximum": 20},
    }, ["query"]),
    "spawn_task": ("Start a Layer 2 worker on a leaf task of the tree (it becomes in_progress). With `command` "
                   "it runs that shell command; otherwise an agent CLI works from the task description.", {
        "task_id": _s("an existing leaf task", minLength=1),
        "description": _s("replaces the task's description (carry the context the worker needs)"),
        "command": _s("shell command to run instead of an agent"),
        "artifacts": {"type": "array", "items": {"type": "string"}, "description": "files it must write"},
        "accept_commands": {"type": "array", "items": {"type": "string"}},
        "budget_minutes": {"type": "number", "minimum": 0.1, "description": "time budget (default AURA_TASK_BUDGET)"},
        "backend": {"type": "string", "enum": BACKENDS, "description": "worker CLI (default AURA_LAYER2_BACKEND)"},
        "reason": _s("why now"),
    }, ["task_id"]),
    "kill_task": ("Stop a task's running worker; the task becomes killed only if the kill happened.", {
        "task_id": _s("task whose worker to stop", minLength=1), "reason": _s("why"),
    }, ["task_id"]),
    "list_running_tasks": (("Running workers: pid, age, output size, turns, tokens, cost, last tool, stuck/loop, "
                            "and the watchdog's CPU, RSS, GPU and strikes."), {}, []),
    "update_task_tree": ("Change a task's status with reason and evidence. `completed` is accepted only on evidence "
                         "the brain checks itself (exit record, artifacts written by this attempt, result.md, "
                         "acceptance commands); ROOT completed declares the goal done.", {
        "task_id": _s("task id, or ROOT", minLength=1),
        "new_status": {"type": "string", "enum": [s for s in STATUSES]},
        "reason": _s("why", minLength=1), "evidence": _s("what shows it (files, exit codes, outputs)", minLength=1),
    }, ["task_id", "new_status", "reason", "evidence"]),
    "decompose_task": ("Add subtasks under a task (ROOT for top-level categories).", {
        "parent_task_id": _s("parent id, or ROOT", minLength=1),
        "subtasks": {"type": "array", "items": SUBTASK, "minItems": 1, "maxItems": 30},
    }, ["parent_task_id", "subtasks"]),
    "update_project_context": ("Set the project context; only the fields given change.", {
        "final_goal": _s("the end state"), "success_criteria": _s("how success is judged"),
        "global_constraints": _s("limits every task must respect"),
        "execution_environment": _s("machine, tools, data"), "notes": _s("anything else"),
    }, []),
    "write_memory": ("Add an entry to long-term memory (MEMORY.md, shown in every later cycle).", {
        "mem_type": {"type": "string", "enum": list(MEM_TYPES)},
        "content": _s("the fact, lesson, pattern or decision", minLength=1, maxLength=4000),
    }, ["mem_type", "content"]),
    "no_op": ("End this cycle: nothing more to do until something changes.", {
        "reason": _s("why", minLength=1), "next_check_focus": _s("what to look at next time"),
    }, ["reason"]),
}

ORDER = ["spawn_task", "kill_task", "list_running_tasks", "update_task_tree", "decompose_task",
         "update_project_context", "write_memory", "read_file", "write_file", "list_directory", "web_fetch",
         "web_search", "no_op"]


def definitions(cfg: Any) -> list[dict]:
    """Tool definitions in a fixed order (a stable prompt prefix); web_search only with a key."""
    out = []
    for name in ORDER:
        if name == "web_search" and not cfg.str("AURA_SEARCH_API_KEY"):
            continue
        desc, props, required = SCHEMAS[name]
        out.append({"name": name, "description": desc,
                    "input_schema": {"type": "object", "properties": props, "required": required}})
    return out


# -- argument checks ----------------------------------------------------------------------------------

_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def check_value(schema: dict, value: Any, where: str, problems: list[str]) -> None:
    kind = schema.get("type")
    if kind and not _TYPES[kind](value):
        problems.append(f"{where} must be {kind}, got {type(value).__name__} {json.dumps(value, default=str)[:40]}")
        return
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where} must be one of {', '.join(map(str, schema['enum']))}")
    if kind == "string":
        if schema.get("minLength") and not value.strip():
            problems.append(f"{where} must not be empty")
        if len(value) > schema.get("maxLength", 10 ** 7):
            problems.append(f"{where} is longer than {schema['maxLength']} characters")
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where} must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where} must be <= {schema['maximum']}")
    if kind == "array":
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", 10 ** 6):
            problems.append(f"{where} must have {schema.get('minItems', 0)} to {schema.get('maxItems', 'any')} items")
        for i, item in enumerate(value[:100]):
            check_value(schema.get("items", {}), item, f"{where}[{i}]", problems)
    if kind == "object" and "properties" in schema:
        check_object(schema["properties"], schema.get("required", []), value, where, problems)


def check_object(props: dict, required: list[str], value: dict, where: str, problems: list[str]) -> None:
    for key in required:
        if key not in value:
            problems.append(f"{where}.{key} is required" if where else f"`{key}` is required")
    for key, item in value.items():
        name = f"{where}.{key}" if where else f"`{key}`"
        if key not in props:
            problems.append(f"{name} is not an argument of this tool (allowed: {', '.join(props) or 'none'})")
        else:
            check_value(props[key], item, name, problems)


def validate(name: str, args: Any) -> dict:
    _, props, required = SCHEMAS[name]
    if not isinstance(args, dict):
        raise ToolError(f"arguments must be a JSON object, got {type(args).__name__}")
    problems: list[str] = []
    check_object(props, required, args, "", problems)
    if problems:
        raise ToolError("bad arguments: " + "; ".join(problems[:8]))
    return args


# -- paths --------------------------------------------------------------------------------------------

def inside_project(root: Path, rel: str) -> Path:
    """Resolve `rel` (symlinks too) and refuse anything outside the project folder."""
    root = root.resolve()
    path = Path(rel).expanduser()
    path = (path if path.is_absolute() else root / path).resolve()
    if path != root and root not in path.parents:
        raise ToolError(f"{rel} is outside the project folder {root}; file tools work inside it only")
    if path.name in SECRET_NAMES:
        raise ToolError(f"{rel} may hold API keys; it is not readable or writable by the model")
    return path


def _writable(root: Path, path: Path, task_file: str | None) -> None:
    data = (root / ".aura").resolve()
    if path == data or data in path.parents:
        memory = data / "memory"
        if not (memory == path.parent or memory in path.parents):
            raise ToolError("the brain's own files under .aura/ are not writable (except .aura/memory/)")
    if task_file and path == Path(task_file).resolve():
        raise ToolError("the task file is the user's: it is not writable by the model")


class FileCache:
    """The original's read cache: a hit needs an unchanged mtime and size and an age under the TTL.
    A file larger than READ_LIMIT is read in part: its head, its tail, or both (never cached)."""

    READ_LIMIT = 1 << 20

    def __init__(self, ttl: float, enabled: bool):
        self.ttl, self.enabled = ttl, enabled
        self.entries: dict[str, tuple[float, tuple, str]] = {}

    def read(self, path: Path, mode: str = "auto") -> str:
        st = path.stat()
        if st.st_size > self.READ_LIMIT:
            return self._read_part(path, st.st_size, mode)
        key, sig = str(path), (st.st_mtime_ns, st.st_size)
        hit = self.entries.get(key)
        if self.enabled and hit and hit[1] == sig and time.monotonic() - hit[0] < self.ttl:
            return hit[2]
        text = path.read_bytes().decode("utf-8", "replace")
        if self.enabled:
            self.entries[key] = (time.monotonic(), sig, text)
        return text

    def _read_part(self, path: Path, size: int, mode: str) -> str:
        half = self.READ_LIMIT // 2
        with open(path, "rb") as fh:
            head = fh.read(self.READ_LIMIT if mode in ("head", "full") else (0 if mode == "tail" else half))
            fh.seek(size - (self.READ_LIMIT if mode == "tail" else half))
            tail = b"" if mode in ("head", "full") else fh.read()
        gap = f"\n… [{size - len(head) - len(tail)} bytes not read] …\n" if head and tail else ""
        return head.decode("utf-8", "replace") + gap + tail.decode("utf-8", "replace")

    def forget(self, path: Path) -> None:
        self.entries.pop(str(path), None)


def excerpt(text: str, max_chars: int, mode: str) -> str:
    if len(text) <= max_chars:
        return text
    if mode == "head" or mode == "full":
        return text[:max_chars] + f"\n… [{len(text) - max_chars} more characters]"
    if mode == "tail":
        return f"[{len(text) - max_chars} earlier characters] …\n" + text[-max_chars:]
    head = int(max_chars * 0.6)
    return text[:head] + f"\n… [{len(text) - max_chars} characters omitted] …\n" + text[-(max_chars - head):]


# -- web ----------------------------------------------------------------------------------------------

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
        addr = ipaddress.ip_address(info[4][0].split("%")[0])
        if addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_reserved or addr.is_multicast:
            raise ToolError(f"{parts.hostname} resolves to a non-public address ({addr}); refused "
                            "(AURA_WEB_FETCH_ALLOW_PRIVATE=1 allows it)")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, allow_private: bool):
        self.allow_private = allow_private

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        check_public_url(newurl, self.allow_private)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def html_to_text(raw: str) -> str:
    raw = re.sub(r"(?is)<(script|style|noscript)[^>]*>.*?</\1>", " ", raw)
    raw = re.sub(r"(?s)<[^>]+>", " ", raw)
    return re.sub(r"\s+", " ", html.unescape(raw)).strip()


# -- the toolbox --------------------------------------------------------------------------------------

class Toolbox:
    def __init__(self, host: Host):
        self.host = host
        cfg = host.cfg
        self.root: Path = host.core.paths.root
        self.cache = FileCache(cfg.float("AURA_FILE_CACHE_TTL"), cfg.bool("AURA_FILE_CACHE"))

    def run(self, name: str, args: Any) -> ToolResult:
        """Dispatch one call; every failure becomes an error result, never an exception."""
        fn = getattr(self, f"t_{name}", None)
        if name not in SCHEMAS or fn is None:
            return ToolResult(f"unknown tool {name!r}; available: {', '.join(ORDER)}", ok=False)
        if name == "web_search" and not self.host.cfg.str("AURA_SEARCH_API_KEY"):
            return ToolResult("web_search is not configured (no AURA_SEARCH_API_KEY)", ok=False)
        try:
            return fn(validate(name, args))
        except ToolError as exc:
            return ToolResult(f"{name}: {exc}", ok=False)
        except Exception as exc:  # a bug in a tool is the tool's failure, not the brain's
            self.host.log.error("tool_crashed", tool=name, error=repr(exc), trace=traceback.format_exc()[-1500:])
            return ToolResult(f"{name} failed: {type(exc).__name__}: {exc}", ok=False)

    @property
    def core(self) -> Any:
        return self.host.core

    def _task(self, task_id: str) -> dict:
        task = self.core.tasks.get(task_id)
        if task is None:
            raise ToolError(f"there is no task {task_id!r}; the tree's ids are listed in the snapshot")
        return task

    # -- files --
    def t_read_file(self, a: dict) -> ToolResult:
        path = inside_project(self.root, a["path"])
        if path.is_dir():
            raise ToolError(f"{a['path']} is a folder; use list_directory")
        if not path.exists():
            raise ToolError(f"{a['path']} does not exist")
        text = self.cache.read(path, a.get("mode", "auto"))
        max_chars = a.get("max_chars", 2000)
        if a.get("start_line") or a.get("end_line"):
            lines = text.splitlines()
            start = max(1, a.get("start_line") or 1)
            end = a.get("end_line") or len(lines)
            text = "\n".join(f"{i}: {ln}" for i, ln in enumerate(lines[start - 1:end], start))
        return ToolResult(excerpt(text, max_chars, a.get("mode", "auto")) or "(empty file)")

    def t_write_file(self, a: dict) -> ToolResult:
        path = inside_project(self.root, a["path"])
        _writable(self.root, path, self.core.state.get("task_file"))
        data = a["content"].encode("utf-8")
        if len(data) > MAX_WRITE_BYTES:
            raise ToolError(f"content is {len(data)} bytes; the limit is {MAX_WRITE_BYTES}")
        if path.is_dir():
            raise ToolError(f"{a['path']} is a folder")
        private = self.core.paths.data.resolve() in path.resolve().parents  # .aura/memory/: Aura's, private
        atomic_write_text(path, a["content"], mode=0o600 if private else PROJECT_FILE_MODE)
        self.cache.forget(path)
        self.host.record("file_written", path=str(path.relative_to(self.root.resolve())), bytes=len(data))
        return ToolResult(f"wrote {len(data)} bytes to {path.relative_to(self.root.resolve())}")

    def t_list_directory(self, a: dict) -> ToolResult:
        path = inside_project(self.root, a.get("path") or ".")
        if not path.is_dir():
            raise ToolError(f"{a.get('path')} is not a folder")
        rows = []
        for child in sorted(path.iterdir(), key=lambda p: (not p.is_dir(), p.name))[:MAX_LIST]:
            try:
                rows.append(f"{child.name}/" if child.is_dir() else f"{child.name}  {child.stat().st_size} B")
            except OSError:
                rows.append(f"{child.name}  (unreadable)")
        more = sum(1 for _ in path.iterdir()) - len(rows)
        return ToolResult("\n".join(rows + ([f"… {more} more"] if more > 0 else [])) or "(empty folder)")

    # -- web --
    def t_web_fetch(self, a: dict) -> ToolResult:
        allow = self.host.cfg.bool("AURA_WEB_FETCH_ALLOW_PRIVATE")
        check_public_url(a["url"], allow)
        opener = urllib.request.build_opener(_CheckedRedirects(allow))
        req = urllib.request.Request(a["url"], headers={"User-Agent": "Mozilla/5.0 AuraAgent/1.0"})
        try:
            with opener.open(req, timeout=FETCH_TIMEOUT) as resp:
                raw = resp.read(4 << 20).decode(resp.headers.get_content_charset() or "utf-8", "replace")
                kind = resp.headers.get_content_type()
        except OSError as exc:
            raise ToolError(f"fetch failed: {exc}") from None
        text = html_to_text(raw) if "html" in kind else raw
        return ToolResult(excerpt(text, a.get("max_chars", 5000), "head"))

    def t_web_search(self, a: dict) -> ToolResult:
        body = {"api_key": self.host.cfg.str("AURA_SEARCH_API_KEY"), "query": a["query"],
                "search_depth": a.get("search_depth", "basic"), "max_results": a.get("max_results", 5)}
        req = urllib.request.Request("https://api.tavily.com/search", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=FETCH_TIMEOUT) as resp:
                doc = json.loads(resp.read())
        except (OSError, ValueError) as exc:
            raise ToolError(f"search failed: {exc}") from None
        rows = [f"- {r.get('title')} <{r.get('url')}>\n  {str(r.get('content', ''))[:300]}" for r in doc.get("results", [])]
        return ToolResult("\n".join(rows) or "no results")

    # -- workers --
    def t_spawn_task(self, a: dict) -> ToolResult:
        refusal = self.host.spawn_refusal()
        if refusal:
            raise ToolError(f"not started: {refusal}")
        task = self._task(a["task_id"])
        self._check_spawnable(task)
        if self.core.capacity() <= 0:
            raise ToolError(f"not started: {len(self.core.running())} workers are running "
                            f"(AURA_MAX_CONCURRENT_TASKS={self.host.cfg.int('AURA_MAX_CONCURRENT_TASKS')}); "
                            "wait for one to end or kill one")
        for key in ("description", "command", "artifacts", "accept_commands", "budget_minutes", "backend"):
            if key in a:
                task[key] = a[key]
        task["kind"] = "command" if task.get("command") else "agent"
        spec = spawn_spec(task, self.host.cfg, self.root, self.core.paths.task_dir(task["id"]))
        if task.get("backend") and not task.get("command"):
            spec["backend"] = task["backend"]
        rec = self.core.spawn(task, spec)  # the core adds the remaining budget as the worker's own cap
        return self._spawn_outcome(task, rec, a.get("reason"))

    def _check_spawnable(self, task: dict) -> None:
        if task["id"] == ROOT:
            raise ToolError("ROOT is the goal, not a task; decompose it and spawn a leaf")
        if task.get("children"):
            raise ToolError(f"{task['id']} has subtasks ({', '.join(task['children'][:6])}); spawn a leaf")
        if task["status"] == "in_progress":
            raise ToolError(f"{task['id']} is already running (worker {task.get('worker_id')})")
        if task["status"] in ("completed", "archived"):
            raise ToolError(f"{task['id']} is {task['status']}; reopen it with update_task_tree first if needed")

    def _spawn_outcome(self, task: dict, rec: dict | None, reason: str | None) -> ToolResult:
        self.host.record("spawn", task_id=task["id"], worker_id=task.get("worker_id"), reason=reason or "",
                         backend=(task.get("spawn_spec") or {}).get("backend"))
        if rec is None:
            if task["status"] == "in_progress":
                return ToolResult(f"{task['id']}: spawn of {task.get('worker_id')} is saved; the supervisor did not "
                                  "answer, it is re-sent at the next reconcile")
            if task["status"] == "pending" and not_before(task) > time.time():
                return ToolResult(f"{task['id']} waits until {time.ctime(not_before(task))}: {task.get('reason')}",
                                  ok=False)
            return ToolResult(f"{task['id']} did not start: {task.get('reason') or 'refused'}", ok=False)
        if rec.get("state") == "exited":
            return ToolResult(f"worker {rec['worker_id']} ended at once ({rec.get('outcome')}); {task['id']} is now "
                              f"{task['status']}: {task.get('reason')}", ok=task["status"] == "completed")
        return ToolResult(f"started worker {rec['worker_id']} (pid {rec.get('worker_pid')}, backend "
                          f"{rec.get('backend')}) for {task['id']}")

    def t_kill_task(self, a: dict) -> ToolResult:
        task = self._task(a["task_id"])
        reason = a.get("reason") or "killed by the model"
        if task["status"] != "in_progress":
            raise ToolError(f"the kill did not happen: {task['id']} is {task['status']}, not running")
        result = self.core.kill(task, reason)
        if not result.get("killed"):
            raise ToolError(f"the kill did not happen: {result.get('message') or 'no reason given'}; "
                            f"{task['id']} stays {task['status']}")
        self.core.set_status(task, "killed", reason, f"the supervisor sent {result.get('signal', 'a signal')} to "
                                                     f"worker {task.get('worker_id')}", by="model")
        return ToolResult(f"{task['id']}: worker {task.get('worker_id')} is being stopped; task killed")

    def t_list_running_tasks(self, a: dict) -> ToolResult:
        rows = []
        now = time.time()
        running = self.core.running()
        usage = self.host.worker_usage() if running else {}
        strikes = self.host.cfg.int("AURA_WORKER_RESOURCE_VIOLATION_STRIKES")
        for task in running:
            w = self.core.workers.get(task.get("worker_id") or "", {})
            p = w.get("progress") or {}
            flags = "".join(f" {f}" for f in ("stuck", "loop") if p.get(f))
            cost = f" cost ${p['total_cost_usd']:.4f} (its CLI's figure)" if p.get("total_cost_usd") is not None else ""
            rows.append(f"- {task['id']} worker {task.get('worker_id')} {w.get('state', 'unknown')}{flags} pid "
                        f"{w.get('worker_pid')} age {int(now - (w.get('started_at') or now))}s output "
                        f"{p.get('output_bytes', 0)} B turns {p.get('turns', '-')} tokens in/out "
                        f"{p.get('input_tokens', '-')}/{p.get('output_tokens', '-')}{cost} last tool "
                        f"{p.get('last_tool') or '-'}; {describe_usage(usage, task.get('worker_id'), strikes)}")
        if running and usage is None:
            rows.append(f"({WATCHDOG_DOWN})")
        return ToolResult("\n".join(rows) or "no task is running")

    # -- the tree --
    def t_update_task_tree(self, a: dict) -> ToolResult:
        task = self._task(a["task_id"])
        new, reason, evidence = a["new_status"], a["reason"], a["evidence"]
        if new == "in_progress":
            raise ToolError("tasks become in_progress only through spawn_task")
        if task["id"] == ROOT:
            return self._root_status(new, reason, evidence)
        if task["status"] == "in_progress" and new != "completed":
            raise ToolError(f"{task['id']} has a running worker ({task.get('worker_id')}); kill_task first")
        if new == "completed":
            return self._claim_done(task, reason, evidence)
        targets = [task] + (self._open_descendants(task) if new in ("archived", "blocked", "failed") else [])
        for t in targets:
            self.core.set_status(t, new, reason, evidence, by="model")
            if new == "blocked":
                self.core.publish("task_blocked", task_id=t["id"], reason=reason)
        if new == "pending":
            self.core.state.setdefault("llm", {})["goal_closed"] = False
        return ToolResult(f"{', '.join(t['id'] for t in targets)} -> {new}")

    def _open_descendants(self, task: dict) -> list[dict]:
        out, stack = [], list(task.get("children", []))
        while stack:
            t = self.core.tasks.get(stack.pop())
            if t is None:
                continue
            stack.extend(t.get("children", []))
            if t["status"] == "in_progress":
                raise ToolError(f"{t['id']} under {task['id']} is running; kill_task it first")
            if t["status"] not in TERMINAL:
                out.append(t)
        return out

    def _claim_done(self, task: dict, reason: str, evidence: str) -> ToolResult:
        proof = self.core.verify_done(task, self.host.cfg.float("AURA_ACCEPTANCE_TIMEOUT"))
        if not proof.ok:
            why = "; ".join(proof.problems) or "no evidence"
            self.host.record("done_refused", task_id=task["id"], claim=reason, claimed_evidence=evidence, reason=why)
            raise ToolError(f"refused: {task['id']} stays {task['status']}: {why}. Give it evidence the brain can "
                            "check (a worker that exits 0, the named artifacts written by this attempt, result.md "
                            "with `Status: done`, passing acceptance commands)")
        self.core.set_status(task, "completed", reason, f"{evidence} | checked by the brain: {proof.summary()}",
                             by="model")
        self.core.publish("task_done", task_id=task["id"], title=task.get("title"))
        return ToolResult(f"{task['id']} completed; the brain checked: {proof.summary()}")

    def _root_status(self, new: str, reason: str, evidence: str) -> ToolResult:
        if new == "completed":
            ok, detail = self.host.confirm_goal(reason, evidence)
            if not ok:
                raise ToolError(f"refused: the goal is not done: {detail}")
            return ToolResult(f"goal done: {detail}")
        if new in ("blocked", "failed"):
            return ToolResult(self.host.close_goal(new, reason, evidence))
        raise ToolError("ROOT takes completed (goal done), blocked or failed (give up, with the reason)")

    def t_decompose_task(self, a: dict) -> ToolResult:
        parent = self._task(a["parent_task_id"])
        if parent["status"] in ("in_progress", "completed", "archived") and parent["id"] != ROOT:
            raise ToolError(f"{parent['id']} is {parent['status']}; subtasks go under an open task")
        added = []
        for sub in a["subtasks"]:
            tid = self._new_id(parent, sub.get("id"))
            extra = {k: sub[k] for k in ("description", "acceptance_criteria", "artifacts", "command",
                                         "accept_commands", "budget_minutes") if k in sub}
            title = sub["description"].strip().splitlines()[0][:100]
            self.core.add_task(tid, title, parent=parent["id"], kind="command" if sub.get("command") else "agent",
                               batch=self._prefix(), **extra)
            added.append(tid)
        self.host.record("decomposed", parent=parent["id"], added=added)
        return ToolResult(f"added under {parent['id']}: {', '.join(added)}")

    def _prefix(self) -> str:
        return (self.core.state.get("task_batch") or {}).get("prefix") or "A"

    def _new_id(self, parent: dict, wanted: str | None) -> str:
        """Keep a usable unique id; otherwise the next <prefix><n> (root) or <parent>.<n>."""
        if wanted and safe_name(wanted) == wanted and wanted not in self.core.tasks and wanted != ROOT:
            return wanted
        base = self._prefix() if parent["id"] == ROOT else parent["id"] + "."
        n = 1
        while f"{base}{n}" in self.core.tasks:
            n += 1
        return f"{base}{n}"

    def t_update_project_context(self, a: dict) -> ToolResult:
        if not a:
            raise ToolError("give at least one field")
        ctx = self.core.state.setdefault("project_context", {})
        ctx.update(a)  # only the fields given: the original blanked the others
        ctx["updated_at"] = time.time()
        self.host.record("project_context", changed=sorted(a))
        return ToolResult(f"project context updated: {', '.join(sorted(a))}")

    def t_write_memory(self, a: dict) -> ToolResult:
        self.host.memory.append(a["mem_type"], a["content"])
        self.host.record("memory", mem_type=a["mem_type"], content=a["content"][:300])
        return ToolResult(f"remembered ({a['mem_type']})")

    def t_no_op(self, a: dict) -> ToolResult:
        return ToolResult(f"Sleeping. Reason: {a['reason']}", ends_cycle=True)
