"""A person in the loop: the model asks (ask_user) while other tasks go on and the answer reaches its
next request; AURA_APPROVE holds a spawn until `aura approve`, across a kill -9 of the brain; each
`aura task` command changes the tree and shows in `aura history`; bad requests are one line."""

from __future__ import annotations

from typing import Any

from tests.support.gitrepos import GIT_ENV, git, make_repo
from tests.support.harness import Project, wait_for
from tests.support.llm import NO_OP, decisions, events, first_user_text, state, tool_step, use_llm


def task_status(project: Project, tid: str) -> str | None:
    return (state(project).get("tasks", {}).get(tid) or {}).get("status")


def open_ids(project: Project) -> list[str]:
    return sorted(qid for qid, q in (state(project).get("questions") or {}).items() if q["status"] == "open")


def refused(project: Project, *args: str) -> str:
    """A request the brain refuses: exit 1, one line, no traceback."""
    proc = project.aura(*args, check=False)
    assert proc.returncode == 1, proc
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return proc.stderr


def test_the_model_asks_the_run_goes_on_and_the_answer_reaches_its_next_request(project: Project, serve: Any) -> None:
    plan = [
        tool_step(
            "decompose_task",
            parent_task_id="ROOT",
            subtasks=[
                {"id": "A1", "description": "write a", "artifacts": ["out/a.txt"], "command": "echo a > a.txt"},
                {"id": "A2", "description": "write b from the chosen data set", "artifacts": ["b.txt"]},
            ],
        ),
        tool_step("ask_user", question="Which data set for A2?", options=["small", "large"], task_id="A2"),
        tool_step("spawn_task", task_id="A1", command="mkdir -p out && echo a > out/a.txt"),
        NO_OP,
    ]
    answered = [tool_step("spawn_task", task_id="A2", command="echo large > b.txt"), NO_OP]
    server = serve(
        {
            "routes": [
                {"name": "answered", "match": {"first_user": "## Answers from the user"}, "steps": answered},
                {"name": "plan", "match": {"first_user": "Planning needed: yes (the tree has no tasks"}, "steps": plan},
            ],
            "default": NO_OP,
        }
    )
    use_llm(project, server, AURA_NOTIFY_COMMAND='printf "%s\\n" "$AURA_MESSAGE" >> notified.txt')
    project.write_task("# Steering\n\nWrite a and b.\n")
    project.up()
    wait_for(lambda: open_ids(project) == ["Q1"], 30, what="the model's question")
    wait_for(lambda: task_status(project, "A1") == "completed", 30, what="A1 to complete meanwhile")
    assert task_status(project, "A2") == "waiting_for_user"
    listed = project.aura("questions").stdout
    assert "Q1" in listed and "Which data set for A2?" in listed and "small / large" in listed
    assert "Question Q1 (task A2): Which data set for A2? [small / large]" in project.aura("status", check=False).stdout
    assert "Question Q1" in project.aura("ps").stdout
    notified = project.root / "notified.txt"
    wait_for(lambda: notified.exists() and "Which data set for A2?" in notified.read_text(), 10, what="the hook")
    assert any(e["kind"] == "question" for e in events(project))

    assert "Q1 answered; task A2 is now pending" in project.aura("answer", "Q1", "large").stdout
    wait_for(lambda: server.messages_requests("answered"), 30, what="the next model request")
    text = first_user_text(server.messages_requests("answered")[0])
    assert "Which data set for A2? -> large" in text
    wait_for(lambda: task_status(project, "A2") == "completed", 30, what="A2 to run after the answer")
    assert "already answered" in refused(project, "answer", "Q1", "small")
    assert "no question 'Q7'" in refused(project, "answer", "Q7", "small")
    assert [d["answer"] for d in decisions(project, "answer")] == ["large"]


