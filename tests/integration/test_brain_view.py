"""What the model reads each cycle, as the scripted server recorded it: each open task's acceptance
criteria and commands, the start of each finished attempt's result.md, each running worker's CPU,
RSS, GPU and strikes from the watchdog (or "watchdog down" when it does not answer), all within a
size cap that says when it cut."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aura.brain import context as ctxmod
from aura.brain.core import BrainCore
from aura.brain.llm_planner import LlmPlanner
from aura.brain.main import BrainDaemon
from aura.brain.tools import Toolbox
from aura.runtime.config import load_config
from aura.runtime.paths import ProjectPaths
from tests.support.harness import Project, wait_for
from tests.support.llm import NO_OP, decisions, tool_results, tool_step, use_llm

HOLD_50MB = "python3 -c \"import time; b = bytearray(50 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(40)\""


def snapshot_of(request: dict) -> str:
    """The volatile block of a recorded request: the first user message's last text block."""
    return request["body"]["messages"][0]["content"][-1]["text"]


def test_the_snapshot_carries_criteria_results_and_worker_figures_and_survives_a_hung_watchdog(
    project: Project, serve: Any
) -> None:
    result_md = ".aura/workspace/tasks/A1/result.md"
    plan = tool_step(
        "decompose_task",
        parent_task_id="ROOT",
        subtasks=[
            {
                "id": "A1",
                "description": "write a",
                "artifacts": ["a.txt"],
                "command": (
                    "sleep 3 && echo hi > a.txt && "
                    f"printf 'Status: done\\nPREVIEW-MARK %s\\n' $(seq 1 400) > {result_md}"
                ),
            },
            {
                "id": "A2",
                "description": "hold memory",
                "command": HOLD_50MB,
                "acceptance_criteria": "CRITERIA-MARK b.txt holds the answer",
                "accept_commands": ["test -s b.txt", "grep -q answer b.txt"],
            },
        ],
    )
    server = serve(
        {
            "steps": [
                plan,
                {
                    "tool_use": [
                        {"name": "spawn_task", "input": {"task_id": "A1"}},
                        {"name": "spawn_task", "input": {"task_id": "A2"}},
                    ]
                },
                NO_OP,
                tool_step("list_running_tasks"),
                NO_OP,  # after A1 ends
                tool_step("list_running_tasks"),
                NO_OP,  # after `aura wake` with the watchdog stopped
            ],
            "default": NO_OP,
        }
    )
    use_llm(project, server, AURA_WORKER_MAX_SYSTEM_MEMORY_GB="0.02", AURA_WORKER_RESOURCE_VIOLATION_STRIKES="100000")
    project.write_task("# View\n\nShow the model what it needs.\n")
    project.up()
    wait_for(lambda: len(server.messages_requests()) >= 5, 40, what="the cycle after A1 ended")

    reqs = server.messages_requests()
    snap = snapshot_of(reqs[3])
    assert "done when: CRITERIA-MARK b.txt holds the answer" in snap
    assert "accept: `test -s b.txt`; `grep -q answer b.txt`" in snap
    assert "### A1 [completed] result.md (first 1000 characters of" in snap and "PREVIEW-MARK 1" in snap
    preview = snap.split("### A1 [completed] result.md")[1]
    assert "PREVIEW-MARK 150" not in preview, "the preview stops at 1000 characters"
    running = next(ln for ln in snap.splitlines() if ln.startswith("- A2 worker"))
    assert "cpu " in running and "rss " in running and "% of RAM" in running
    assert "strikes MAX_SYSTEM_MEMORY_GB " in running and "/100000" in running, running
    listed = tool_results(reqs[4])[0]["content"]
    assert "A2 worker" in listed and "rss " in listed and "strikes MAX_SYSTEM_MEMORY_GB" in listed

    watchdog = project.daemon_pid("watchdog")
    assert watchdog
    os.kill(watchdog, signal.SIGSTOP)
    try:
        project.aura("wake", "look while the watchdog is stopped")
        wait_for(lambda: len(server.messages_requests()) >= 7, 40, what="a cycle with the watchdog stopped")
    finally:
        os.kill(watchdog, signal.SIGCONT)
    reqs = server.messages_requests()
    snap = snapshot_of(reqs[5])
    running = next(ln for ln in snap.splitlines() if ln.startswith("- A2 worker"))
    assert running.endswith("; watchdog down") and "(watchdog down: no CPU, RSS, GPU or strike figures)" in snap
    assert "watchdog down" in tool_results(reqs[6])[0]["content"]
    wait_for(lambda: len(decisions(project, "model_cycle")) >= 3, 20, what="the brain to finish the cycle")


@pytest.fixture
def brain(tmp_path: Path) -> Iterator[Any]:
    """A real brain daemon object (not started) with its core and llm planner, in a temporary project."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "task.md").write_text("# Many\n\nMany tasks.\n")
    paths = ProjectPaths.for_root(root)
    cfg = load_config(root, environ={"AURA_API_KEY": "sk-unit", "HOME": str(tmp_path)})
    daemon = BrainDaemon(paths, cfg)
    daemon.core = core = BrainCore(paths, cfg, daemon.log, daemon.publish, daemon.ctx)
    core.state["task_file"] = str(root / "task.md")
    planner = LlmPlanner(daemon)
    planner.core = core
    planner.toolbox = Toolbox(planner)
    yield core, planner
    core.supervisor.close()
    daemon.ctx.destroy(linger=0)


def test_the_snapshot_is_capped_and_says_what_it_left_out(brain: Any) -> None:
    core, planner = brain
    for n in range(120):
        task = core.add_task(
            f"A{n}",
            f"task {n} " + "t" * 80,
            acceptance_criteria="c" * 2000,
            accept_commands=[f"test -f out/{n}/{k}.txt" for k in range(6)],
        )
        if n < 12:
            task.update(worker_id=f"A{n}-1", status="failed", finished_at=1000.0 + n)
            folder = core.paths.task_dir(task["id"])
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "result.md").write_text(f"Status: failed\nRESULT-{n} " + "r" * 3000)
    text = ctxmod.snapshot(
        core,
        planner.cfg,
        cycle=1,
        reasons=["test"],
        news=[],
        planning=None,
        notices=[],
        recent=[],
        session="",
        usage=planner.worker_usage(),
    )
    assert len(text) <= ctxmod.SNAPSHOT_MAX_CHARS + 200
    assert f"[snapshot cut at {ctxmod.SNAPSHOT_MAX_CHARS} characters:" in text and text.endswith("end with no_op.")
    assert "(+3 more)" in text and "c" * (ctxmod.CRITERIA_MAX_CHARS + 1) not in text
    section = ctxmod.results_section(core.state, core.paths.task_dir)
    assert section[0].startswith("### A11 [failed] result.md (first 1000 characters of"), "the newest attempt first"
    assert "6 more result.md previews not shown" in section[-1]
    assert sum(len(line) for line in section) <= ctxmod.RESULTS_MAX_CHARS + 1000
