"""The ``claude -p`` stream-json parser, on real captured output and on synthetic edge cases.

Why: the supervisor's verdict on a worker (and the brain's token accounting) comes from this parser;
the fixtures are what claude 2.1.197 really printed (tests/real/test_claude_cli_real.py captures them).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import msgpack
import pytest

from aura.supervisor.streams import OUTCOMES, ClaudeStream, classify_claude

FIXTURES = Path(__file__).parents[1] / "fixtures" / "claude"


def load(name: str) -> tuple[ClaudeStream, list[dict[str, Any]]]:
    lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines()
    stream = ClaudeStream()
    for line in lines:
        stream.feed(line)
    return stream, [json.loads(line) for line in lines]


def assistant(msg_id: str, content: list[dict[str, Any]], usage: dict[str, int] | None = None) -> str:
    message = {"id": msg_id, "model": "claude-x", "content": content,
               "usage": usage or {"input_tokens": 10, "output_tokens": 1}}  # fmt: skip
    return json.dumps({"type": "assistant", "message": message, "session_id": "s1"})


def tool(name: str, tool_input: dict[str, Any], tool_id: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}


# --------------------------------------------------------------------------- real output


def test_success_fixture() -> None:
    stream, events = load("success.jsonl")
    init, result = events[0], events[-1]
    assert stream.session_id == init["session_id"] and stream.model == init["model"]
    assert stream.cli_version == "2.1.197"
    assert stream.turns == 3 == stream.assistant_messages
    assert stream.input_tokens == result["usage"]["input_tokens"]
    assert stream.output_tokens == result["usage"]["output_tokens"]
    assert stream.cache_write_tokens == result["usage"]["cache_creation_input_tokens"]
    assert stream.cache_read_tokens == result["usage"]["cache_read_input_tokens"] > 0
    assert stream.total_cost_usd == result["total_cost_usd"] > 0
    assert stream.last_tool == "Bash" and stream.tool_counts == {"Write": 1, "Bash": 1}
    assert stream.last_text == result["result"]
    assert stream.bad_lines == 0 and stream.lines == len(events)
    fields = stream.result_fields()
    assert fields is not None and (fields["subtype"], fields["is_error"]) == ("success", False)
    assert fields["num_turns"] == 3 and fields["duration_ms"] == result["duration_ms"]
    assert classify_claude(stream.result, 0, None) == "succeeded"


def test_summary_is_msgpack_friendly() -> None:
    stream, _ = load("success.jsonl")
    summary = stream.summary()
    assert msgpack.unpackb(msgpack.packb(summary), strict_map_key=False) == summary
    assert summary["result"]["subtype"] == "success" and summary["tool_counts"]["Write"] == 1


def test_api_error_fixture() -> None:
    stream, events = load("api_error.jsonl")
    assert stream.assistant_messages == 0  # the CLI's synthetic error message is not a model turn
    assert stream.api_retries == 1
    assert stream.last_api_error == events[-2]["error"]
    assert stream.result is not None and stream.result["api_error_status"] == 529
    assert stream.total_cost_usd == 0
    assert stream.last_text.startswith("API Error: 529")
    assert classify_claude(stream.result, 1, None) == "api_error"


def test_max_turns_fixture() -> None:
    stream, _ = load("max_turns.jsonl")
    assert stream.assistant_messages == 1
    assert stream.turns == 2  # the CLI counts the turn it refused to start
    assert stream.output_tokens > 1  # the result's final usage replaced message_start's figure
    assert stream.result_fields()["subtype"] == "error_max_turns"  # type: ignore[index]
    assert classify_claude(stream.result, 1, None) == "turns_exceeded"


def test_killed_fixture_falls_back_to_message_usage() -> None:
    stream, events = load("killed.jsonl")
    assert stream.result is None and stream.result_fields() is None and stream.total_cost_usd is None
    usage = events[1]["message"]["usage"]
    assert stream.input_tokens == usage["input_tokens"]
    assert stream.cache_write_tokens == usage["cache_creation_input_tokens"]
    assert stream.turns == 1 and stream.last_tool == "Bash"
    assert classify_claude(stream.result, 143, None) == "killed"


def test_chunks_give_the_same_summary_as_lines() -> None:
    text = (FIXTURES / "success.jsonl").read_text(encoding="utf-8")
    by_line, _ = load("success.jsonl")
    for size in (1, 7, 4096):
        chunked = ClaudeStream()
        for i in range(0, len(text), size):
            chunked.feed_text(text[i : i + size])
        chunked.close()
        assert chunked.summary() == by_line.summary()


# --------------------------------------------------------------------------- synthetic edges


def test_garbage_and_partial_lines_are_counted_and_ignored() -> None:
    stream = ClaudeStream()
    stream.feed(json.dumps({"type": "system", "subtype": "init", "session_id": "s1", "model": "m"}))
    for junk in ["not json", "[1, 2]", '{"type": "assistant", "mess', "\x00\x01", "   "]:
        assert stream.feed(junk) is None
    stream.feed(assistant("m1", [{"type": "text", "text": "still parsing"}]))
    assert stream.bad_lines == 4  # the blank line is not garbage
    assert stream.lines == 2 and stream.last_text == "still parsing" and stream.session_id == "s1"


def test_partial_last_line_when_output_ends() -> None:
    stream = ClaudeStream()
    stream.feed_text(assistant("m1", [{"type": "text", "text": "a"}]) + "\n" + '{"type": "res')
    assert stream.lines == 1 and stream.bad_lines == 0  # still waiting for the rest of the line
    stream.close()
    assert stream.bad_lines == 1 and stream.result is None


def test_usage_is_deduplicated_by_message_id_without_result() -> None:
    stream = ClaudeStream()
    usage = {"input_tokens": 100, "output_tokens": 2, "cache_creation_input_tokens": 50, "cache_read_input_tokens": 7}
    stream.feed(assistant("m1", [{"type": "text", "text": "first block"}], usage))
    stream.feed(assistant("m1", [tool("Read", {"p": 1}, "t1")], usage))  # same message, next block
    stream.feed(assistant("m2", [{"type": "text", "text": "second message"}], usage))
    assert stream.assistant_messages == 2 and stream.turns == 2
    assert (stream.input_tokens, stream.output_tokens) == (200, 4)
    assert (stream.cache_write_tokens, stream.cache_read_tokens) == (100, 14)
    assert stream.last_text == "second message"


def test_result_without_usage_keeps_summed_usage() -> None:
    stream = ClaudeStream()
    stream.feed(assistant("m1", [{"type": "text", "text": "x"}], {"input_tokens": 5, "output_tokens": 3}))
    stream.feed(json.dumps({"type": "result", "subtype": "success", "is_error": False, "num_turns": 1}))
    assert (stream.input_tokens, stream.output_tokens) == (5, 3)
    assert stream.total_cost_usd is None


def test_last_text_joins_blocks_of_one_message_and_is_short() -> None:
    stream = ClaudeStream()
    stream.feed(assistant("m1", [{"type": "text", "text": "part one"}]))
    stream.feed(assistant("m1", [{"type": "text", "text": "part two"}]))
    assert stream.last_text == "part one\npart two"
    stream.feed(assistant("m2", [{"type": "text", "text": "y" * 2000}]))
    assert stream.last_text == "y" * 500


def test_consecutive_identical_tool_calls_are_counted() -> None:
    stream = ClaudeStream()
    for i in range(3):
        stream.feed(assistant(f"m{i}", [tool("Bash", {"command": "make test"}, f"t{i}")]))
    assert stream.repeat_count == 3 and stream.max_repeat == 3
    assert stream.last_call == {"name": "Bash", "input": {"command": "make test"}}
    stream.feed(assistant("m3", [tool("Bash", {"command": "make test"}, "t2")]))  # a re-printed block
    assert stream.repeat_count == 3
    stream.feed(assistant("m4", [tool("Bash", {"command": "make lint"}, "t4")]))
    assert stream.repeat_count == 1 and stream.max_repeat == 3
    stream.feed(assistant("m5", [tool("Read", {"command": "make lint"}, "t5")]))
    assert stream.repeat_count == 1 and stream.tool_counts == {"Bash": 4, "Read": 1}


def test_key_order_in_tool_input_does_not_hide_a_loop() -> None:
    stream = ClaudeStream()
    stream.feed(assistant("m1", [tool("Edit", {"a": 1, "b": 2}, "t1")]))
    stream.feed(assistant("m2", [tool("Edit", {"b": 2, "a": 1}, "t2")]))
    assert stream.repeat_count == 2


def test_api_retry_events_are_counted() -> None:
    stream = ClaudeStream()
    for attempt in (1, 2):
        stream.feed(json.dumps({"type": "system", "subtype": "api_retry", "attempt": attempt,
                                "error_status": 429, "error": "rate_limit"}))  # fmt: skip
    assert stream.api_retries == 2 and stream.last_api_error == "rate_limit"


# --------------------------------------------------------------------------- outcome


def result(subtype: str, is_error: bool, text: str = "", status: int | None = None) -> dict[str, Any]:
    return {"subtype": subtype, "is_error": is_error, "result": text, "api_error_status": status}


@pytest.mark.parametrize(
    ("fields", "exit_code", "sig", "expected"),
    [
        (result("success", False, "done"), 0, None, "succeeded"),
        (result("success", False, "done"), 143, None, "succeeded"),  # killed after printing its result
        (result("success", True, "API Error: 529 Overloaded", 529), 1, None, "api_error"),
        (result("success", True, "API Error: 500 boom"), 1, None, "api_error"),
        (result("success", True, "API Error: Request rejected (429) · rate limit", 429), 1, None, "rate_limited"),
        (result("success", True, "Claude AI usage limit reached|1700000000"), 1, None, "rate_limited"),
        (result("success", True, "API Error: Rate limit reached"), 1, None, "rate_limited"),
        (result("error_max_turns", True), 1, None, "turns_exceeded"),
        (result("error_max_budget_usd", True), 1, None, "budget_exceeded"),
        (result("error_during_execution", True, "tool crashed"), 1, None, "failed"),
        (result("success", True, "something odd"), 1, None, "failed"),
        ({"subtype": "success"}, 0, None, "unknown"),  # no is_error: not proven successful
        (None, 143, None, "killed"),
        (None, 137, None, "killed"),
        (None, -15, None, "killed"),
        (None, None, signal.SIGKILL, "killed"),
        (None, None, signal.SIGSEGV, "failed"),
        (None, 1, None, "failed"),
        (None, 0, None, "unknown"),
        (None, None, None, "lost"),
        (None, 124, None, "timed_out"),
    ],
)
def test_classify(fields: dict[str, Any] | None, exit_code: int | None, sig: int | None, expected: str) -> None:
    assert classify_claude(fields, exit_code, sig) == expected
    assert expected in OUTCOMES


def test_classify_timed_out_flag() -> None:
    assert classify_claude(None, 143, None, timed_out=True) == "timed_out"
    assert classify_claude(result("success", False), 143, None, timed_out=True) == "succeeded"
    assert classify_claude(result("error_max_turns", True), 1, None, timed_out=True) == "turns_exceeded"
