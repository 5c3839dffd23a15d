"""The llm brain's parts in-process: the model client (real SDK against the scripted server, and the
OpenAI-compatible path against a small local server), tools, costs and budget, changelog, memory,
notifications, `aura setup`, and the CLI's promise never to import the SDK for read commands."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from aura.brain import costs as costmod
from aura.brain.changelog import TaskFileChangelog, batch_prefix, summarize
from aura.brain.core import BrainCore
from aura.brain.llm_planner import LlmPlanner
from aura.brain.main import SNAPSHOT_EVERY, SNAPSHOT_SHARE, BrainDaemon, persist_due
from aura.brain.memory import Memory
from aura.brain.model_client import ClientSettings, ModelClient, ModelError, Usage, detect_provider
from aura.brain.notify import Notifier
from aura.brain.tools import Toolbox, ToolError, inside_project, validate
from aura.runtime.config import load_config
from aura.runtime.fsutil import read_jsonl
from aura.runtime.paths import ProjectPaths
from aura.scripted_server import ScriptedServer
from aura.supervisor.streams.claude import ClaudeStream
from tests.support.harness import REPO

NO_OP = {"tool": "no_op", "input": {"reason": "done"}}


def settings(url: str, **kw: Any) -> ClientSettings:
    base = dict(provider="anthropic", base_url=url, model="m", key="sk-unit", attempts=4, base_delay=0.01, timeout=5)
    return ClientSettings(**{**base, **kw})


def ask(client: ModelClient) -> Any:
    return client.create([{"type": "text", "text": "sys"}], [], [{"role": "user", "content": "hi"}])


# -- model client --------------------------------------------------------------------------------------


def test_client_retries_429_529_500_and_honours_retry_after() -> None:
    with ScriptedServer(
        {
            "steps": [
                {"error": {"status": 429, "retry_after": 0}},
                {"error": {"status": 529}},
                {"error": {"status": 500}},
                {"text": "ok"},
            ]
        }
    ) as srv:
        client = ModelClient(settings(srv.url))
        started = time.monotonic()
        reply = ask(client)
    assert reply.text() == "ok" and reply.attempts == 4 and len(reply.errors) == 3
    assert time.monotonic() - started < 2, "no long sleeps: retry-after 0 and a 0.01 s base delay"


def test_client_gives_up_at_once_on_a_bad_request_and_times_out_slow_replies() -> None:
    with ScriptedServer({"steps": [{"error": {"status": 400}}, {"delay": 3, "text": "late"}]}) as srv:
        client = ModelClient(settings(srv.url, timeout=0.5, attempts=1))
        with pytest.raises(ModelError) as bad:
            ask(client)
        with pytest.raises(ModelError) as slow:
            ask(client)
        assert len(srv.messages_requests()) == 2
    assert bad.value.status == 400 and not bad.value.retryable and bad.value.attempts == 1
    assert slow.value.kind == "timeout" and slow.value.retryable


class _CaptureHeaders(BaseHTTPRequestHandler):
    """Answers like the Messages API and keeps the raw credential headers (the scripted server masks them)."""

    seen: list[dict] = []

    def log_message(self, *a: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append(
            {k.lower(): v for k, v in self.headers.items() if k.lower() in ("x-api-key", "authorization")}
        )
        data = json.dumps(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "content": [{"type": "text", "text": "ok"}],
                "usage": {"input_tokens": 1, "output_tokens": 1},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.mark.parametrize("auth", ["api_key", "auth_token"])
def test_client_sends_exactly_one_credential_and_never_one_from_the_environment(monkeypatch: Any, auth: str) -> None:
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "env-token")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    _CaptureHeaders.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _CaptureHeaders)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        ask(ModelClient(settings(f"http://127.0.0.1:{httpd.server_address[1]}", auth=auth)))
    finally:
        httpd.shutdown()
    (headers,) = _CaptureHeaders.seen
    assert len(headers) == 1 and "sk-unit" in next(iter(headers.values()))


def test_client_construction_problems_are_model_errors_not_crashes() -> None:
    with pytest.raises(ModelError) as bad_url:
        ModelClient(settings("http://[::1"))
    with pytest.raises(ModelError) as bad_provider:
        ModelClient(settings("http://127.0.0.1:1", provider="bogus"))
    assert bad_url.value.kind == bad_provider.value.kind == "client"
    assert detect_provider("https://api.deepseek.com/anthropic") == "deepseek"
    assert detect_provider("http://127.0.0.1:8000/v1") == "anthropic"


class _ChatHandler(BaseHTTPRequestHandler):
    replies: list[dict] = []
    seen: list[dict] = []

    def log_message(self, *a: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        data = json.dumps(type(self).replies.pop(0)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_openai_provider_speaks_chat_completions_with_tools() -> None:
    _ChatHandler.seen = []
    _ChatHandler.replies = [
        {
            "model": "local",
            "choices": [
                {
                    "finish_reason": "tool_calls",
                    "message": {
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "no_op", "arguments": '{"reason": "idle"}'},
                            }
                        ],
                    },
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 60}},
        },
        {
            "model": "local",
            "choices": [{"finish_reason": "stop", "message": {"content": "fine"}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 2},
        },
    ]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = ModelClient(settings(f"http://127.0.0.1:{httpd.server_address[1]}/v1", provider="openai"))
        tools = [{"name": "no_op", "description": "end", "input_schema": {"type": "object", "properties": {}}}]
        first = client.create([{"type": "text", "text": "SYS"}], tools, [{"role": "user", "content": "go"}])
        history = [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "slept"}]},
        ]
        second = client.create([{"type": "text", "text": "SYS"}], tools, history)
    finally:
        httpd.shutdown()
    assert first.tool_uses() == [{"type": "tool_use", "id": "call_1", "name": "no_op", "input": {"reason": "idle"}}]
    assert first.stop_reason == "tool_use" and first.usage == Usage(40, 7, 0, 60)
    assert second.text() == "fine" and second.stop_reason == "end_turn"
    req = _ChatHandler.seen[1]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-unit"
    assert req["body"]["tools"][0]["function"]["name"] == "no_op"
    roles = [m["role"] for m in req["body"]["messages"]]
    assert roles == ["system", "user", "assistant", "tool"]
    assert req["body"]["messages"][3] == {"role": "tool", "tool_call_id": "call_1", "content": "slept"}


# -- costs and the budget -----------------------------------------------------------------------------------


def test_worker_cost_comes_from_tokens_and_aura_prices_not_the_cli_figure() -> None:
    stream = ClaudeStream()
    for line in (REPO / "tests" / "fixtures" / "claude" / "success.jsonl").read_text().splitlines():
        stream.feed(line)
    progress = stream.summary()
    cfg = load_config(
        environ={
            "AURA_TOKEN_PRICE_CACHE_MISS": "1",
            "AURA_TOKEN_PRICE_CACHE_HIT": "0.1",
            "AURA_TOKEN_PRICE_OUTPUT": "2",
            "AURA_WORKER_TOKEN_PRICE_OUTPUT": "4",
        }
    )
    state: dict = {}
    book = costmod.CostBook(Path("/nonexistent"), cfg)
    book.ingest_workers(state, {"T-1": {"task_id": "T", "state": "exited", "progress": progress}})
    w = state["costs"]["workers"]["T-1"]
    assert progress["model"] == "claude-opus-4-8[1m]", "priced by its model's row; the worker's own key wins"
    expected = (
        progress["input_tokens"] * 5
        + progress["cache_write_tokens"] * 6.25
        + progress["cache_read_tokens"] * 0.5
        + progress["output_tokens"] * 4
    ) / 1e6
    assert w["usd"] == pytest.approx(expected) and w["reported_usd"] == progress["total_cost_usd"] != w["usd"]
    assert costmod.summary(state)["by_task"] == {"T": pytest.approx(expected)}


def test_budget_warns_once_stops_once_and_resumes_when_raised() -> None:
    cfg = load_config(environ={"AURA_BUDGET_USD": "1.0"})
    state: dict = {
        "costs": {
            "brain": {
                "calls": 1,
                "usd": 0.5,
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_write_tokens": 0,
                "cache_read_tokens": 0,
            }
        }
    }
    kinds = lambda: [k for k, _ in costmod.update_budget(state, cfg)]  # noqa: E731
    assert kinds() == [] and state["budget"]["state"] == "ok"
    state["costs"]["brain"]["usd"] = 0.85
    assert kinds() == ["budget_warning"] and kinds() == []
    state["costs"]["brain"]["usd"] = 1.2
    assert kinds() == ["budget_reached"] and costmod.budget_reached(state) and kinds() == []
    state["budget"]["override_usd"] = 5.0
    assert kinds() == ["budget_resumed"] and not costmod.budget_reached(state)
    assert costmod.remaining_usd(state) == pytest.approx(3.8)


# -- the brain in-process: tools, evidence, safe mode -----------------------------------------------------


@pytest.fixture
def brain(tmp_path: Path) -> Iterator[Any]:
    """A real BrainDaemon object (not started), its core and an llm planner, in a temporary project."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "task.md").write_text("# Unit goal\n\nAccept: `test -s out/done.txt`\n")
    made: list[BrainDaemon] = []

    def make(url: str = "http://127.0.0.1:9", **env: str) -> tuple[BrainDaemon, BrainCore, LlmPlanner]:
        paths = ProjectPaths.for_root(root)
        cfg = load_config(
            root,
            environ={
                "AURA_API_KEY": "sk-unit",
                "AURA_API_BASE_URL": url,
                "HOME": str(tmp_path),
                "AURA_API_RETRY_BASE_DELAY": "0.01",
                **env,
            },
        )
        daemon = BrainDaemon(paths, cfg)
        made.append(daemon)
        daemon.core = core = BrainCore(paths, cfg, daemon.log, daemon.publish, daemon.ctx)
        core.state["task_file"] = str(root / "task.md")
        core.state["total_cycles"] = 1
        planner = LlmPlanner(daemon)
        planner.core = core
        planner.toolbox = Toolbox(planner)
        return daemon, core, planner

    yield make
    for daemon in made:
        daemon.core.supervisor.close()
        daemon.ctx.destroy(linger=0)


