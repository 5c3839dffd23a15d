"""The real Claude Code CLI as an Aura worker, against the scripted Anthropic-compatible server.

Why: the claude backend, the stream parser, the outcome rules, the kill path and the brain's
evidence and parking decisions are only proven against the real CLI. Each test starts the CLI
through Aura itself (the supervisor's spawn, or the brain via `aura up`), never directly.
The CLI is installed into a cache folder if missing (tests/support/claude_cli.py); without npm the tests
are skipped with a reason, and under CI=true they fail instead.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from aura.runtime.fsutil import read_json, read_jsonl
from aura.scripted_server import ScriptedServer
from tests.support.claude_cli import claude_version, require_claude_cli
from tests.support.harness import Project, alive, wait_for
from tests.support.workers import Supervisor, clean_env, tree_of, uses_root

RESULTS_FILE_ENV = "AURA_TEST_CLAUDE_RESULTS"  # where to note the version, turns and cost (for the note)


@pytest.fixture(scope="module")
def claude() -> Path:
    return require_claude_cli()


def _claude_env(project: Project, claude: Path, server: ScriptedServer, retries: str = "0") -> None:
    env = clean_env(project.env)
    env.update(
        AURA_LAYER2_BACKEND="claude",
        AURA_CLAUDE_BIN=str(claude),
        ANTHROPIC_BASE_URL=server.url,
        ANTHROPIC_API_KEY="scripted-test-key",
        DISABLE_TELEMETRY="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        CLAUDE_CODE_MAX_RETRIES=retries,
    )
    if uses_root():
        env["IS_SANDBOX"] = "1"  # claude refuses bypassPermissions as root without it
    project.env = env


def _run_finished(project: Project) -> dict | None:
    st = project.status()
    return st if ((st.get("brain") or {}).get("run") or {}).get("finished") else None


def _note(**facts: Any) -> None:
    import os

    path = os.environ.get(RESULTS_FILE_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(facts) + "\n")


# -- through the brain: evidence accepted, turns and cost recorded --------------------------------------


def test_claude_worker_writes_result_runs_bash_and_aura_accepts_the_evidence(claude: Path, project: Project) -> None:
    task_dir = project.paths.task_dir("GOAL")
    script = {
        "routes": [
            {
                "name": "worker",
                "match": {"user_agent": "claude-cli"},
                "steps": [
                    {
                        "tool": "Write",
                        "input": {
                            "file_path": str(task_dir / "result.md"),
                            "content": "Status: done\n\n## What was done\nWrote answer.txt.\n",
                        },
                    },
                    {"tool": "Bash", "input": {"command": "echo $((6 * 7)) > answer.txt", "description": "compute"}},
                    {"text": "Wrote result.md and answer.txt."},
                ],
            }
        ]
    }
    project.write_task("# Compute the answer\n\nWrite 42 into answer.txt and report in result.md.\n")
    with ScriptedServer(script) as server:
        _claude_env(project, claude, server)
        project.up()
        st = wait_for(lambda: _run_finished(project), 90, what="the run to finish")
        requests = server.messages_requests("worker")
    assert st["brain"]["counts"]["completed"] == 1, st["brain"]
    assert (project.root / "answer.txt").read_text().strip() == "42"
    worker = project.workers()["GOAL-1"]
    p = worker["progress"]
    assert worker["outcome"] == "succeeded" and worker["backend"] == "claude"
    assert p["turns"] == 3 and p["total_cost_usd"] > 0 and p["result"]["subtype"] == "success"
    assert p["tool_counts"] == {"Write": 1, "Bash": 1} and p["last_tool"] == "Bash"
    assert p["session_id"] and p["cli_version"] == claude_version(claude).split()[0]
    argv = worker["argv"]
    assert argv[argv.index("--disallowedTools") + 1] == "CronCreate ScheduleWakeup"
    init_tools = requests[0]["body"]["tools"]
    assert not {"CronCreate", "ScheduleWakeup"} & {t["name"] for t in init_tools}  # really disabled
    done = [
        d
        for d in read_jsonl(project.paths.state_dir / "decisions.jsonl")
        if d.get("kind") == "status" and d.get("task_id") == "GOAL" and d["new"] == "completed"
    ]
    assert done and "result.md says Status: done" in done[0]["evidence"]
    ps = json.loads(project.aura("ps", "-a", "--json").stdout)["workers"]
    assert ps[0]["progress"]["turns"] == 3 and ps[0]["progress"]["total_cost_usd"] == p["total_cost_usd"]
    tail = project.aura("tail", "GOAL", "-n", "0").stdout.splitlines()
    assert any(line.startswith("→ Write: ") and line.endswith("result.md") for line in tail)
    assert "→ Bash: echo $((6 * 7)) > answer.txt" in tail
    assert tail[-2].startswith("■ success · 3 turns · $")
    _note(test="evidence", version=p["cli_version"], turns=p["turns"], cost_usd=p["total_cost_usd"])


@pytest.mark.parametrize("executor", ["local", "slurm"])
def test_usage_limit_parks_the_task_and_resumes_the_same_session(
    claude: Path, project: Project, executor: str, request: pytest.FixtureRequest
) -> None:
    task_dir = project.paths.task_dir("GOAL")
    lifts = int(time.time()) + 3
    script = {
        "routes": [
            {
                "name": "worker",
                "match": {"user_agent": "claude-cli"},
                "steps": [
                    {"error": {"status": 429, "message": f"Claude AI usage limit reached|{lifts}", "retry_after": 0}},
                    {"tool": "Write", "input": {"file_path": str(task_dir / "result.md"), "content": "Status: done\n"}},
                    {"text": "Finished after the pause."},
                ],
            }
        ]
    }
    project.write_task("# Survive a usage limit\n\nWrite result.md.\n")
    with ScriptedServer(script) as server:
        _claude_env(project, claude, server)
        if executor == "slurm":  # each attempt a job on the private cluster, the session resumed on the node
            cluster = request.getfixturevalue("slurm_cluster")
            project.env.update(SLURM_CONF=str(cluster.conf), PATH=cluster.env["PATH"], AURA_EXECUTOR="slurm")
        project.up()
        st = wait_for(lambda: _run_finished(project), 90, what="the run to finish")
        last_prompt = server.messages_requests("worker")[-1]["body"]["messages"]
    assert st["brain"]["counts"]["completed"] == 1, st["brain"]
    workers = project.workers()
    first, second = workers["GOAL-1"], workers["GOAL-2"]
    session = first["progress"]["session_id"]
    assert first["outcome"] == "rate_limited" and first["progress"]["rate_limit_reset_at"] == lifts
    assert second["outcome"] == "succeeded" and second["progress"]["session_id"] == session
    assert first.get("executor", "local") == second.get("executor", "local") == executor
    assert second["argv"][second["argv"].index("--resume") + 1] == session
    assert second["started_at"] >= lifts - 1  # not before the limit said it lifts
    assert "Continue the task from where you stopped" in json.dumps(last_prompt)
    parked = [
        d
        for d in read_jsonl(project.paths.state_dir / "decisions.jsonl")
        if d.get("kind") == "status" and d.get("task_id") == "GOAL" and d["reason"].startswith("parked until")
    ]
    assert len(parked) == 1 and "usage limit" in parked[0]["reason"]
    state = read_json(project.paths.state_dir / "state.json")
    assert state["tasks"]["GOAL"]["parks"] == 1 and state["tasks"]["GOAL"]["attempts"] == 1


# -- through the supervisor: outcomes from the CLI's own result line ---------------------------------------


@pytest.fixture
def sup(project: Project) -> Any:
    s = Supervisor(project)
    yield s
    s.stop()


def _spawn_claude(sup: Supervisor, task: str, **args: Any) -> dict:
    return sup.spawn(task_id=task, backend="claude", prompt=f"{task}: do the task", **args)


def test_overloaded_api_until_retries_run_out_is_api_error(claude: Path, sup: Supervisor) -> None:
    with ScriptedServer({"steps": [], "default": {"error": {"status": 529, "message": "Overloaded"}}}) as server:
        _claude_env(sup.project, claude, server, retries="1")
        sup.start()
        done = sup.wait_exited(_spawn_claude(sup, "t-529")["worker_id"], 60)
        tries = len(server.messages_requests())
    assert tries == 2  # one try and the one retry Aura allowed (CLAUDE_CODE_MAX_RETRIES)
    assert done["exit"]["exit_code"] == 1 and done["outcome"] == "api_error"
    assert done["progress"]["result"]["api_error_status"] == 529 and done["progress"]["api_retries"] == 1


def test_max_turns_one_with_a_two_step_script_is_turns_exceeded(claude: Path, sup: Supervisor) -> None:
    script = {
        "steps": [
            {"tool": "Bash", "input": {"command": "echo one > one.txt"}},
            {"tool": "Bash", "input": {"command": "echo two > two.txt"}},
            {"text": "never"},
        ]
    }
    with ScriptedServer(script) as server:
        _claude_env(sup.project, claude, server)
        sup.start()
        done = sup.wait_exited(_spawn_claude(sup, "t-turns", max_turns=1)["worker_id"], 60)
    assert done["outcome"] == "turns_exceeded" and done["progress"]["result"]["subtype"] == "error_max_turns"
    argv = done["argv"]
    assert argv[argv.index("--max-turns") + 1] == "1"
    assert (Path(done["task_dir"]) / "one.txt").exists() and not (Path(done["task_dir"]) / "two.txt").exists()


def test_looping_worker_is_flagged_then_killed_with_its_whole_tree(claude: Path, sup: Supervisor) -> None:
    """The same Bash call five times (a loop), each leaving background children, one of them in a
    session of its own; then the model hangs mid-stream. Aura flags the loop, and a kill leaves no
    process of the worker's tree behind."""
    spawn_kids = "(setsid sleep 1301 >/dev/null 2>&1 &); sleep 1302 >/dev/null 2>&1 & echo spawned"
    script = {"steps": [{"tool": "Bash", "input": {"command": spawn_kids}, "repeat": 5}, {"hang": "mid_stream"}]}
    with ScriptedServer(script) as server:
        _claude_env(sup.project, claude, server)
        sup.project.env.update(AURA_LOOP_REPEAT="5", AURA_KILL_GRACE_SECONDS="2")
        sup.start()
        rec = _spawn_claude(sup, "t-loop")
        wid = rec["worker_id"]
        wait_for(lambda: len(server.messages_requests()) >= 6, 60, what="five Bash turns and the hanging request")
        loop = wait_for(
            lambda: [e["data"] for e in sup.events("worker_loop") if e["data"]["worker_id"] == wid],
            10,
            what="a worker_loop event",
        )
        assert loop[0]["last_tool"] == "Bash" and loop[0]["repeat_count"] == 5
        assert "running/loop" in next(ln for ln in sup.project.aura("ps").stdout.splitlines() if ln.startswith(wid))
        tree = tree_of(rec["shim_pid"])
        sup.project.seen.update(tree)  # stopped by PID at cleanup should the test fail
        sleepers = [p for p in tree if _cmdline(p)[:1] == ["sleep"]]
        assert len(sleepers) == 10 and len(tree) > 10, tree
        killed = sup.call("kill", {"worker_id": wid, "reason": "test: stop the loop"})
        done = sup.wait_exited(wid, 20)
    assert killed["killed"] is True and done["outcome"] == "killed"
    assert done["exit"]["exit_code"] == 143 or done["exit"]["signal"] in (9, 15)
    left = wait_for(lambda: not [p for p, ct in tree.items() if alive(p, ct)], 10, what="the whole tree to be gone")
    assert left and done["exit"]["leftovers_stopped"] >= 1


