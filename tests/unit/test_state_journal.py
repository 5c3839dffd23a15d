"""The task tree's journal (aura/brain/statejournal.py behind StateStore).

Why: a save must cost what changed, not the tree, and the snapshot + journal must come back whole:
a torn last line (a kill -9 in the middle of a write) is ignored and cut off, never read as state,
and everything before it is kept."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest

from aura.brain import statejournal
from aura.brain.state import FOLD_RATIO, StateStore, add_task, new_task, read_state


def _store_with_tasks(folder: Path, n: int) -> tuple[StateStore, dict]:
    store = StateStore(folder)
    state = store.load().state
    for i in range(n):
        add_task(state, new_task(f"t{i}", f"task {i}"))
    store.save(state)  # the first save of a new store is a snapshot
    return store, state


def test_a_small_tree_is_saved_whole(tmp_path: Path) -> None:
    store, state = _store_with_tasks(tmp_path, 3)
    state["tasks"]["t1"]["status"] = "completed"
    store.save(state)
    assert json.loads((tmp_path / "state.json").read_text())["tasks"]["t1"]["status"] == "completed"
    assert not (tmp_path / "state.journal").exists() or (tmp_path / "state.journal").stat().st_size == 0


def test_a_save_writes_only_the_change_and_a_reload_replays_it(tmp_path: Path) -> None:
    store, state = _store_with_tasks(tmp_path, 300)
    snapshot = (tmp_path / "state.json").stat().st_size
    state["tasks"]["t7"].update(status="completed", reason="evidence checked")
    store.save(state)
    line = (tmp_path / "state.journal").read_bytes()
    assert line.count(b"\n") == 1 and len(line) < 300 < snapshot / 100, (len(line), snapshot)
    assert read_state(tmp_path)["tasks"]["t7"]["status"] == "completed"  # a reader sees snapshot + journal
    again = StateStore(tmp_path).load()
    assert again.source == "primary" and again.state["tasks"]["t7"]["reason"] == "evidence checked"
    assert (tmp_path / "state.journal").stat().st_size == 0  # folded into the snapshot at load


def test_a_torn_journal_tail_is_ignored_and_cut_off(tmp_path: Path) -> None:
    store, state = _store_with_tasks(tmp_path, 100)  # above SMALL_TREE_BYTES: saves go to the journal
    state["tasks"]["t1"]["status"] = "completed"
    store.save(state)
    del state["tasks"]["t2"]["evidence"]
    store.save(state)
    store.close()
    assert (tmp_path / "state.journal").read_bytes().count(b"\n") == 2
    with open(tmp_path / "state.journal", "ab") as fh:
        fh.write(b'[[["tasks","t0","status"],"compl')  # the write a kill -9 cut short
    loaded = StateStore(tmp_path).load()
    assert loaded.source == "primary" and loaded.problem is None
    tasks = loaded.state["tasks"]
    assert tasks["t1"]["status"] == "completed" and "evidence" not in tasks["t2"]
    assert tasks["t0"]["status"] == "pending"
    assert (tmp_path / "state.journal").read_bytes() == b""


def test_a_save_compares_only_the_touched_tasks_and_the_snapshot_catches_the_rest(tmp_path: Path) -> None:
    store, state = _store_with_tasks(tmp_path, 100)
    state["tasks"]["t3"]["status"] = "in_progress"
    state["tasks"]["t9"]["note"] = "changed without a status change"
    state["total_cycles"] = 7
    store.save(state, touched={"t3"})
    journal = (tmp_path / "state.journal").read_text()
    assert '"t3"' in journal and '"total_cycles"' in journal and '"t9"' not in journal
    add_task(state, new_task("t50", "a new one"))
    del state["tasks"]["t4"]["reason"]
    store.flush(state)  # only the tasks that changed are encoded again
    assert read_state(tmp_path) == json.loads(json.dumps(state))


def test_a_task_added_without_being_named_touched_is_saved_all_the_same(tmp_path: Path) -> None:
    """A touched save compares only the touched tasks while the count is the one saved; a task
    added (the count changed) makes it compare them all."""
    store, state = _store_with_tasks(tmp_path, 100)
    add_task(state, new_task("t100", "added by the planner"))
    state["tasks"]["t5"]["note"] = "changed in the same round"
    store.save(state, touched={"t3"})
    journal = (tmp_path / "state.journal").read_text()
    assert '"t100"' in journal and '"t5"' in journal
    store.close()
    assert StateStore(tmp_path).load().state["tasks"]["t100"]["title"] == "added by the planner"


def test_an_ended_task_is_held_as_a_digest_and_its_change_is_written_whole(tmp_path: Path) -> None:
    """A long run's tree is mostly ended tasks: the store keeps no second copy of them, and a
    change to one (a task reopened by hand) still reaches the journal, the snapshot and a reload."""
    store, state = _store_with_tasks(tmp_path, 100)
    for i in range(90):
        state["tasks"][f"t{i}"].update(status="completed", reason=f"done {i}")
    store.flush(state)
    assert store.saved is not None and not {f"t{i}" for i in range(90)} & store.saved.texts.keys()
    assert read_state(tmp_path) == json.loads(json.dumps(state))  # the snapshot encoded them afresh
    state["tasks"]["t5"].update(status="pending", reason="reopened")
    state["tasks"]["t95"]["reason"] = "an open task: written field by field"
    store.save(state, touched={"t5", "t95"})
    ops = json.loads((tmp_path / "state.journal").read_text())
    assert [["tasks", "t5"], state["tasks"]["t5"]] in ops
    assert [["tasks", "t95", "reason"], "an open task: written field by field"] in ops
    assert "t5" in store.saved.texts  # open again: held as text, so its next change is a field
    store.close()
    again = StateStore(tmp_path).load().state
    assert again["tasks"]["t5"]["reason"] == "reopened" and again["tasks"]["t6"]["reason"] == "done 6"


def test_a_loaded_tree_holds_each_repeated_value_once(tmp_path: Path) -> None:
    store, state = _store_with_tasks(tmp_path, 100)
    for i in range(100):
        state["tasks"][f"t{i}"].update(status="completed", kind="command", command="make test")
    store.flush(state)
    store.close()
    tasks = StateStore(tmp_path).load().state["tasks"]
    assert len({id(t["command"]) for t in tasks.values() if "command" in t}) == 1
    assert len({id(t["status"]) for t in tasks.values() if t["id"] != "ROOT"}) == 1
    assert tasks["t7"]["command"] == "make test"


def test_a_lazy_flush_folds_the_journal_only_once_it_is_worth_a_snapshot(tmp_path: Path) -> None:
    """While the brain is busy it flushes lazily: each flush sweeps the tree (a change no save was
    told of reaches the journal), but the snapshot is rewritten only once the journal holds
    1/FOLD_RATIO of its bytes, so a busy run's bytes per change stay bounded."""
    store, state = _store_with_tasks(tmp_path, 200)
    snapshot = (tmp_path / "state.json").read_bytes()
    state["tasks"]["t1"]["note"] = "no save was told of this one"
    store.flush(state, lazily=True)
    assert (tmp_path / "state.json").read_bytes() == snapshot
    assert '"note"' in (tmp_path / "state.journal").read_text()
    assert read_state(tmp_path) == json.loads(json.dumps(state))
    i = 0
    while (tmp_path / "state.json").read_bytes() == snapshot:
        state["tasks"][f"t{i % 200}"]["reason"] = f"change {i}"
        store.save(state, {f"t{i % 200}"})
        journal = store.journal.size
        store.flush(state, lazily=True)
        i += 1
        assert i < 1000, "the journal was never folded"
    assert journal * FOLD_RATIO >= len(snapshot) > (journal - 200) * FOLD_RATIO  # folded at the first flush due
    assert store.journal.size == 0 and read_state(tmp_path) == json.loads(json.dumps(state))