def test_file_tools_stay_inside_the_project_and_off_the_brains_files(brain: Any) -> None:
    _, core, planner = brain()
    tb, root = planner.toolbox, core.paths.root
    refused = {
        p: tb.run("write_file", {"path": p, "content": "x"})
        for p in (".aura/state/state.json", "task.md", ".aura/config.env", "../outside.txt", "/etc/aura-test")
    }
    assert all(not r.ok for r in refused.values()), refused
    assert "not writable" in refused[".aura/state/state.json"].text and "user's" in refused["task.md"].text
    assert "API keys" in refused[".aura/config.env"].text and "outside" in refused["../outside.txt"].text
    os.symlink("/etc", root / "etc-link")
    assert "outside" in tb.run("read_file", {"path": "etc-link/hostname"}).text
    assert tb.run("write_file", {"path": ".aura/memory/notes.md", "content": "n"}).ok
    assert tb.run("write_file", {"path": "src/long.txt", "content": "\n".join(f"line {i}" for i in range(1, 501))}).ok
    assert (
        tb.run("read_file", {"path": "src/long.txt", "start_line": 10, "end_line": 11}).text
        == "10: line 10\n11: line 11"
    )
    tail = tb.run("read_file", {"path": "src/long.txt", "mode": "tail", "max_chars": 20}).text
    assert tail.endswith("line 499\nline 500") and "earlier characters" in tail
    assert "long.txt" in tb.run("list_directory", {"path": "src"}).text
    (root / "big.log").write_text("x" * (2 << 20) + "THE END")
    assert tb.run("read_file", {"path": "big.log", "mode": "tail", "max_chars": 50}).text.endswith("THE END")
    assert "non-public address" in tb.run("web_fetch", {"url": "http://127.0.0.1:9/"}).text


