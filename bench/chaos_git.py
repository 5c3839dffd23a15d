"""The chaos run in git mode: the project is a git repository, every task's attempt is merged into the
run's integration branch, and the brain is killed during merges too. The checks: each completed task
merged exactly once, the user's branch, HEAD and uncommitted change untouched, and after
`aura clean-workspaces --all --no-dry-run` no worktree, attempt branch or process left."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from aura.brain.state import read_state

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Chaos",
    "GIT_AUTHOR_EMAIL": "chaos@example.invalid",
    "GIT_COMMITTER_NAME": "Chaos",
    "GIT_COMMITTER_EMAIL": "chaos@example.invalid",
}
MERGE_HOOK_SLEEP_S = 0.4  # widens each merge, so a share of the brain kills lands inside one
USER_EDIT = "the user's uncommitted edit\n"


def git(root: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


def make_repo(root: Path) -> str:
    """A repository with one commit, a merge hook that takes a moment, and an uncommitted user edit;
    returns the user's HEAD."""
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text(".aura/\ntask.md\n")
    (root / "notes.txt").write_text("committed\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "start")
    hook = root / ".git" / "hooks" / "pre-merge-commit"
    hook.write_text(f"#!/bin/sh\nsleep {MERGE_HOOK_SLEEP_S}\n")
    hook.chmod(0o755)
    (root / "notes.txt").write_text(USER_EDIT)
    return git(root, "rev-parse", "HEAD")


def merging_now(state_dir: Path) -> bool:
    state = read_state(state_dir) or {}  # the live tree: the journal holds each merge step
    return bool((state.get("git") or {}).get("merging"))


def check_merges(root: Path, state: dict, items: int, report: Any) -> None:
    """Every completed chaos item merged exactly once into the integration branch."""
    info = state.get("git") or {}
    if not info.get("enabled"):
        report.problems.append("git mode was not on")
        report.git_tasks_not_merged = items
        return
    subjects = git(root, "log", "--merges", "--format=%s", f"{info['base']}..{info['branch']}").splitlines()
    ids = {t.get("title", "").split(" `")[0]: tid for tid, t in (state.get("tasks") or {}).items()}
    for i in range(items):
        tid = ids.get(f"chaos item {i}")
        count = sum(s.startswith(f"Merge {tid} (") for s in subjects) if tid else 0
        if count == 0:
            report.git_tasks_not_merged += 1
            report.problems.append(f"item {i} ({tid}): not merged")
        elif count > 1:
            report.git_tasks_merged_twice += 1
            report.problems.append(f"item {i} ({tid}): merged {count} times")
    if info.get("merging"):
        report.problems.append(f"a merge transaction was left open: {info['merging']}")
        report.git_tasks_not_merged += 1


def check_user_tree(root: Path, user_head: str, report: Any) -> None:
    if git(root, "rev-parse", "HEAD") != user_head or git(root, "symbolic-ref", "--short", "HEAD") != "main":
        report.git_user_tree_changed += 1
        report.problems.append("the user's HEAD or branch changed")
    if (root / "notes.txt").read_text() != USER_EDIT:
        report.git_user_tree_changed += 1
        report.problems.append("the user's uncommitted edit changed")


def check_left_behind(root: Path, branch: str, report: Any) -> None:
    """After `aura down` and `aura clean-workspaces --all --no-dry-run`: only the user's worktree,
    no attempt branch."""
    listed = git(root, "worktree", "list", "--porcelain").count("worktree ")
    attempts = git(root, "branch", "--list", f"{branch}-attempts/*").splitlines()
    report.git_left_behind = (listed - 1) + len(attempts)
    if report.git_left_behind:
        report.problems.append(f"left behind: {listed - 1} worktrees, attempt branches {attempts[:5]}")
