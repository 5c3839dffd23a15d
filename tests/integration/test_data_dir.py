"""`--data-dir` / AURA_DATA_DIR: a run's data folder elsewhere, so one project folder can hold
several runs side by side (the original kept one data folder per task file)."""

from __future__ import annotations

import json

from aura.runtime.fsutil import read_json
from tests.support.harness import Project, run_in, wait_for

WAIT_TASK = "# {name}\n\n- [ ] hold `sleep 60`\n"


def running_worker(p: Project) -> dict:
    return wait_for(
        lambda: next((w for w in p.workers().values() if w.get("worker_pid")), None), 30, what="the run's worker"
    )


def test_two_runs_share_one_folder_through_separate_data_dirs(project: Project) -> None:
    project.write_task(WAIT_TASK.format(name="Run A"), "a.md")
    project.write_task(WAIT_TASK.format(name="Run B"), "b.md")
    a, b = run_in(project, project.root / "runs" / "a"), run_in(project, project.root / "runs" / "b")
    try:
        project.aura("--data-dir", "runs/a", "up", "-d", "a.md")  # the option, relative to here
        a.remember()
        b.up("b.md")  # the environment variable
        b.remember()
        wa, wb = running_worker(a), running_worker(b)
        assert wa["worker_pid"] != wb["worker_pid"]
        assert a.paths.runtime_dir != b.paths.runtime_dir
        assert read_json(a.paths.state_dir / "state.json")["mission"].startswith("Run A")
        assert read_json(b.paths.state_dir / "state.json")["mission"].startswith("Run B")
        assert not (project.root / ".aura").exists()
        # each command talks to the run its data folder names
        ps_a = json.loads(project.aura("--data-dir", "runs/a", "ps", "--json").stdout)
        assert [w["worker_id"] for w in ps_a["workers"]] == [wa["worker_id"]]
        st_b = b.status()
        assert st_b["project"] == str(project.root) and st_b["brain"]["mission"].startswith("Run B")
        assert all(st_b["daemons"][n] for n in ("brain", "supervisor", "watchdog"))
        # without a data folder this folder has no run
        none = project.aura("status", check=False)
        assert none.returncode != 0 and "no Aura project here" in none.stderr
        a.aura("down")
        assert a.survivors() == [] and b.daemon_pid("supervisor")  # B is untouched
        assert all(b.status()["daemons"][n] for n in ("brain", "supervisor", "watchdog"))
    finally:
        left = a.cleanup() + b.cleanup()
    assert left == []
