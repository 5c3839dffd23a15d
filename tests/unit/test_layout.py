"""The shape of the test suite: every test in one of the three folders, marked by it; helpers only in
tests/support; and one harness for the tests and the bench that imports no pytest."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.harness import REPO

TESTS = REPO / "tests"
KINDS = ("unit", "integration", "real")


def all_test_modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("test_*.py") if "__pycache__" not in p.parts)


def imported(path: Path) -> set[str]:
    """Every module name `path` imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_every_test_module_lives_in_one_of_the_three_folders() -> None:
    misplaced = [str(p.relative_to(TESTS)) for p in all_test_modules() if p.relative_to(TESTS).parts[0] not in KINDS]
    assert misplaced == []
    assert not any((TESTS / "support").glob("test_*.py")), "tests/support holds helpers, not tests"


def test_test_modules_import_neither_conftest_nor_each_other() -> None:
    bad = {}
    for path in all_test_modules():
        wrong = {m for m in imported(path) if m == "conftest" or m.rsplit(".", 1)[-1].startswith("test_")}
        if wrong:
            bad[str(path.relative_to(TESTS))] = sorted(wrong)
    assert bad == {}, "move what they share into tests/support"


def test_a_test_is_marked_by_its_folder(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None
    assert not any(request.node.get_closest_marker(m) for m in ("integration", "real", "gpu"))


def test_the_harness_and_the_bench_import_no_pytest() -> None:
    """`python bench/run.py` runs where pytest is not installed; the harness it shares with the tests
    must not need it."""
    code = (
        "import sys; import tests.support.harness, bench.aura_bench, bench.chaos, bench.rivals; "
        "print('pytest' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
