"""The scripted server, driven through the real ``anthropic`` SDK.

Why: every other Aura test trusts this server to behave like the Messages API; if the SDK parses its
replies, raises the right exceptions and sees believable usage numbers, those tests mean something.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from aura.scripted_server import ScriptedServer, ScriptError, load_script

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture()
def serve() -> Iterator[Any]:
    """Start servers on demand; stop every one at the end of the test."""
    started: list[ScriptedServer] = []

    def start(script: Any = None, **kwargs: Any) -> ScriptedServer:
        server = ScriptedServer(script, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def client(server: ScriptedServer, **kwargs: Any) -> anthropic.Anthropic:
    kwargs.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=server.url, api_key="sk-test-secret", **kwargs)


def ask(c: anthropic.Anthropic, messages: list[dict[str, Any]] = USER, **kwargs: Any) -> Any:
    return c.messages.create(model="claude-test", max_tokens=256, messages=messages, **kwargs)


# --------------------------------------------------------------------------- replies


def test_text_reply_non_streaming(serve: Any) -> None:
    server = serve({"steps": [{"text": "hello from the script"}]})
    reply = ask(client(server))
    assert reply.content[0].type == "text" and reply.content[0].text == "hello from the script"
    assert reply.stop_reason == "end_turn" and reply.role == "assistant"
    assert reply.model == "claude-test" and reply.id.startswith("msg_")
    assert reply.usage.output_tokens == len("hello from the script") // 4 + 1
    # The steps ran out: the built-in default answers.
    assert ask(client(server)).content[0].text == "done"


def test_input_tokens_follow_request_size(serve: Any) -> None:
    server = serve()
    short = ask(client(server)).usage.input_tokens
    long = ask(client(server), [{"role": "user", "content": "x" * 4000}]).usage.input_tokens
    assert 1 <= short < 20
    assert 1000 <= long <= 1020


def test_streaming_text_is_split_into_deltas(serve: Any) -> None:
    text = "a streamed answer that is long enough to need several text deltas"
    server = serve({"steps": [{"text": text}, {"text": text}]})
    c = client(server)
    with c.messages.stream(model="claude-test", max_tokens=256, messages=USER) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == text
    assert final.content[0].text == text and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 1  # message_delta's figure replaced message_start's
    events = [e.type for e in ask(c, stream=True)]
    assert events[:2] == ["message_start", "content_block_start"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert "content_block_delta" in events


@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_round_trip(serve: Any, stream: bool) -> None:
    big_input = {"file_path": "/w/notes.md", "content": "ünïcode ✓ " * 40, "nested": {"n": [1, 2, 3]}}
    script = {
        "steps": [
            {"text": "Let me write two files.",
             "tool_use": [{"name": "Write", "input": big_input}, {"name": "Bash", "input": {"command": "ls"}}]},
            {"text": "Both done."},
        ]
    }  # fmt: skip
    server = serve(script)
    c = client(server)
    tools = [{"name": n, "description": n, "input_schema": {"type": "object"}} for n in ("Write", "Bash")]
    if stream:
        with c.messages.stream(model="claude-test", max_tokens=256, messages=USER, tools=tools) as s:
            first = s.get_final_message()
    else:
        first = ask(c, tools=tools)
    assert first.stop_reason == "tool_use"
    text, write, bash = first.content
    assert text.text == "Let me write two files."
    assert (write.name, write.input) == ("Write", big_input)
    assert (bash.name, bash.input) == ("Bash", {"command": "ls"})
    assert write.id.startswith("toolu_") and write.id != bash.id

    results = [{"type": "tool_result", "tool_use_id": b.id, "content": "ok"} for b in (write, bash)]
    history = [*USER, {"role": "assistant", "content": first.content}, {"role": "user", "content": results}]
    second = ask(c, history, tools=tools)
    assert second.content[0].text == "Both done."
    sent = server.requests[-1]["body"]["messages"][-1]["content"]
    assert [r["tool_use_id"] for r in sent] == [write.id, bash.id]


def test_shorthand_tool_step_and_overrides(serve: Any) -> None:
    step = {"tool": "Read", "input": {"path": "a"}, "usage": {"output_tokens": 77}, "model": "other-model"}
    server = serve({"steps": [step, {"text": "cut", "stop_reason": "max_tokens"}]})
    reply = ask(client(server))
    assert reply.content[0].name == "Read" and reply.stop_reason == "tool_use"
    assert reply.usage.output_tokens == 77 and reply.model == "other-model"
    assert ask(client(server)).stop_reason == "max_tokens"


# --------------------------------------------------------------------------- errors and timing


def test_rate_limit_error_with_retry_after(serve: Any) -> None:
    server = serve({"steps": [{"error": {"status": 429, "message": "slow down", "retry_after": 7}}]})
    with pytest.raises(anthropic.RateLimitError) as info:
        ask(client(server))
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.body["error"] == {"type": "rate_limit_error", "message": "slow down"}


@pytest.mark.parametrize(
    ("status", "exc", "kind"),
    [(529, anthropic.OverloadedError, "overloaded_error"), (500, anthropic.InternalServerError, "api_error"),
     (401, anthropic.AuthenticationError, "authentication_error")],
)  # fmt: skip
def test_error_statuses_map_to_sdk_exceptions(serve: Any, status: int, exc: type, kind: str) -> None:
    server = serve({"steps": [{"error": {"status": status}}]})
    with pytest.raises(exc) as info:
        ask(client(server))
    assert info.value.status_code == status and info.value.body["error"]["type"] == kind


def test_sdk_retries_then_succeeds(serve: Any) -> None:
    script = {"steps": [{"error": {"status": 529, "retry_after": 0.1}, "repeat": 2}, {"text": "third time"}]}
    server = serve(script)
    start = time.monotonic()
    reply = ask(client(server, max_retries=2))
    assert reply.content[0].text == "third time"
    assert time.monotonic() - start >= 0.2  # honoured retry-after twice
    counts = [r["headers"].get("x-stainless-retry-count") for r in server.messages_requests()]
    assert counts == ["0", "1", "2"]
    assert [r["status"] for r in server.requests] == [529, 529, 200]


def test_delay_causes_client_timeout_and_stop_is_prompt(serve: Any) -> None:
    server = serve({"steps": [{"delay": 30, "text": "too late"}, {"delay": 0.2, "text": "in time"}]})
    with pytest.raises(anthropic.APITimeoutError):
        ask(client(server, timeout=0.5))
    assert ask(client(server, timeout=5)).content[0].text == "in time"
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 3


def test_hang_never_answers_until_stopped(serve: Any) -> None:
    server = serve({"steps": [{"hang": True}]})
    errors: list[BaseException] = []

    def call() -> None:
        try:
            ask(client(server, timeout=60))
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(1.0)
    assert worker.is_alive() and len(server.requests) == 1
    server.stop()
    worker.join(timeout=10)
    assert not worker.is_alive() and isinstance(errors[0], anthropic.APIConnectionError)


def test_hang_mid_stream_sends_message_start_then_stalls(serve: Any) -> None:
    server = serve({"steps": [{"text": "never finished", "hang": "mid_stream"}]})
    seen: list[str] = []
    # A read timeout while iterating surfaces as the HTTP library's own exception, not the SDK's.
    with pytest.raises(Exception) as info:
        for event in ask(client(server, timeout=1.0), stream=True):
            seen.append(event.type)
    assert "Timeout" in type(info.value).__name__
    assert seen == ["message_start"]


# --------------------------------------------------------------------------- recording


def test_requests_are_recorded_with_secrets_masked(serve: Any, tmp_path: Path) -> None:
    record = tmp_path / "requests.jsonl"
    server = serve({"steps": [{"text": "one"}, {"error": {"status": 529}}]}, record_path=record)
    c = client(server)
    ask(c, system="SYS", extra_query={"beta": "true"})  # as the Claude Code CLI sends it
    with pytest.raises(anthropic.OverloadedError):
        ask(c)
    first, second = server.requests
    assert (first["method"], first["path"], first["query"]) == ("POST", "/v1/messages", "beta=true")
    assert first["body"]["system"] == "SYS" and first["body"]["max_tokens"] == 256
    assert first["route"] == "default" and first["step"] == 0 and first["status"] == 200
    assert second["step"] == 1 and second["status"] == 529
    secret_headers = [h for h in ("x-api-key", "authorization") if h in first["headers"]]
    assert secret_headers and all(first["headers"][h] == "***" for h in secret_headers)
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [line["status"] for line in lines] == [200, 529]
    assert "sk-test-secret" not in record.read_text()
    assert lines[0]["body"]["messages"] == USER


def test_other_endpoints(serve: Any) -> None:
    server = serve({"routes": [{"match": {"model": "claude-brain"}, "steps": []}]})
    c = client(server)
    counted = c.messages.count_tokens(model="claude-test", messages=[{"role": "user", "content": "y" * 400}])
    assert 100 <= counted.input_tokens <= 115
    assert [m.id for m in c.models.list()] == ["claude-brain"]
    with pytest.raises(anthropic.NotFoundError):
        c.get("/v1/nowhere", cast_to=object)
    assert [r["path"] for r in server.requests] == ["/v1/messages/count_tokens", "/v1/models", "/v1/nowhere"]
    assert server.messages_requests() == []  # count_tokens consumed no step


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]"])
def test_bad_json_body_is_a_400(serve: Any, payload: bytes) -> None:
    import urllib.error
    import urllib.request

    server = serve()
    request = urllib.request.Request(server.url + "/v1/messages", data=payload, method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 400
    assert json.loads(info.value.read())["error"]["type"] == "invalid_request_error"
    assert server.requests[0]["route"] is None  # no step was consumed


# --------------------------------------------------------------------------- caching


def _cached_call(c: anthropic.Anthropic, system: str, messages: list[Any], model: str = "claude-test") -> Any:
    blocks = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
    return c.messages.create(model=model, max_tokens=10, system=blocks, messages=messages).usage


def test_prompt_cache_write_then_read(serve: Any) -> None:
    server = serve()
    c = client(server)
    system = "s" * 4000
    first = _cached_call(c, system, USER)
    assert first.cache_read_input_tokens == 0 and 1000 <= first.cache_creation_input_tokens <= 1010
    second = _cached_call(c, system, USER)
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    assert second.input_tokens == first.input_tokens > 0  # the part after the marker
    other_model = _cached_call(c, system, USER, model="claude-other")
    assert other_model.cache_read_input_tokens == 0  # caches are per model
    changed = _cached_call(c, system + "!", USER)
    assert changed.cache_read_input_tokens == 0  # any change before the marker is a miss
    assert '"cache_control"' in json.dumps(server.requests[0]["body"])


def test_prompt_cache_moving_marker_reads_earlier_prefix(serve: Any) -> None:
    """A growing conversation with the marker on its newest message reads the previous prefix back."""
    server = serve()
    c = client(server)
    history: list[dict[str, Any]] = []

    def turn(i: int) -> tuple[Any, int]:
        for message in history:  # only the newest message carries the marker
            if message["role"] == "user":
                message["content"][0].pop("cache_control", None)
        text = {"type": "text", "text": f"question {i} " + "q" * 400, "cache_control": {"type": "ephemeral"}}
        history.append({"role": "user", "content": [text]})
        usage = c.messages.create(model="claude-test", max_tokens=10, messages=history).usage
        size = c.messages.count_tokens(model="claude-test", messages=history).input_tokens
        history.append({"role": "assistant", "content": f"answer {i} " + "a" * 400})
        return usage, size

    first, first_size = turn(0)
    assert first.cache_read_input_tokens == 0 and first.cache_creation_input_tokens == first_size
    second, second_size = turn(1)
    assert second.cache_read_input_tokens == first_size  # found by looking back from the new marker
    assert second.cache_creation_input_tokens == second_size - first_size
    assert second.input_tokens == 0
    history[0]["content"][0]["text"] += " edited"
    third, _ = turn(2)
    assert third.cache_read_input_tokens == 0  # a change at the start invalidates everything after it


def test_no_marker_means_no_caching_and_min_tokens(serve: Any) -> None:
    server = serve({"cache": {"min_tokens": 2000}})
    c = client(server)
    plain = c.messages.create(model="claude-test", max_tokens=10, system="s" * 4000, messages=USER).usage
    assert plain.cache_creation_input_tokens == 0 and plain.input_tokens > 1000
    for _ in range(2):
        short = _cached_call(c, "s" * 4000, USER)  # about 1000 tokens: under min_tokens
        assert short.cache_creation_input_tokens == 0 and short.cache_read_input_tokens == 0
    _cached_call(c, "s" * 9000, USER)
    assert _cached_call(c, "s" * 9000, USER).cache_read_input_tokens > 2000


# --------------------------------------------------------------------------- routes


def test_routes_consume_their_own_steps(serve: Any) -> None:
    script = {
        "routes": [
            {"name": "brain", "match": {"system": "AURA BRAIN"}, "steps": [{"text": "b1"}, {"text": "b2"}],
             "default": {"text": "brain idle"}},
            {"name": "worker", "match": {"has_tool": "Bash", "first_user": "fix"}, "steps": [{"text": "w1"}]},
        ],
        "default": {"text": "nobody"},
    }  # fmt: skip
    server = serve(script)
    c = client(server)
    bash = [{"name": "Bash", "description": "shell", "input_schema": {"type": "object"}}]

    def brain() -> str:
        return ask(c, system="You are AURA BRAIN.").content[0].text

    def worker() -> str:
        return ask(c, [{"role": "user", "content": "please fix it"}], tools=bash).content[0].text

    assert [brain(), worker(), brain(), worker(), brain()] == ["b1", "w1", "b2", "nobody", "brain idle"]
    assert ask(c).content[0].text == "nobody"  # matches no route
    assert [r["route"] for r in server.requests] == ["brain", "worker", "brain", "worker", "brain", None]
    assert server.remaining("brain") == 0 and server.remaining("worker") == 0
    assert len(server.messages_requests("worker")) == 2


def test_route_match_by_model_and_repeat(serve: Any) -> None:
    script = {"routes": [{"name": "opus", "match": {"model": "opus"}, "steps": [{"text": "o", "repeat": 3}]}]}
    server = serve(script)
    c = client(server)
    texts = [c.messages.create(model="claude-opus-9", max_tokens=5, messages=USER).content[0].text for _ in range(4)]
    assert texts == ["o", "o", "o", "done"]
    assert ask(c).content[0].text == "done" and server.requests[-1]["route"] is None


def test_route_match_by_user_agent(serve: Any) -> None:
    cli = {"name": "cli", "match": {"user_agent": "claude-cli"}, "steps": [{"text": "cli"}]}
    sdk = {"name": "sdk", "match": {"user_agent": "Anthropic/Python"}, "steps": [{"text": "sdk"}]}
    script = {"routes": [cli, sdk]}
    server = serve(script)
    assert ask(client(server)).content[0].text == "sdk"
    assert server.remaining("cli") == 1


@pytest.mark.parametrize(
    "bad",
    [{"steps": [{"txt": "typo"}]}, {"steps": [{"text": "a", "error": {"status": 500}}]},
     {"steps": [{"error": {"status": "429"}}]}, {"routes": [{"match": {"sytem": "x"}}]},
     {"steps": [{"tool_use": []}]}, {"steps": [{"text": "a", "repeat": 0}]}, {"step": []}],
)  # fmt: skip
def test_bad_scripts_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ScriptError):
        load_script(bad)


def test_script_from_file(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"steps": [{"text": "from file"}]}))
    assert load_script(path).routes[0].steps == [{"text": "from file"}]
    path.write_text("{broken")
    with pytest.raises(ScriptError):
        load_script(path)


# --------------------------------------------------------------------------- command line


def test_command_line_server(tmp_path: Path) -> None:
    script, record = tmp_path / "script.json", tmp_path / "rec.jsonl"
    script.write_text(json.dumps({"steps": [{"text": "from the CLI server"}]}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "aura.scripted_server", "--script", str(script), "--record", str(record)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = proc.stdout.readline().strip() if proc.stdout else ""
        assert url.startswith("http://127.0.0.1:")
        c = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
        reply = c.messages.create(model="m", max_tokens=5, messages=USER)
        assert reply.content[0].text == "from the CLI server"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
    assert code == 0
    assert json.loads(record.read_text().splitlines()[0])["route"] == "default"


def test_command_line_rejects_bad_script(tmp_path: Path) -> None:
    script = tmp_path / "bad.json"
    script.write_text(json.dumps({"steps": [{"nope": 1}]}))
    proc = subprocess.run([sys.executable, "-m", "aura.scripted_server", "--script", str(script)],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert proc.returncode == 2 and "unknown step keys" in proc.stderr and proc.stdout == ""
