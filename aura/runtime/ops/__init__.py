"""Operations: one module per request a daemon answers, as circus keeps one module per command.

An operation module holds, in one place, the request's name, the daemon that answers it, its
arguments (a type and a default each), its handler, and a docstring whose first line says what it
does and whose `Request:` and `Reply:` lines show the wire message:

    '''kill: stop one worker (SIGTERM to its group, SIGKILL after the grace).

    Request: {worker_id: str, reason: str = "", by: str = "cli"}
    Reply: {killed: bool, message: str}
    '''

    @operation("kill", "supervisor", Arg("worker_id", str), Arg("reason", str, ""), Arg("by", str, "cli"))
    def kill(sup: SupervisorDaemon, args: dict) -> dict:
        ...

Importing the module registers the operation. A daemon answers the operations registered for its
name (and for every daemon, "any"); each request's arguments are checked against the declared ones
before the handler sees them, so a handler reads `args["worker_id"]` and never checks a type itself.
docs/architecture.md's catalogue is rendered from the same registry (`catalogue`).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from aura.ipc.envelope import BadArgs, arg

REQUIRED: Any = object()
ANY_DAEMON = "any"
Handler = Callable[[Any, dict], Any]
F = TypeVar("F", bound=Handler)


@dataclass(frozen=True)
class Arg:
    """One argument of a request: its name, type(s) and default (REQUIRED: it must be given)."""

    name: str
    kind: type | tuple[type, ...]
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Operation:
    name: str
    daemon: str  # the daemon that answers it, or ANY_DAEMON
    args: tuple[Arg, ...]
    handler: Handler
    doc: str  # the operation module's docstring

    def checked(self, args: dict) -> dict:
        """The request's arguments with defaults filled in; BadArgs for a missing, mistyped or
        unknown one (a misspelt argument would otherwise be ignored without a word)."""
        known = {a.name for a in self.args}
        unknown = sorted(k for k in args if k not in known)
        if unknown:
            allowed = ", ".join(sorted(known)) or "none"
            raise BadArgs(f"`{self.name}` takes no argument `{unknown[0]}` (it takes: {allowed})")
        return {
            a.name: arg(args, a.name, a.kind) if a.required else arg(args, a.name, a.kind, a.default) for a in self.args
        }

    def bind(self, daemon: Any) -> Callable[[dict], Any]:
        """The request handler a daemon's server calls."""
        return lambda args: self.handler(daemon, self.checked(args))

    @property
    def summary(self) -> str:
        """The docstring's first paragraph, on one line."""
        return " ".join(self.doc.strip().split("\n\n", 1)[0].split()) or self.name

    def wire(self, part: str) -> str:
        """The docstring's `Request:` or `Reply:` line (continuation lines joined)."""
        found = re.search(rf"^\s*{part}:\s*(.+(?:\n\s{{4,}}\S.*)*)", self.doc, re.M)
        return " ".join(found.group(1).split()) if found else ""


_REGISTRY: dict[tuple[str, str], Operation] = {}


def operation(name: str, daemon: str, *args: Arg) -> Callable[[F], F]:
    """Register the decorated function as the handler of `name`; the docstring is its module's."""

    def register(fn: F) -> F:
        module = sys.modules[fn.__module__]
        key = (daemon, name)
        if key in _REGISTRY and _REGISTRY[key].handler is not fn:
            raise ValueError(f"operation {name!r} of {daemon} is defined twice")
        _REGISTRY[key] = Operation(name, daemon, tuple(args), fn, module.__doc__ or "")
        return fn

    return register


COMMON = ("ping", "hello", "shutdown")  # the modules beside this one: what every daemon answers


def load(package: str, names: Iterable[str]) -> None:
    """Import the operation modules `package.<name>` (which registers them)."""
    for name in names:
        importlib.import_module(f"{package}.{name}")


def operations(daemon: str) -> list[Operation]:
    """Everything `daemon` answers: its own operations and those of every daemon, by name."""
    found = [op for (d, _), op in _REGISTRY.items() if d in (daemon, ANY_DAEMON)]
    return sorted(found, key=lambda op: op.name)


def handlers(daemon: Any, name: str) -> dict[str, Callable[[dict], Any]]:
    """The request handlers of a daemon object whose name is `name`."""
    return {op.name: op.bind(daemon) for op in operations(name)}


def catalogue(daemons: Iterable[str]) -> str:
    """The operations as a Markdown table, for docs/architecture.md."""
    rows = ["| daemon | op | what it does | request | reply |", "| --- | --- | --- | --- | --- |"]
    seen: set[tuple[str, str]] = set()
    for daemon in daemons:
        for op in operations(daemon):
            if (op.daemon, op.name) in seen:
                continue
            seen.add((op.daemon, op.name))
            what = op.summary.split(":", 1)[-1].strip() if op.summary.startswith(op.name + ":") else op.summary
            rows.append(f"| {op.daemon} | `{op.name}` | {what} | `{op.wire('Request')}` | `{op.wire('Reply')}` |")
    return "\n".join(rows)