def test_approvals_hold_spawns_across_a_brain_kill_and_the_user_steers_the_tree(project: Project) -> None:
    project.env.update(AURA_APPROVE="spawn")
    project.write_task("# Approvals\n\n- [ ] write x `echo x > x.txt`\n- [ ] write y `echo y > y.txt`\n")
    project.up()
    wait_for(lambda: open_ids(project) == ["Q1", "Q2"], 30, what="two approvals")
    ids = {t["title"][:7]: tid for tid, t in state(project)["tasks"].items()}
    x, y = ids["write x"], ids["write y"]
    assert task_status(project, x) == task_status(project, y) == "waiting_for_user"
    assert project.workers() == {}, "no worker starts before a yes"

    old = project.kill9("brain")
    wait_for(lambda: project.daemon_pid("brain") not in (None, old), 30, what="the brain to be restarted")
    listed = project.aura("questions").stdout
    assert "Q1" in listed and "Q2" in listed and "echo x > x.txt" in listed
    top = project.aura("top", "--once").stdout
    assert "Question Q1" in top and "aura approve Q1" in top, top

    assert f"{y} blocked: [blocked]" in project.aura("task", "block", y, "not", "now").stdout
    assert f"Q1 approved; task {x} is now pending" in project.aura("approve", "Q1").stdout
    wait_for(lambda: task_status(project, x) == "completed", 30, what="A1 to run once approved")
    assert (project.root / "x.txt").exists() and sorted(project.workers()) == [f"{x}-1"]

    project.aura("task", "unblock", y)
    wait_for(lambda: task_status(project, y) == "waiting_for_user", 30, what="its spawn to wait again")
    assert open_ids(project) == ["Q2"], "its open approval holds it again"
    assert f"Q2 denied; task {y} is now blocked" in project.aura("deny", "Q2", "not", "this", "one").stdout
    project.aura("task", "retry", y)
    wait_for(lambda: open_ids(project) == ["Q3"], 30, what="the retried task to ask")
    project.aura("task", "note", y, "keep it short")
    assert "U1 added" in project.aura("task", "add", "write z", "--accept", "test -s z.txt").stdout
    st = state(project)["tasks"]
    assert st["U1"]["accept_commands"] == ["test -s z.txt"] and st["U1"]["parent"] == "ROOT"
    assert st[y]["notes"][0]["text"] == "keep it short"

    assert "is completed" in refused(project, "task", "retry", x)
    assert "no task 'NOPE'" in refused(project, "task", "note", "NOPE", "x")
    assert "already answered" in refused(project, "approve", "Q1")
    assert "empty" in refused(project, "task", "add", "  ")
    history = project.aura("history", "-n", "0").stdout
    for line in (f"steer {y}: user: block {y}", f"steer {y}: user: unblock {y}", f"steer {y}: user: retry {y}"):
        assert line in history, history
    assert f"note {y} (by user): keep it short" in history and "steer U1: user: add U1" in history
    assert f"answer Q2 {y}: deny: not this one" in history
    by_user = [d for d in decisions(project, "status") if d["by"] == "user"]
    assert {(d["task_id"], d["new"]) for d in by_user} >= {(y, "blocked"), (y, "pending"), (x, "pending")}


ASK = """\
grep -q 'Answer: blue' "$AURA_TASK_DIR/task.md" && echo blue > colour.txt && exit 0
printf 'Which colour?\\n- blue\\n- red\\n' > "$AURA_TASK_DIR/question.md"
exit 3
"""


def test_a_worker_asks_through_its_task_folder_and_its_next_attempt_reads_the_answer(project: Project) -> None:
    (project.root / "ask.sh").write_text(ASK)
    project.write_task("# Worker asks\n\n- [ ] paint `sh ask.sh`\n")
    project.up()
    q = wait_for(lambda: (state(project).get("questions") or {}).get("Q1"), 30, what="the worker's question")
    assert q["text"] == "Which colour?" and q["options"] == ["blue", "red"] and q["asked_by"] == "worker"
    tid = q["task_id"]
    wait_for(lambda: task_status(project, tid) == "waiting_for_user", 10, what="the task to wait")
    assert state(project)["tasks"][tid]["attempts"] == 0, "asking is not a failed attempt"
    project.aura("answer", "blue")
    wait_for(lambda: task_status(project, tid) == "completed", 30, what="the second attempt to use the answer")
    assert (project.root / "colour.txt").read_text() == "blue\n"
    assert "question.md" in (project.paths.task_dir(tid) / "task.md").read_text(), "task.md says how to ask"


def test_git_mode_merges_a_checked_attempt_only_once_approved(project: Project) -> None:
    project.env.update(GIT_ENV, AURA_APPROVE="merge")
    make_repo(project.root)
    project.write_task("# Merge\n\n- [ ] write x `printf 'x\\n' > x.txt`\n")
    project.up()
    q = wait_for(lambda: (state(project).get("questions") or {}).get("Q1"), 30, what="the merge approval")
    assert q["text"].startswith(f"merge {q['task_id']}") and task_status(project, q["task_id"]) == "waiting_for_user"
    branch = state(project)["git"]["branch"]
    assert "x.txt" not in git(project.root, "ls-tree", "--name-only", branch)
    project.aura("approve", "Q1")
    wait_for(lambda: task_status(project, q["task_id"]) == "completed", 30, what="the merge once approved")
    assert git(project.root, "show", f"{branch}:x.txt") == "x"
