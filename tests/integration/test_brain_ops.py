"""The brain's operations are modules of aura.brain.ops (name, declared arguments, handler, docstring),
and the brain speaks the shared vocabularies (aura.runtime.vocab, aura.runtime.eventkinds) rather than
writing task statuses, worker states and event kinds out again."""

from __future__ import annotations

import ast
from pathlib import Path

import msgpack
import pytest
import zmq

from aura import catalogue
from aura.control import daemon_record
from aura.runtime import ops, vocab
from aura.runtime.eventkinds import KINDS, Kind
from tests.support.harness import REPO, Project

BRAIN_OPS = {"wake", "status", "budget", "questions", "answer", "task"}


def test_each_brain_operation_is_a_module_of_the_brain_ops_package() -> None:
    catalogue.load_all()
    own = {op.name: op for op in ops.operations("brain") if op.daemon == "brain"}
    assert set(own) == BRAIN_OPS
    for name, op in own.items():
        assert op.handler.__module__ == f"aura.brain.ops.{name}"
    assert [a.name for a in own["wake"].args] == ["reason"] and own["wake"].checked({}) == {"reason": "aura wake"}
    assert [a.name for a in own["budget"].args] == ["usd"] and own["budget"].args[0].required


def _exchange(endpoint: str, op: str, args: dict) -> dict:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send(msgpack.packb({"v": 1, "id": "t", "op": op, "args": args}))
        assert sock.poll(5000), f"no reply to {op}"
        return msgpack.unpackb(sock.recv_multipart()[-1], raw=False)
    finally:
        sock.close(0)


def test_the_running_brain_refuses_an_argument_its_operation_does_not_declare(project: Project) -> None:
    project.write_task("# Idle\n\n- [ ] wait `sleep 60`\n")
    project.up()
    endpoint = daemon_record(project.paths, "brain")["endpoint"]
    misspelt = _exchange(endpoint, "wake", {"reasn": "typo"})
    assert misspelt["ok"] is False and misspelt["error"]["code"] == "bad_args"
    assert "`wake` takes no argument `reasn` (it takes: reason)" in misspelt["error"]["message"]
    assert _exchange(endpoint, "budget", {})["error"]["code"] == "bad_args"
    woken = _exchange(endpoint, "wake", {"reason": "a test"})
    assert woken["ok"] is True and woken["result"]["woken"] is True
    status = _exchange(endpoint, "status", {})["result"]
    assert status["mission"] == "Idle" and status["planner"] == "local"


def test_every_event_kind_has_its_name_in_kind() -> None:
    names = {value for key, value in vars(Kind).items() if key.isupper()}
    assert names == {k.name for k in KINDS}
    assert all(getattr(Kind, k.name.upper()) == k.name for k in KINDS)


WORDS = {v for k, v in vars(vocab).items() if k.isupper() and isinstance(v, str)} | {k.name for k in KINDS}
CALLS = {"publish", "set_status", "notify"}


def literal_words(path: Path) -> list[str]:
    """Vocabulary words written as string literals where code compares a value, publishes an event or
    sets a status (the places a misspelt word fails without a sound)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        found: list[ast.expr] = []
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                found += side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in CALLS:
            found += node.args[:2]
        out += [
            f"{path.name}:{c.lineno}: {c.value!r}" for c in found if isinstance(c, ast.Constant) and c.value in WORDS
        ]
    return out


def brain_and_cli_sources() -> list[Path]:
    brain = [
        p
        for p in sorted((REPO / "aura" / "brain").rglob("*.py"))
        if p.relative_to(REPO).parts[2] not in ("tools.py", "tools")
    ]  # the brain tools: being split apart
    return brain + sorted((REPO / "aura" / "cli").rglob("*.py")) + [REPO / "aura" / "startstop.py"]


@pytest.mark.parametrize("path", brain_and_cli_sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_statuses_states_and_event_kinds_come_from_the_vocabularies(path: Path) -> None:
    assert literal_words(path) == []


def test_the_literal_finder_finds_a_literal(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('if t["status"] in ("completed", "x"):\n    core.publish("task_done", a=1)\n')
    assert sorted(literal_words(sample)) == ["sample.py:1: 'completed'", "sample.py:2: 'task_done'"]