def test_done_claims_need_evidence_the_brain_checks(brain: Any) -> None:
    _, core, planner = brain()
    tb, root = planner.toolbox, core.paths.root
    core.state["task_batch"] = {"index": 1, "prefix": "B"}
    assert tb.run(
        "decompose_task",
        {
            "parent_task_id": "ROOT",
            "subtasks": [
                {"description": "write it", "artifacts": ["out/done.txt"]},
                {"description": "check it", "accept_commands": ["test -s out/done.txt"]},
            ],
        },
    ).text.endswith("B1, B2")
    claim = {"new_status": "completed", "reason": "done", "evidence": "trust me"}
    first = tb.run("update_task_tree", {"task_id": "B1", **claim})
    assert not first.ok and "out/done.txt does not exist" in first.text and core.tasks["B1"]["status"] == "pending"
    assert "exited 1" in tb.run("update_task_tree", {"task_id": "B2", **claim}).text
    assert "tasks not completed" in tb.run("update_task_tree", {"task_id": "ROOT", **claim}).text
    (root / "out").mkdir()
    (root / "out" / "done.txt").write_text("yes")
    assert tb.run("update_task_tree", {"task_id": "B1", **claim}).ok
    assert tb.run("update_task_tree", {"task_id": "B2", **claim}).ok
    done = tb.run("update_task_tree", {"task_id": "ROOT", **claim})
    assert done.ok and "acceptance `test -s out/done.txt` exited 0" in done.text and planner.goal_closed()
    refusals = [d for d in read_jsonl(core.decisions.path) if d["kind"] == "done_refused"]
    assert [d["task_id"] for d in refusals] == ["B1", "B2"]
    assert (
        "spawn_task"
        in tb.run(
            "update_task_tree", {"task_id": "B1", "new_status": "in_progress", "reason": "r", "evidence": "e"}
        ).text
    )


