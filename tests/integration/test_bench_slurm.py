"""The bench's slurm section at a tiny size, on its own real private cluster: every figure present and
ordered as time runs, and every job gone from the queue at the end (the real measurement:
`python -m bench.slurmcost`)."""

from __future__ import annotations

from bench import slurmcost
from bench.report import slurm_lines
from tests.support.slurm import require_slurm


def test_slurm_section_measures_submission_start_ps_and_down_on_a_real_cluster() -> None:
    require_slurm()
    sec = slurmcost.measure(workers=3, ps_runs=2)
    assert sec["available"] and sec["workers"] == 3, sec
    submit, node, running = sec["submit_ms"], sec["to_node_start_ms"], sec["to_running_ms"]
    assert submit["n"] == node["n"] == running["n"] == 3
    # sbatch answers before the shim starts on the node, which is before the supervisor hears of it
    assert 0 < submit["median"] < node["median"] <= running["median"], sec
    assert sec["ps_ms"]["n"] == 2 and sec["ps_ms"]["median"] > 0 and sec["down_s"] > 0
    assert "3 workers as Slurm jobs" in "\n".join(slurm_lines(sec))