def test_claude_in_bubblewrap_writes_its_workspace_but_not_the_project(claude: Path, sup: Supervisor) -> None:
    import os
    import shutil

    if not shutil.which("bwrap"):
        reason = "bubblewrap (bwrap) is not installed; .ci/run installs it from Debian's packages"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    task_dir = sup.project.paths.task_dir("t-bw")
    outside = sup.project.root / "outside.txt"
    write = {"file_path": str(task_dir / "result.md"), "content": "Status: done\n"}
    bash = {"command": f"echo no > {outside}; ls {sup.project.paths.state_dir}"}
    script = {"steps": [{"tool": "Write", "input": write}, {"tool": "Bash", "input": bash}, {"text": "done"}]}
    with ScriptedServer(script) as server:
        _claude_env(sup.project, claude, server)
        sup.start()
        rec = _spawn_claude(sup, "t-bw", isolation="bwrap", cwd=str(sup.project.root))
        done = sup.wait_exited(rec["worker_id"], 60)
        bash_result = json.dumps(server.messages_requests()[-1]["body"]["messages"][-1])
    assert done["outcome"] == "succeeded" and done["isolation"] == "bwrap", done
    assert (task_dir / "result.md").read_text() == "Status: done\n" and not outside.exists()
    assert "Read-only file system" in bash_result and "No such file or directory" in bash_result


def _cmdline(pid: int) -> list[str]:
    import psutil

    try:
        return psutil.Process(pid).cmdline()
    except psutil.NoSuchProcess:
        return []