def test_validation_reports_every_problem_in_one_error() -> None:
    with pytest.raises(ToolError) as exc:
        validate("decompose_task", {"parent_task_id": 5, "subtasks": [{"id": "x"}], "extra": 1})
    text = str(exc.value)
    assert "`parent_task_id` must be string" in text and "`subtasks`[0].description is required" in text
    assert "`extra` is not an argument" in text
    with pytest.raises(ToolError):
        validate("no_op", ["not", "an", "object"])
    with pytest.raises(ToolError):
        inside_project(Path("/tmp"), "../etc/passwd")


def test_state_reset_safe_mode_is_told_to_the_model_and_spawns_wait(brain: Any) -> None:
    script = {
        "steps": [
            {
                "tool": "decompose_task",
                "input": {
                    "parent_task_id": "ROOT",
                    "subtasks": [{"id": "A1", "description": "quick", "command": "true"}],
                },
            },
            {"tool": "spawn_task", "input": {"task_id": "A1"}},
            NO_OP,
        ]
    }
    with ScriptedServer(script) as srv:
        daemon, core, planner = brain(srv.url)
        sd = core.paths.state_dir
        sd.mkdir(parents=True, exist_ok=True)
        (sd / "state.json").write_text("{torn")
        (sd / "state.json.bak").write_text("also torn")
        daemon.core = core = BrainCore(core.paths, core.cfg, daemon.log, daemon.publish, daemon.ctx)
        core.state.update(task_file=str(core.paths.root / "task.md"), total_cycles=1)
        core.supervisor_ok = True
        result = planner.cycle(core)
        reqs = srv.messages_requests()
    assert result["model_calls"] == 3
    assert "SAFE MODE" in json.dumps(reqs[0]["body"]) and "corrupt" in json.dumps(reqs[0]["body"])
    spawn = reqs[2]["body"]["messages"][-1]["content"][0]
    assert spawn["is_error"] and "safe mode" in spawn["content"]
    assert core.tasks["A1"]["status"] == "pending" and core.state["safe_mode"] is None


def test_reflection_review_comes_after_the_interval_in_minutes_and_survives_a_restart(brain: Any) -> None:
    """AURA_DEEP_REFLECTION_INTERVAL is minutes (the original's meaning), counted from the run's start or the
    last review, checked after model cycles; the last review time is in state.json."""
    script = {
        "routes": [
            {
                "name": "review",
                "match": {"system": "Reflection Engine"},
                "steps": [{"text": "## Recommendations\n- keep going\n", "repeat": 5}],
            }
        ],
        "default": NO_OP,
    }
    with ScriptedServer(script) as srv:
        daemon, core, planner = brain(srv.url, AURA_DEEP_REVIEW_INTERVAL="120")  # the alias, 120 minutes
        start = core.state["created_at"]
        clock = [start]
        planner.clock = lambda: clock[0]
        core.supervisor_ok = True

        def cycle_at(minutes: float) -> int:
            """One model cycle (no plan yet, so the model is always asked); how many reviews it added."""
            before = len(srv.messages_requests("review"))
            clock[0] = start + minutes * 60
            assert "model_calls" in planner.cycle(core)
            return len(srv.messages_requests("review")) - before

        assert cycle_at(1) == 0 and cycle_at(119.9) == 0, "not before 120 minutes of the run"
        assert cycle_at(120) == 1
        assert core.state["llm"]["last_review_at"] == start + 120 * 60
        assert core.state["llm"]["pending_review"]["recommendations"] == ["keep going"]
        assert cycle_at(121) == 0 and cycle_at(239) == 0, "the next one is 120 minutes after the last"
        core.save()
        # a restarted brain: state from disk, a new planner
        daemon.core = core = BrainCore(core.paths, core.cfg, daemon.log, daemon.publish, daemon.ctx)
        core.supervisor_ok = True
        planner = LlmPlanner(daemon)
        planner.clock = lambda: clock[0]
        assert core.state["llm"]["last_review_at"] == start + 120 * 60
        assert cycle_at(239.5) == 0 and cycle_at(240) == 1
    assert planner.review_due(now=start + 360 * 60) and not planner.review_due(now=start + 359 * 60)


