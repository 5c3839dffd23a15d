"""Where a worker runs sits behind one interface (aura.supervisor.executors.base.Executor): the
supervisor's bookkeeping (records, exits, kills, adoption, housekeeping, requests) reaches processes
only through it, so a second executor (a cluster's, beside the local one) needs nothing else.

Why: a `subprocess`, `os.kill` or pid check left in the bookkeeping would tie it to local processes
again, and a cluster executor would silently miss that path."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from aura.supervisor.executors.base import Executor
from aura.supervisor.executors.local import LocalExecutor

SUPERVISOR = Path(__file__).resolve().parents[2] / "supervisor"
ABOVE = ("main.py", "states.py", "starting.py", "exits.py", "adoption.py", "kills.py", "housekeeping.py", "ops")
PROCESS_MODULES = {"subprocess", "signal", "psutil", "aura.runtime.pidfile", "aura.runtime.procgroup"}
PROCESS_CALLS = {"kill", "killpg", "pidfd_open", "waitpid", "sched_setaffinity", "pipe", "fork"}


def _above() -> list[Path]:
    found = [
        p
        for name in ABOVE
        for p in ([SUPERVISOR / name] if name.endswith(".py") else (SUPERVISOR / name).rglob("*.py"))
    ]
    return sorted(p for p in found if p.exists())


def _imported(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
    return found


def test_the_bookkeeping_reaches_processes_only_through_the_executor() -> None:
    problems = []
    for path in _above():
        tree = ast.parse(path.read_text())
        rel = path.relative_to(SUPERVISOR).as_posix()
        for mod in _imported(tree):
            if mod in PROCESS_MODULES or (mod.endswith("executors.local") and rel != "main.py"):
                problems.append(f"{rel} imports {mod}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and node.attr in PROCESS_CALLS
            ):
                problems.append(f"{rel}:{node.lineno} calls os.{node.attr}")
    assert problems == []


def test_the_interface_has_every_method_the_supervisor_calls() -> None:
    called: set[str] = set()
    for path in _above() + [SUPERVISOR / "placement.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "executor"
            ):
                called.add(node.attr)
    assert called, "the scan found no use of the executor"
    declared = {name for name, _ in inspect.getmembers(Executor)} | {"on_start_report", "on_end"}
    assert called <= declared, f"called on the executor but not declared by Executor: {called - declared}"


def test_the_local_executor_implements_the_whole_interface() -> None:
    assert issubclass(LocalExecutor, Executor) and not inspect.isabstract(LocalExecutor)
    own = {name for name, fn in vars(LocalExecutor).items() if callable(fn)}
    assert set(Executor.__abstractmethods__) <= own
