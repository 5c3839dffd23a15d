"""What a model call costs: each provider's own usage fields, read from real replies (the anthropic
SDK against the scripted server, an OpenAI-style server over HTTP), priced with that provider's
published prices (cache writes by TTL, DeepSeek's peak hours), with AURA_TOKEN_PRICE_* winning
where set; `aura token-stats` shows what the cache writes cost."""

from __future__ import annotations

import calendar
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from aura.brain.costs import CostBook
from aura.brain.model_client import ClientSettings, ModelClient
from aura.runtime.config import load_config
from aura.runtime.fsutil import read_jsonl
from tests.support.harness import Project, wait_for
from tests.support.llm import NO_OP, state, use_llm


def ledger(project: Project) -> list[dict]:
    return read_jsonl(project.paths.state_dir / "costs.jsonl")


def is_peak_utc(ts: float) -> bool:
    """DeepSeek's published peak: 01:00-04:00 and 06:00-10:00 UTC, Monday to Friday."""
    t = time.gmtime(ts)
    return t.tm_wday < 5 and (1 <= t.tm_hour < 4 or 6 <= t.tm_hour < 10)


def test_anthropic_cache_writes_are_priced_by_ttl_and_token_stats_shows_them(project: Project, serve: Any) -> None:
    mixed = {
        "input_tokens": 100,
        "cache_creation_input_tokens": 1000,
        "cache_read_input_tokens": 5000,
        "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 600},
        "output_tokens": 50,
    }
    server = serve({"steps": [NO_OP, {**NO_OP, "usage": mixed}], "default": NO_OP})
    use_llm(project, server, AURA_API_MODEL="claude-sonnet-4-5")
    project.write_task("# Prices\n\nPrice the calls.\n")
    up = project.up()
    assert "no published price" not in up.stdout
    rows = wait_for(lambda: len(ledger(project)) >= 2 and ledger(project), 30, what="two model calls")

    first = server.messages_requests()[0]["reply"]["usage"]
    assert first["cache_creation_input_tokens"] > 1000, "the brain's prefix was written to the cache"
    assert first["cache_creation"]["ephemeral_1h_input_tokens"] == first["cache_creation_input_tokens"]
    one = rows[0]
    assert one["cache_write_tokens"] == one["cache_write_1h_tokens"] == first["cache_creation_input_tokens"]
    sonnet = {"miss": 3.0, "out": 15.0, "hit": 0.30, "w5m": 3.75, "w1h": 6.0}  # USD per million, Claude Sonnet 4.5
    assert one["write_usd"] == pytest.approx(one["cache_write_tokens"] * sonnet["w1h"] / 1e6)
    assert one["usd"] == pytest.approx(
        (
            one["input_tokens"] * sonnet["miss"]
            + one["output_tokens"] * sonnet["out"]
            + one["cache_read_tokens"] * sonnet["hit"]
        )
        / 1e6
        + one["write_usd"]
    )
    two = rows[1]
    assert (two["cache_write_tokens"], two["cache_write_1h_tokens"], two["cache_read_tokens"]) == (1000, 600, 5000)
    assert two["write_usd"] == pytest.approx((400 * sonnet["w5m"] + 600 * sonnet["w1h"]) / 1e6)
    assert two["usd"] == pytest.approx(
        (100 * sonnet["miss"] + 50 * sonnet["out"] + 5000 * sonnet["hit"]) / 1e6 + two["write_usd"]
    )

    stats = json.loads(project.aura("token-stats", "--json").stdout)
    total = stats["total"]
    assert total["write_usd"] == pytest.approx(sum(r["write_usd"] for r in ledger(project)), abs=1e-6)
    assert total["cache_write_1h_tokens"] >= one["cache_write_1h_tokens"] + 600
    assert stats["prices"]["brain"]["write_1h"] == 6.0 and stats["prices"]["brain"]["write_5m"] == 3.75
    text = project.aura("token-stats").stdout
    header = text.splitlines()[0].split()
    row = next(ln for ln in text.splitlines() if ln.startswith("total")).split()
    assert "WRITE$" in header and row[header.index("WRITE$")] == f"{total['write_usd']:.4f}"
    assert "1-hour writes cost more" in text


