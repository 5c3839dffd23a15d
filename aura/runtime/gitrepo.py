"""The git commands Aura runs, and nothing else: each one a function with a clear failure.

Aura never runs a command here in the user's own working tree that changes it: worktrees,
branches and merges happen in worktrees Aura created under its data folder. The user's tree is
only read (`probe`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

GIT_TIMEOUT_S = 300.0
_INHERITED = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR", "GIT_PREFIX")
FALLBACK_NAME = "Aura"
FALLBACK_EMAIL = "aura@localhost"
SHOWN_ARG_CHARS = 80


class GitError(Exception):
    """A git command failed; the message names the command and git's own words."""


@dataclass
class RepoInfo:
    """What `probe` found in a project folder."""

    toplevel: Path
    head: str | None  # None: a repository without a commit yet
    branch: str | None  # None: a detached HEAD
    dirty: list[str] = field(default_factory=list)  # changed or untracked paths, the data folder left out
    submodules: bool = False


def git_binary() -> str | None:
    return shutil.which("git")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED}
    env["LC_ALL"] = "C"
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


_waiter: Callable[[float], None] | None = None
WAIT_STEP_S = 0.05


def while_git_runs(wait: Callable[[float], None] | None) -> None:
    """A daemon's pump, called while a git command runs: a slow one (a worktree of a large repository
    takes seconds) never stops the daemon answering its peers."""
    global _waiter
    _waiter = wait


