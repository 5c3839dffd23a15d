"""The real Claude Code CLI against Aura's scripted server.

Why: proves that the scripted server is a model the real CLI accepts, records how the CLI reports
success, API failure, the turn cap and a kill, and feeds that real output to the stream parser.
Set ``AURA_UPDATE_FIXTURES=1`` to rewrite tests/fixtures/claude/*.jsonl from these runs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from aura.scripted_server import ScriptedServer
from aura.supervisor.streams.claude import ClaudeStream, classify_claude
from tests.support.claude_cli import ClaudeRun, claude_version, require_claude_cli, run_claude, sanitize

FIXTURES = Path(__file__).parents[1] / "fixtures" / "claude"


@pytest.fixture(scope="module")
def claude() -> Path:
    return require_claude_cli()


@pytest.fixture()
def dirs(tmp_path: Path) -> dict[str, Path]:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    return {"root": tmp_path, "work": work, "home": home}


def _save_fixture(name: str, run: ClaudeRun, root: Path) -> None:
    """Keep the real output for other parsers' tests, with temp paths replaced by placeholders."""
    if os.environ.get("AURA_UPDATE_FIXTURES") != "1":
        return
    FIXTURES.mkdir(parents=True, exist_ok=True)
    replacements = {}
    for path in {str(root), str(root.resolve())}:
        replacements[path] = "<TMP>"
        replacements[re.sub(r"[^A-Za-z0-9]", "-", path)] = "<TMP>"  # the CLI's project-folder name
    (FIXTURES / name).write_text(sanitize(run.stdout, replacements), encoding="utf-8")


def _parse(run: ClaudeRun) -> ClaudeStream:
    stream = ClaudeStream()
    for line in run.stdout.splitlines():
        stream.feed(line)
    return stream


def _messages(server: ScriptedServer) -> list[dict[str, Any]]:
    return server.messages_requests()


def test_cli_version_is_reported(claude: Path) -> None:
    assert claude_version(claude).split()[0].count(".") == 2


def test_write_and_bash_then_success(claude: Path, dirs: dict[str, Path]) -> None:
    work = dirs["work"]
    script = {
        "steps": [
            {"tool": "Write", "input": {"file_path": str(work / "result.md"), "content": "# Result\n\nall good\n"}},
            {"tool": "Bash", "input": {"command": "echo $((6 * 7)) > ran.txt", "description": "compute"}},
            {"text": "Wrote result.md and ran the command."},
        ]
    }
    with ScriptedServer(script) as server:
        run = run_claude(claude, "Write result.md, then run a command.", base_url=server.url,
                         cwd=work, home=dirs["home"], max_turns=5)  # fmt: skip
        requests = _messages(server)
    _save_fixture("success.jsonl", run, dirs["root"])

    assert run.returncode == 0, run.stderr
    assert (work / "result.md").read_text() == "# Result\n\nall good\n"
    assert (work / "ran.txt").read_text().strip() == "42"
    assert run.events[0]["type"] == "system" and run.events[0]["subtype"] == "init"
    assert run.result is not None and run.events[-1] is run.result
    assert run.result["subtype"] == "success" and run.result["is_error"] is False
    assert run.result["num_turns"] == 3
    assert run.result["result"] == "Wrote result.md and ran the command."
    # The CLI streamed, sent the tool results back, and kept cache_control markers on its prompt.
    assert len(requests) == 3 and all(r["body"]["stream"] is True for r in requests)
    tool_results = [b for b in requests[2]["body"]["messages"][-1]["content"] if b.get("type") == "tool_result"]
    assert tool_results and tool_results[0]["is_error"] is False
    assert '"cache_control"' in str(requests[0]["body"]).replace("'", '"')
    assert requests[0]["headers"]["x-api-key"] == "***"

    stream = _parse(run)
    assert classify_claude(stream.result, run.returncode, None) == "succeeded"
    assert stream.tool_counts == {"Write": 1, "Bash": 1} and stream.last_tool == "Bash"
    assert stream.cache_read_tokens > 0  # the scripted server's cache simulation reached the CLI


def test_overloaded_api_is_an_error_result(claude: Path, dirs: dict[str, Path]) -> None:
    script = {"steps": [], "default": {"error": {"status": 529, "message": "Overloaded"}}}
    with ScriptedServer(script) as server:
        run = run_claude(claude, "Do anything.", base_url=server.url, cwd=dirs["work"], home=dirs["home"],
                         extra_env={"CLAUDE_CODE_MAX_RETRIES": "1"})  # fmt: skip
        requests = _messages(server)
    _save_fixture("api_error.jsonl", run, dirs["root"])

    assert run.returncode == 1
    assert run.result is not None
    # claude 2.1.x reports an API failure as subtype "success" with is_error true.
    assert run.result["is_error"] is True and run.result["api_error_status"] == 529
    assert len(requests) == 2  # one try, one retry
    assert [e["error_status"] for e in run.events if e.get("subtype") == "api_retry"] == [529]
    assert classify_claude(_parse(run).result, run.returncode, None) == "api_error"


def test_rate_limit_is_classified(claude: Path, dirs: dict[str, Path]) -> None:
    err = {"status": 429, "message": "Number of requests has exceeded your rate limit", "retry_after": 0}
    with ScriptedServer({"default": {"error": err}}) as server:
        run = run_claude(claude, "Do anything.", base_url=server.url, cwd=dirs["work"], home=dirs["home"],
                         extra_env={"CLAUDE_CODE_MAX_RETRIES": "0"})  # fmt: skip
    assert run.returncode == 1 and run.result is not None
    assert run.result["api_error_status"] == 429
    assert classify_claude(_parse(run).result, run.returncode, None) == "rate_limited"


