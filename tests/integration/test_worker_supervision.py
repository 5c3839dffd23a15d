"""Workers through the real supervisor daemon: failures that must be clear, budgets, stuck and loop
detection, the parsers of CLIs replayed from recorded output, bubblewrap isolation, `aura tail`.

Why: the supervisor is where a worker's fate is decided; these run it for real (shim, process
groups, output files, events) with small commands and replaying stand-ins for CLIs that cannot be
installed offline (opencode, codex, ds-code). The real Claude Code CLI has its own test module."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import Project, alive, wait_for
from tests.support.workers import FIXTURES, Supervisor, tree_of, write_replay_cli


@pytest.fixture
def sup(project: Project) -> Any:
    s = Supervisor(project)
    yield s
    s.stop()


def _start(sup: Supervisor, **env: str) -> Supervisor:
    sup.project.env.update(env)
    return sup.start()


# -- failures with a clear reason ----------------------------------------------------------------------


def test_missing_executable_and_instant_failure_are_clear_and_nothing_hangs(sup: Supervisor, tmp_path: Path) -> None:
    _start(sup, AURA_CLAUDE_BIN=str(tmp_path / "no-such-claude"))
    started = time.monotonic()
    missing = sup.spawn(task_id="t-missing", backend="shell", argv=["/no/such/program", "--flag"])
    crash = sup.spawn(task_id="t-crash", backend="shell", command="echo 'config.yaml: no such file' >&2; exit 3")
    from aura.ipc.client import RemoteError

    with pytest.raises(RemoteError) as claude_missing:
        sup.spawn(task_id="t-claude", backend="claude", prompt="anything")
    missing = sup.wait_exited(missing["worker_id"], 10)
    crash = sup.wait_exited(crash["worker_id"], 10)
    assert time.monotonic() - started < 10
    assert missing["outcome"] == "failed" and missing["exit"]["error"] == "executable not found: /no/such/program"
    assert crash["outcome"] == "failed" and crash["exit"]["exit_code"] == 3
    assert "config.yaml: no such file" in crash["progress"]["error_tail"]
    assert claude_missing.value.code == "spawn_failed" and "AURA_CLAUDE_BIN" in claude_missing.value.message
    exited = {e["data"]["worker_id"]: e["data"] for e in sup.events("worker_exited")}
    assert exited[missing["worker_id"]]["error"] == "executable not found: /no/such/program"
    assert exited[crash["worker_id"]]["outcome"] == "failed"


def test_brain_blocks_tasks_whose_worker_cannot_start_with_the_reason(project: Project, tmp_path: Path) -> None:
    """Through `aura up`: a command that is not there, and an agent task whose CLI is not installed. `up`
    refuses a task file that needs the missing CLI (tests/integration/test_spawn_retry.py), so the agent item is added
    while the run goes on: the local planner blocks it with the reason instead of spawning it."""
    project.env.update(AURA_LAYER2_BACKEND="claude", AURA_CLAUDE_BIN=str(tmp_path / "no-claude"))
    task = project.write_task("# Broken tools\n\n- [ ] run the missing tool `/no/such/tool --fast`\n")
    project.up()
    wait_for(lambda: project.status().get("brain", {}).get("run", {}).get("finished"), 60, what="the run to end")
    task.write_text(task.read_text() + "- [ ] ask the agent to summarise the notes\n")
    st = wait_for(
        lambda: (
            (s := project.status()).get("brain", {}).get("run", {}).get("finished")
            and s["brain"]["counts"]["blocked"] == 2
            and s
        ),
        60,
        what="the added task to be blocked",
    )
    assert st["brain"]["counts"]["blocked"] == 2
    from aura.runtime.fsutil import read_jsonl

    blocked = {
        d["task_id"]: d["reason"]
        for d in read_jsonl(project.paths.state_dir / "decisions.jsonl")
        if d.get("kind") == "status" and d.get("new") == "blocked" and d.get("task_id") != "ROOT"
    }
    reasons = sorted(blocked.values())
    assert any("exit code 127" in r and "/no/such/tool" in r and "not found" in r for r in reasons), reasons
    assert any(r.startswith("not started: ") and "AURA_CLAUDE_BIN" in r for r in reasons), reasons


def test_time_budget_is_enforced_term_then_kill(sup: Supervisor) -> None:
    _start(sup, AURA_KILL_GRACE_SECONDS="1")
    rec = sup.spawn(
        task_id="t-budget", backend="shell", budget_s=1.0, command="trap '' TERM; echo working; sleep 60"
    )  # ignores SIGTERM: needs the SIGKILL
    done = sup.wait_exited(rec["worker_id"], 15)
    assert done["outcome"] == "timed_out"
    assert done["kill"]["reason_code"] == "timed_out" and "time budget" in done["kill"]["reason"]
    assert done["exit"]["signal"] == 9  # the grace ran out, the group got SIGKILL
    assert done["exit"]["ended_at"] - done["started_at"] < 1.0 + 1.0 + 3.0
    assert not alive(done["worker_pid"], done["worker_create_time"])


# -- progress and stuck detection ---------------------------------------------------------------------


def test_silent_idle_worker_is_stuck_but_silent_cpu_burner_is_not(sup: Supervisor) -> None:
    _start(sup, AURA_STUCK_MINUTES="0.05")  # 3 s
    idle = sup.spawn(task_id="t-idle", backend="shell", command="sleep 60")
    busy = sup.spawn(task_id="t-busy", backend="shell", argv=["python3", "-c", "while True: pass"])
    stuck = wait_for(
        lambda: [e for e in sup.events("worker_stuck") if e["data"]["worker_id"] == idle["worker_id"]],
        12,
        what="a worker_stuck event for the idle worker",
    )
    assert stuck[0]["data"]["task_id"] == "t-idle" and stuck[0]["data"]["quiet_s"] >= 3
    time.sleep(1.0)
    busy_now = sup.get(busy["worker_id"])["progress"]
    assert busy_now["stuck"] is False and "cpu" in busy_now["active_signals"], busy_now
    assert not [e for e in sup.events("worker_stuck") if e["data"]["worker_id"] == busy["worker_id"]]
    ps = sup.project.aura("ps").stdout
    idle_row = next(line for line in ps.splitlines() if line.startswith(idle["worker_id"]))
    busy_row = next(line for line in ps.splitlines() if line.startswith(busy["worker_id"]))
    assert "running/stuck" in idle_row and "/stuck" not in busy_row


def test_output_progress_keeps_a_worker_unstuck_and_recovery_is_reported(sup: Supervisor) -> None:
    _start(sup, AURA_STUCK_MINUTES="0.05")
    rec = sup.spawn(task_id="t-late", backend="shell", command="sleep 4.5; echo woke; sleep 60")
    wid = rec["worker_id"]
    wait_for(lambda: [e for e in sup.events("worker_stuck") if e["data"]["worker_id"] == wid], 12, what="stuck")
    wait_for(
        lambda: [e for e in sup.events("worker_unstuck") if e["data"]["worker_id"] == wid],
        12,
        what="unstuck after it printed",
    )
    assert "output" in sup.get(wid)["progress"]["active_signals"]


# -- replayed CLIs: each backend's command line and parser through the supervisor ------------------------


def _replay_env(tmp_path: Path, fixture: str, **extra: str) -> dict[str, str]:
    return {"REPLAY_FILE": str(FIXTURES / fixture), "REPLAY_RECORD": str(tmp_path / "replay.json"), **extra}


def test_opencode_replay_success_and_api_error_with_exit_zero(sup: Supervisor, tmp_path: Path) -> None:
    cli = write_replay_cli(tmp_path / "bin", "opencode")
    _start(sup, AURA_OPENCODE_BIN=str(cli))
    ok = sup.spawn(
        task_id="t-oc",
        backend="opencode",
        prompt="# task\nwrite result.md",
        env=_replay_env(tmp_path, "opencode/success.jsonl", REPLAY_RESULT_MD="Status: done\n"),
    )
    ok = sup.wait_exited(ok["worker_id"], 20)
    seen = json.loads((tmp_path / "replay.json").read_text())
    task_md = str(Path(ok["task_dir"]) / "task.md")
    assert seen["argv"][1:] == [
        "run",
        "Complete the task",
        "--file",
        task_md,
        "--dangerously-skip-permissions",
        "--format",
        "json",
        "--model",
        "deepseek-v4-pro",
    ]
    assert Path(task_md).read_text() == "# task\nwrite result.md"
    p = ok["progress"]
    assert ok["outcome"] == "succeeded" and p["turns"] == 3 and p["total_cost_usd"] == pytest.approx(0.0048)
    assert p["session_id"] == "ses_494719016ffe85dkDMj0FPRbHK" and p["last_tool"] == "write"
    bad = sup.spawn(
        task_id="t-oc2", backend="opencode", prompt="x", env=_replay_env(tmp_path, "opencode/api_error.jsonl")
    )
    bad = sup.wait_exited(bad["worker_id"], 20)
    assert bad["exit"]["exit_code"] == 0 and bad["outcome"] == "api_error"  # exit 0 is not trusted
    assert bad["progress"]["error"] == "Overloaded"


def test_opencode_loop_is_flagged_and_its_turn_cap_enforced(sup: Supervisor, tmp_path: Path) -> None:
    cli = write_replay_cli(tmp_path / "bin", "opencode")
    _start(
        sup, AURA_OPENCODE_BIN=str(cli), AURA_OPENCODE_MAX_TURNS="6", AURA_LOOP_REPEAT="4", AURA_KILL_GRACE_SECONDS="1"
    )
    rec = sup.spawn(
        task_id="t-loop",
        backend="opencode",
        prompt="x",
        env=_replay_env(tmp_path, "opencode/loop.jsonl", REPLAY_DELAY="0.1", REPLAY_LINGER="60"),
    )
    done = sup.wait_exited(rec["worker_id"], 30)
    loops = [e["data"] for e in sup.events("worker_loop") if e["data"]["worker_id"] == rec["worker_id"]]
    assert loops and loops[0]["last_tool"] == "read" and loops[0]["repeat_count"] >= 4
    assert done["outcome"] == "turns_exceeded" and done["kill"]["reason_code"] == "turns_exceeded"
    assert "turn cap of 6" in done["kill"]["reason"]


def test_codex_replay_records_tokens_and_usage_limit(sup: Supervisor, tmp_path: Path) -> None:
    cli = write_replay_cli(tmp_path / "bin", "codex")
    _start(sup, AURA_CODEX_BIN=str(cli))
    ok = sup.spawn(
        task_id="t-cx",
        backend="codex",
        prompt="do it",
        resume_session="0199a213-old",
        env=_replay_env(tmp_path, "codex/success.jsonl"),
    )
    ok = sup.wait_exited(ok["worker_id"], 20)
    argv = json.loads((tmp_path / "replay.json").read_text())["argv"]
    assert argv[1:5] == ["exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"]
    assert argv[-3:] == ["resume", "0199a213-old", "do it"]
    p = ok["progress"]
    assert ok["outcome"] == "succeeded" and p["session_id"] == "0199a213-81c0-7800-8aa1-bbab2a035a53"
    assert (p["input_tokens"], p["cache_read_tokens"], p["output_tokens"]) == (315, 24448, 122)
    assert p["turns"] == 3 and p["last_tool"] == "apply_patch"
    limited = sup.spawn(
        task_id="t-cx2",
        backend="codex",
        prompt="x",
        env=_replay_env(tmp_path, "codex/usage_limit.jsonl", REPLAY_EXIT="1"),
    )
    limited = sup.wait_exited(limited["worker_id"], 20)
    assert limited["outcome"] == "rate_limited"
    assert limited["progress"]["rate_limit_reset_at"] == pytest.approx(time.time() + 120, abs=30)


def test_ds_code_gets_task_md_on_stdin_and_its_keys(sup: Supervisor, tmp_path: Path) -> None:
    cli = write_replay_cli(tmp_path / "bin", "ds-code")
    _start(sup, AURA_DSCODE_BIN=str(cli), AURA_DEEPSEEK_API_KEY="sk-ds-test", SECRET_TOKEN="must-not-leak")
    rec = sup.spawn(
        task_id="t-ds", backend="ds_code", prompt="# Task\nsay hi\n", env=_replay_env(tmp_path, "dscode/success.txt")
    )
    done = sup.wait_exited(rec["worker_id"], 20)
    seen = json.loads((tmp_path / "replay.json").read_text())
    assert seen["stdin"] == "# Task\nsay hi\n"
    assert seen["argv"][1:] == ["run", "--workspace", done["task_dir"], "--no-color", "--model", "deepseek-v4-pro"]
    assert seen["env"]["DEEPSEEK_API_KEY"] == "sk-ds-test" and seen["env"]["DS_CODE_MAX_TURNS"] == "50"
    assert "SECRET_TOKEN" not in seen["env"]  # the allow-list, not the daemon's whole environment
    assert done["outcome"] == "succeeded" and done["output"].endswith("output.txt")
    assert done["progress"]["last_text"].endswith("Done. Wrote result.md.")
    limited = sup.spawn(
        task_id="t-ds2",
        backend="ds_code",
        prompt="x",
        env=_replay_env(tmp_path, "dscode/rate_limit.txt", REPLAY_EXIT="2"),
    )
    assert sup.wait_exited(limited["worker_id"], 20)["outcome"] == "rate_limited"


def test_aura_tail_decodes_a_json_stream_and_follows_to_the_end(sup: Supervisor, tmp_path: Path) -> None:
    cli = write_replay_cli(tmp_path / "bin", "opencode")
    _start(sup, AURA_OPENCODE_BIN=str(cli))
    rec = sup.spawn(
        task_id="t-tail",
        backend="opencode",
        prompt="x",
        env=_replay_env(tmp_path, "opencode/success.jsonl", REPLAY_DELAY="0.3"),
    )
    out = sup.project.aura("tail", "t-tail", "-f", timeout=30).stdout
    lines = out.splitlines()
    assert lines[0].startswith(f"== {rec['worker_id']} (opencode,")
    assert "→ bash: echo 42 > answer.txt" in lines
    assert any(line.startswith("→ write: ") and line.endswith("/result.md") for line in lines)
    assert "assistant: Done: wrote result.md and answer.txt." in lines
    assert lines[-1] == f"== {rec['worker_id']} ended: succeeded"
    missing = sup.project.aura("tail", "nope", check=False)
    assert missing.returncode != 0 and "t-tail" in missing.stderr


# -- bubblewrap isolation ------------------------------------------------------------------------------


def _need_bwrap() -> None:
    if shutil.which("bwrap"):
        return
    reason = "bubblewrap (bwrap) is not installed; .ci/run installs it from Debian's packages"
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


def test_bwrap_worker_writes_only_its_workspace_and_mounts(sup: Supervisor, tmp_path: Path) -> None:
    _need_bwrap()
    home = Path(sup.project.env["HOME"])
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_rsa").write_text("PRIVATE")
    (sup.project.root / "out").mkdir()
    _start(sup)
    script = (
        "echo ws > ws.txt; echo out > ../../../../out/made.txt; "
        "(echo x > ../../../../outside.txt) 2>&1 | grep -c 'Read-only' > ro.txt; "
        "ls ../../../state 2>/dev/null | wc -l > state.txt; cat ~/.ssh/id_rsa > ssh.txt 2>/dev/null; "
        "echo $$ > pid.txt"
    )
    rec = sup.spawn(
        task_id="t-bw", backend="shell", command=script, isolation="bwrap", mounts=[str(sup.project.root / "out")]
    )
    done = sup.wait_exited(rec["worker_id"], 20)
    task = Path(done["task_dir"])
    assert done["outcome"] == "succeeded", done
    assert (task / "ws.txt").read_text() == "ws\n" and (sup.project.root / "out" / "made.txt").read_text() == "out\n"
    assert not (sup.project.root / "outside.txt").exists() and (task / "ro.txt").read_text().strip() == "1"
    assert (task / "state.txt").read_text().strip() == "0"  # Aura's state folder is hidden
    assert (task / "ssh.txt").read_text() == ""  # and so are the secrets in $HOME
    assert (task / "pid.txt").read_text().strip() != str(done["worker_pid"])  # its own PID namespace
    assert done["argv"][0].endswith("bwrap") and done["isolation"] == "bwrap"


def test_bwrap_worker_killed_mid_run_leaves_no_process(sup: Supervisor) -> None:
    _need_bwrap()
    _start(sup, AURA_KILL_GRACE_SECONDS="1")
    rec = sup.spawn(
        task_id="t-bwk", backend="shell", isolation="bwrap", command="(setsid sleep 301 &); sleep 302 & sleep 303"
    )
    wid = rec["worker_id"]
    tree = wait_for(lambda: (t := tree_of(rec["shim_pid"])) and len(t) >= 5 and t, 10, what="the sandboxed tree")
    sup.project.seen.update(tree)
    assert sup.call("kill", {"worker_id": wid, "reason": "test"})["killed"] is True
    done = sup.wait_exited(wid, 15)
    assert done["outcome"] == "killed"
    wait_for(lambda: not [p for p, ct in tree.items() if alive(p, ct)], 5, what="every process of the tree to be gone")