def test_deepseek_fields_win_and_a_claude_name_is_billed_at_deepseeks_prices(project: Project, serve: Any) -> None:
    usage = {
        "input_tokens": 12000,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "prompt_cache_hit_tokens": 9000,
        "prompt_cache_miss_tokens": 3000,
        "output_tokens": 200,
    }
    server = serve({"steps": [{**NO_OP, "usage": usage}], "default": NO_OP})
    use_llm(project, server, AURA_API_PROVIDER="deepseek", AURA_API_MODEL="claude-opus-4-8")
    project.write_task("# DeepSeek\n\nPrice the calls.\n")
    project.up()
    row = wait_for(lambda: ledger(project) and ledger(project)[0], 30, what="a model call")
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (3000, 9000, 200)
    assert row["model"] == "claude-opus-4-8" and "deepseek-v4-pro" in row["prices"]
    v4_pro = (1.32, 0.044, 3.96)  # USD per million at peak: miss, hit, output; half of it off-peak
    factor = 1.0 if is_peak_utc(row["ts"]) else 0.5
    expected = (3000 * v4_pro[0] + 9000 * v4_pro[1] + 200 * v4_pro[2]) * factor / 1e6
    assert row["usd"] == pytest.approx(expected) and row["write_usd"] == 0
    # the ledger's line is written as the call returns; the state with its sum when the cycle is saved
    booked = wait_for(lambda: ((state(project).get("costs") or {}).get("brain") or {}).get("usd"), 30, what="the sum")
    assert booked == pytest.approx(expected)


class _Chat(BaseHTTPRequestHandler):
    replies: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(self.replies.pop(0)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_openai_style_usage_reads_cached_tokens_and_deepseeks_fields(tmp_path: Path) -> None:
    def reply(model: str, usage: dict) -> dict:
        return {"model": model, "choices": [{"finish_reason": "stop", "message": {"content": "ok"}}], "usage": usage}

    _Chat.replies = [
        reply(
            "gpt-5.5", {"prompt_tokens": 1000, "completion_tokens": 10, "prompt_tokens_details": {"cached_tokens": 800}}
        ),
        reply(
            "deepseek-v4-pro",
            {
                "prompt_tokens": 1000,
                "completion_tokens": 10,
                "prompt_cache_hit_tokens": 700,
                "prompt_cache_miss_tokens": 300,
            },
        ),
    ]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Chat)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    cfg = load_config(
        environ={
            "AURA_API_KEY": "sk-unit",
            "AURA_API_PROVIDER": "openai",
            "AURA_API_MODEL": "gpt-5.5",
            "AURA_API_BASE_URL": f"http://127.0.0.1:{httpd.server_address[1]}/v1",
        }
    )
    try:
        client = ModelClient(ClientSettings.from_config(cfg))
        replies = [client.create([], [], [{"role": "user", "content": "go"}]) for _ in range(2)]
    finally:
        httpd.shutdown()
    assert (replies[0].usage.input_tokens, replies[0].usage.cache_read_tokens) == (200, 800)
    assert (replies[1].usage.input_tokens, replies[1].usage.cache_read_tokens) == (300, 700)
    book, st = CostBook(tmp_path, cfg), {}
    gpt = book.record_call(
        st, source="run_cycle", cycle=1, model=replies[0].model, provider="openai", usage=replies[0].usage
    )
    assert gpt["usd"] == pytest.approx((200 * 5 + 800 * 0.5 + 10 * 30) / 1e6) and "gpt-5.5" in gpt["prices"]
    ds = book.record_call(
        st, source="run_cycle", cycle=1, model=replies[1].model, provider="openai", usage=replies[1].usage
    )
    factor = 1.0 if is_peak_utc(ds["ts"]) else 0.5
    assert ds["usd"] == pytest.approx((300 * 1.32 + 700 * 0.044 + 10 * 3.96) * factor / 1e6)


