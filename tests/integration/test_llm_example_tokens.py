"""The bundled example task under the `llm` planner, and what each cycle sends to the model.

Run with `-s` to see the table of input tokens per cycle (from the scripted server's recorded
requests); the assertions hold the numbers to what the layout promises: cycles after the first
read most of their prompt from the cache, and idle cycles send nothing.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from typing import Any

from aura.runtime.fsutil import read_jsonl
from aura.scripted_server import ScriptedServer
from tests.support.harness import REPO, Project, wait_for
from tests.support.llm import NO_OP, state, tool_step, use_llm, wait_finished

COUNT = (
    "python3 -c \"import collections,json,time; time.sleep(2); c=collections.Counter('the quick brown fox jumps "
    "over the lazy dog the fox sleeps the dog barks'.split()); json.dump(c.most_common(), "
    "open('out/counts.json','w'))\""
)
SAMPLE = (
    "mkdir -p out && python3 -c \"open('out/sample.txt','w').write('the quick brown fox jumps over the lazy "
    "dog the fox sleeps the dog barks')\""
)
MACHINE = "mkdir -p out && python3 -c \"import platform; open('out/machine.txt','w').write(platform.platform())\""

SCRIPT = {
    "routes": [
        {
            "name": "plan",
            "match": {"first_user": "Planning needed: yes (the tree has no tasks"},
            "steps": [
                tool_step(
                    "update_project_context",
                    final_goal="out/counts.json with the word counts of the sample text",
                    success_criteria="test -s out/counts.json",
                ),
                tool_step(
                    "decompose_task",
                    parent_task_id="ROOT",
                    subtasks=[
                        {
                            "id": "A1",
                            "description": "Write the sample text",
                            "command": SAMPLE,
                            "artifacts": ["out/sample.txt"],
                        },
                        {
                            "id": "A2",
                            "description": "Count the words",
                            "command": "mkdir -p out && " + COUNT,
                            "artifacts": ["out/counts.json"],
                        },
                        {
                            "id": "A3",
                            "description": "Record the machine",
                            "command": MACHINE,
                            "artifacts": ["out/machine.txt"],
                        },
                    ],
                ),
                {
                    "tool_use": [
                        {"name": "spawn_task", "input": {"task_id": "A1"}},
                        {"name": "spawn_task", "input": {"task_id": "A2"}},
                    ]
                },
                NO_OP,
            ],
        },
        {
            "name": "next",
            "match": {"first_user": "A1 [completed]", "not_contains": "A3-1"},
            "steps": [tool_step("spawn_task", task_id="A3"), NO_OP],
        },
    ],
    "default": NO_OP,
}


def per_cycle(project: Project, server: ScriptedServer) -> dict[int, dict[str, int]]:
    """Prompt tokens per brain cycle: the server's usage figures, assigned to cycles by the brain's ledger."""
    ledger = read_jsonl(project.paths.state_dir / "costs.jsonl")
    requests = server.messages_requests()
    assert len(ledger) == len(requests)
    out: dict[int, dict[str, int]] = defaultdict(
        lambda: {"requests": 0, "prompt": 0, "read": 0, "write": 0, "uncached": 0}
    )
    for entry, req in zip(ledger, requests, strict=False):
        u = req["reply"]["usage"]
        row = out[entry["cycle"]]
        row["requests"] += 1
        row["read"] += u["cache_read_input_tokens"]
        row["write"] += u["cache_creation_input_tokens"]
        row["uncached"] += u["input_tokens"]
        row["prompt"] += u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
        assert entry["cache_read_tokens"] == u["cache_read_input_tokens"]
    return out


def test_example_task_input_tokens_per_cycle(project: Project, capsys: Any) -> None:
    shutil.copy(REPO / "tasks" / "example.md", project.root / "task.md")
    with ScriptedServer(SCRIPT) as server:
        use_llm(project, server)
        project.up()
        st = wait_finished(project, 60)
        wait_for(lambda: state(project)["total_cycles"] >= 5, 20, what="five cycles")  # idle ones included
        table = per_cycle(project, server)
    assert all(st["tasks"][t]["status"] == "completed" for t in ("A1", "A2", "A3"))
    with capsys.disabled():
        print("\ncycle  requests  input tokens (all)  cache read  cache write  uncached")
        for cycle in range(1, 6):
            r = table.get(cycle, {"requests": 0, "prompt": 0, "read": 0, "write": 0, "uncached": 0})
            print(
                f"{cycle:>5}  {r['requests']:>8}  {r['prompt']:>18}  {r['read']:>10}  {r['write']:>11}  "
                f"{r['uncached']:>8}"
            )
    later = [r for c, r in table.items() if c > 1]
    assert later and all(r["read"] >= r["prompt"] * 0.6 for r in later), "later cycles read their prefix from the cache"
    verified = [d for d in read_jsonl(project.paths.state_dir / "decisions.jsonl") if d["kind"] == "goal_verified"]
    assert verified and "acceptance `test -s out/counts.json` exited 0" in verified[0]["evidence"]
