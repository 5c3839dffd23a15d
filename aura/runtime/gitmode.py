"""Git mode's decision at the start of a run, and its names: one owner for both, since `aura up`
says what the brain will do and `aura clean-workspaces` finds what the brain made.

Branches: the integration branch is AURA_GIT_BRANCH (default `aura/<run id>`); an attempt's branch
is `<integration>-attempts/<worker id>`. Git cannot hold both `aura/<run>` and `aura/<run>/<x>` (a
ref cannot be a file and a folder at once), hence the suffix.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config
from .gitrepo import GitError, RepoInfo, git_binary, probe, run, worktrees

ATTEMPTS_SUFFIX = "-attempts"
DIRTY_SHOWN = 5


@dataclass
class GitDecision:
    """Whether this run works in git mode, what `aura up` says about it, or why it must not start."""

    enabled: bool
    notes: list[str] = field(default_factory=list)
    refusal: str | None = None
    repo: Path | None = None
    base: str | None = None
    user_branch: str | None = None


def new_run_id(now: float | None = None) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + "-" + secrets.token_hex(2)


def integration_branch(cfg: Config, run_id: str) -> str:
    return cfg.text("AURA_GIT_BRANCH").strip() or f"aura/{run_id}"


def attempt_branch(integration: str, worker_id: str) -> str:
    return f"{integration}{ATTEMPTS_SUFFIX}/{worker_id}"


def attempts_prefix(integration: str) -> str:
    return f"{integration}{ATTEMPTS_SUFFIX}/"


def decide(cfg: Config, root: Path, data: Path) -> GitDecision:
    """Git mode or not for a run in `root`, with the lines that say so; `refusal` when a setting asks
    for what the folder cannot give (AURA_GIT=on without a repository, AURA_GIT_DIRTY=refuse)."""
    mode = cfg.text("AURA_GIT")
    if mode == "off":
        return GitDecision(False, ["git mode is off (AURA_GIT=off): workers run in the project folder itself"])
    if git_binary() is None:
        return _without("git is not installed", mode)
    try:
        info = probe(root, leave_out=data)
    except GitError as exc:
        return _without(str(exc), mode)
    if info is None:
        return _without(f"{root} is not a git work tree", mode)
    if info.head is None:
        return GitDecision(
            False,
            refusal=f"{info.toplevel} is a git repository without a commit: git mode branches from one "
            "(make a first commit, e.g. `git commit --allow-empty -m init`, or set AURA_GIT=off)",
        )
    try:
        branch_problem = _branch_problem(cfg, info, data)
    except GitError as exc:
        return _without(str(exc), mode)
    if branch_problem:
        return GitDecision(False, refusal=branch_problem)
    where = f"branch {info.branch}" if info.branch else "a detached HEAD"
    notes = [f"git mode: workers branch from {where} at {info.head[:10]}; each attempt gets its own worktree"]
    if info.submodules:
        notes.append("git mode: submodules are not checked out in the workers' worktrees (not supported)")
    if info.dirty:
        shown = ", ".join(info.dirty[:DIRTY_SHOWN]) + (
            f" and {len(info.dirty) - DIRTY_SHOWN} more" if len(info.dirty) > DIRTY_SHOWN else ""
        )
        line = f"uncommitted changes in {info.toplevel} are not visible to workers ({shown})"
        if cfg.text("AURA_GIT_DIRTY") == "refuse":
            return GitDecision(False, refusal=f"{line}; AURA_GIT_DIRTY=refuse: commit or stash them first")
        notes.append(f"warning: {line}; commit them first for the workers to build on them")
    return GitDecision(True, notes, repo=info.toplevel, base=info.head, user_branch=info.branch)


def _without(why: str, mode: str) -> GitDecision:
    if mode == "on":
        return GitDecision(False, refusal=f"AURA_GIT=on but {why}")
    return GitDecision(False, [f"{why}: workers run in the project folder itself (no git mode)"])


def _branch_problem(cfg: Config, info: RepoInfo, data: Path) -> str | None:
    """Why the integration branch cannot be used: a name git refuses (or expands, like `@{-1}`), a
    branch git cannot create next to the existing ones, or one checked out in a work tree that is
    not this run's (git refuses a second checkout, and the user's branch is never Aura's to change)."""
    name = cfg.text("AURA_GIT_BRANCH").strip()
    setting = f"AURA_GIT_BRANCH={name!r}"
    if not name:
        name, setting = "aura/<run id>", "the integration branch aura/<run id>"
    else:
        proc = run(info.toplevel, "check-ref-format", "--branch", name, check=False)
        if proc.returncode != 0 or proc.stdout.strip() != name:
            return f"{setting} is not a valid git branch name"
    clash = _ref_clash(info.toplevel, name)
    if clash:
        return (
            f"{setting} cannot be created next to the existing branch {clash} (a branch name cannot also "
            "be a folder of branches): set AURA_GIT_BRANCH to another name"
        )
    for rec in worktrees(info.toplevel):
        place = Path(rec["worktree"]).resolve()
        mine = place.is_relative_to(data.resolve()) or "prunable" in rec  # a folder deleted by hand is pruned
        if rec.get("branch") == name and not mine:
            return f"{setting} is the branch checked out in {place}: Aura never works on it; name another branch"
    return None


def _ref_clash(top: Path, name: str) -> str | None:
    """An existing branch that is a folder of `name` or of its attempts' branches, or one inside `name`."""
    parts = attempt_branch(name, "x").split("/")
    for i in range(1, len(parts)):
        prefix = "/".join(parts[:i])
        if run(top, "show-ref", "--verify", "--quiet", f"refs/heads/{prefix}", check=False).returncode == 0:
            return prefix
    listed = run(top, "for-each-ref", "--format=%(refname:short)", f"refs/heads/{name}", check=False).stdout
    return next((b for b in str(listed).splitlines() if b.startswith(f"{name}/")), None)
