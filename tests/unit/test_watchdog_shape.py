"""The watchdog's shape: each request it answers is one operation module (aura.watchdog.ops) that
declares its arguments and says its request and reply; and it spells no word of a shared vocabulary
itself: event kinds, worker states and outcomes come from aura.runtime.vocab and
aura.runtime.eventkinds, guard modes from aura.runtime.limits, record files from aura.runtime.records
(a copy would drift from its owner)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from aura.runtime import eventkinds, exitfile, ops, records, vocab

WATCHDOG = Path(importlib.import_module("aura.watchdog").__path__[0])
WATCHDOG_OPS = ("usage", "limits", "set_limits", "preflight", "status")
OWNED = {
    **{k: "aura.runtime.eventkinds" for k in eventkinds.BY_NAME},
    **{k: "aura.runtime.vocab" for k in (*vocab.WORKER_STATES, *vocab.OUTCOMES)},
    **{k: "aura.runtime.exitfile" for k in (exitfile.WORKER_EXIT, exitfile.EXIT_RESERVE)},
    **{
        k: "aura.runtime.records"
        for k in (
            records.WORKER_RECORD,
            records.WORKER_START_REPORT,
            records.WORKER_JOBS,
            "limits.json",
            "kills",
        )
    },
}


def test_each_request_of_the_watchdog_is_one_operation_module() -> None:
    importlib.import_module("aura.watchdog.ops")
    found = {op.name: op for op in ops.operations("watchdog") if op.daemon == "watchdog"}
    assert sorted(found) == sorted(WATCHDOG_OPS)
    for name, op in found.items():
        assert op.handler.__module__ == f"aura.watchdog.ops.{name}"
        assert op.summary.startswith(f"{name}:") and op.wire("Request") and op.wire("Reply")
    assert [a.name for a in found["preflight"].args] == ["worker_id", "task_id", "limits"]  # what the supervisor sends
    assert [a.name for a in found["set_limits"].args] == ["values", "by"]


def spelt_out(path: Path) -> list[str]:
    """`file:line: 'word'` for each string constant of the source that an owner module names, and each
    guard mode compared as a literal (`.mode == "off"`); docstrings aside."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and node.value in OWNED
        ):
            found.append(f"{path.name}:{node.lineno}: {node.value!r} (owned by {OWNED[node.value]})")
        if (
            isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Attribute)
            and node.left.attr == "mode"
            and any(isinstance(c, ast.Constant) for c in node.comparators)
        ):
            found.append(f"{path.name}:{node.lineno}: a guard mode as a literal (owned by aura.runtime.limits)")
    return found


def test_the_watchdog_names_shared_words_through_their_owners() -> None:
    found = [line for path in sorted(WATCHDOG.rglob("*.py")) for line in spelt_out(path)]
    assert not found, "spelt out instead of imported:\n" + "\n".join(found)


def test_the_check_sees_a_literal(tmp_path: Path) -> None:
    """The check above can only pass if it finds what it looks for."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""worker_exited in a docstring is fine."""\nif x.mode == "off":\n    publish("worker_exited")\n'
    )
    assert len(spelt_out(sample)) == 2
