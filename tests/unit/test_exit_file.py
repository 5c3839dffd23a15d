"""The exit record's two places on disk: written into the reserve set aside at the start, then
renamed; a machine that went down before the rename reached the disk leaves it in the reserve."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from aura.maintenance import worker_status
from aura.runtime.exitfile import EXIT_RESERVE, RESERVE_BYTES, WORKER_EXIT, exit_record, has_exit
from aura.supervisor import exitrecord

RECORD = {"exit_code": 3, "signal": None, "started_at": 1.0, "ended_at": 2.0, "duration_s": 1.0}


def reserved(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    exitrecord.reserve(folder)
    exitrecord.sync_reserve(folder)
    return folder / EXIT_RESERVE


def test_the_record_is_written_into_the_reserves_blocks_and_renamed(tmp_path: Path) -> None:
    spare = reserved(tmp_path / "w")
    inode = spare.stat().st_ino
    assert exit_record(spare.parent) is None and not has_exit(spare.parent)  # blank: still running
    assert exitrecord.write(spare.parent, RECORD) == "reserve"
    done = spare.parent / WORKER_EXIT
    assert not spare.exists() and done.stat().st_ino == inode and done.stat().st_size == RESERVE_BYTES
    assert stat.S_IMODE(done.stat().st_mode) == 0o600  # private, as every record
    assert exit_record(spare.parent) == RECORD and has_exit(spare.parent)


def test_a_record_left_in_the_reserve_by_a_crash_before_the_rename_is_read(tmp_path: Path) -> None:
    spare = reserved(tmp_path / "w")
    exitrecord.write(spare.parent, RECORD)
    os.replace(spare.parent / WORKER_EXIT, spare)  # the rename never reached the disk
    assert exit_record(spare.parent) == RECORD and has_exit(spare.parent)
    assert worker_status(spare.parent, live_ids=None) is None  # finished: its folder may go


def test_a_reserve_caught_half_written_holds_no_record(tmp_path: Path) -> None:
    spare = reserved(tmp_path / "w")
    with open(spare, "r+b") as fh:
        fh.write(b'{"exit_code": 3, "sig')
    assert exit_record(spare.parent) is None and not has_exit(spare.parent)


def test_a_record_too_big_for_the_reserve_is_written_beside_it(tmp_path: Path) -> None:
    spare = reserved(tmp_path / "w")
    big = {**RECORD, "managed": {"children": [{"pid": i, "argv": ["x" * 40]} for i in range(400)]}}
    assert exitrecord.write(spare.parent, big) == "file"
    assert exit_record(spare.parent) == big and not spare.exists()


def test_with_no_reserve_the_record_is_written_atomically(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    folder.mkdir()
    assert exitrecord.write(folder, RECORD) == "file"
    assert exit_record(folder) == RECORD and (folder / WORKER_EXIT).stat().st_size < RESERVE_BYTES
