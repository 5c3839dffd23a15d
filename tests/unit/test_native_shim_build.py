"""supervisor/nativeshim.py with the real C compiler: the native shim is built once into the
`__pycache__` beside its source and found there again; an edit of the source builds another; with
no compiler (and nothing built) AURA_SHIM=auto falls back and AURA_SHIM=native refuses `aura up`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from aura.runtime.config import Config
from aura.startstop import StartError, shim_notes
from aura.supervisor import nativeshim

needs_cc = pytest.mark.skipif(nativeshim._compiler() is None, reason="no C compiler here")


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shim's source in a folder of its own, so its builds land in a fresh cache."""
    copy = tmp_path / "src" / "nativeshim.c"
    copy.parent.mkdir()
    shutil.copy(nativeshim.SOURCE, copy)
    monkeypatch.setattr(nativeshim, "SOURCE", copy)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return copy


@needs_cc
def test_built_once_beside_its_source_and_found_again(source: Path) -> None:
    first = nativeshim.find()
    assert first.path is not None and first.path.parent == source.parent / "__pycache__"
    built_at = first.path.stat().st_mtime_ns
    again = nativeshim.find(nativeshim.NATIVE)
    assert again.path == first.path and again.path.stat().st_mtime_ns == built_at
    usage = subprocess.run([str(first.path)], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage" in usage.stderr  # a real program, not a half-written file
    source.write_text(source.read_text() + "\n/* changed */\n")
    edited = nativeshim.find()
    assert edited.path is not None and edited.path != first.path


@needs_cc
def test_a_read_only_source_folder_builds_into_the_user_cache(source: Path, tmp_path: Path) -> None:
    (source.parent / "__pycache__").write_text("not a folder")  # where it would go cannot take it
    found = nativeshim.find()
    assert found.path is not None and found.path.parent == tmp_path / "cache" / "aura"


def test_no_compiler_falls_back_under_auto_and_refuses_native(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(source.parent))  # no cc, gcc or clang there
    monkeypatch.delenv("CC", raising=False)
    found = nativeshim.find()
    assert found.path is None and "no C compiler" in found.why
    assert nativeshim.find(nativeshim.PYTHON).why == "AURA_SHIM=python"
    assert shim_notes(Config(values={"AURA_SHIM": "auto"})) == []
    with pytest.raises(StartError) as refused:
        shim_notes(Config(values={"AURA_SHIM": "native"}))
    assert str(refused.value).startswith("AURA_SHIM=native: the native shim cannot be built: no C compiler")
    assert "\n" not in str(refused.value)


@needs_cc
def test_a_source_the_compiler_refuses_says_why(source: Path) -> None:
    source.write_text("this is not C\n")
    found = nativeshim.find()
    assert found.path is None and "could not build it" in found.why
