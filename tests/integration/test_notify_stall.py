"""Notification hooks (real shell commands writing to a file) on safe mode and on a run that makes
no progress: safe_mode_entered / safe_mode_left when the model API goes away and comes back, and
no_progress once per stall after AURA_NO_PROGRESS_MINUTES with nothing started, ended or answered."""

from __future__ import annotations

import time
from typing import Any

from tests.support.harness import Project, wait_for
from tests.support.llm import NO_OP, decisions, use_llm

HOOK = 'printf "%s|%s\\n" "$AURA_EVENT" "$AURA_MESSAGE" >> hooks.log'


def hooks(project: Project) -> list[tuple[str, str]]:
    path = project.root / "hooks.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [tuple(line.split("|", 1)) for line in lines]  # type: ignore[misc]


def events(project: Project, kind: str) -> list[str]:
    return [message for event, message in hooks(project) if event == kind]


def test_safe_mode_entered_and_left_reach_the_hook(project: Project, serve: Any) -> None:
    server = serve({"steps": [{"error": {"status": 529}, "repeat": 2}, NO_OP], "default": NO_OP})
    use_llm(
        project,
        server,
        AURA_API_RETRY_COUNT="1",
        AURA_SAFE_MODE_AFTER="1",
        AURA_LLM_DEAD_THROTTLE="1",
        AURA_NOTIFY_COMMAND=HOOK,
    )
    project.write_task("# Outage\n\nSurvive it.\n")
    project.up()
    wait_for(lambda: events(project, "safe_mode_left"), 40, what="the hook to hear that safe mode ended")
    entered, left = events(project, "safe_mode_entered"), events(project, "safe_mode_left")
    assert len(entered) == 1 and "no new workers" in entered[0] and "529" in entered[0]
    assert len(left) == 1 and "the model API answered again" in left[0]
    order = [event for event, _ in hooks(project)]
    assert order.index("safe_mode_entered") < order.index("safe_mode_left")


def test_no_progress_is_notified_once_per_stall(project: Project) -> None:
    project.env.update(
        AURA_CYCLE_INTERVAL="0.5",
        AURA_NO_PROGRESS_MINUTES="0.05",
        AURA_MAX_CONCURRENT_TASKS="1",
        AURA_NOTIFY_COMMAND=HOOK,
    )
    project.write_task("# Slow\n\n- [ ] first `sleep 7`\n- [ ] second `sleep 40`\n")
    project.up()
    first = wait_for(lambda: events(project, "no_progress"), 20, what="the first stall to be notified")
    assert "nothing started or ended" in first[0] and "still running: " in first[0]
    time.sleep(2)  # several more cycles of the same stall
    assert len(events(project, "no_progress")) == 1, "once per stall, not every cycle"
    both = wait_for(
        lambda: len(events(project, "no_progress")) >= 2 and events(project, "no_progress"),
        25,
        what="the second task's stall after the first one ended",
    )
    assert both[0].split("still running: ")[1] != both[1].split("still running: ")[1], "another task stalls"
    time.sleep(2)
    assert len(events(project, "no_progress")) == 2
    assert len(decisions(project, "no_progress")) == 2


def test_a_run_that_only_waits_for_a_person_says_so_when_it_stalls(project: Project) -> None:
    project.env.update(
        AURA_CYCLE_INTERVAL="0.5", AURA_NO_PROGRESS_MINUTES="0.05", AURA_APPROVE="spawn", AURA_NOTIFY_COMMAND=HOOK
    )
    project.write_task("# Held\n\n- [ ] held `true`\n")
    project.up()
    said = wait_for(lambda: events(project, "no_progress"), 20, what="the stall to be notified")
    assert "waiting for a person's answer: T" in said[0] and "(aura questions)" in said[0], said
