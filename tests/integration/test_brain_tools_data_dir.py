"""The model's file tools keep off the run's data folder wherever `--data-dir` / AURA_DATA_DIR put it:
a real brain (real daemons, the real SDK against the scripted server) with its data folder inside
the project under another name than `.aura`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aura.runtime.fsutil import read_json
from aura.runtime.paths import ProjectPaths
from tests.support.harness import Project, wait_for
from tests.support.llm import NO_OP, decisions, tool_results, use_llm


def test_write_file_cannot_overwrite_the_brains_state_in_a_moved_data_folder(project: Project, serve: Any) -> None:
    data = project.root / "runs" / "main"
    project.env["AURA_DATA_DIR"] = "runs/main"  # relative to the project folder
    project.paths = ProjectPaths.for_root(project.root, data)
    writes = {
        "tool_use": [
            {"name": "write_file", "input": {"path": "runs/main/state/state.json", "content": "{}"}},
            {"name": "write_file", "input": {"path": str(data / "state" / "decisions.jsonl"), "content": ""}},
            {"name": "write_file", "input": {"path": "runs/main/memory/notes.md", "content": "a note\n"}},
            {"name": "write_file", "input": {"path": "out/report.md", "content": "# Report\n"}},
        ]
    }
    server = serve({"steps": [writes], "default": NO_OP})
    use_llm(project, server)
    project.write_task("# Moved data folder\n\nWrite a report.\n")
    project.up()
    wait_for(lambda: decisions(project, "model_cycle"), 60, what="the first model cycle")

    results = tool_results(server.messages_requests()[1])
    assert [bool(r.get("is_error")) for r in results] == [True, True, False, False], results
    for refused in results[:2]:
        assert (
            "the brain's own files under runs/main/ are not writable (except runs/main/memory/)" in refused["content"]
        ), refused
    state = wait_for(lambda: read_json(data / "state" / "state.json"), 30, what="the brain's state")
    assert state.get("mission", "").startswith("Moved data folder"), state
    assert any(d.get("kind") == "model_cycle" for d in decisions(project))
    assert (data / "memory" / "notes.md").read_text() == "a note\n"
    assert (project.root / "out" / "report.md").read_text() == "# Report\n"
    written = [d["path"] for d in decisions(project, "file_written")]
    assert written == ["runs/main/memory/notes.md", "out/report.md"], json.dumps(written)


def test_argument_checks_keep_the_rules_the_model_was_given() -> None:
    """The stricter-than-JSON-Schema rules the tools rely on: a blank string is empty, 1.0 is no integer,
    true is no number, an argument no schema names is refused at every depth; each problem named."""
    from aura.brain.tools import ToolError, validate

    bad = {"parent_task_id": "  ", "subtasks": [{"description": "d", "budget_minutes": True, "owner": "x"}]}
    with pytest.raises(ToolError) as exc:
        validate("decompose_task", bad)
    text = str(exc.value)
    assert text.startswith("bad arguments: ") and "`parent_task_id` must not be empty" in text
    assert "`subtasks`[0].budget_minutes must be number, got bool true" in text
    assert "`subtasks`[0].owner is not an argument of this tool (allowed: id, description," in text
    with pytest.raises(ToolError, match="`max_chars` must be integer, got float 1.0"):
        validate("read_file", {"path": "a", "max_chars": 1.0})
    with pytest.raises(ToolError) as exc:
        validate("update_task_tree", {"task_id": "A1", "new_status": 3, "reason": "r", "evidence": "e"})
    assert str(exc.value) == "bad arguments: `new_status` must be string, got int 3"  # the type, not the enum too
    assert validate("read_file", {"path": "a", "max_chars": 10, "mode": "tail"}) == {
        "path": "a",
        "max_chars": 10,
        "mode": "tail",
    }
