"""Aura's layers import only downward, and no modules import each other in a circle.

Bottom to top: aura.ipc; aura.runtime (may use aura.ipc); the daemons aura.supervisor, aura.watchdog
and aura.brain (may use the bottom); the rest of aura: CLI, launcher, control, service, entry
points. The graph is built from the sources with `ast`, module names from pyproject.toml's
package-dir; imports inside functions and under TYPE_CHECKING count like the others.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

REPO = Path(__file__).resolve().parent.parent
DAEMONS = ("aura.supervisor", "aura.watchdog", "aura.brain")

# Imports between two daemons (none: what two of them share lives in aura.runtime). The list may
# only shrink.
KNOWN_SIDEWAYS: set[tuple[str, str]] = set()
# Cycles still to break. The list may only shrink.
KNOWN_CYCLES: set[frozenset[str]] = set()


def package_dirs() -> dict[str, Path]:
    """Import name -> folder of every top-level package the distribution installs."""
    conf = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = {name: REPO / folder for name, folder in conf.get("package-dir", {}).items()}
    tops = {p.split(".")[0] for p in conf["packages"]} if isinstance(conf.get("packages"), list) else set()
    for top in tops or {"aura", "supervisor", "watchdog", "ipc"}:
        mapping.setdefault(top, REPO / top)
    return mapping


def modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (source file, is a package), for every module of the installed tree."""
    out: dict[str, tuple[Path, bool]] = {}
    for name, folder in package_dirs().items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("").parts
            is_pkg = rel[-1] == "__init__"
            parts = rel[:-1] if is_pkg else rel
            out[".".join((name, *parts))] = (path, is_pkg)
    return out


def imports(name: str, path: Path, is_pkg: bool, known: set[str]) -> set[str]:
    """The project modules that `name` imports (a `from X import y` counts X.y when y is a module)."""
    package = name if is_pkg else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                src = f"{base}.{node.module}" if node.module else base
            else:
                src = node.module or ""
            for alias in node.names:
                sub = f"{src}.{alias.name}"
                found.add(sub if sub in known else src)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                mod = alias.name
                while mod and mod not in known:
                    mod = mod.rpartition(".")[0]
                found.add(mod or alias.name)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(name, path, is_pkg, known) for name, (path, is_pkg) in mods.items()}


def layer(name: str) -> int:
    if name == "aura" or name == "aura.ipc" or name.startswith("aura.ipc."):
        return 0
    if name == "aura.runtime" or name.startswith("aura.runtime."):
        return 1
    if any(name == d or name.startswith(d + ".") for d in DAEMONS):
        return 2
    return 3


def daemon_of(name: str) -> str | None:
    return next((d for d in DAEMONS if name == d or name.startswith(d + ".")), None)


def cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.add(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    out.append(frozenset(comp))
    return out


def test_every_module_lives_under_the_aura_import_root() -> None:
    outside = sorted(n for n in modules() if n.split(".")[0] != "aura")
    assert not outside, f"top-level modules besides `aura` (they clash with PyPI names): {outside[:8]}"


def test_imports_only_go_down_the_layers() -> None:
    edges = graph()
    upward = sorted(f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
                    for a, targets in edges.items() for b in targets if layer(b) > layer(a))
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_daemons_import_each_other_only_where_known() -> None:
    edges = graph()
    sideways = {(a, b) for a, targets in edges.items() for b in targets
                if daemon_of(a) and daemon_of(b) and daemon_of(a) != daemon_of(b)}
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