# -- changelog, memory, notifications ------------------------------------------------------------------------


def test_changelog_records_versions_and_leaves_the_diff_for_the_model(tmp_path: Path) -> None:
    task = tmp_path / "task.md"
    task.write_text("# Goal\n\n- [ ] one\n")
    state = {"task_file": str(task)}
    log = TaskFileChangelog(tmp_path / "state")
    assert log.check(state, 1)["kind"] == "new" and log.check(state, 2) is None
    task.write_text("# Goal\n\n- [ ] one\n- [ ] two\nsome more context here\n")
    entry = log.check(state, 3)
    assert entry["kind"] == "changed" and "+- [ ] two" in entry["diff"]
    assert entry["summary"] == "1 requirement line(s) added, 0 removed; 1 other line(s) changed"
    assert state["pending_task_diff"]["hash"] == entry["hash"] and state["task_batch"]["prefix"] == "B"
    assert [e["kind"] for e in log.entries()] == ["new", "changed"]
    assert [batch_prefix(i) for i in (0, 1, 25, 26, 27)] == ["A", "B", "Z", "AA", "AB"]
    assert summarize(["+ plain text"]) == "1 other line(s) changed"


def test_memory_is_shown_newest_first_within_its_bound(tmp_path: Path) -> None:
    mem = Memory(tmp_path)
    for i in range(5):
        mem.append("lesson", f"LESSON-{i} " + "x" * 100)
    shown = mem.for_context(300)
    assert shown.index("LESSON-4") < shown.index("LESSON-3") and "LESSON-0" not in shown and len(shown) <= 300
    with pytest.raises(ValueError):
        mem.append("rumour", "no")


class _Hook(BaseHTTPRequestHandler):
    got: list[dict] = []

    def log_message(self, *a: Any) -> None:
        pass

    def do_POST(self) -> None:
        type(self).got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()


def test_notifications_follow_the_level_and_a_slow_hook_never_blocks(tmp_path: Path) -> None:
    from aura.runtime.logs import setup_logging

    _Hook.got = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    log = setup_logging(tmp_path / "brain.log", "brain", "info", to_stderr=False)
    try:
        cfg = load_config(
            environ={
                "AURA_NOTIFY_COMMAND": "sleep 5",
                "AURA_NOTIFY_TIMEOUT": "0.5",
                "AURA_NOTIFY_WEBHOOK": f"http://127.0.0.1:{httpd.server_address[1]}/hook",
                "AURA_NOTIFY_LEVEL": "done_only",
            }
        )
        n = Notifier(cfg, log, tmp_path, tmp_path / "notifications.jsonl")
        started = time.monotonic()
        assert not n.notify("task_done", {"task_id": "A1"})
        assert n.notify("goal_done", {"mission": "M"})
        assert time.monotonic() - started < 0.2
        n.wait(5)
    finally:
        httpd.shutdown()
    records = read_jsonl(tmp_path / "notifications.jsonl")
    assert [(r["target"], r["ok"]) for r in records] == [("command", False), ("webhook", True)]
    assert "timed out" in records[0]["error"]
    assert _Hook.got[0]["event"] == "goal_done" and _Hook.got[0]["message"] == "goal done: M"


# -- the CLI --------------------------------------------------------------------------------------------------


