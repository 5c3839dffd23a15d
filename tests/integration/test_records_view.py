"""What the user reads about a run: `aura history` and `aura status` give whole reasons (wrapped, never cut
mid-word), `aura ps` tells "no workers yet" from "none running" and reads exited workers right from
disk, and a worker that is gone before it could be pinned to CPUs is not logged as a failure.

Real daemons and workers, the real CLI in its own process."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from aura.runtime.fsutil import read_json, read_jsonl
from tests.support.harness import Project, wait_for
from tests.support.rig import Rig

LONG_ERROR = (
    "its stderr ends: about to fail because the input file data/prices-2026-11.csv is missing and "
    "the fallback mirror answered 503 three times in a row"
)


def finished(p: Project) -> dict | None:
    st = p.status()
    return st if ((st.get("brain") or {}).get("run") or {}).get("finished") else None


def words(text: str) -> str:
    return " ".join(text.split())


def test_history_and_status_show_whole_reasons_wrapped_to_the_terminal(project: Project) -> None:
    project.write_task(
        f"# Fetch\n\n- [ ] fetch `echo '{LONG_ERROR}' >&2; exit 3` creates "
        "`out/quarterly-prices-report-with-a-long-name.csv`\n"
    )
    project.up()
    wait_for(lambda: finished(project), 60, what="the run to end")
    decision = next(
        d
        for d in read_jsonl(project.paths.state_dir / "decisions.jsonl")
        if d.get("kind") == "status" and d.get("new") == "blocked" and d.get("task_id") != "ROOT"
    )
    assert len(decision["reason"]) > 120 and len(decision["evidence"]) > 80  # longer than one cut line would show
    project.env["COLUMNS"] = "72"
    history = project.aura("history").stdout
    assert all(len(line) <= 72 or " " not in line.strip() for line in history.splitlines()), history
    blocked = next(p for p in history.split("\n[") if "-> blocked" in p and "ROOT" not in p)
    assert LONG_ERROR in words(blocked), blocked  # the whole stderr tail, not "its stderr "
    assert words(decision["reason"]) in words(blocked) and words(decision["evidence"]) in words(blocked), blocked

    status = project.aura("status", check=False).stdout
    why = status[status.index("why: ") :]
    assert all(len(line) <= 72 or " " not in line.strip() for line in why.splitlines()), status
    assert "attempt 2 failed" in why and LONG_ERROR in words(why), status


def test_ps_says_no_workers_yet_when_there_are_none(project: Project) -> None:
    project.paths.data.mkdir()
    for args in (["ps"], ["ps", "-a"]):
        assert project.aura(*args).stdout.strip() == "no workers yet"


def _table(out: str) -> list[dict[str, str]]:
    lines = [ln for ln in out.splitlines() if ln and not ln.startswith("(")]
    header = lines[0].split()
    return [dict(zip(header, re.split(r"\s{2,}", ln.strip()), strict=False)) for ln in lines[1:]]


def test_ps_from_disk_shows_the_outcome_and_the_age_of_a_worker_that_ended(rig: Rig) -> None:
    rig.start("supervisor")
    rig.spawn_argv("short", ["sleep", "1"])
    rig.p.kill9("supervisor")  # nothing takes the exit in: only the shim's exit record knows it ended
    wait_for(lambda: (rig.p.paths.worker_dir("short") / "exit.json").exists(), 20, what="the exit record")
    time.sleep(4)  # long enough that an age counted to now is visibly wrong
    out = rig.p.aura("ps", "-a").stdout
    assert "(from disk (the supervisor is not running))" in out, out
    row = next(r for r in _table(out) if r["WORKER"] == "short")
    assert row["STATE"] == "succeeded", out
    assert row["AGE"] in ("1s", "2s"), out  # it ran about one second
    live = rig.p.aura("ps").stdout.strip()
    assert live == "no running workers (aura ps -a shows ended ones)"


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity and at least two CPUs",
)
def test_a_worker_gone_before_it_is_pinned_is_not_a_failure(rig: Rig) -> None:
    rig.p.env["AURA_WORKER_MAX_CPU_PERCENT"] = "50"
    rig.start("watchdog", "supervisor")
    ids = [f"quick{i}" for i in range(12)]
    for wid in ids:
        try:
            rig.spawn_argv(wid, ["true"])
        except AssertionError:  # it may have exited before the spawn was answered
            pass
    wait_for(lambda: all(read_json(rig.p.paths.worker_dir(w) / "exit.json") for w in ids), 20, what="all exits")
    wait_for(lambda: all(rig.exited(w) for w in ids), 20, what="the supervisor to take every exit in")
    warned = [r for r in rig.log("supervisor") if r.get("event") == "cpu_affinity_failed"]
    assert warned == [], json.dumps(warned)[:2000]
