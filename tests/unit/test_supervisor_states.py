"""A worker's record changes in one place (aura.supervisor.states.WorkerTable.change_state), along a
table of allowed transitions, in the words of aura.runtime.vocab.

Why: a change written out by hand (save, log, publish) in many places drifts: one forgets the event,
another moves a finished worker back to running. The table makes such a change a loud fault, and the
scan below keeps the supervisor from spelling states and outcomes out again."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aura.runtime.logs import setup_logging
from aura.runtime.paths import ProjectPaths
from aura.runtime.vocab import EXITED, LIVE_STATES, LOST, ORPHANED, OUTCOMES, RUNNING, STARTING, WORKER_STATES
from aura.supervisor import states
from aura.supervisor.exits import TAKE_BATCH, TELL_BATCH, Exits
from aura.supervisor.registry import Registry
from aura.supervisor.states import ALLOWED, IllegalTransition, WorkerTable

SUPERVISOR = Path(__file__).resolve().parents[2] / "supervisor"


def _table(tmp_path: Path) -> tuple[WorkerTable, list[tuple[str, dict]], Path]:
    paths = ProjectPaths.for_root(tmp_path)
    paths.workers_dir.mkdir(parents=True)
    log_path = tmp_path / "supervisor.log"
    published: list[tuple[str, dict]] = []
    table = WorkerTable(
        Registry(paths), setup_logging(log_path, "supervisor"), lambda kind, **data: published.append((kind, data))
    )
    return table, published, log_path


def _on_disk(table: WorkerTable, wid: str) -> dict:
    assert table.registry.flusher.drain()  # later changes are written by the registry's thread
    return table.registry.record(wid) or {}


def test_change_state_saves_logs_and_publishes_along_the_table(tmp_path: Path) -> None:
    table, published, log_path = _table(tmp_path)
    rec = {"worker_id": "w1", "task_id": "T1", "state": STARTING}
    (table.registry.dir("w1")).mkdir()
    assert table.add(rec)
    assert _on_disk(table, "w1")["state"] == STARTING

    assert table.change_state(
        rec, RUNNING, "worker_started", worker_pid=4242, logged={"pid": 4242}, published={"pid": 4242}
    )
    assert _on_disk(table, "w1")["state"] == RUNNING and _on_disk(table, "w1")["worker_pid"] == 4242
    assert published == [("worker_started", {"worker_id": "w1", "task_id": "T1", "pid": 4242})]
    logged = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [(r["event"], r["worker"], r["pid"]) for r in logged] == [("worker_started", "w1", 4242)]

    table.change_state(rec, ORPHANED, "worker_orphaned", level="warning", logged={"pid": 4242})
    assert len(published) == 1  # logged, not published
    live_index = table.registry.live_index
    assert sorted(p.name for p in live_index.iterdir()) == ["w1"]  # what the watchdog lists
    with table.holding_news() as news:
        table.change_state(rec, EXITED, "worker_exited", outcome=LOST, logged={}, published={"outcome": LOST})
    with table.registry.flusher.held():  # the ended record told, not yet on disk
        table.announce(*news)
        assert published[-1][0] == "worker_exited"
        assert [p.name for p in live_index.iterdir()] == ["w1"]  # a live record on disk is always indexed
        assert json.loads((table.registry.dir("w1") / "record.json").read_text())["state"] in LIVE_STATES
    assert _on_disk(table, "w1")["outcome"] == LOST
    assert list(live_index.iterdir()) == []  # out of the index once its end is written


@pytest.mark.parametrize(
    ("start", "to", "fields"),
    [
        (STARTING, ORPHANED, {}),  # never ran under a shim: nothing to be orphaned from
        (EXITED, RUNNING, {}),  # an end is final
        (EXITED, EXITED, {"outcome": LOST}),  # and is recorded once
        (RUNNING, EXITED, {"outcome": "gone"}),  # an outcome vocab does not know
        (RUNNING, EXITED, {}),  # an end without an outcome
    ],
)
def test_a_change_off_the_table_is_refused_and_changes_nothing(
    tmp_path: Path, start: str, to: str, fields: dict
) -> None:
    table, published, _ = _table(tmp_path)
    rec = {"worker_id": "w1", "task_id": "T1", "state": start}
    table["w1"] = rec
    table.registry.dir("w1").mkdir()
    table.save(rec)
    with pytest.raises(IllegalTransition):
        table.change_state(rec, to, "worker_x", published={}, **fields)
    assert rec == {"worker_id": "w1", "task_id": "T1", "state": start}
    assert _on_disk(table, "w1") == rec and published == []


def test_a_new_record_must_start_as_starting(tmp_path: Path) -> None:
    table, _, _ = _table(tmp_path)
    with pytest.raises(IllegalTransition):
        table.add({"worker_id": "w1", "state": RUNNING})
    assert "w1" not in table


def test_the_table_knows_every_state_and_ends_in_exited() -> None:
    assert set(ALLOWED) == {None, *WORKER_STATES}
    assert all(to in WORKER_STATES for targets in ALLOWED.values() for to in targets)
    assert ALLOWED[EXITED] == frozenset()
    assert all(EXITED in ALLOWED[s] for s in WORKER_STATES if s != EXITED)


# Strings equal to a state or outcome that are not one: keys of replies ({"killed": true}) are skipped
# by the scan; opencode's own finish reason "unknown" is the CLI's word, not Aura's outcome.
NOT_OURS = {("streams/opencode.py", "unknown")}


def _spelt_out(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            skip.add(id(body[0].value))  # a docstring
        if isinstance(node, ast.Dict):
            skip.update(id(k) for k in node.keys if k is not None)
    words = set(WORKER_STATES) | set(OUTCOMES)
    rel = path.relative_to(SUPERVISOR).as_posix()
    return [
        f"{rel}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and node.value in words
        and id(node) not in skip
        and (rel, node.value) not in NOT_OURS
    ]


def test_the_supervisor_spells_no_state_or_outcome_out() -> None:
    found = [hit for path in sorted(SUPERVISOR.rglob("*.py")) for hit in _spelt_out(path)]
    assert found == [], "use aura.runtime.vocab's names:\n" + "\n".join(found)


def test_changes_held_as_news_are_in_memory_at_once_and_told_only_when_announced(tmp_path: Path) -> None:
    """A burst of exits marks every worker ended before any is written, logged or published
    (supervisor/exits.py), and an ended worker leaves memory only once its end has been told."""
    table, published, log_path = _table(tmp_path)
    recs = []
    for i in range(states.KEEP_EXITED + 2):
        rec = {"worker_id": f"w{i}", "task_id": "T", "state": STARTING}
        table.registry.dir(rec["worker_id"]).mkdir()
        assert table.add(rec)
        table.change_state(rec, RUNNING, "worker_started", published={})
        recs.append(rec)
    published.clear()
    with table.holding_news() as news:
        for rec in recs:
            table.change_state(rec, EXITED, "worker_exited", outcome=LOST, logged={}, published={"outcome": LOST})
    assert [table[r["worker_id"]]["state"] for r in recs] == [EXITED] * len(recs)  # every one held, marked
    assert published == [] and len(news) == len(recs)
    assert _on_disk(table, "w0")["state"] == RUNNING  # not written yet
    for item in news:
        table.announce(item)
    assert [kind for kind, _ in published] == ["worker_exited"] * len(recs)
    assert "w0" not in table and len(table) == states.KEEP_EXITED  # told, the oldest left memory
    assert _on_disk(table, "w0")["state"] == EXITED
    told = [json.loads(line)["worker"] for line in log_path.read_text().splitlines() if "worker_exited" in line]
    assert told == [r["worker_id"] for r in recs]


def test_a_record_on_its_way_to_the_disk_is_read_as_handed_in(tmp_path: Path) -> None:
    """A record let go from memory before the flusher wrote it is read from the flusher, not from
    the older file."""
    table, _, _ = _table(tmp_path)
    rec = {"worker_id": "w1", "task_id": "T", "state": STARTING}
    table.registry.dir("w1").mkdir()
    assert table.add(rec)
    with table.registry.flusher.held():  # the thread writes nothing until the hold ends
        table.change_state(rec, RUNNING, "worker_started")
        assert table.registry.record("w1")["state"] == RUNNING
        assert json.loads((table.registry.dir("w1") / "record.json").read_bytes())["state"] == STARTING
    assert _on_disk(table, "w1")["state"] == RUNNING


def _held_ends(table: WorkerTable, n: int) -> list:
    recs = []
    for i in range(n):
        rec = {"worker_id": f"w{i}", "task_id": "T", "state": STARTING}
        table.registry.dir(rec["worker_id"]).mkdir()
        assert table.add(rec)
        table.change_state(rec, RUNNING, "worker_started", published={})
        recs.append(rec)
    with table.holding_news() as news:
        for rec in recs:
            table.change_state(rec, EXITED, "worker_exited", outcome=LOST, logged={}, published={"outcome": LOST})
    return news


def _exits(table: WorkerTable, later: list, tmp_path: Path) -> Exits:
    def guard(fn: Callable[[], Any]) -> None:
        fn()

    parts: Any = None  # the announcing half uses the table alone
    paths = ProjectPaths.for_root(tmp_path)
    return Exits(table, parts, parts, parts, parts, paths, lambda _delay, fn: later.append(fn), guard)


def test_a_burst_is_announced_a_batch_per_round_in_order(tmp_path: Path) -> None:
    """Requests are answered between batches of announcements, so none waits for a whole burst's
    writes and events."""
    table, published, _ = _table(tmp_path)
    n = 2 * TELL_BATCH + 3
    later: list = []
    exits = _exits(table, later, tmp_path)
    exits.untold = _held_ends(table, n)
    published.clear()
    exits.tell()
    assert len(published) == TELL_BATCH and later == [exits.tell]  # the rest in a later round
    rounds = 1
    while later:
        later.pop()()
        rounds += 1
    assert rounds == 3 and not exits.untold
    assert [data["worker_id"] for _, data in published] == [f"w{i}" for i in range(n)]


def test_a_stopping_supervisor_announces_every_end_at_once(tmp_path: Path) -> None:
    table, published, _ = _table(tmp_path)
    later: list = []
    exits = _exits(table, later, tmp_path)
    exits.untold = _held_ends(table, 2 * TELL_BATCH + 1)
    published.clear()
    exits.tell_all()
    assert len(published) == 2 * TELL_BATCH + 1 and not exits.untold
    assert _on_disk(table, f"w{2 * TELL_BATCH}")["state"] == EXITED


def _counting_take_in(exits: Exits, reaps: list[tuple[int, str]] | None = None) -> list[list[str]]:
    """Each round's ends marked (and into `reaps`, each shim reaped with its round); no shim or
    record is touched."""
    rounds: list[list[str]] = []
    reaps = [] if reaps is None else reaps

    def reap(wid: str, reaped: dict) -> None:
        reaps.append((len(rounds), wid))
        reaped[wid] = None

    exits._reap = reap  # type: ignore[method-assign]
    exits._burst = lambda: None  # type: ignore[method-assign,assignment,return-value]
    exits._take_one = lambda wid, _rec, _burst: rounds[-1].append(wid)  # type: ignore[method-assign]
    exits.guard = lambda fn: fn()
    real = exits.take_in

    def take_in() -> None:
        rounds.append([])
        real()

    exits.take_in = take_in  # type: ignore[method-assign]
    return rounds


def test_a_burst_is_taken_in_a_batch_per_round_each_end_once(tmp_path: Path) -> None:
    """A request waits for one round of reaps and marks at most, not for a whole burst's."""
    table, _, _ = _table(tmp_path)
    later: list = []
    exits = _exits(table, later, tmp_path)
    reaps: list[tuple[int, str]] = []
    rounds = _counting_take_in(exits, reaps)
    n = 2 * TAKE_BATCH + 3
    for i in range(n):
        exits.ended(f"w{i}")
    exits.ended("w0")  # heard twice: taken in once
    assert later == [exits.take_in]
    while later:
        later.pop(0)()
    assert reaps == [(1, f"w{i}") for i in range(n)]  # every shim reaped in the first round: freed soonest
    assert [len(r) for r in rounds] == [TAKE_BATCH, TAKE_BATCH, 3]
    assert [wid for r in rounds for wid in r] == [f"w{i}" for i in range(n)]
    exits.ended("late")
    assert later == [exits.take_in]  # a new end after the burst starts a round of its own


def test_a_stopping_supervisor_takes_in_every_end_heard(tmp_path: Path) -> None:
    table, _, _ = _table(tmp_path)
    later: list = []
    exits = _exits(table, later, tmp_path)
    rounds = _counting_take_in(exits)
    for i in range(TAKE_BATCH + 1):
        exits.ended(f"w{i}")
    exits.tell_all()
    assert sum(len(r) for r in rounds) == TAKE_BATCH + 1 and not exits.ready
