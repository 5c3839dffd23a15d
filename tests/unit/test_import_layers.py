"""Aura's layers import only downward, and no modules import each other in a circle.

Bottom to top: aura.ipc; aura.runtime (may use aura.ipc); the daemons aura.supervisor, aura.watchdog
and aura.brain (may use the bottom); the rest of aura: CLI, startstop, control, service, entry
points. The graph comes from tests/support/imports.py.
"""

from __future__ import annotations

import pytest

from tests.support import imports
from tests.support.imports import cycles, daemon_of, graph, layer, modules

if imports.tomllib is None:
    pytest.skip("needs tomllib (Python 3.11+)", allow_module_level=True)

# Imports between two daemons (none: what two of them share lives in aura.runtime). The list may
# only shrink.
KNOWN_SIDEWAYS: set[tuple[str, str]] = set()
# Cycles still to break. The list may only shrink.
KNOWN_CYCLES: set[frozenset[str]] = set()


def test_every_module_lives_under_the_aura_import_root() -> None:
    outside = sorted(n for n in modules() if n.split(".")[0] != "aura")
    assert not outside, f"top-level modules besides `aura` (they clash with PyPI names): {outside[:8]}"


def test_imports_only_go_down_the_layers() -> None:
    edges = graph()
    upward = sorted(
        f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
        for a, targets in edges.items()
        for b in targets
        if layer(b) > layer(a)
    )
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_daemons_import_each_other_only_where_known() -> None:
    edges = graph()
    sideways = {
        (a, b)
        for a, targets in edges.items()
        for b in targets
        if daemon_of(a) and daemon_of(b) and daemon_of(a) != daemon_of(b)
    }
    new = sorted(sideways - KNOWN_SIDEWAYS)
    gone = sorted(KNOWN_SIDEWAYS - sideways)
    assert not new, f"new imports between daemons (move the shared part down to aura.runtime): {new}"
    assert not gone, f"fixed: remove these from KNOWN_SIDEWAYS: {gone}"


def test_no_import_cycles() -> None:
    found = set(cycles(graph()))
    new = sorted(sorted(c) for c in found - KNOWN_CYCLES)
    gone = sorted(sorted(c) for c in KNOWN_CYCLES - found)
    assert not new, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in new)
    assert not gone, f"fixed: remove these from KNOWN_CYCLES: {gone}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The checks above can only pass if the graph code sees what it should."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]
    edges = graph()
    assert "aura.runtime.loop" in edges["aura.supervisor.main"]
    assert "aura.supervisor.main" in edges["aura.daemon"]  # a lazy import inside a function
