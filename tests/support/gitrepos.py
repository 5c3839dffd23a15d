"""Real git repositories for the git-mode tests: the `git` command with a fixed identity, a project
folder made a repository with one commit, and what the tests read back from it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "user@example.invalid",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "user@example.invalid",
}
START_FILES = ("a.txt", "b.txt", "notes.txt")
# the data folders stay out of the user's `git status`; *.ckpt stands for a large output git ignores
IGNORED = ".aura/\nruns/\ntask.md\n*.ckpt\n"


def git(root: Path, *args: str, check: bool = True) -> str:
    """`git -C root ARGS` as the test user; its output, stripped."""
    proc = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False, env={**os.environ, **GIT_ENV}
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def make_repo(root: Path) -> str:
    """A repository on branch main with a few files and one commit; returns that commit."""
    git(root, "init", "-q", "-b", "main")
    for name in START_FILES:
        (root / name).write_text(f"{name} at the start\n")
    (root / ".gitignore").write_text(IGNORED)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "start")
    return git(root, "rev-parse", "HEAD")


def commit_file(root: Path, name: str, text: str, message: str) -> str:
    (root / name).write_text(text)
    git(root, "add", name)
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


def worktree_paths(root: Path) -> list[str]:
    listed = git(root, "worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in listed.splitlines() if line.startswith("worktree ")]


def branch_names(root: Path) -> list[str]:
    return [b for b in git(root, "for-each-ref", "--format=%(refname:short)", "refs/heads/").splitlines() if b]


def git_ok(root: Path, *args: str) -> bool:
    """Whether `git -C root ARGS` succeeds (merge-base --is-ancestor, symbolic-ref, ...)."""
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False).returncode == 0
