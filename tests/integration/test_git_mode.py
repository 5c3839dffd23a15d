"""Git mode with real git, real daemons and the real CLI: each attempt in its own worktree, merged into
the run's integration branch only once its evidence is accepted, conflicts sent back, the user's own
branch, HEAD and working tree untouched, and nothing left behind after `aura clean-workspaces`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from aura.runtime.fsutil import read_json, read_jsonl
from tests.support.gitrepos import GIT_ENV, git, make_repo
from tests.support.harness import Project, wait_for
from tests.support.llm import NO_OP, decisions, first_user_text, tool_step, use_llm

# two tasks edit different files; the third rewrites the file the first edits, and is slower, so its
# first attempt conflicts with the first task's merge and its retry starts from the new head
THREE_TASKS = """# Edit the notes

- [ ] edit a `printf 'A from T1\\n' > a.txt`
- [ ] edit b `printf 'B from T2\\n' > b.txt`
- [ ] rewrite a `sleep 1.5; printf 'A from T3\\n' > a.txt`
"""


def state(p: Project) -> dict:
    return read_json(p.paths.state_dir / "state.json") or {}


def finished(p: Project) -> dict | None:
    st = state(p)
    return st if (st.get("run") or {}).get("finished") else None


def merges_of(root: Path, branch: str, base: str) -> list[str]:
    return git(root, "log", "--merges", "--format=%s", f"{base}..{branch}").splitlines()


@pytest.fixture
def repo_project(project: Project) -> Project:
    project.env.update(GIT_ENV)
    project.env.update(AURA_MAX_CONCURRENT_TASKS="3", AURA_LAYER2_BACKEND="shell")
    make_repo(project.root)
    return project


def test_parallel_tasks_merge_once_a_conflict_retries_from_the_new_head_and_the_user_tree_is_untouched(
    repo_project: Project,
) -> None:
    p = repo_project
    root = p.root
    user_head = git(root, "rev-parse", "HEAD")
    (root / "notes.txt").write_text("the user's uncommitted edit\n")
    p.write_task(THREE_TASKS)
    said = p.up()
    assert "uncommitted changes" in said.stdout + said.stderr and "notes.txt" in said.stdout + said.stderr
    st = wait_for(lambda: finished(p), 90, what="the run to finish")
    info = st["git"]
    branch, base = info["branch"], info["base"]
    assert branch.startswith("aura/") and base == user_head

    tasks = {t["title"].split(" `")[0]: t for t in st["tasks"].values()}
    t1, t2, t3 = tasks["edit a"], tasks["edit b"], tasks["rewrite a"]
    assert [t["status"] for t in (t1, t2, t3)] == ["completed"] * 3, [t.get("reason") for t in (t1, t2, t3)]
    # each accepted task merged exactly once
    subjects = merges_of(root, branch, base)
    for t in (t1, t2, t3):
        assert sum(f"Merge {t['id']} " in s for s in subjects) == 1, subjects
    assert len(subjects) == 3
    # the conflicting task went back once and its retry started from the head with the first merge
    refused = [d for d in read_jsonl(p.paths.state_dir / "decisions.jsonl") if d.get("kind") == "merge_refused"]
    assert [d["task_id"] for d in refused] == [t3["id"]] and refused[0]["files"] == ["a.txt"]
    assert t3["attempts"] == 2
    t1_merge = t1["git"]["merge_commit"]
    retry_base = t3["git"]["base"]
    assert retry_base != base and git(root, "merge-base", "--is-ancestor", t1_merge, retry_base) == ""
    task_md = (p.paths.task_dir(t3["id"]) / "task.md").read_text()
    assert "Why the previous attempt was not merged" in task_md and "a.txt" in task_md
    # the integration branch holds every change
    assert git(root, "show", f"{branch}:a.txt") == "A from T3"
    assert git(root, "show", f"{branch}:b.txt") == "B from T2"
    # the user's branch, HEAD and uncommitted change are untouched
    assert git(root, "rev-parse", "HEAD") == user_head
    assert git(root, "symbolic-ref", "--short", "HEAD") == "main"
    assert (root / "notes.txt").read_text() == "the user's uncommitted edit\n"
    assert (root / "a.txt").read_text() == "a.txt at the start\n"
    # status names the branch and the command that brings it in
    status = p.aura("status").stdout
    assert branch in status and f"git merge {branch}" in status

    # ps shows each worker's branch; diff shows an attempt's change against its base
    ps = p.aura("ps", "-a").stdout
    assert "BRANCH" in ps and f"{branch}-attempts/{t2['id']}-1" in ps, ps
    shown = p.aura("diff", t2["id"]).stdout
    assert "+B from T2" in shown and "-b.txt at the start" in shown, shown
    assert "b.txt" in p.aura("diff", "--stat", t2["id"]).stdout
    missing = p.aura("diff", "NOPE", check=False)
    assert missing.returncode != 0 and "no task 'NOPE'" in missing.stderr
    history = p.aura("history", "-n", "200").stdout
    assert f"merged {t1['id']} ({t1['id']}-1) into {branch} as {t1['git']['merge_commit'][:10]}" in history
    assert f"merge_refused {t3['id']}: merge conflict" in history
    summary = (p.paths.data / "summaries" / "final_report.md").read_text()
    assert f"git merge {branch}" in summary and t1["git"]["merge_commit"][:10] in summary

    p.aura("down")
    out = p.aura("clean-workspaces", "--all", "--no-dry-run").stdout
    assert "Total" in out, out
    listed = git(root, "worktree", "list", "--porcelain")
    assert listed.count("worktree ") == 1, listed  # the user's own only
    assert git(root, "branch", "--list", f"{branch}-attempts/*") == ""
    assert git(root, "rev-parse", branch) == info["head"]  # the integration branch stays
    assert p.survivors() == []


TWO_TASKS = """# Edit two files