def run(where: Path, *args: str, check: bool = True, timeout: float = GIT_TIMEOUT_S) -> subprocess.CompletedProcess:
    """`git -C where ARGS`, output captured as text; GitError when it fails and `check`."""
    exe = git_binary()
    if exe is None:
        raise GitError("git is not installed (Debian/Ubuntu: apt-get install git)")
    argv = [exe, "-C", str(where), *args]
    child = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        stdin=subprocess.DEVNULL,
        env=_env(),
    )
    deadline = time.monotonic() + timeout
    while True:
        step = WAIT_STEP_S if _waiter is not None else max(0.0, deadline - time.monotonic())
        try:
            stdout, stderr = child.communicate(timeout=step)
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                child.kill()
                child.communicate()
                raise GitError(f"git {shown(args)} did not finish within {timeout:g}s") from None
            if _waiter is not None:
                _waiter(WAIT_STEP_S)
    proc = subprocess.CompletedProcess(argv, child.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        said = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise GitError(f"git {shown(args)} failed: {' | '.join(said[-4:]) or f'exit {proc.returncode}'}")
    return proc


def shown(args: tuple[str, ...], most: int = SHOWN_ARG_CHARS) -> str:
    """The arguments on one short line: an error is one line even when a commit message is several."""
    parts = []
    for arg in args:
        first = (arg.splitlines() or [""])[0]
        parts.append(first[:most] + "..." if first != arg or len(first) > most else first)
    return " ".join(parts)


def out(where: Path, *args: str) -> str:
    return str(run(where, *args).stdout).strip()


# -- reading ---------------------------------------------------------------------------------------


def probe(folder: Path, leave_out: Path | None = None) -> RepoInfo | None:
    """The repository `folder` is in, or None when it is not in a work tree. `leave_out` (the data
    folder) is not counted as an uncommitted change."""
    inside = run(folder, "rev-parse", "--is-inside-work-tree", check=False)
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return None
    top = Path(out(folder, "rev-parse", "--show-toplevel")).resolve()
    head_proc = run(top, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    head = head_proc.stdout.strip() or None if head_proc.returncode == 0 else None
    branch_proc = run(top, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    branch = branch_proc.stdout.strip() or None if branch_proc.returncode == 0 else None
    info = RepoInfo(top, head, branch, submodules=(top / ".gitmodules").exists())
    if head is not None:
        info.dirty = changed_paths(top, leave_out)
    return info


def changed_paths(worktree: Path, leave_out: Path | None = None) -> list[str]:
    """Paths with uncommitted changes or untracked (not ignored) files."""
    args = ["status", "--porcelain=v1", "-z", "--untracked-files=all"]
    if leave_out is not None:
        try:
            rel = leave_out.resolve().relative_to(worktree.resolve())
            args += ["--", ".", f":(exclude){rel.as_posix()}"]
        except ValueError:
            pass
    entries = run(worktree, *args).stdout.split("\0")
    return [e[3:] for e in entries if len(e) > 3]


def rev(where: Path, name: str) -> str | None:
    proc = run(where, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}", check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def is_ancestor(where: Path, older: str, newer: str) -> bool:
    return run(where, "merge-base", "--is-ancestor", older, newer, check=False).returncode == 0


def common_dir(where: Path) -> Path:
    """The repository's shared git folder (objects, refs), whichever worktree `where` is."""
    found = Path(out(where, "rev-parse", "--git-common-dir"))
    return (where / found).resolve() if not found.is_absolute() else found


def is_ignored(worktree: Path, rel: str) -> bool:
    return run(worktree, "check-ignore", "-q", "--no-index", "--", rel, check=False).returncode == 0


def diffstat(where: Path, base: str, head: str = "HEAD") -> str:
    """`git diff --stat base head`, its summary line last ('' when nothing changed)."""
    return out(where, "diff", "--stat=100", f"{base}", f"{head}")


def diff(where: Path, base: str, head: str = "HEAD") -> str:
    return str(run(where, "diff", base, head).stdout)


def changed_files(where: Path, base: str, head: str = "HEAD") -> list[str]:
    return [p for p in out(where, "diff", "--name-only", base, head).splitlines() if p]


# -- worktrees and branches (Aura's own only) ------------------------------------------------------


def add_worktree(repo: Path, path: Path, branch: str, start: str) -> None:
    """A new worktree at `path` on a new `branch` from `start`; an existing one on that branch is kept
    (a brain that restarted between the two steps of a spawn creates it once)."""
    if (path / ".git").exists() and current_branch(path) == branch:
        return
    run(repo, "worktree", "prune")
    if rev(repo, f"refs/heads/{branch}") is not None:
        run(repo, "worktree", "add", "--quiet", str(path), branch)
    else:
        run(repo, "worktree", "add", "--quiet", "-b", branch, str(path), start)


def current_branch(worktree: Path) -> str | None:
    proc = run(worktree, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def remove_worktree(repo: Path, path: Path) -> None:
    """`git worktree remove --force` (the worktree is Aura's; what it held worth keeping was committed
    or copied out before), then `prune` for one deleted by hand."""
    if path.exists():
        run(repo, "worktree", "remove", "--force", "--force", str(path))
    run(repo, "worktree", "prune")


def delete_branch(repo: Path, branch: str) -> None:
    run(repo, "branch", "-D", "--quiet", branch, check=False)


def branches(repo: Path, prefix: str) -> list[str]:
    listed = out(repo, "for-each-ref", "--format=%(refname:short)", f"refs/heads/{prefix}")
    return [b for b in listed.splitlines() if b]


def worktrees(repo: Path) -> list[dict[str, str]]:
    """`git worktree list --porcelain` as records with `worktree`, `HEAD` and `branch`."""
    records: list[dict[str, str]] = []
    for block in out(repo, "worktree", "list", "--porcelain").split("\n\n"):
        rec: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(" ")
            rec[key] = value.removeprefix("refs/heads/") if key == "branch" else value
        if rec.get("worktree"):
            records.append(rec)
    return records


# -- commits and merges ------------------------------------------------------------------------------


def _identity(where: Path) -> list[str]:
    """`-c user.name/-c user.email` when the repository has none, so a commit never fails for it."""
    args: list[str] = []
    for key, fallback in (("user.name", FALLBACK_NAME), ("user.email", FALLBACK_EMAIL)):
        if run(where, "config", key, check=False).returncode != 0:
            args += ["-c", f"{key}={fallback}"]
    return args


def stage_all(worktree: Path) -> None:
    run(worktree, "add", "--all")


def commit_all(worktree: Path, message: str) -> str:
    """Commit everything the worker left (ignored files stay out); the head either way."""
    stage_all(worktree)
    if run(worktree, "diff", "--cached", "--quiet", check=False).returncode != 0:
        run(worktree, *_identity(worktree), "commit", "--quiet", "-m", message)
    return out(worktree, "rev-parse", "HEAD")


@dataclass
class MergeResult:
    merged: bool
    commit: str | None = None
    conflicts: list[str] = field(default_factory=list)
    hunks: str = ""
    error: str = ""


def merge(worktree: Path, branch: str, message: str, max_hunk_chars: int = 6000) -> MergeResult:
    """Merge `branch` into the branch checked out in `worktree` (never the user's) with a merge
    commit. A conflict leaves the worktree as it was, with the conflicting files and hunks reported."""
    proc = run(worktree, *_identity(worktree), "merge", "--no-ff", "--no-edit", "-m", message, branch, check=False)
    if proc.returncode == 0:
        return MergeResult(True, out(worktree, "rev-parse", "HEAD"))
    conflicts = [p for p in out(worktree, "diff", "--name-only", "--diff-filter=U").splitlines() if p]
    hunks = str(run(worktree, "diff", check=False).stdout)[:max_hunk_chars] if conflicts else ""
    said = (proc.stdout + proc.stderr).strip().splitlines()
    abort_merge(worktree)
    return MergeResult(False, conflicts=conflicts, hunks=hunks, error=" | ".join(said[-4:]))


def abort_merge(worktree: Path) -> None:
    """Back to the branch's head: a merge half done (a conflict, a brain killed mid-merge) is undone."""
    run(worktree, "merge", "--abort", check=False)
    run(worktree, "reset", "--hard", "--quiet", "HEAD")


def reset_to(worktree: Path, commit: str) -> None:
    """Move the branch checked out in `worktree` (Aura's integration branch) back to `commit`."""
    run(worktree, "reset", "--hard", "--quiet", commit)


def merge_commit_of(where: Path, since: str, head: str, merged: str) -> str | None:
    """The merge commit on `head`'s first-parent line after `since` that brought in `merged`."""
    lines = out(where, "rev-list", "--first-parent", "--merges", "--parents", f"{since}..{head}").splitlines()
    for line in lines:
        commit, *parents = line.split()
        if merged in parents[1:]:
            return commit
    return None
