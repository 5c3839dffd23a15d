"""docs/architecture.md's operation and event tables are the code's: rendered from the operation
modules and the event kinds, they fail here when someone changes one without the other."""

from __future__ import annotations

from aura import catalogue
from aura.runtime import ops
from aura.runtime.paths import DAEMONS


def test_the_docs_tables_match_the_code() -> None:
    text = catalogue.DOC.read_text()
    assert catalogue.render(text, catalogue.tables()) == text, (
        "docs/architecture.md is out of date: run `python -m aura.catalogue --write`"
    )


def test_every_operation_says_what_it_does_with_its_request_and_reply() -> None:
    catalogue.load_all()
    for daemon in DAEMONS:
        for op in ops.operations(daemon):
            assert op.summary.startswith(f"{op.name}:"), f"{op.daemon} {op.name}: the docstring starts 'NAME: ...'"
            assert op.wire("Request") and op.wire("Reply"), f"{op.daemon} {op.name}: Request/Reply lines"


def test_a_request_is_checked_against_the_declared_arguments() -> None:
    import pytest

    from aura.ipc.envelope import BadArgs

    catalogue.load_all()
    shutdown = next(op for op in ops.operations("watchdog") if op.name == "shutdown")
    assert shutdown.checked({}) == {"reason": "shutdown requested", "stop_workers": False}
    assert shutdown.checked({"stop_workers": True})["stop_workers"] is True
    with pytest.raises(BadArgs, match="takes no argument `stop_worker`"):
        shutdown.checked({"stop_worker": True})  # misspelt: refused, not ignored
    with pytest.raises(BadArgs, match="must be bool"):
        shutdown.checked({"stop_workers": "yes"})
