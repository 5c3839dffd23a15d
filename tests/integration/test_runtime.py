"""The runtime core end to end: real daemons, real workers, crashes by kill -9."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from aura.runtime.fsutil import read_json, read_jsonl
from tests.support.harness import REPO, Project, wait_for
from tests.support.workloads import MEM_HOG


def run_finished(p: Project) -> dict | None:
    st = p.status()
    run = (st.get("brain") or {}).get("run") or {}
    return st if run.get("finished") else None


def test_bundled_task_runs_to_completion_and_down_leaves_nothing(project: Project) -> None:
    shutil.copy(REPO / "tasks" / "example.md", project.root / "task.md")
    project.up()
    st = wait_for(lambda: run_finished(project), 60, what="the run to finish")
    counts = st["brain"]["counts"]
    assert counts["completed"] == 4 and sum(counts.values()) == 4
    for name in ("sample.txt", "counts.json", "machine.txt"):
        assert (project.root / "out" / name).stat().st_size > 0
    decisions = read_jsonl(project.paths.state_dir / "decisions.jsonl")
    done = [d for d in decisions if d.get("kind") == "status" and d["new"] == "completed" and d["task_id"] != "ROOT"]
    assert len(done) == 4
    for d in done:
        assert "exited 0" in d["evidence"]
        assert d["task_id"] == "ACCEPT" or "written by this attempt" in d["evidence"]
    project.remember()
    assert project.seen, "no process was recorded"
    project.aura("down")
    assert project.survivors() == []
    tasks = read_json(project.paths.state_dir / "state.json")["tasks"]
    assert not [t for t in tasks if "spawn_spec" in tasks[t]], "a settled attempt's spawn intent stays in the tree"


def test_second_up_is_refused_and_names_the_running_one(project: Project) -> None:
    project.write_task("# Wait\n\n- [ ] wait `sleep 30`\n")
    project.up()
    second = project.aura("up", "-d", "task.md", check=False)
    assert second.returncode != 0
    assert "already running" in second.stderr and f"brain pid {project.daemon_pid('brain')}" in second.stderr


@pytest.mark.parametrize(
    "content,expected",
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("   \n\n", "is empty"),
        (b"\x00\x01binary\x00", "looks binary"),
    ],
)
def test_bad_task_file_gets_a_clear_error_and_nothing_starts(project: Project, content, expected) -> None:
    path = project.root / "task.md"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    proc = project.aura("up", "-d", "task.md", check=False)
    assert proc.returncode != 0
    assert expected in proc.stderr and "Nothing was started" in proc.stderr
    assert not project.paths.run_dir.exists() or not any(
        project.daemon_pid(n) for n in ("brain", "supervisor", "watchdog")
    )


def test_wake_without_a_brain_fails_fast_and_names_it(project: Project) -> None:
    (project.root / ".aura").mkdir()
    started = time.monotonic()
    proc = project.aura("wake", "new data", check=False)
    assert time.monotonic() - started < 3.0  # includes the interpreter start-up
    assert proc.returncode != 0
    assert "brain is not running" in proc.stderr and "aura up" in proc.stderr


def test_wake_runs_a_cycle_now(project: Project) -> None:
    project.env["AURA_CYCLE_INTERVAL"] = "300"
    project.write_task("# Idle\n\n- [ ] wait `sleep 30`\n")
    project.up()
    wait_for(lambda: (project.status()["brain"].get("cycles") or 0) >= 1, what="the first cycle")
    before = project.status()["brain"]["cycles"]
    out = project.aura("wake", "new data is in").stdout
    assert "woken" in out
    wait_for(lambda: project.status()["brain"]["cycles"] > before, 5, what="a cycle after wake")
    log = (project.paths.logfile("brain")).read_text()
    assert "new data is in" in log


def _hog_task(extra_items: str = "") -> str:
    return (
        "# Crash test\n\n"
        "- [ ] first `sleep 4 && touch a.done` creates `a.done`\n"
        "- [ ] second `sleep 4 && touch b.done` creates `b.done`\n"
        f"- [ ] hog `{MEM_HOG}`\n{extra_items}"
    )


def test_kill_brain_workers_keep_running_watchdog_enforces_run_completes(project: Project) -> None:
    project.env.update(AURA_MAX_CONCURRENT_TASKS="3", AURA_WORKER_MAX_SYSTEM_MEMORY_GB="0.2")
    project.write_task(_hog_task())
    project.up()
    wait_for(lambda: len([w for w in project.workers().values() if w.get("worker_pid")]) >= 3, what="three workers")
    project.kill9("brain")
    # while the brain is down, the watchdog still kills the hog
    wait_for(lambda: any((project.paths.watchdog_dir / "kills").glob("*.json")), 20, what="a watchdog kill")
    wait_for(lambda: project.daemon_pid("brain"), 20, what="the brain to be restarted")
    st = wait_for(lambda: run_finished(project), 90, what="the run to finish")
    workers = project.workers()
    by_task: dict[str, list[str]] = {}
    for w in workers.values():
        by_task.setdefault(w["task_id"], []).append(w["worker_id"])
    firsts = [t for t, ws in by_task.items() if any(w.startswith(t) for w in ws) and len(ws) == 1]
    assert (project.root / "a.done").exists() and (project.root / "b.done").exists()
    assert len(firsts) >= 2, f"the two short tasks ran exactly once each: {by_task}"
    counts = st["brain"]["counts"]
    assert counts["completed"] == 2 and counts["blocked"] >= 1, counts
    kills = [json.loads(p.read_text()) for p in (project.paths.watchdog_dir / "kills").glob("*.json")]
    assert all(k["limit"] == "AURA_WORKER_MAX_SYSTEM_MEMORY_GB" and k["strikes"] >= 3 for k in kills)


def test_kill_supervisor_workers_survive_exit_recorded_and_readopted(project: Project) -> None:
    project.env.update(AURA_MAX_CONCURRENT_TASKS="3")
    project.write_task(
        "# Survive\n\n- [ ] quick `sleep 2; exit 3`\n- [ ] long `sleep 12 && touch long.done` "
        "creates `long.done`\n- [ ] longer `sleep 14 && touch longer.done` creates `longer.done`\n"
    )
    project.up()
    wait_for(lambda: len([w for w in project.workers().values() if w.get("worker_pid")]) >= 3, what="three workers")
    old = project.kill9("supervisor")
    workers = project.workers()
    quick = next(w for w in workers.values() if "exit 3" in " ".join(w["argv"]))
    # the quick worker ends while the supervisor is down (or being restarted): its shim records it
    wait_for(
        lambda: (project.workers()[quick["worker_id"]].get("exit_file") or {}).get("exit_code") == 3,
        20,
        what="the exit record of the worker that ended",
    )
    new = wait_for(lambda: project.daemon_pid("supervisor"), 20, what="the supervisor to come back")
    assert new != old
    ps = json.loads(project.aura("ps", "--json").stdout)
    assert ps["source"] == "supervisor"
    live = {w["worker_id"] for w in ps["workers"]}
    long_ids = {w["worker_id"] for w in workers.values() if "long" in " ".join(w["argv"])}
    assert long_ids <= live, f"re-adopted workers shown by aura ps: {live}"
    rec = project.workers()[quick["worker_id"]]
    wait_for(lambda: project.workers()[quick["worker_id"]].get("state") == "exited", 10, what="the record settled")
    rec = project.workers()[quick["worker_id"]]
    assert rec["exit"]["exit_code"] == 3 and rec["outcome"] == "failed"
    wait_for(
        lambda: (project.root / "long.done").exists() and (project.root / "longer.done").exists(),
        30,
        what="the long workers to finish",
    )


def test_kill_watchdog_it_comes_back_and_enforces(project: Project) -> None:
    project.env.update(AURA_WORKER_MAX_SYSTEM_MEMORY_GB="0.2")
    project.write_task(
        "# Enforce\n\n- [ ] wait for the hog `sleep 3`\n- [ ] hog `sleep 2; " + MEM_HOG.replace("`", "") + "`\n"
    )
    project.up()
    old = wait_for(lambda: project.daemon_pid("watchdog"), what="the watchdog")
    project.kill9("watchdog")
    new = wait_for(lambda: project.daemon_pid("watchdog"), 20, what="the watchdog to come back")
    assert new != old
    wait_for(lambda: any((project.paths.watchdog_dir / "kills").glob("*.json")), 30, what="a kill by the new watchdog")
    events = read_jsonl(project.paths.journal("supervisor"))
    assert any(e["kind"] == "daemon_restarted" and e["data"]["daemon"] == "watchdog" for e in events)


def test_restart_intensity_limit_gives_up_and_status_says_so(project: Project) -> None:
    project.env.update(AURA_RESTART_MAX="2", AURA_RESTART_WINDOW_SECONDS="60")
    project.write_task("# Idle\n\n- [ ] wait `sleep 60`\n")
    project.up()
    for _ in range(3):
        pid = wait_for(lambda: project.daemon_pid("brain"), 20, what="a brain")
        project.kill9("brain")
        wait_for(
            lambda pid=pid: project.daemon_pid("brain") not in (None, pid) or _gave_up(project),
            20,
            what="restart or give-up",
        )
    wait_for(lambda: _gave_up(project), 20, what="the supervisor to give up")
    proc = project.aura("status", check=False)
    assert proc.returncode == 3
    assert "brain      DOWN (gave up restarting it" in proc.stdout


def _gave_up(p: Project) -> bool:
    rec = (
        json.loads((p.paths.run_dir / "supervisor.peers.json").read_text())
        if (p.paths.run_dir / "supervisor.peers.json").exists()
        else {}
    )
    return bool(((rec.get("peers") or {}).get("brain") or {}).get("gave_up"))


def test_down_keep_workers_then_up_readopts(project: Project) -> None:
    project.write_task("# Keep\n\n- [ ] long `sleep 8 && touch k.done` creates `k.done`\n")
    project.up()
    w = wait_for(lambda: [w for w in project.workers().values() if w.get("worker_pid")], what="a worker")[0]
    project.aura("down", "--keep-workers")
    assert project.survivors() == [w["shim_pid"], w["worker_pid"]] or set(project.survivors()) == {
        w["shim_pid"],
        w["worker_pid"],
    }
    project.up()
    wait_for(lambda: run_finished(project), 30, what="the run to finish after re-adoption")
    assert len(project.workers()) == 1, "the worker was re-adopted, not started twice"


def test_foreground_up_streams_events_and_ctrl_c_stops_everything(project: Project) -> None:
    import signal
    import subprocess
    import sys

    project.write_task("# Long\n\n- [ ] long `sleep 60`\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aura.cli", "up", "task.md"],
        cwd=project.root,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        while not any("started (pid" in ln for ln in lines):
            line = proc.stdout.readline()
            assert line, "aura up ended early:\n" + "".join(lines)
            lines.append(line)
        project.remember()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "stopping Aura and its workers" in out and "supervisor stopped" in out
    assert project.survivors() == []
    worker = next(iter(project.workers().values()))
    assert worker["state"] == "exited" and worker["outcome"] == "killed"