def test_max_turns_stops_the_cli(claude: Path, dirs: dict[str, Path]) -> None:
    script = {
        "steps": [
            {"tool": "Bash", "input": {"command": "echo first > first.txt"}},
            {"tool": "Bash", "input": {"command": "echo second > second.txt"}},
            {"text": "never reached"},
        ]
    }
    with ScriptedServer(script) as server:
        run = run_claude(claude, "Run two commands.", base_url=server.url, cwd=dirs["work"],
                         home=dirs["home"], max_turns=1)  # fmt: skip
        left = server.remaining("default")
    _save_fixture("max_turns.jsonl", run, dirs["root"])

    assert run.returncode == 1
    assert run.result is not None and run.result["subtype"] == "error_max_turns"
    assert run.result["is_error"] is True
    assert (dirs["work"] / "first.txt").exists() and not (dirs["work"] / "second.txt").exists()
    assert left == 2
    assert classify_claude(_parse(run).result, run.returncode, None) == "turns_exceeded"


def test_sigterm_leaves_no_result_line(claude: Path, dirs: dict[str, Path]) -> None:
    script = {"steps": [{"tool": "Bash", "input": {"command": "echo one"}}, {"hang": True}]}
    with ScriptedServer(script) as server:
        run = run_claude(claude, "Work until stopped.", base_url=server.url, cwd=dirs["work"],
                         home=dirs["home"], timeout=60,
                         interrupt_when=lambda: len(server.messages_requests()) >= 2)  # fmt: skip
    _save_fixture("killed.jsonl", run, dirs["root"])

    assert run.returncode == 143
    assert run.result is None
    stream = _parse(run)
    assert stream.last_tool == "Bash" and stream.turns == 1
    assert classify_claude(stream.result, run.returncode, None) == "killed"


def test_brain_and_worker_share_one_server(claude: Path, dirs: dict[str, Path]) -> None:
    """Routes keep the brain's script and the worker's script apart on one server."""
    import anthropic

    script = {
        "routes": [
            {"name": "worker", "match": {"user_agent": "claude-cli", "first_user": "TASK-7"},
             "steps": [{"tool": "Bash", "input": {"command": "touch evidence.txt"}}, {"text": "task 7 done"}]},
            {"name": "brain", "match": {"system": "AURA BRAIN"},
             "steps": [{"text": "spawn worker"}, {"text": "worker finished, task complete"}]},
        ]
    }  # fmt: skip
    with ScriptedServer(script) as server:
        brain = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)

        def think() -> str:
            msg = brain.messages.create(model="brain-model", max_tokens=100, system="You are AURA BRAIN.",
                                        messages=[{"role": "user", "content": "status?"}])  # fmt: skip
            return msg.content[0].text

        assert think() == "spawn worker"
        run = run_claude(claude, "TASK-7: make the evidence file.", base_url=server.url,
                         cwd=dirs["work"], home=dirs["home"])  # fmt: skip
        assert think() == "worker finished, task complete"
        routes = [r["route"] for r in server.messages_requests()]
    assert run.returncode == 0 and run.result is not None and run.result["result"] == "task 7 done"
    assert (dirs["work"] / "evidence.txt").exists()
    assert routes == ["brain", "worker", "worker", "brain"]


# --------------------------------------------------------------------------- the fixture helper itself


@pytest.fixture()
def fresh_helper(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """claude_cli with its memo cleared and its cache in a temp folder."""
    from tests.support import claude_cli

    monkeypatch.setattr(claude_cli, "_state", {"checked": False, "path": None, "reason": ""})
    monkeypatch.setenv("AURA_TEST_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("AURA_CLAUDE_BIN", raising=False)
    return claude_cli


def test_missing_npm_gives_none_with_a_reason(fresh_helper: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fresh_helper.shutil, "which", lambda name: None)
    assert fresh_helper.ensure_claude_cli() is None
    assert "npm" in fresh_helper.unavailable_reason()


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_cli_fails_under_ci_else_skips(
    fresh_helper: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str, outcome: type
) -> None:
    monkeypatch.setenv("AURA_CLAUDE_BIN", str(tmp_path / "no-such-claude"))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="unavailable"):
        fresh_helper.require_claude_cli()


def test_find_binary_prefers_the_platform_package(fresh_helper: Any, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    assert fresh_helper.find_binary(prefix) is None
    stub = prefix / "node_modules" / "@anthropic-ai" / "claude-code" / "bin" / "claude.exe"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\necho stub\n")
    stub.chmod(0o755)
    assert fresh_helper.find_binary(prefix) is None  # the small postinstall placeholder is not the CLI
    package = fresh_helper._platform_packages()[0]
    native = prefix / "node_modules" / package / "claude"
    native.parent.mkdir(parents=True)
    native.write_bytes(b"\x7fELF")
    native.chmod(0o755)
    assert fresh_helper.find_binary(prefix) == native


def test_sanitize_hides_paths_and_ports() -> None:
    text = '{"cwd":"/tmp/x/work","msg":"gateway (127.0.0.1:45678)"}'
    assert sanitize(text, {"/tmp/x": "<TMP>"}) == '{"cwd":"<TMP>/work","msg":"gateway (127.0.0.1:<PORT>)"}'
