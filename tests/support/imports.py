"""The import graph of Aura's sources, for the tests that check its layers and cycles.

Built from the sources with `ast`, module names from pyproject.toml's package-dir; imports inside
functions and under TYPE_CHECKING count like the others.
"""

from __future__ import annotations

import ast
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: the tests that need it are skipped
    tomllib = None  # type: ignore[assignment]

from tests.support.harness import REPO

DAEMONS = ("aura.supervisor", "aura.watchdog", "aura.brain")


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
