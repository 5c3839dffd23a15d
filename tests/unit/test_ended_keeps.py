"""Which ended workers may keep jobs, as `list` asks it at every poll: once per worker while it stays
ended (its shim decided when it ended), and forgotten once it leaves the ended set."""

from __future__ import annotations

from pathlib import Path

from aura.supervisor.jobs import FILE_NAME, EndedKeeps


def _worker(tmp_path: Path, wid: str, registered: bool) -> dict:
    task_dir = tmp_path / wid
    task_dir.mkdir()
    if registered:
        (task_dir / FILE_NAME).write_text('{"managed_subprocesses": []}')
    return {"worker_id": wid, "task_dir": str(task_dir)}


def test_a_worker_that_registered_jobs_is_left_out_and_each_is_looked_up_once(tmp_path: Path) -> None:
    plain, keeper = _worker(tmp_path, "plain", False), _worker(tmp_path, "keeper", True)
    keeps = EndedKeeps()
    assert keeps.without_jobs({"plain": plain, "keeper": keeper}) == {"plain"}
    (tmp_path / "plain" / FILE_NAME).write_text("{}")  # after its end: the answer given stands
    assert keeps.without_jobs({"plain": plain, "keeper": keeper}) == {"plain"}


def test_a_worker_no_longer_ended_is_forgotten(tmp_path: Path) -> None:
    first, second = _worker(tmp_path, "first", False), _worker(tmp_path, "second", False)
    keeps = EndedKeeps()
    assert keeps.without_jobs({"first": first}) == {"first"}
    assert keeps.without_jobs({"second": second}) == {"second"}  # the first was taken in
    (tmp_path / "first" / FILE_NAME).write_text("{}")
    assert keeps.without_jobs({"first": first}) == set()  # asked afresh: nothing kept of it
    assert keeps.without_jobs({}) == set()


def test_a_record_marked_managed_keeps_jobs_without_a_file(tmp_path: Path) -> None:
    managed = {**_worker(tmp_path, "managed", False), "managed": {"children": [{"pid": 1}]}}
    assert EndedKeeps().without_jobs({"managed": managed}) == set()
