"""pyproject.toml lists every package of the tree: setuptools' find does not follow package-dir, so
the list is explicit, and an unlisted subpackage would be missing from a wheel."""

from __future__ import annotations

import pytest

from tests.support.harness import REPO

tomllib = pytest.importorskip("tomllib")


def test_every_package_is_listed_in_pyproject() -> None:
    """An unlisted subpackage would be missing from a wheel, while an editable install (whose finder
    maps whole folders) still finds it: only a regular install would show it."""
    conf = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = conf.get("packages")
    assert isinstance(listed, list), "list the packages explicitly (setuptools' find does not follow package-dir)"
    folders = {"aura": REPO / "aura", **{name: REPO / folder for name, folder in conf.get("package-dir", {}).items()}}
    tree = set()
    for name, folder in folders.items():
        for init in folder.rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                tree.add(".".join((name, *init.parent.relative_to(folder).parts)))
    assert sorted(tree - set(listed)) == [], "packages missing from pyproject.toml"
    assert sorted(set(listed) - tree) == [], "pyproject.toml lists packages that do not exist"
