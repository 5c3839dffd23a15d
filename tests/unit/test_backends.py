"""Backends, isolation, parsers, the outcome rule, stuck detection and parking, without daemons.

Why: each backend's command line and environment is a contract with a CLI (the original's
command lines, kept); each parser is checked on recorded output (real lines captured from the
real Claude Code CLI; opencode/codex/ds-code lines in their CLIs' documented formats); stuck and
loop detection on synthetic streams with an explicit clock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest

from aura.brain import parking
from aura.brain.state import not_before
from aura.runtime.config import Config, load_config
from aura.supervisor.backends import BackendError, decide_outcome, get_backend, plan_worker
from aura.supervisor.backends.claude import check_root_bypass
from aura.supervisor.backends.isolation import (
    DOCKERRUN,
    cgroup_memory_bytes,
    container_usage,
    docker_resource_args,
    isolation_mode,
    process_cgroups,
)
from aura.supervisor.monitor import OutputMonitor, ProgressTracker, Settings
from aura.supervisor.streams import ClaudeStream, CodexStream, OpenCodeStream, TextStream
from aura.supervisor.streams.common import rate_limit_reset_at
from aura.supervisor.workerenv import worker_env
from aura.tail import claude_lines, codex_lines, formatter, opencode_lines

FIX = Path(__file__).parents[1] / "fixtures"


def cfg(**values: str) -> Config:
    c = Config()
    for k, v in values.items():
        c.set(k, v, "test")
    return c


def exe(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return str(path)


def spec(tmp_path: Path, **extra: Any) -> dict:
    task = tmp_path / "proj" / ".aura" / "workspace" / "tasks" / "T1"
    task.mkdir(parents=True, exist_ok=True)
    return {
        "worker_id": "T1-1",
        "task_id": "T1",
        "task_dir": str(task),
        "cwd": None,
        "env": {},
        "prompt": None,
        "project_root": str(tmp_path / "proj"),
        "data_dir": str(tmp_path / "proj" / ".aura"),
        **extra,
    }


# -- command lines and environments -------------------------------------------------------------------


def test_claude_command_line_is_the_originals_plus_guards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("IS_SANDBOX", "1")
    monkeypatch.setenv("OPENAI_API_KEY", "not-for-claude")
    c = cfg(AURA_CLAUDE_BIN=exe(tmp_path, "claude"), AURA_MAX_TURNS="7")
    plan = get_backend("claude").plan(spec(tmp_path), c)
    assert plan.argv[1:] == [
        "-p",
        "@task.md",
        "--max-turns",
        "7",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "bypassPermissions",
        "--disallowedTools",
        "CronCreate ScheduleWakeup",
    ]
    assert plan.stdout_name == "output.jsonl" and plan.cwd.endswith("/T1")
    assert plan.env["CLAUDE_CODE_MAX_RETRIES"] == "2" and plan.env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert "OPENAI_API_KEY" not in plan.env
    plan = get_backend("claude").plan(
        spec(tmp_path, prompt="go", model="m1", max_budget_usd=0.5, resume_session="abc", max_turns=3), c
    )
    assert plan.argv[1:3] == ["-p", "go"] and plan.argv[-2:] == ["--disallowedTools", "CronCreate ScheduleWakeup"]
    assert ["--model", "m1"] == plan.argv[plan.argv.index("--model") :][:2]
    assert "0.5000" in plan.argv and plan.argv[plan.argv.index("--resume") + 1] == "abc"


def test_claude_as_root_refuses_bypass_without_is_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(BackendError, match="IS_SANDBOX=1"):
        check_root_bypass("bypassPermissions", {})
    check_root_bypass("bypassPermissions", {"IS_SANDBOX": "1"})
    check_root_bypass("acceptEdits", {})


def test_missing_cli_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    for name, hint in (
        ("claude", "@anthropic-ai/claude-code"),
        ("opencode", "AURA_OPENCODE_BIN"),
        ("codex", "@openai/codex"),
        ("ds_code", "AURA_DSCODE_BIN"),
    ):
        with pytest.raises(BackendError, match="not installed") as err:
            get_backend(name).plan(spec(tmp_path, prompt="x"), cfg())
        assert hint in str(err.value)
    with pytest.raises(BackendError, match="is not an executable file"):
        get_backend("claude").plan(spec(tmp_path), cfg(AURA_CLAUDE_BIN=str(tmp_path / "nope")))
    with pytest.raises(BackendError, match="known: claude, codex, ds_code, opencode, shell"):
        get_backend("gemini")
    assert get_backend("ds-code").name == "ds_code"


def test_opencode_codex_and_ds_code_command_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "inherited")
    c = cfg(
        AURA_OPENCODE_BIN=exe(tmp_path, "opencode"),
        AURA_CODEX_BIN=exe(tmp_path, "codex"),
        AURA_DSCODE_BIN=exe(tmp_path, "ds-code"),
        AURA_API_KEY="l1-key",
        AURA_CODEX_MODEL="gpt-5-codex",
    )
    s = spec(tmp_path, prompt="# T1\n", resume_session="ses_1")
    oc = get_backend("opencode").plan(s, c)
    task_md = str(Path(s["task_dir"]) / "task.md")
    assert oc.argv[1:] == [
        "run",
        "Continue the task in the attached task.md from where you stopped",
        "--file",
        task_md,
        "--dangerously-skip-permissions",
        "--format",
        "json",
        "--model",
        "deepseek-v4-pro",
        "--session",
        "ses_1",
    ]
    assert oc.max_turns == 50 and Path(task_md).read_text() == "# T1\n"
    cx = get_backend("codex").plan(s, c)
    assert cx.argv[1:] == [
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "-m",
        "gpt-5-codex",
        "-C",
        s["task_dir"],
        "resume",
        "ses_1",
        "# T1\n",
    ]
    cx = get_backend("codex").plan(
        {**s, "resume_session": None},
        cfg(AURA_CODEX_BIN=c.text("AURA_CODEX_BIN"), AURA_CODEX_SANDBOX="workspace-write"),
    )
    assert cx.argv[4:6] == ["--sandbox", "workspace-write"]
    with pytest.raises(BackendError, match="AURA_CODEX_SANDBOX"):
        get_backend("codex").plan(s, cfg(AURA_CODEX_BIN=c.text("AURA_CODEX_BIN"), AURA_CODEX_SANDBOX="yolo"))
    ds = get_backend("ds_code").plan(s, c)
    assert ds.argv[:2] == ["/bin/sh", "-c"] and ds.argv[3:] == [
        c.text("AURA_DSCODE_BIN"),
        "run",
        "--workspace",
        s["task_dir"],
        "--no-color",
        "--model",
        "deepseek-v4-pro",
    ]
    assert ds.env["AURA_DSCODE_STDIN"] == task_md and ds.stdout_name == "output.txt"
    assert ds.env["DEEPSEEK_API_KEY"] == "inherited" and ds.env["DS_CODE_MAX_TURNS"] == "50"
    own = get_backend("ds_code").plan(s, cfg(**{**c.values, "AURA_DEEPSEEK_API_KEY": "own"}))
    assert own.env["DEEPSEEK_API_KEY"] == "own"


def test_worker_environment_is_an_allow_list() -> None:
    source = {
        "PATH": "/bin",
        "HOME": "/h",
        "LC_ALL": "C",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AURA_API_KEY": "k",
        "MY_TOKEN": "t",
        "MY_OTHER": "o",
        "AURA_WORKER_ENV_PASS": "MY_T*",
        "LD_LIBRARY_PATH": "/cuda/lib",
        "CUDA_HOME": "/cuda",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "HF_TOKEN": "h",
    }
    env = worker_env(cfg(AURA_WORKER_CUDA_VISIBLE_DEVICES="1"), source=source)
    assert {"PATH", "HOME", "LC_ALL", "MY_TOKEN", "LD_LIBRARY_PATH", "CUDA_HOME"} <= set(env)
    assert env["CUDA_VISIBLE_DEVICES"] == "1"  # Aura's placement wins over the daemon's own
    assert not {"AWS_SECRET_ACCESS_KEY", "AURA_API_KEY", "MY_OTHER", "HF_TOKEN"} & set(env)
    assert worker_env(cfg(), source=source)["CUDA_VISIBLE_DEVICES"] == "0,1"  # no placement: the user's own
    # AURA_WORKER_ENV_PASS from the configuration (config.env, -O), added to the source's own
    both = worker_env(cfg(AURA_WORKER_ENV_PASS="MY_OTHER, HF_*"), source=source)
    assert {"MY_TOKEN", "MY_OTHER", "HF_TOKEN"} <= set(both) and "AWS_SECRET_ACCESS_KEY" not in both
    plain = {k: v for k, v in source.items() if k != "AURA_WORKER_ENV_PASS"}
    only_cfg = worker_env(cfg(AURA_WORKER_ENV_PASS="MY_OTHER"), source=plain)
    assert "MY_OTHER" in only_cfg and not {"MY_TOKEN", "HF_TOKEN", "AURA_API_KEY"} & set(only_cfg)


def test_worker_env_pass_is_a_configuration_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AURA_HOME", str(tmp_path / "home"))  # no global config.env
    (tmp_path / ".aura").mkdir()
    (tmp_path / ".aura" / "config.env").write_text("AURA_WORKER_ENV_PASS=WANDB_*\n")
    env = {"HOME": str(tmp_path)}
    from_file = load_config(tmp_path, environ=env)
    assert from_file.text("AURA_WORKER_ENV_PASS") == "WANDB_*"
    assert load_config(tmp_path, overrides=["AURA_WORKER_ENV_PASS=X"], environ=env).text("AURA_WORKER_ENV_PASS") == "X"
    assert load_config(None, environ=env).text("AURA_WORKER_ENV_PASS") == ""  # the default
    out = worker_env(from_file, source={"PATH": "/bin", "WANDB_API_KEY": "w", "OTHER_KEY": "o"})
    assert out["WANDB_API_KEY"] == "w" and "OTHER_KEY" not in out


# -- isolation ------------------------------------------------------------------------------------------


def test_bwrap_plan_hides_state_and_secrets_and_binds_only_what_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IS_SANDBOX", "1")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    s = spec(tmp_path, isolation="bwrap", env={"HOME": str(home)}, mounts=[str(tmp_path / "proj" / "out")])
    # planning only reads the arguments: a stand-in bwrap, so the test runs where bubblewrap is not installed
    bwrap = exe(tmp_path, "bwrap")
    c = cfg(AURA_CLAUDE_BIN=exe(tmp_path, "claude"), AURA_BWRAP_SHARE_NET="0", AURA_BWRAP_BIN=bwrap)
    plan = plan_worker(get_backend("claude"), s, c)
    argv = plan.argv

    def pairs(flag: str) -> list[str]:
        return [argv[i + 1] for i, a in enumerate(argv) if a == flag]

    assert argv[0] == bwrap and "--unshare-net" in argv and "--die-with-parent" in argv
    assert s["data_dir"] in pairs("--tmpfs") and str(home / ".ssh") in pairs("--tmpfs")
    assert pairs("--bind") == [s["task_dir"], str(tmp_path / "proj" / "out"), str(home / ".claude")]
    assert (home / ".claude").is_dir() and (tmp_path / "proj" / "out").is_dir()
    assert argv.index("--tmpfs") < argv.index("--bind")  # hidden first, then bound back
    assert argv[argv.index("--") + 1] == c.text("AURA_CLAUDE_BIN") and plan.record["isolation"] == "bwrap"
    if str(tmp_path).startswith("/tmp/"):  # a project under /tmp stays visible under the private /tmp
        assert str(tmp_path / "proj") in pairs("--ro-bind")


def test_docker_plan_mounts_the_workspace_and_passes_names_not_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IS_SANDBOX", "1")
    c = cfg(
        AURA_WORKERS_IN_DOCKER="1",
        AURA_DOCKER_IMAGE="aura-worker:1",
        AURA_DOCKER_GPUS="all",
        AURA_DOCKER_EXTRA_ARGS="--network none",
        AURA_DOCKER_CLAUDE_API_KEY="sk-secret",
        AURA_DOCKER_CLAUDE_MODEL="m",
        AURA_CLAUDE_BIN=exe(tmp_path, "claude"),
        AURA_WORKER_MAX_CPU_PERCENT="50",
        AURA_WORKER_MAX_SYSTEM_MEMORY_GB="1",
    )
    (tmp_path / "data").mkdir()  # outside the project: mounted because it exists
    s = spec(tmp_path, mounts=[str(tmp_path / "data")])
    assert isolation_mode(s, c) == "docker"
    plan = plan_worker(get_backend("claude"), s, c)
    argv = plan.argv
    assert argv[:3] == [sys.executable, "-I", DOCKERRUN]
    run = argv[argv.index("--") + 1 :]
    assert run[:5] == ["run", "--rm", "--init", "--name", "aura-T1-1"]
    volumes = [run[i + 1] for i, a in enumerate(run) if a == "-v"]
    assert volumes == [f"{s['task_dir']}:{s['task_dir']}", f"{tmp_path / 'data'}:{tmp_path / 'data'}"]
    names = [run[i + 1] for i, a in enumerate(run) if a == "-e"]
    assert {"ANTHROPIC_API_KEY", "ANTHROPIC_MODEL", "AURA_TASK_DIR", "CLAUDE_CODE_MAX_RETRIES"} <= set(names)
    assert "sk-secret" not in " ".join(argv) and plan.env["ANTHROPIC_API_KEY"] == "sk-secret"
    assert run[run.index("--cpus") + 1] == f"{(os.cpu_count() or 1) * 0.5:.2f}" and "1024m" in run
    assert run[run.index("--gpus") + 1] == "all" and run[run.index("--network") + 1] == "none"
    image_at = run.index("aura-worker:1")
    assert run[image_at + 1 : image_at + 3] == ["claude", "-p"]  # the image's own claude
    assert plan.record["container"]["cidfile"] == str(Path(s["task_dir"]) / "container.id")
    with pytest.raises(BackendError, match="AURA_DOCKER_IMAGE"):
        plan_worker(get_backend("shell"), {**s, "command": "true"}, cfg(AURA_WORKER_ISOLATION="docker"))
    assert docker_resource_args(cfg(AURA_WORKER_MAX_CPU_PERCENT="0", AURA_WORKER_MAX_SYSTEM_MEMORY_PERCENT="0")) == []
    with pytest.raises(BackendError, match="does not exist"):
        plan_worker(get_backend("shell"), {**s, "command": "true", "mounts": ["/no/such/place"]}, c)


FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "$DOCKER_LOG"
if [ "$1" = run ]; then trap 'echo client-got-TERM >> "$DOCKER_LOG"; exit 143' TERM; sleep 30 & wait; fi
exit 0
"""