def test_a_lazy_flush_sweeps_the_settled_tasks_in_turn_and_a_fold_compares_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lazy flush compares the open tasks, the ones that ended within SETTLE_S (where a merge or
    a cost lands after the end), and SWEEP settled ones in turn: its cost does not follow the tree,
    and a change no save was told of still reaches the journal within a round of sweeps."""
    monkeypatch.setattr(statejournal, "SWEEP", 10)
    store, state = _store_with_tasks(tmp_path, 101)
    for i in range(100):
        state["tasks"][f"t{i}"].update(status="completed", reason="done: " + "evidence " * 20)
    store.flush(state)  # above SMALL_TREE_BYTES: saves are journal lines
    state["tasks"]["t50"]["git"] = {"merge_commit": "abc"}  # just after it ended, untold
    store.flush(state, lazily=True)
    assert '"merge_commit"' in (tmp_path / "state.journal").read_text()

    monkeypatch.setattr(statejournal, "SETTLE_S", 0.0)
    store.flush(state, lazily=True)  # all 100 have settled
    encoded: list = []
    encode = statejournal.dumps
    monkeypatch.setattr(statejournal, "dumps", lambda obj: encoded.append(obj) or encode(obj))
    state["tasks"]["t77"]["note"] = "untold, long after it ended"
    sweeps = 0
    while '"note"' not in (tmp_path / "state.journal").read_text():
        encoded.clear()
        store.flush(state, lazily=True)
        sweeps += 1
        # 10 settled, ROOT and t100 (open), the keys beside the tasks and the journal line
        assert len(encoded) <= 10 + 2 + 2, "a sweep compared more than its share"
        assert sweeps <= 100 // 10 + 1, "the change was never swept"
    assert sweeps > 1 and read_state(tmp_path) == json.loads(json.dumps(state))

    state["tasks"]["t3"]["note"] = "untold, and found by the fold"
    store.flush(state)
    assert store.journal.size == 0 and json.loads((tmp_path / "state.json").read_text()) == json.loads(
        json.dumps(state)
    )


def test_a_journal_line_that_failed_to_write_is_written_with_the_next_save(tmp_path: Path) -> None:
    """A save compares, then appends: when the append fails (a full disk) the comparison already
    counts the change as saved, so the line itself is kept and written first next time."""
    store, state = _store_with_tasks(tmp_path, 100)
    (tmp_path / "state.journal").touch()
    store.journal.fd = os.open(tmp_path / "state.journal", os.O_RDONLY)  # every write to it fails
    state["tasks"]["t1"]["status"] = "completed"
    with pytest.raises(OSError):
        store.save(state, {"t1"})
    os.close(store.journal.fd)
    store.journal.fd = None  # writable again: the next append opens it afresh
    state["tasks"]["t2"]["status"] = "completed"
    store.save(state, {"t2"})
    store.close()
    tasks = StateStore(tmp_path).load().state["tasks"]
    assert tasks["t1"]["status"] == "completed" and tasks["t2"]["status"] == "completed"


def test_a_snapshot_is_streamed_to_disk_not_built_whole_in_memory(tmp_path: Path) -> None:
    """The brain's peak memory while it writes state.json stays near one copy of the tree's text
    (the comparison's own), not the several a joined string and its bytes would add."""
    store, state = _store_with_tasks(tmp_path, 0)
    for i in range(2000):
        add_task(state, new_task(f"t{i}", f"task {i}", status="completed", reason="x" * 200))
    store.flush(state)
    state["tasks"]["t1"]["reason"] = "changed"
    store.save(state, {"t1"})
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        store.flush(state)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert store.snapshot_bytes > 500_000 and peak < 1.6 * store.snapshot_bytes, (peak, store.snapshot_bytes)
    assert read_state(tmp_path) == json.loads(json.dumps(state))