def test_the_table_finds_each_family_and_every_set_key_wins() -> None:
    from aura.brain.pricing import brain_prices, deepseek_peak, lookup, worker_prices

    assert lookup("claude-opus-4-8[1m]")[1] == "claude-opus-4-8"
    assert lookup("claude-opus-4-1-20250805")[2].miss == 15 and lookup("claude-opus-4-20250514")[2].miss == 15
    assert lookup("claude-haiku-4-5-20251001")[2].write_1h == 2.0
    assert lookup("claude-sonnet-4-5", "deepseek")[1] == "deepseek-flash", "DeepSeek serves claude-sonnet with Flash"
    assert lookup("my-local-llama") is None

    plain = load_config(environ={"AURA_API_PROVIDER": "anthropic", "AURA_API_MODEL": "claude-opus-4-8"})
    assert (brain_prices(plain).miss, brain_prices(plain).write_5m, brain_prices(plain).write_1h) == (5, 6.25, 10)
    partly = load_config(
        environ={
            "AURA_API_PROVIDER": "anthropic",
            "AURA_API_MODEL": "claude-opus-4-8",
            "AURA_TOKEN_PRICE_CACHE_WRITE": "7",
            "AURA_TOKEN_PRICE_OUTPUT": "0",
        }
    )
    p = brain_prices(partly)
    assert (p.miss, p.output, p.write_5m, p.write_1h) == (5, 0, 7, 7) and "partly settings" in p.source
    unknown = load_config(environ={"AURA_API_PROVIDER": "openai", "AURA_API_MODEL": "my-local-llama"})
    assert not brain_prices(unknown).known and brain_prices(unknown).usd({"input_tokens": 10**6}) == 0
    workers = load_config(
        environ={
            "AURA_API_PROVIDER": "deepseek",
            "AURA_API_MODEL": "deepseek-v4-pro",
            "AURA_WORKER_TOKEN_PRICE_CACHE_MISS": "2",
        }
    )
    assert (
        worker_prices(workers, "claude-haiku-4-5").miss == 2 and worker_prices(workers, "claude-haiku-4-5").output == 5
    )
    assert worker_prices(workers, "some-cli-model").output == 3.96, "an unknown worker model: the brain's prices"

    monday_2am, saturday = calendar.timegm((2026, 11, 30, 2, 0, 0)), calendar.timegm((2026, 11, 28, 2, 0, 0))
    assert deepseek_peak(monday_2am) and not deepseek_peak(saturday)
    ds = brain_prices(
        load_config(
            environ={
                "AURA_API_PROVIDER": "deepseek",
                "AURA_API_MODEL": "deepseek-v4-pro",
                "AURA_TOKEN_PRICE_OUTPUT": "4",
            }
        )
    )
    tokens = {"input_tokens": 10**6, "output_tokens": 10**6}
    assert ds.usd(tokens, monday_2am) == pytest.approx(1.32 + 4) and ds.usd(tokens, saturday) == pytest.approx(0.66 + 4)


def test_up_refuses_a_budget_it_cannot_count_and_warns_without_one(project: Project, serve: Any) -> None:
    server = serve({"default": NO_OP})
    use_llm(project, server, AURA_API_PROVIDER="openai", AURA_API_MODEL="my-local-llama", AURA_BUDGET_USD="5")
    project.write_task("# Local\n\nA local model.\n")
    refused = project.aura("up", "-d", "task.md", check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "no published price is known for AURA_API_MODEL='my-local-llama'" in refused.stderr
    assert "Nothing was started" in refused.stderr and not project.daemon_pid("brain")
    project.env["AURA_TOKEN_PRICE_CACHE_MISS"] = "0"
    project.env["AURA_TOKEN_PRICE_OUTPUT"] = "0"
    started = project.aura("up", "-d", "task.md")
    assert "no published price" not in started.stdout and project.daemon_pid("brain")
