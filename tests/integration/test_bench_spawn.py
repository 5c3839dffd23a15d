"""One small real measurement of the bench: the loop that measures circus and supervisord, against
a real Aura supervisor and its workers."""

from __future__ import annotations

import pytest

from bench import aura_bench, driver
from bench.rivals import read_ends, summary_scale, worker_script
from tests.support.harness import Project, alive


@pytest.mark.timeout(120)
def test_spawn_and_reap_of_four_aura_workers_is_measured_and_leaves_nothing() -> None:
    """The same loop that measures circus and supervisord, against a real Aura supervisor."""
    with Project.temporary() as p:
        p.write_task(aura_bench.DONE_TASK)
        p.up()
        fifo, ends, script = worker_script(p.root)
        adapter = driver.AuraAdapter(p.paths.endpoint("supervisor"), "t", ["/bin/sh", str(script)])
        try:
            raw = driver.scale(adapter, 4, str(fifo), timeout=60)
        finally:
            adapter.close()
            p.remember()
        got = summary_scale(raw, read_ends(ends))
        assert got["ends_recorded"] == 4 and got["spawn_s"] > 0
        assert got["exit_seen_s"] is not None and 0 <= got["exit_seen_s"] < 10
        assert got["reaped_s"] is not None and got["reaped_s"] >= 0
        assert len(raw["pids"]) == 8, "four workers and their four shims"
        assert not any(alive(pid, created) for pid, created in raw["pids"]), "every worker and shim was reaped"
    assert p.pids.survivors() == []