- [ ] edit a `printf 'A\\n' > a.txt`
- [ ] edit b `printf 'B\\n' > b.txt`
"""


@pytest.mark.parametrize("hook", ["post-commit", "pre-merge-commit"])
def test_a_brain_killed_between_commit_and_merge_merges_exactly_once_after_its_restart(
    repo_project: Project, hook: str
) -> None:
    """A git hook holds the brain inside the step (after the attempt's commit, or inside the merge)
    while the test kills it with SIGKILL; its peer restarts it and the merge happens once."""
    p = repo_project
    root = p.root
    marker = p.root.parent / "hook-ran"
    hook_file = root / ".git" / "hooks" / hook
    hook_file.write_text(f"#!/bin/sh\n[ -e {marker} ] && exit 0\ntouch {marker}\nsleep 3\n")
    hook_file.chmod(0o755)
    p.write_task(TWO_TASKS)
    p.up()
    wait_for(marker.exists, 60, what=f"the {hook} hook to run")
    brain = p.daemon_pid("brain")
    killed_state = state(p)
    p.kill9("brain")
    assert killed_state["git"].get("merging"), "the kill landed inside the merge transaction"
    wait_for(lambda: (p.daemon_pid("brain") or brain) != brain, 30, what="the brain's restart")
    st = wait_for(lambda: finished(p), 90, what="the run to finish")
    info = st["git"]
    subjects = merges_of(root, info["branch"], info["base"])
    ids = [t["id"] for t in st["tasks"].values() if t["id"] != "ROOT"]
    for tid in ids:
        assert sum(f"Merge {tid} " in s for s in subjects) == 1, subjects
    assert [t["status"] for t in st["tasks"].values()] == ["completed"] * 3
    assert sorted(m["task_id"] for m in info["merged"]) == sorted(ids)
    assert not info.get("merging")
    assert git(root, "show", f"{info['branch']}:a.txt") == "A"
    assert git(root, "show", f"{info['branch']}:b.txt") == "B"
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""


def test_the_llm_brain_sees_each_diff_sends_a_conflict_back_and_accepts_the_goal_on_the_integration_branch(
    repo_project: Project, serve: Any
) -> None:
    p = repo_project
    subtasks = [
        {"id": "L1", "description": "edit a", "command": "printf 'A from L1\\n' > a.txt"},
        {"id": "L2", "description": "edit b", "command": "printf 'B from L2\\n' > b.txt"},
        {"id": "L3", "description": "rewrite a", "command": "sleep 1.5; printf 'A from L3\\n' > a.txt"},
    ]
    plan = [
        tool_step("decompose_task", parent_task_id="ROOT", subtasks=subtasks),
        {"tool_use": [{"name": "spawn_task", "input": {"task_id": t["id"]}} for t in subtasks]},
        NO_OP,
    ]
    retry = [tool_step("spawn_task", task_id="L3", reason="retry from the new head after the conflict"), NO_OP]
    finish = [
        tool_step("update_task_tree", task_id="ROOT", new_status="completed", reason="all merged", evidence="L1-L3"),
        NO_OP,
    ]
    server = serve(
        {
            "routes": [
                {"name": "retry", "match": {"first_user": "merge conflict", "not_contains": "L3-2"}, "steps": retry},
                {"name": "finish", "match": {"first_user": "L3 [completed]"}, "steps": finish},
                {"name": "plan", "match": {"first_user": "Planning needed: yes (the tree has no tasks"}, "steps": plan},
            ],
            "default": NO_OP,
        }
    )
    use_llm(p, server)
    p.write_task(
        "# Edit the notes\n\nEdit a.txt and b.txt.\n\n"
        "Accept: `grep -q 'A from L3' a.txt && grep -q 'B from L2' b.txt`\n"
    )
    p.up()
    st = wait_for(lambda: finished(p) if st_root_done(p) else None, 120, what="the goal to be done")
    info = st["git"]
    subjects = merges_of(p.root, info["branch"], info["base"])
    assert sorted(s.split()[1] for s in subjects) == ["L1", "L2", "L3"], subjects
    retry_request = server.messages_requests("retry")[0]
    text = first_user_text(retry_request)
    assert "diff: 1 file changed" in text and "merge conflict" in text and "a.txt" in text
    assert st["tasks"]["L3"]["git"]["base"] != info["base"]
    # the goal's acceptance ran on the integration branch: the user's own a.txt never changed
    assert (p.root / "a.txt").read_text() == "a.txt at the start\n"
    assert any(d.get("kind") == "goal_verified" or d.get("by") == "model" for d in decisions(p))
    assert any(d.get("kind") == "merged" and d.get("task_id") == "L3" for d in decisions(p))


def st_root_done(p: Project) -> bool:
    return (state(p).get("tasks") or {}).get("ROOT", {}).get("status") == "completed"


@pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap is not installed (.ci/run installs it)")
def test_a_sandboxed_worker_commits_in_its_worktree_and_cannot_touch_the_users_tree(repo_project: Project) -> None:
    p = repo_project
    p.env.update(AURA_WORKER_ISOLATION="bwrap")
    git(p.root, "config", "user.name", "Worker")  # a worker's environment does not carry GIT_* names
    git(p.root, "config", "user.email", "worker@example.invalid")
    user_head = git(p.root, "rev-parse", "HEAD")
    p.write_task(
        "# Commit in the sandbox\n\n"
        "- [ ] commit c `printf 'C\\n' > c.txt && git add c.txt && git commit -qm 'worker commit' "
        f"&& ! touch {p.root}/escaped.txt`\n"
    )
    p.up()
    st = wait_for(lambda: finished(p), 60, what="the run to finish")
    (task,) = [t for t in st["tasks"].values() if t["id"] != "ROOT"]
    assert task["status"] == "completed", task.get("reason")
    branch = st["git"]["branch"]
    log = git(p.root, "log", "--format=%s", branch)
    assert "worker commit" in log.splitlines()
    assert git(p.root, "show", f"{branch}:c.txt") == "C"
    assert not (p.root / "escaped.txt").exists() and git(p.root, "rev-parse", "HEAD") == user_head


def test_a_restarted_run_gets_a_new_branch_and_keeps_the_earlier_attempts_work_on_its_branch(
    repo_project: Project,
) -> None:
    p = repo_project
    p.write_task("# Fails\n\n- [ ] half done `printf 'half\\n' > half.txt && exit 3`\n")
    p.up()
    first = wait_for(lambda: finished(p), 60, what="the first run to finish")
    (task,) = [t for t in first["tasks"].values() if t["id"] != "ROOT"]
    assert task["status"] == "blocked"
    kept = Path(task["git"]["worktree"])
    assert (kept / "half.txt").exists(), "a failed attempt's worktree is kept for inspection"
    p.write_task("# Works\n\n- [ ] whole `printf 'whole\\n' > whole.txt`\n")
    p.aura("restart", "-d", "task.md", timeout=120)
    second = wait_for(
        lambda: finished(p) if (state(p).get("git") or {}).get("run_id") != first["git"]["run_id"] else None, 60
    )
    assert second["git"]["branch"] != first["git"]["branch"]
    assert [t["status"] for t in second["tasks"].values()] == ["completed"] * 2
    assert git(p.root, "show", f"{second['git']['branch']}:whole.txt") == "whole"
    # the earlier attempt's work was committed on its own branch before its folder was reused
    assert git(p.root, "show", f"{task['git']['branch']}:half.txt") == "half"


def test_an_attempt_that_changed_nothing_is_refused_when_its_task_asked_for_a_change(
    repo_project: Project, serve: Any
) -> None:
    plan = [
        tool_step(
            "decompose_task",
            parent_task_id="ROOT",
            subtasks=[
                {"id": "N1", "description": "fix a", "command": "true", "expects_change": True},
                {"id": "N2", "description": "only look", "command": "true"},
            ],
        ),
        {"tool_use": [{"name": "spawn_task", "input": {"task_id": t}} for t in ("N1", "N2")]},
        NO_OP,
    ]
    server = serve(
        {
            "routes": [{"name": "plan", "match": {"first_user": "Planning needed: yes"}, "steps": plan}],
            "default": NO_OP,
        }
    )
    use_llm(repo_project, server)
    repo_project.write_task("# Fix a\n\nFix a.txt.\n")
    repo_project.up()

    def settled() -> dict | None:
        tasks = state(repo_project).get("tasks") or {}
        return (
            tasks
            if {"N1", "N2"} <= set(tasks)
            and tasks["N2"]["status"] == "completed"
            and tasks["N1"].get("reason", "").startswith("attempt 1 failed")
            else None
        )

    tasks = wait_for(settled, 60, what="both attempts to be settled")
    assert "changed nothing in the repository and wrote no named artifact" in tasks["N1"]["reason"]
    assert "diff: no change" in tasks["N2"]["evidence"]


def test_a_project_in_a_folder_of_its_repository_works_in_that_folder_of_each_worktree(project: Project) -> None:
    outer = project.root
    project.env.update(GIT_ENV)
    project.env.update(AURA_LAYER2_BACKEND="shell")
    make_repo(outer)
    sub = outer / "service"
    sub.mkdir()
    (sub / "app.txt").write_text("v1\n")
    git(outer, "add", "-A")
    git(outer, "commit", "-q", "-m", "a service")
    inner = Project(sub, outer.parent / "home", project.env)
    try:
        inner.write_task(
            "# Bump\n\n- [ ] bump `printf 'v2\\n' > app.txt` creates `app.txt`\n\nAccept: `grep -q v2 app.txt`\n"
        )
        inner.up()
        st = wait_for(lambda: finished(inner), 60, what="the run to finish")
        assert [t["status"] for t in st["tasks"].values()] == ["completed"] * 3, [
            t.get("reason") for t in st["tasks"].values()
        ]
        branch = st["git"]["branch"]
        assert git(outer, "show", f"{branch}:service/app.txt") == "v2"
        assert git(outer, "ls-tree", "--name-only", branch).count("app.txt") == 0  # not at the repository's top
        assert (sub / "app.txt").read_text() == "v1\n"
    finally:
        inner.cleanup()


def test_the_data_folder_inside_the_repository_stays_out_of_the_users_git_status(project: Project) -> None:
    project.env.update(GIT_ENV)
    project.env.update(AURA_LAYER2_BACKEND="shell")
    git(project.root, "init", "-q", "-b", "main")
    (project.root / "a.txt").write_text("a\n")
    project.write_task("# One\n\n- [ ] one `printf 'x\\n' > x.txt`\n")
    git(project.root, "add", "a.txt", "task.md")
    git(project.root, "commit", "-q", "-m", "start")  # no .gitignore: nothing lists .aura/
    project.up()
    wait_for(lambda: finished(project), 60, what="the run to finish")
    assert git(project.root, "status", "--porcelain", "--untracked-files=all") == ""


def test_the_brain_keeps_answering_while_git_makes_a_slow_worktree(repo_project: Project) -> None:
    """A post-checkout hook makes each `git worktree add` last 3 s, as a large repository does."""
    p = repo_project
    marker = p.root.parent / "checkout-running"
    hook = p.root / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\nsleep 3\nrm -f {marker}\n")
    hook.chmod(0o755)
    p.write_task(TWO_TASKS)
    p.up()
    brain = p.client("brain", timeout=1.0)
    wait_for(marker.exists, 30, what="a slow worktree to be made", interval=0.01)
    answered = 0
    while marker.exists():
        assert brain.call("ping", retries=0)["pong"] is True
        answered += 1
    assert answered >= 5
    wait_for(lambda: finished(p), 90, what="the run to finish")
