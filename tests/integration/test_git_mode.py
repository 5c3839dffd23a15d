"""Git mode with real git, real daemons and the real CLI: each attempt in its own worktree, merged into
the run's integration branch only once its evidence is accepted, conflicts sent back, the user's own
branch, HEAD and working tree untouched, and nothing left behind after `aura clean-workspaces`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from aura.runtime.fsutil import read_json, read_jsonl
from tests.support.harness import Project, wait_for

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "user@example.invalid",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "user@example.invalid",
}

# two tasks edit different files; the third rewrites the file the first edits, and is slower, so its
# first attempt conflicts with the first task's merge and its retry starts from the new head
THREE_TASKS = """# Edit the notes

- [ ] edit a `printf 'A from T1\\n' > a.txt`
- [ ] edit b `printf 'B from T2\\n' > b.txt`
- [ ] rewrite a `sleep 1.5; printf 'A from T3\\n' > a.txt`
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, env=_env()
    ).stdout.strip()


def _env() -> dict[str, str]:
    import os

    return {**os.environ, **GIT_ENV}


def make_repo(root: Path) -> None:
    git(root, "init", "-q", "-b", "main")
    for name in ("a.txt", "b.txt", "notes.txt"):
        (root / name).write_text(f"{name} at the start\n")
    (root / ".gitignore").write_text(".aura/\ntask.md\n*.ckpt\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "start")


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

    p.aura("down")
    out = p.aura("clean-workspaces", "--all", "--no-dry-run").stdout
    assert "Total" in out, out
    listed = git(root, "worktree", "list", "--porcelain")
    assert listed.count("worktree ") == 1, listed  # the user's own only
    assert git(root, "branch", "--list", f"{branch}-attempts/*") == ""
    assert git(root, "rev-parse", branch) == info["head"]  # the integration branch stays
    assert p.survivors() == []
