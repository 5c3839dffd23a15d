"""The file helpers the exit path leans on: the flusher's hold over a burst, folders made with their
mode, records read whole (or not at all), the kill folder listed once."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from aura.runtime.flusher import Flusher
from aura.runtime.fsutil import FolderWatch, make_dirs, read_json
from aura.runtime.paths import ProjectPaths
from aura.runtime.records import KillNames, kill_record_names, kill_record_path, watchdog_kill


def test_writes_handed_in_while_held_land_together_when_the_hold_ends(tmp_path: Path) -> None:
    flusher = Flusher()
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    with flusher.held():
        flusher.write(first, b"1")
        time.sleep(0.3)  # a thread woken per write would have written it by now
        assert not first.exists()
        flusher.write(second, b"2")
        flusher.write(first, b"3")  # later bytes for a path replace the earlier ones
    assert flusher.drain(5.0)
    assert first.read_bytes() == b"3" and second.read_bytes() == b"2"
    flusher.write(first, b"4")  # not held: written without a hold's end
    assert flusher.drain(5.0) and first.read_bytes() == b"4"
    assert flusher.failed() == {}


def test_holds_nest_and_only_the_outer_end_hands_the_writes_over(tmp_path: Path) -> None:
    flusher = Flusher()
    path = tmp_path / "r.json"
    with flusher.held():
        with flusher.held():
            flusher.write(path, b"x")
        time.sleep(0.2)
        assert not path.exists()
    assert flusher.drain(5.0) and path.read_bytes() == b"x"


def test_a_write_s_follow_up_runs_once_its_bytes_are_on_disk_and_never_after_a_failed_write(tmp_path: Path) -> None:
    flusher = Flusher()
    path, seen = tmp_path / "r.json", []
    with flusher.held():
        flusher.write(path, b"1", then=lambda: seen.append(path.read_bytes()))
        flusher.write(path, b"2", then=lambda: seen.append(b"second"))  # later bytes: both follow-ups run after them
        assert seen == []
    assert flusher.drain(5.0) and seen == [b"2", b"second"]
    (tmp_path / "a-file").write_bytes(b"")
    missing = tmp_path / "a-file" / "r.json"  # its folder is a file: the write fails
    flusher.write(missing, b"x", then=lambda: seen.append(b"after a failure"))
    assert flusher.drain(5.0) and list(flusher.failed()) == [missing] and len(seen) == 2
    flusher.write(path, b"3")  # the follow-ups were taken with their write: none runs again
    assert flusher.drain(5.0) and len(seen) == 2 and path.read_bytes() == b"3"


def test_make_dirs_gives_every_folder_it_makes_the_mode(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    make_dirs(deep, 0o700)
    make_dirs(deep, 0o700)  # there already: nothing to do
    for folder in (tmp_path / "a", tmp_path / "a" / "b", deep):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        make_dirs(tmp_path / "file", 0o700)
    with pytest.raises(NotADirectoryError):
        make_dirs(tmp_path / "file" / "below", 0o700)


def test_read_json_reads_a_record_whole_or_gives_the_default(tmp_path: Path) -> None:
    big = {"lines": ["x" * 100] * 2000}  # past one read's 64 KiB
    (tmp_path / "big.json").write_text(json.dumps(big))
    assert read_json(tmp_path / "big.json") == big
    (tmp_path / "torn.json").write_text('{"exit_code": 0, "sig')
    (tmp_path / "empty.json").write_text("")
    for name in ("torn.json", "empty.json", "missing.json", "."):
        assert read_json(tmp_path / name, default="none") == "none"


def test_a_kill_folder_listed_once_answers_for_every_worker(tmp_path: Path) -> None:
    paths = ProjectPaths(tmp_path, tmp_path / ".aura")
    assert kill_record_names(paths) == frozenset()  # no folder yet
    record = kill_record_path(paths, "w/1")
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"reason": "over memory", "reason_code": "resource", "killed_at": 5.0}))
    names = kill_record_names(paths)
    assert watchdog_kill(paths, "w/1", names) == watchdog_kill(paths, "w/1")
    assert (watchdog_kill(paths, "w/1", names) or {})["reason"] == "over memory"
    assert watchdog_kill(paths, "w2", names) is None
    os.unlink(record)  # a listing taken before the record went still names it; the read then finds none
    assert watchdog_kill(paths, "w/1", names) is None


def test_a_folder_listed_while_its_mtime_is_young_is_listed_again(tmp_path: Path) -> None:
    folder = tmp_path / "kills"
    watch = FolderWatch(folder)
    assert watch.changed() is None  # no folder yet
    folder.mkdir()
    young = time.time_ns()
    os.utime(folder, ns=(young, young))
    assert watch.changed() is True
    (folder / "w1.json").write_text("{}")  # a change inside the same clock tick: the same mtime
    os.utime(folder, ns=(young, young))
    assert watch.changed() is True  # the first listing was young: not trusted
    old = young - 10 * 10**9
    os.utime(folder, ns=(old, old))
    assert watch.changed() is True and watch.changed() is False  # an old mtime: trusted until it moves
    (folder / "w2.json").write_text("{}")
    assert watch.changed() is True


def test_kill_names_are_listed_again_only_when_the_folder_changed(tmp_path: Path) -> None:
    paths = ProjectPaths(tmp_path, tmp_path / ".aura")
    names = KillNames(paths)
    assert names() == frozenset()
    record = kill_record_path(paths, "w1")
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    assert names() == {record.name}
    old = time.time_ns() - 10 * 10**9
    os.utime(record.parent, ns=(old, old))
    assert names() == {record.name}
    (record.parent / "w2.json").write_text("{}")
    assert names() == {record.name, "w2.json"}
