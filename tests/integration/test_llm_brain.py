"""The `llm` brain end to end: real daemons, real shell workers, the real anthropic SDK against the
scripted server. Each test reads what the brain recorded (decisions, state, events) and what it sent
(the server's recorded requests)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aura.runtime.fsutil import read_jsonl
from aura.scripted_server import ScriptedServer
from tests.support.harness import Project, wait_for
from tests.support.llm import (
    NO_OP,
    decisions,
    events,
    first_user_text,
    state,
    tool_results,
    tool_step,
    use_llm,
    wait_finished,
)
from tests.support.workloads import MEM_HOG


def brain_requests(server: ScriptedServer) -> list[dict]:
    return [r for r in server.messages_requests() if "Reflection Engine" not in json.dumps(r["body"].get("system"))]


# -- a whole run ------------------------------------------------------------------------------------------


def test_whole_run_plans_replans_refuses_unproven_done_and_finishes(project: Project, serve: Any) -> None:
    plan = [
        tool_step("update_project_context", final_goal="a.txt, b.txt and a summary", notes="shell workers"),
        tool_step(
            "decompose_task",
            parent_task_id="ROOT",
            subtasks=[
                {
                    "id": "A1",
                    "description": "write a",
                    "artifacts": ["out/a.txt"],
                    "command": "sleep 1 && mkdir -p out && echo a > out/a.txt",
                },
                {"id": "A2", "description": "write b", "artifacts": ["out/b.txt"], "command": MEM_HOG},
                {"id": "A3", "description": "summarise", "artifacts": ["out/summary.md"]},
            ],
        ),
        {
            "tool_use": [
                {"name": "spawn_task", "input": {"task_id": "A1"}},
                {"name": "spawn_task", "input": {"task_id": "A2", "reason": "in parallel"}},
            ]
        },
        NO_OP,
    ]
    replan = [
        tool_step(
            "spawn_task",
            task_id="A2",
            command="mkdir -p out && echo b > out/b.txt",
            reason="the watchdog killed the first attempt: retry with a small command",
        )
    ]
    finish = [
        tool_step("update_task_tree", task_id="A3", new_status="completed", reason="summary done", evidence="x"),
        tool_step("write_file", path="out/summary.md", content="# Summary\na and b are written\n"),
        tool_step(
            "update_task_tree",
            task_id="A3",
            new_status="completed",
            reason="summary written",
            evidence="out/summary.md",
        ),
        tool_step(
            "update_task_tree",
            task_id="ROOT",
            new_status="completed",
            reason="all three done",
            evidence="A1, A2, A3 completed",
        ),
        NO_OP,
    ]
    server = serve(
        {
            "routes": [
                {"name": "replan", "match": {"first_user": "A2 [pending]", "not_contains": "A2-2"}, "steps": replan},
                {
                    "name": "finish",
                    "match": {"first_user": "A2 [completed]", "contains": "A1 [completed]"},
                    "steps": finish,
                },
                {"name": "plan", "match": {"first_user": "Planning needed: yes (the tree has no tasks"}, "steps": plan},
            ],
            "default": NO_OP,
        }
    )
    use_llm(project, server, AURA_WORKER_MAX_SYSTEM_MEMORY_GB="0.2", AURA_MAX_CONCURRENT_TASKS="2")
    project.write_task(
        "# Produce a small report\n\nWrite out/a.txt and out/b.txt, then a summary.\n\n"
        "Accept: `test -s out/summary.md`\n"
    )
    project.up()
    brain_pid = wait_for(lambda: project.daemon_pid("brain"), what="the brain")
    st = wait_finished(project, 90)

    assert st["tasks"]["ROOT"]["status"] == "completed"
    assert all(st["tasks"][t]["status"] == "completed" for t in ("A1", "A2", "A3"))
    assert project.daemon_pid("brain") == brain_pid
    workers = project.workers()
    assert sorted(workers) == ["A1-1", "A2-1", "A2-2"]
    assert (workers["A2-1"].get("kill") or {}).get("reason_code") == "resource", "the hog was killed by the watchdog"
    # the refusal and its reason went back to the model
    refusal = decisions(project, "done_refused")
    assert (
        len(refusal) == 1 and refusal[0]["task_id"] == "A3" and "out/summary.md does not exist" in refusal[0]["reason"]
    )
    after_refusal = [r for r in server.messages_requests("finish") if tool_results(r)][0]
    assert tool_results(after_refusal)[0]["is_error"] is True and "refused" in tool_results(after_refusal)[0]["content"]
    # every status change has a reason and evidence; the key steps are there
    status = decisions(project, "status")
    assert all(d["reason"] and d["evidence"] for d in status)
    by = {(d["task_id"], d["new"]): d for d in status}
    assert "exited 0" in by[("A1", "completed")]["evidence"]
    assert "watchdog" in by[("A2", "pending")]["evidence"]
    assert "written by this attempt" in by[("A3", "completed")]["evidence"] and by[("A3", "completed")]["by"] == "model"
    assert (
        "acceptance `test -s out/summary.md` exited 0"
        in [d for d in status if d["task_id"] == "ROOT" and d["by"] == "model"][0]["evidence"]
    )
    assert {d["task_id"] for d in decisions(project, "task_added")} == {"A1", "A2", "A3"}
    assert decisions(project, "project_context") and decisions(project, "model_cycle")
    # the end is saved first, then announced: the event follows the state that says finished
    wait_for(lambda: any(e["kind"] == "goal_done" for e in events(project)), 10, what="the goal_done event")


# -- the task file changes mid-run ---------------------------------------------------------------------


def test_task_file_edit_reaches_the_next_request_as_a_diff_and_changes_the_tree(project: Project, serve: Any) -> None:
    server = serve(
        {
            "routes": [
                {
                    "name": "review",
                    "match": {"system": "Reflection Engine"},
                    "steps": [],
                    "default": {"text": "## Progress\nplanned\n## Recommendations\n- keep tasks small\n"},
                },
                {
                    "name": "changed",
                    "match": {"first_user": "## Task file changed"},
                    "steps": [
                        tool_step(
                            "decompose_task",
                            parent_task_id="ROOT",
                            subtasks=[{"description": "second requirement", "artifacts": ["out/y.txt"]}],
                        ),
                        NO_OP,
                    ],
                },
                {
                    "name": "plan",
                    "match": {"first_user": "Planning needed: yes (the tree has no tasks"},
                    "steps": [
                        tool_step(
                            "decompose_task",
                            parent_task_id="ROOT",
                            subtasks=[{"id": "A1", "description": "first requirement", "artifacts": ["out/x.txt"]}],
                        ),
                        tool_step("write_memory", mem_type="lesson", content="LESSON-42: keep tasks small"),
                        NO_OP,
                    ],
                },
            ],
            "default": NO_OP,
        }
    )
    # the original README's name for the setting; minutes, so a tiny fraction: a review after each model cycle
    use_llm(project, server, AURA_DEEP_REVIEW_INTERVAL="0.0001")
    task = project.write_task("# Edit test\n\n- [ ] first requirement\n")
    project.up()
    reviews = project.paths.memory_dir / "reviews"
    wait_for(lambda: reviews.is_dir() and any(reviews.glob("review_*.md")), 30, what="a reflection review")
    task.write_text("# Edit test\n\n- [ ] first requirement\n- [ ] second requirement\n")
    wait_for(lambda: "B1" in state(project).get("tasks", {}), 30, what="the replanned task B1")

    changed = server.messages_requests("changed")[0]
    text = first_user_text(changed)
    assert "+- [ ] second requirement" in text and "1 requirement line(s) added" in text
    assert "Batch prefix for new top-level tasks: B" in text
    assert "LESSON-42" in text, "long-term memory is shown to the model"
    assert "reflection review is ready" in text and "keep tasks small" in text
    assert state(project)["tasks"]["B1"]["parent"] == "ROOT"
    log = project.aura("changelog").stdout.splitlines()
    assert len(log) == 2 and "new:" in log[0] and "changed: 1 requirement line(s) added" in log[1]
    assert "Reflection review completed" in (project.paths.memory_dir / "MEMORY.md").read_text()


# -- faults ----------------------------------------------------------------------------------------------


def test_api_errors_are_retried_then_an_outage_enters_and_leaves_safe_mode(project: Project, serve: Any) -> None:
    probes = 5
    server = serve(
        {
            "steps": [
                {"error": {"status": 429, "retry_after": 0}},
                {"error": {"status": 529}},
                {"error": {"status": 500}},
                {"delay": 3, **NO_OP},  # longer than AURA_API_TIMEOUT: a client timeout
                tool_step(
                    "decompose_task",
                    parent_task_id="ROOT",
                    subtasks=[
                        {
                            "id": "A1",
                            "description": "wait",
                            "command": "sleep 8 && touch a.done",
                            "artifacts": ["a.done"],
                        }
                    ],
                ),
                tool_step("spawn_task", task_id="A1"),
                NO_OP,
                {
                    "error": {"status": 503},
                    "repeat": 3 * 5 + probes,
                },  # 3 cycles of 5 attempts, then one attempt per probe
                NO_OP,
            ],
            "default": NO_OP,
        }
    )
    use_llm(
        project,
        server,
        AURA_API_RETRY_COUNT="5",
        AURA_API_TIMEOUT="1",
        AURA_SAFE_MODE_AFTER="3",
        AURA_LLM_DEAD_THROTTLE="1.5",
    )
    project.write_task("# Faults\n\nSurvive the API.\n")
    project.up()
    pid = wait_for(lambda: project.daemon_pid("brain"), what="the brain")
    wait_for(lambda: decisions(project, "model_cycle"), 30, what="the first cycle to complete")
    project.aura("wake", "the outage starts now")
    wait_for(lambda: decisions(project, "safe_mode_left"), 60, what="safe mode to end")

    ledger = read_jsonl(project.paths.state_dir / "costs.jsonl")
    assert ledger[0]["attempts"] == 5, "429, 529, 500 and a timeout were retried within one call"
    assert decisions(project, "model_cycle")[0]["tool_calls"] == 3
    errors = decisions(project, "model_error")
    assert [e["attempts"] for e in errors] == [5, 5, 5] + [1] * probes and all(e["status"] == 503 for e in errors)
    entered, left = decisions(project, "safe_mode_entered")[0], decisions(project, "safe_mode_left")[0]
    done = [d for d in decisions(project, "status") if d["task_id"] == "A1" and d["new"] == "completed"][0]
    assert entered["ts"] < done["ts"] < left["ts"], "a worker was settled on evidence while in safe mode"
    assert project.daemon_pid("brain") == pid
    wait_for(lambda: state(project).get("safe_mode") is None, 10, what="the state saved without safe mode")


def test_a_failing_client_construction_enters_safe_mode_and_the_brain_stays_up(project: Project, serve: Any) -> None:
    server = serve({"default": NO_OP})
    use_llm(project, server, AURA_API_BASE_URL="http://[::1", AURA_SAFE_MODE_AFTER="2")
    project.write_task("# Broken client\n\nAnything.\n")
    project.up()
    pid = wait_for(lambda: project.daemon_pid("brain"), what="the brain")
    wait_for(lambda: decisions(project, "safe_mode_entered"), 30, what="safe mode")
    errors = decisions(project, "model_error")
    assert len(errors) >= 2 and all(e["error_kind"] == "client" and "could not build" in e["error"] for e in errors)
    assert project.daemon_pid("brain") == pid and not server.requests
    out = project.aura("status", check=False).stdout
    assert "SAFE MODE" in out


def test_garbage_tool_input_becomes_error_results_and_caps_end_the_cycle(
    project: Project, serve: Any, tmp_path: Any
) -> None:
    escape = tmp_path / "escape.txt"
    garbage = {
        "tool_use": [
            {"name": "spawn_task", "input": {"task_id": 123, "budget_minutes": "abc"}},
            {"name": "format_disk", "input": {}},
            {"name": "read_file", "input": {"path": "../../../../etc/passwd"}},
            {"name": "write_file", "input": {"path": str(escape), "content": "x"}},
            {"name": "decompose_task", "input": {"parent_task_id": "ROOT", "subtasks": "not a list"}},
            {"name": "update_task_tree", "input": {"task_id": "ROOT"}},
        ]
    }
    listing = tool_step("list_directory", path=".")
    server = serve({"steps": [garbage], "default": listing})
    use_llm(project, server, AURA_MAX_API_ROUNDS_PER_CYCLE="4", AURA_MAX_TOOL_CALLS_PER_CYCLE="7")
    project.write_task("# Garbage\n\nSurvive bad tool calls.\n")
    project.up()
    pid = wait_for(lambda: project.daemon_pid("brain"), what="the brain")
    first = wait_for(lambda: decisions(project, "model_cycle"), 30, what="the first model cycle")[0]

    results = tool_results(server.messages_requests()[1])
    assert len(results) == 6 and all(r["is_error"] for r in results)
    texts = [r["content"] for r in results]
    assert "`task_id` must be string" in texts[0] and "`budget_minutes` must be number" in texts[0]
    assert "unknown tool 'format_disk'" in texts[1]
    assert "outside the project folder" in texts[2] and "outside the project folder" in texts[3]
    assert "`subtasks` must be array" in texts[4]
    assert "`new_status` is required" in texts[5] and "`reason` is required" in texts[5]
    assert not escape.exists()
    assert first["rounds"] == 3 and "cap of 7 tool calls" in first["ended_by"]
    project.aura("wake", "again")  # an explicit wake always reaches the model
    second = wait_for(lambda: decisions(project, "model_cycle")[1:], 20, what="a second model cycle")[0]
    assert second["rounds"] == 4 and "cap of 4 model calls" in second["ended_by"]
    assert project.daemon_pid("brain") == pid


def test_original_bugs_context_fields_are_kept_and_a_failed_kill_is_reported(project: Project, serve: Any) -> None:
    server = serve(
        {
            "steps": [
                tool_step("update_project_context", final_goal="GOAL-1", success_criteria="CRIT-1"),
                tool_step("update_project_context", notes="NOTE-1"),
                tool_step(
                    "decompose_task",
                    parent_task_id="ROOT",
                    subtasks=[{"id": "A1", "description": "quick", "command": "true"}],
                ),
                tool_step("spawn_task", task_id="A1"),
                {
                    "delay": 1.5,
                    **tool_step("kill_task", task_id="A1", reason="too slow"),
                },  # the worker has ended by now
                NO_OP,
            ],
            "default": NO_OP,
        }
    )
    use_llm(project, server)
    project.write_task("# Bugs\n\nThe original's bugs stay fixed.\n")
    project.up()
    wait_for(
        lambda: [d for d in decisions(project, "status") if d["task_id"] == "A1" and d["new"] == "completed"],
        30,
        what="A1 settled",
    )
    ctx = state(project)["project_context"]
    assert (ctx["final_goal"], ctx["success_criteria"], ctx["notes"]) == ("GOAL-1", "CRIT-1", "NOTE-1")
    kill_result = tool_results(server.messages_requests()[5])[0]
    assert kill_result["is_error"] is True and "the kill did not happen" in kill_result["content"]
    assert not [d for d in decisions(project, "status") if d["new"] == "killed"]


# -- cost control ------------------------------------------------------------------------------------------


def _usage(input_tokens: int) -> dict:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }


def test_budget_stops_new_spawns_at_its_figure_and_raising_it_resumes(project: Project, serve: Any) -> None:
    server = serve(
        {
            "steps": [
                {
                    **tool_step(
                        "decompose_task",
                        parent_task_id="ROOT",
                        subtasks=[
                            {
                                "id": "A1",
                                "description": "one",
                                "command": "sleep 2 && touch a.done",
                                "artifacts": ["a.done"],
                            },
                            {"id": "A2", "description": "two", "command": "touch b.done", "artifacts": ["b.done"]},
                        ],
                    ),
                    "usage": _usage(50_000),
                },  # $0.50
                {**tool_step("spawn_task", task_id="A1"), "usage": _usage(50_000)},  # $1.00: A1 starts
                {**tool_step("spawn_task", task_id="A2"), "usage": _usage(60_000)},  # $1.60 >= $1.50: A2 must not start
                {**tool_step("spawn_task", task_id="A2"), "usage": _usage(1_000)},  # after `aura budget 5`
                NO_OP,
            ],
            "default": NO_OP,
        }
    )
    use_llm(
        project,
        server,
        AURA_BUDGET_USD="1.5",
        AURA_TOKEN_PRICE_CACHE_MISS="10",
        AURA_TOKEN_PRICE_CACHE_HIT="1",
        AURA_TOKEN_PRICE_OUTPUT="10",
    )
    project.write_task("# Budget\n\nTwo tasks.\n")
    project.up()
    wait_for(
        lambda: [d for d in decisions(project, "status") if d["task_id"] == "A1" and d["new"] == "completed"],
        30,
        what="A1, started under the budget, to finish",
    )
    assert len(server.messages_requests()) == 3, "no model call once the budget was reached"
    st = state(project)
    assert st["tasks"]["A2"]["status"] == "pending" and "A2-1" not in project.workers()
    assert st["budget"]["state"] == "reached" and st["budget"]["spent_usd"] == pytest.approx(1.6)
    assert project.workers()["A1-1"]["max_budget_usd"] == pytest.approx(0.5), "the worker's own cap"
    kinds = [e["kind"] for e in events(project)]
    assert "budget_warning" in kinds and "budget_reached" in kinds
    assert "BUDGET REACHED" in project.aura("status", check=False).stdout
    tool = [d for d in decisions(project, "tool") if d["tool"] == "spawn_task" and not d["ok"]]
    assert tool and "budget reached" in tool[0]["result"]

    assert "-> $5.00" in project.aura("budget", "5").stdout
    wait_for(lambda: "A2-1" in project.workers(), 20, what="A2 to start after the budget was raised")
    assert any(e["kind"] == "budget_resumed" for e in events(project))


def test_prompt_prefix_is_cached_and_a_cycle_with_nothing_new_makes_no_request(project: Project, serve: Any) -> None:
    server = serve(
        {
            "steps": [
                tool_step(
                    "decompose_task",
                    parent_task_id="ROOT",
                    subtasks=[{"id": "A1", "description": "long", "command": "sleep 60"}],
                ),
                tool_step("spawn_task", task_id="A1"),
                NO_OP,
                NO_OP,
            ],
            "default": NO_OP,
        }
    )
    use_llm(project, server)
    project.write_task("# Cache\n\nOne long task.\n")
    project.up()
    wait_for(lambda: len(server.messages_requests()) == 3, 30, what="the first cycle")
    project.aura("wake", "look again")
    wait_for(lambda: len(server.messages_requests()) == 4, 20, what="the cycle after wake")
    cycles = state(project)["total_cycles"]
    wait_for(lambda: state(project)["total_cycles"] >= cycles + 2, 15, what="two idle interval cycles")
    reqs = server.messages_requests()
    assert len(reqs) == 4, "idle cycles made no model request"

    marker = {"type": "ephemeral", "ttl": "1h"}
    for r in reqs:
        body = r["body"]
        assert body["system"][-1]["cache_control"] == marker
        assert body["messages"][0]["content"][0]["cache_control"] == marker
        assert body["tools"] == reqs[0]["body"]["tools"] and body["system"] == reqs[0]["body"]["system"]
        assert body["messages"][0]["content"][0] == reqs[0]["body"]["messages"][0]["content"][0]
    assert reqs[1]["body"]["messages"][-1]["content"][-1]["cache_control"] == marker, "the rolling breakpoint"
    wake = reqs[3]["reply"]["usage"]
    assert wake["cache_read_input_tokens"] >= reqs[0]["reply"]["usage"]["cache_creation_input_tokens"] > 1000
    ledger = read_jsonl(project.paths.state_dir / "costs.jsonl")
    assert ledger[-1]["cache_read_tokens"] == wake["cache_read_input_tokens"]
    log = project.paths.logfile("brain").read_text()
    assert '"why": "nothing new"' in log


# -- notifications ---------------------------------------------------------------------------------------


def test_notification_hook_fires_on_task_done_and_budget_warning_and_a_failing_hook_is_harmless(
    project: Project, serve: Any
) -> None:
    server = serve(
        {
            "steps": [
                {
                    **tool_step(
                        "decompose_task",
                        parent_task_id="ROOT",
                        subtasks=[
                            {"id": "A1", "description": "hi", "command": "echo hi > h.txt", "artifacts": ["h.txt"]}
                        ],
                    ),
                    "usage": _usage(850_000),
                },  # $8.50 of $10: a warning, not the limit
                tool_step("spawn_task", task_id="A1"),
                NO_OP,
                tool_step("update_task_tree", task_id="ROOT", new_status="completed", reason="done", evidence="A1"),
                NO_OP,
            ],
            "default": NO_OP,
        }
    )
    use_llm(
        project,
        server,
        AURA_BUDGET_USD="10",
        AURA_TOKEN_PRICE_CACHE_MISS="10",
        AURA_NOTIFY_COMMAND='echo "$AURA_EVENT $AURA_TASK_ID" >> hooks.log; exit 7',
    )
    project.write_task("# Notify\n\nSay hi.\n")
    project.up()
    wait_finished(project, 40)
    hooks = project.root / "hooks.log"
    lines = wait_for(
        lambda: hooks.exists() and len(hooks.read_text().splitlines()) >= 3 and hooks.read_text(),
        10,
        what="three notifications",
    ).splitlines()
    assert "budget_warning " in lines and "task_done A1" in lines and "goal_done " in lines
    records = read_jsonl(project.paths.state_dir / "notifications.jsonl")
    assert records and all(not r["ok"] and "exited 7" in r["error"] for r in records)
    assert project.daemon_pid("brain")
    # what a person coming back reads: history, summaries, progress with cost, the projects index
    history = project.aura("history").stdout
    assert "A1: in_progress -> completed - evidence checked" in history and "budget_warning" in history
    summaries = project.aura("summaries").stdout
    assert "A1" in summaries and "(final report)" in summaries
    assert "status: **completed**" in project.aura("summaries", "A1").stdout
    assert "Cost: $8.5" in project.aura("progress").stdout
    assert str(project.root) in project.aura("projects").stdout


def test_the_brain_keeps_answering_while_a_model_call_is_slow(project: Project, serve: Any) -> None:
    """A model call runs beside the daemon's loop: `aura wake` and `aura status` answer at once."""
    import time

    server = serve({"steps": [{**NO_OP, "delay": 8}], "default": NO_OP})
    use_llm(project, server)
    project.write_task("# Slow model\n\nThink slowly.\n")
    project.up()
    wait_for(lambda: server.requests, 20, what="the first (slow) model request")
    started = time.monotonic()
    status = project.status()
    wake = project.aura("wake", "while the model thinks", check=False)
    elapsed = time.monotonic() - started
    assert wake.returncode == 0, wake.stderr
    assert not status["brain"].get("from_disk"), "status came from the live brain"
    assert elapsed < 4.0, f"the brain answered only after {elapsed:.1f}s"
    assert server.requests[0]["status"] is None, "the answers came while the model call was still open"