def test_setup_writes_a_private_file_and_never_prints_the_key(tmp_path: Path) -> None:
    from aura.cli.setup import setup

    out = tmp_path / "cfg" / "config.env"
    secret = "sk-very-secret-123456"
    r = CliRunner().invoke(
        setup,
        [
            "-o",
            str(out),
            "-y",
            "--api-key-stdin",
            "--provider",
            "deepseek",
            "--budget",
            "25",
            "--notify-command",
            'notify-send Aura "$AURA_MESSAGE" # hi',
        ],
        input=secret + "\n",
    )
    assert r.exit_code == 0, r.output
    assert secret not in r.output and "set (not shown)" in r.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    values = load_config(config_file=out, environ={}).values
    assert values["AURA_API_KEY"] == secret and values["AURA_BUDGET_USD"] == "25"
    assert values["AURA_API_BASE_URL"] == "https://api.deepseek.com/anthropic"
    assert values["AURA_NOTIFY_COMMAND"] == 'notify-send Aura "$AURA_MESSAGE" # hi'
    answers = "\n".join(["", "2", "", "", "", "", "", "7", "", "", ""]) + "\n"  # keep the key, switch to Anthropic
    r = CliRunner().invoke(setup, ["-o", str(out), "--no-test"], input=answers)
    assert r.exit_code == 0, r.output
    values = load_config(config_file=out, environ={}).values
    assert values["AURA_API_KEY"] == secret and values["AURA_API_PROVIDER"] == "anthropic"
    assert values["AURA_API_BASE_URL"] == "https://api.anthropic.com" and values["AURA_BUDGET_USD"] == "7"
    assert secret not in r.output


def test_read_commands_never_import_the_model_sdk(tmp_path: Path) -> None:
    (tmp_path / ".aura" / "state").mkdir(parents=True)
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom aura.cli import cli\n"
        "for args in (['status'], ['ps'], ['wake'], ['history'], ['progress'], ['budget'], ['changelog'],"
        " ['summaries'], ['top', '--once'], ['report', '--out', sys.argv[1] + '/r.html']):\n"
        "    CliRunner().invoke(cli, ['--project', sys.argv[1], *args])\n"
        "print('anthropic' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), HOME=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.stdout.strip().splitlines()[-1] == "False", proc.stdout + proc.stderr


def test_the_running_tasks_follow_every_status_change_and_a_reload(brain: Any) -> None:
    """`running()` is an index kept by set_status, not a walk of the tree: it must still name
    exactly the tasks in progress, in the order they started, before and after a restart."""
    daemon, core, _ = brain()
    for tid in ("A", "B", "C"):
        core.add_task(tid, f"task {tid}")
    core.set_status(core.tasks["C"], "in_progress", "started", "unit")
    core.set_status(core.tasks["A"], "in_progress", "started", "unit")
    assert [t["id"] for t in core.running()] == ["C", "A"]
    core.set_status(core.tasks["C"], "completed", "done", "unit")
    core.set_status(core.tasks["B"], "in_progress", "started", "unit")
    assert [t["id"] for t in core.running()] == ["A", "B"]
    core.store.flush(core.state)
    again = BrainCore(core.paths, core.cfg, daemon.log, daemon.publish, daemon.ctx)
    assert sorted(t["id"] for t in again.running()) == ["A", "B"]
    again.store.close()


def test_persisting_takes_a_bounded_share_of_the_brain_whatever_it_costs() -> None:
    """A cheap persist runs once the brain is quiet, or each second while it is busy; a costly one
    (a big tree's progress.md or snapshot) waits until it is SNAPSHOT_SHARE of the time since."""
    assert persist_due(0.2, 0.001, quiet=True)
    assert not persist_due(0.2, 0.001, quiet=False) and persist_due(SNAPSHOT_EVERY, 0.001, quiet=False)
    took = 0.2  # 4 s apart at a 5% share, quiet or busy
    wait = took / SNAPSHOT_SHARE
    assert wait > SNAPSHOT_EVERY
    assert not persist_due(SNAPSHOT_EVERY, took, quiet=True) and not persist_due(wait * 0.99, took, quiet=False)
    assert persist_due(wait, took, quiet=True) and persist_due(wait, took, quiet=False)


def test_a_note_on_an_ended_task_is_journaled_by_the_request_that_made_it(brain: Any) -> None:
    """A sweep reaches a task that ended long ago only in its turn, so a person's note on one must
    be saved by the `task` request itself: replayed from the journal at once, with no sweep."""
    from aura.brain.ops.task import task as task_op
    from aura.brain.state import read_state

    daemon, core, _ = brain()
    for tid in ("A", "B"):
        core.add_task(tid, f"task {tid}")
        core.set_status(core.tasks[tid], "completed", "done", "unit")
    core.store.flush(core.state)
    core.store.saved.settling.clear()  # both ended long ago
    task_op(daemon, {"action": "note", "task_id": "A", "text": "look at the log too", "parent": "", "accept": []})
    notes = (read_state(core.paths.state_dir) or {})["tasks"]["A"].get("notes") or []
    assert [n["text"] for n in notes] == ["look at the log too"]