def test_docker_wrapper_stops_and_removes_the_container(tmp_path: Path) -> None:
    """Docker cannot run here; a stand-in client shows what the wrapper asks of docker on a stop."""
    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    log = tmp_path / "docker.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-I",
            DOCKERRUN,
            "--docker",
            str(docker),
            "--name",
            "aura-w1",
            "--grace",
            "1",
            "--",
            "run",
            "--rm",
            "img",
            "claude",
        ],
        env={**os.environ, "DOCKER_LOG": str(log)},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not (log.exists() and "run --rm img claude" in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGTERM)  # as the supervisor stops a worker: the whole group
        code = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    calls = log.read_text().splitlines()
    assert "kill --signal TERM aura-w1" in calls and calls[-1] == "rm -f aura-w1"
    assert code == 143


def test_container_cgroup_is_measured_v2_and_v1(tmp_path: Path) -> None:
    cid = "c0ffee" * 10
    (tmp_path / "cid").write_text(cid + "\n")
    v2 = tmp_path / "v2" / "system.slice" / f"docker-{cid}.scope"
    v2.mkdir(parents=True)
    (v2 / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n")
    (v2 / "memory.current").write_text("104857600\n")
    assert container_usage(str(tmp_path / "cid"), tmp_path / "v2") == {
        "container_id": cid,
        "cpu_seconds": 2.5,
        "memory_bytes": 104857600,
    }
    v1_files = (("cpuacct", "cpuacct.usage", "1500000000"), ("memory", "memory.usage_in_bytes", "42"))
    for hierarchy, name, value in v1_files:
        folder = tmp_path / "v1" / hierarchy / "docker" / cid
        folder.mkdir(parents=True)
        (folder / name).write_text(value)
    assert container_usage(str(tmp_path / "cid"), tmp_path / "v1")["cpu_seconds"] == 1.5
    assert container_usage(str(tmp_path / "missing")) is None


def test_own_cgroup_memory_is_readable_here() -> None:
    groups = process_cgroups(os.getpid())
    if groups["memory"] is None:
        pytest.skip("this machine exposes no memory cgroup to read")
    assert (cgroup_memory_bytes(groups["memory"]) or 0) > 1_000_000


# -- one outcome rule ---------------------------------------------------------------------------------

# a Slurm job that ended without the shim's exit record, as aura.runtime.slurm.ended_exit reads it
SLURM_ENDED = {"exit_code": None, "error": "Slurm job 9 ended CANCELLED: ...", "slurm_state": "CANCELLED"}


@pytest.mark.parametrize(
    ("exit_rec", "kill", "progress", "needs_final", "expected"),
    [
        ({"error": "executable not found: x"}, None, None, False, "failed"),
        ({"exit_code": 0}, None, None, False, "succeeded"),
        ({"exit_code": 0}, None, None, True, "unknown"),
        ({"exit_code": 0}, None, {"verdict": "api_error"}, True, "api_error"),
        ({"exit_code": 1}, None, {"verdict": "rate_limited"}, True, "rate_limited"),
        ({"exit_code": 1}, None, {"verdict": "turns_exceeded"}, True, "turns_exceeded"),
        ({"exit_code": 143}, {"reason_code": "finished_hung"}, {"verdict": "succeeded"}, True, "succeeded"),
        ({"exit_code": None, "signal": 9}, {"reason_code": "timed_out"}, None, False, "timed_out"),
        ({"exit_code": 143}, {"reason_code": "turns_exceeded"}, {"verdict": None}, True, "turns_exceeded"),
        ({"exit_code": 143}, {"reason_code": "killed"}, None, True, "killed"),
        ({"exit_code": None, "signal": 9}, {"reason_code": "resource"}, None, False, "killed"),
        ({"exit_code": None, "signal": 15}, None, None, False, "killed"),
        ({"exit_code": None, "signal": 11}, None, None, False, "failed"),
        ({"exit_code": 124}, None, None, False, "timed_out"),
        ({"exit_code": None, "signal": None}, None, None, False, "lost"),
        ({"exit_code": 2}, None, None, False, "failed"),
        ({**SLURM_ENDED, "signal": 9}, None, None, False, "failed"),
        ({**SLURM_ENDED, "signal": 9}, {"reason_code": "resource"}, None, False, "killed"),
        ({**SLURM_ENDED, "signal": 9}, {"reason_code": "timed_out"}, None, False, "timed_out"),
    ],
)
def test_decide_outcome(
    exit_rec: dict, kill: dict | None, progress: dict | None, needs_final: bool, expected: str
) -> None:
    assert decide_outcome(exit_rec, kill, progress, needs_final) == expected


def test_every_backend_reports_from_the_one_vocabulary(tmp_path: Path) -> None:
    for name in ("claude", "opencode", "codex", "ds_code", "shell"):
        backend = get_backend(name)
        assert backend.outcome({"exit_code": 0}, None, None) in ("succeeded", "unknown")
        assert backend.outcome({"exit_code": None, "signal": 9}, {"reason_code": "timed_out"}, None) == "timed_out"


# -- parsers on recorded output --------------------------------------------------------------------------


def replay(parser: Any, name: str) -> dict:
    for line in (FIX / name).read_text().splitlines():
        parser.feed(line)
    summary = parser.summary()
    msgpack.packb(summary)  # crosses the IPC as msgpack
    return summary


def test_claude_fixtures_give_final_verdict_and_error() -> None:
    ok = replay(ClaudeStream(), "claude/success.jsonl")
    assert ok["final"] is True and ok["verdict"] == "succeeded" and ok["error"] is None
    api = replay(ClaudeStream(), "claude/api_error.jsonl")
    assert api["verdict"] == "api_error" and "529" in api["error"] and api["rate_limit_reset_at"] is None
    killed = replay(ClaudeStream(), "claude/killed.jsonl")
    assert killed["final"] is False and killed["verdict"] is None


def test_claude_usage_limit_text_gives_the_resume_time() -> None:
    stream = ClaudeStream()
    stream.feed(
        json.dumps(
            {
                "type": "result",
                "subtype": "success",
                "is_error": True,
                "api_error_status": 429,
                "result": "API Error: Request rejected (429) · Claude AI usage limit reached|1795866220",
            }
        )
    )
    assert stream.summary()["verdict"] == "rate_limited" and stream.summary()["rate_limit_reset_at"] == 1795866220
    assert rate_limit_reset_at("rate limited; try again in 2 minutes", now=1000) == 1120
    assert rate_limit_reset_at("retry after 30 seconds", now=0) == 30 and rate_limit_reset_at("no time") is None


def test_opencode_parser() -> None:
    ok = replay(OpenCodeStream(), "opencode/success.jsonl")
    assert (ok["turns"], ok["verdict"], ok["final"], ok["finish_reason"]) == (3, "succeeded", True, "stop")
    assert ok["total_cost_usd"] == pytest.approx(0.0048) and ok["cache_read_tokens"] == 2290
    assert ok["tool_counts"] == {"bash": 1, "write": 1} and ok["last_text"].startswith("Done")
    err = replay(OpenCodeStream(), "opencode/api_error.jsonl")
    assert (err["verdict"], err["error"], err["final"]) == ("api_error", "Overloaded", True)
    loop = replay(OpenCodeStream(), "opencode/loop.jsonl")
    assert loop["repeat_count"] == 8 and loop["final"] is False and loop["verdict"] is None


def test_codex_parser() -> None:
    ok = replay(CodexStream(), "codex/success.jsonl")
    assert ok["session_id"] == "0199a213-81c0-7800-8aa1-bbab2a035a53" and ok["verdict"] == "succeeded"
    assert ok["tool_counts"] == {"shell": 1, "apply_patch": 1}  # started+completed counted once
    assert ok["last_text"] == "Wrote result.md and answer.txt." and ok["total_cost_usd"] is None
    limited = replay(CodexStream(), "codex/usage_limit.jsonl")
    assert limited["verdict"] == "rate_limited" and limited["final"] is True
    failed = CodexStream()
    failed.feed(json.dumps({"type": "turn.failed", "error": {"message": "stream disconnected before completion"}}))
    assert failed.summary()["verdict"] == "api_error"


def test_text_parser_sees_repeats_and_limits() -> None:
    ok = replay(TextStream(), "dscode/success.txt")
    assert ok["verdict"] is None and ok["rate_limit_hint"] is False and ok["lines"] == 5
    limited = replay(TextStream(), "dscode/rate_limit.txt")
    assert limited["rate_limit_hint"] is True and limited["rate_limit_reset_at"] is not None
    looping = TextStream()
    for _ in range(6):
        looping.feed("Thinking about the same file again")
    assert looping.summary()["repeat_count"] == 6


def test_tail_formats_real_claude_lines_and_codex_lines() -> None:
    fmt = formatter("claude")
    lines = [out for line in (FIX / "claude/success.jsonl").read_text().splitlines() for out in fmt(line)]
    assert lines[0].startswith("● session ") and "claude 2.1.197" in lines[0]
    assert any(line.startswith("→ Write: ") for line in lines)
    assert any(line.startswith("→ Bash: ") for line in lines)
    assert lines[-2].startswith("■ success · 3 turns · $")
    assert formatter("claude")("not json") == ["not json"] and formatter("shell")("raw line") == ["raw line"]
    assert codex_lines({"type": "turn.failed", "error": {"message": "boom"}}) == ["! turn failed: boom"]
    oc_error = {"type": "error", "error": {"name": "APIError", "data": {"message": "x"}}}
    assert opencode_lines(oc_error) == ["! APIError: x"]
    tool_error = {"type": "tool_result", "is_error": True, "content": "bad\nworse"}
    assert claude_lines({"type": "user", "message": {"content": [tool_error]}}) == ["← error: bad (+1 lines)"]


# -- stuck and loop detection on synthetic streams -------------------------------------------------------

S = Settings(stuck_s=600, cpu_busy_percent=5, loop_repeat=5)


def run_stream(steps: list[dict], every: float = 10.0) -> list[bool]:
    """Feed one observation per `every` seconds; return the stuck flag after each."""
    tracker = ProgressTracker(0.0, S)
    flags = []
    for i, values in enumerate(steps, start=1):
        now = i * every
        tracker.observe(now, **values)
        flags.append(tracker.stuck(now))
    return flags


def test_silent_idle_worker_without_artifacts_is_stuck_after_the_window() -> None:
    flags = run_stream([{"output": 100, "tail": "h", "errors": 0, "artifacts": "a", "cpu": 1.0, "turns": 2}] * 70)
    assert flags.index(True) == 59  # 600 s after the start, not earlier
    assert all(flags[59:])


def test_cpu_burning_silent_worker_is_never_stuck() -> None:
    steps = [{"output": 100, "tail": "h", "errors": 0, "artifacts": "a", "cpu": 1.0 + i * 8.0} for i in range(200)]
    assert not any(run_stream(steps))


@pytest.mark.parametrize(
    "signal_name,values",
    [
        ("output", lambda i: {"output": 100 + (i >= 50)}),
        ("tail", lambda i: {"tail": "h2" if i >= 50 else "h1"}),
        ("errors", lambda i: {"errors": 10 if i >= 50 else 0}),
        ("artifacts", lambda i: {"artifacts": "b" if i >= 50 else "a"}),
        ("turns", lambda i: {"turns": 3 if i >= 50 else 2}),
    ],
)
def test_any_one_moving_signal_restarts_the_window(signal_name: str, values: Any) -> None:
    base = {"output": 100, "tail": "h1", "errors": 0, "artifacts": "a", "turns": 2, "cpu": 1.0}
    flags = run_stream([{**base, **values(i)} for i in range(120)])
    assert flags.index(True) == 50 + 60, signal_name  # 600 s after the change, not after the start


def test_loop_is_flagged_from_repeated_identical_calls(tmp_path: Path) -> None:
    out = tmp_path / "output.jsonl"
    call = {"type": "tool_use", "id": None, "name": "Bash", "input": {"command": "ls"}}
    lines = [
        json.dumps({"type": "assistant", "message": {"id": f"m{i}", "content": [{**call, "id": f"t{i}"}]}})
        for i in range(5)
    ]
    out.write_text("\n".join(lines[:4]) + "\n")
    rec = {"worker_id": "w", "output": str(out), "task_dir": str(tmp_path), "backend": "claude", "state": "exited"}
    monitor = OutputMonitor(settings=S)
    monitor.scan(rec)
    assert monitor.summary("w")["loop"] is False and monitor.transitions(rec) == []
    with out.open("a") as fh:
        fh.write(lines[4] + "\n")
    monitor.scan(rec)
    events = monitor.transitions(rec)
    assert [k for k, _ in events] == ["worker_loop"] and events[0][1]["repeat_count"] == 5
    assert monitor.summary("w")["loop"] is True and monitor.transitions(rec) == []


def test_final_line_then_no_exit_asks_for_a_stop(tmp_path: Path) -> None:
    out = tmp_path / "output.jsonl"
    out.write_text((FIX / "claude/success.jsonl").read_text())
    rec = {"worker_id": "w", "output": str(out), "task_dir": str(tmp_path), "backend": "claude", "state": "exited"}
    monitor = OutputMonitor(settings=Settings(result_grace=0.0))
    monitor.scan(rec)
    time.sleep(0.01)
    assert monitor.should_stop(rec) == ("printed its final result 0s ago but did not exit", "finished_hung")


# -- parking after a rate or usage limit -------------------------------------------------------------------


def limited(reset: float | None, backend: str = "claude") -> dict:
    return {
        "worker_id": "T-1",
        "backend": backend,
        "outcome": "rate_limited",
        "progress": {"session_id": "sess-1", "error": "usage limit reached", "rate_limit_reset_at": reset},
    }


def test_parking_uses_the_limits_own_time_else_the_delay_and_is_bounded() -> None:
    c = cfg(AURA_RESUME_DELAY_SECONDS="120", AURA_MAX_RESUMES="2")
    d = parking.decide({"id": "T"}, limited(1300.0), c, now=1000.0)
    assert d.park and d.resume_at == 1300.0 and d.session_id == "sess-1" and "parked until" in d.reason
    assert parking.decide({"id": "T"}, limited(None), c, now=1000.0).resume_at == 1120.0
    assert parking.decide({"id": "T"}, limited(10**10), c, now=1000.0).resume_at == 1000.0 + parking.MAX_PARK_S
    assert parking.decide({"id": "T"}, limited(None, backend="ds_code"), c, now=0).session_id is None
    blocked = parking.decide({"id": "T", "parks": 2}, limited(None), c, now=0)
    assert not blocked.park and "2" in blocked.reason and "AURA_MAX_RESUMES" in blocked.reason
    off = parking.decide({"id": "T"}, limited(None), cfg(AURA_AUTO_RESUME="0"), now=0)
    assert not off.park and "AURA_AUTO_RESUME=0" in off.reason


def test_parked_task_waits_then_resumes_its_session(tmp_path: Path) -> None:
    task = {"id": "T", "attempts": 1}
    parking.park(task, parking.ParkDecision(True, "r", resume_at=time.time() + 60, session_id="sess-1"))
    assert task["attempts"] == 0 and task["parks"] == 1 and not_before(task) > time.time()
    assert not_before(task) <= time.time() + 61
    spec_ = parking.resume_spec(task, {"backend": "claude", "prompt": "start"}, tmp_path)
    assert spec_["resume_session"] == "sess-1" and "Continue the task" in spec_["prompt"]
    assert "parked_until" not in task and "resume_session" not in task
    plain = parking.resume_spec({"resume_session": "x"}, {"backend": "shell", "command": "true"}, tmp_path)
    assert "resume_session" not in plain
