"""Git mode in the brain: the run's integration branch, one worktree per attempt, and the merge of an
attempt whose evidence the brain accepted.

The merge is a transaction kept in `state["git"]["merging"]` and saved before each step (commit,
merge, check), so a brain killed at any instant finishes it exactly once after a restart: a merge
already on the integration branch is found there (`is_ancestor`), a half-done one is undone first.
Every git command runs in a worktree Aura created under the data folder; the user's branch, HEAD
and working tree are never touched.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aura.runtime import gitrepo as g
from aura.runtime.config import Config
from aura.runtime.fsutil import atomic_write_text, tree_size
from aura.runtime.gitmode import attempt_branch, decide, integration_branch, new_run_id
from aura.runtime.paths import ProjectPaths
from aura.runtime.procgroup import processes_in

from . import evidence as ev
from .state import attempt_no

CONFLICT_HUNK_CHARS = 6000
DISK_EVERY_S = 60.0
GIT_IDLE_WAIT_S = 30.0  # how long a resumed merge waits for a git a killed brain left running
GIT_TRIES = 10  # cycles a merge step git cannot run is tried in before its attempt fails


@dataclass
class MergeOutcome:
    ok: bool
    commit: str | None = None
    problem: str = ""
    conflict: dict[str, Any] = field(default_factory=dict)
    facts: list[str] = field(default_factory=list)
    later: bool = False  # not decided: git could not run now (the transaction is kept and resumed)


class GitWork:
    """The run's git state (`state["git"]`) and the commands that change it."""

    def __init__(self, paths: ProjectPaths, cfg: Config, state: dict, log: Any, save: Callable[[], None]):
        self.paths = paths
        self.cfg = cfg
        self.state = state
        self.log = log
        self.save = save
        self.wait: Callable[[float], None] = time.sleep

    @property
    def info(self) -> dict:
        return self.state.setdefault("git", {})

    @property
    def enabled(self) -> bool:
        return bool(self.info.get("enabled"))

    @property
    def repo(self) -> Path:
        return Path(self.info["repo"])

    @property
    def branch(self) -> str:
        return str(self.info["branch"])

    @property
    def integration(self) -> Path:
        return self.paths.integration_dir

    # -- the start of a run -------------------------------------------------------------------------
    def start(self) -> str | None:
        """Decide git mode once per run (kept in the state), then make sure the integration branch and
        its worktree exist. Returns why no worker may start, when git mode is refused."""
        if "enabled" not in self.info:
            decision = decide(self.cfg, self.paths.root, self.paths.data)
            if decision.refusal:
                self.log.error("git_refused", reason=decision.refusal)
                return decision.refusal
            run_id = new_run_id()
            self.info.update(enabled=decision.enabled, notes=decision.notes, run_id=run_id)
            if decision.enabled:
                assert decision.repo is not None and decision.base is not None
                branch = integration_branch(self.cfg, run_id)
                existing = g.rev(decision.repo, f"refs/heads/{branch}")
                self.info.update(
                    subdir=os.path.relpath(self.paths.root.resolve(), decision.repo),
                    repo=str(decision.repo),
                    base=existing or decision.base,
                    branch=branch,
                    user_branch=decision.user_branch,
                    merged=[],
                    started_at=time.time(),
                )
            self.log.info("git_mode", enabled=decision.enabled, notes=decision.notes)
            if decision.enabled:
                self.ignore_data_folder()
                self.retire_earlier_worktrees()
            self.save()
        if not self.enabled:
            return None
        try:
            self.ensure_integration()
        except g.GitError as exc:
            self.log.error("git_unusable", error=str(exc))
            return f"git mode cannot go on: {exc}"
        return None

    def ignore_data_folder(self) -> None:
        """A data folder inside the repository ignores itself (as a virtualenv does), so the user's
        `git status` and `git add -A` never take up Aura's files or the worktrees nested in it."""
        marker = self.paths.data / ".gitignore"
        if not marker.exists():
            atomic_write_text(marker, "# Aura's data folder: not part of the project\n*\n")

    def retire_earlier_worktrees(self) -> None:
        """A new run in a data folder an earlier run used (`aura restart`): the earlier run's worktrees
        give their folders back. What an attempt left uncommitted is committed on its own branch first,
        so nothing is lost; the branches stay (`aura clean-workspaces` and git show them)."""
        mine = str(self.paths.git_dir.resolve()) + os.sep
        for rec in g.worktrees(self.repo):
            path = Path(rec["worktree"])
            if not str(path.resolve()).startswith(mine):
                continue
            if processes_in(path):
                self.log.warning("git_earlier_worktree_busy", worktree=str(path))
                continue
            try:
                if rec.get("branch") and "-attempts/" in rec["branch"]:
                    g.commit_all(path, "Kept from an earlier run: what the attempt left uncommitted")
                g.remove_worktree(self.repo, path)
            except g.GitError as exc:
                self.log.warning("git_earlier_worktree_kept", worktree=str(path), error=str(exc))

    def ensure_integration(self) -> None:
        """The integration branch (recreated at the last head known, or the base, when deleted by hand)
        checked out in `<data>/git/integration`."""
        if g.rev(self.repo, f"refs/heads/{self.branch}") is None:
            start = self.info.get("head") or self.info["base"]
            g.run(self.repo, "branch", self.branch, start)
            if self.info.get("branch_made"):
                self.log.warning("git_branch_recreated", branch=self.branch, at=start)
            self.info["branch_made"] = True
        self.paths.git_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        g.add_worktree(self.repo, self.integration, self.branch, self.branch)
        if self.info.get("merging") is None:
            g.abort_merge(self.integration)  # a merge a killed brain left half done, with no transaction

    def head(self) -> str:
        return g.out(self.integration, "rev-parse", "HEAD")

    def in_tree(self, worktree: Path) -> Path:
        """The project folder inside a worktree (the project may be a folder of its repository)."""
        return (worktree / str(self.info.get("subdir") or ".")).resolve()

    def work_root(self) -> Path:
        """Where the merged work is: acceptance commands and the model's reading tools look there."""
        return self.in_tree(self.integration) if self.enabled else self.paths.root

    # -- an attempt -----------------------------------------------------------------------------------
    def prepare_attempt(self, task: dict, worker_id: str, resume: bool = False) -> Path:
        """A fresh worktree of the integration head on the attempt's own branch; kept as it is when
        it exists already (a spawn sent again after a restart). `resume`: a parked attempt that
        continues its session continues in its worktree too."""
        known = task.get("git") or {}
        if resume and known.get("worktree") and Path(known["worktree"], ".git").exists():
            known["worker_id"] = worker_id
            return Path(known["workdir"])
        self.ensure_integration()
        path = self.paths.attempt_dir(worker_id)
        branch = attempt_branch(self.branch, worker_id)
        self.paths.attempts_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        g.add_worktree(self.repo, path, branch, self.head())
        base = known.get("base") if known.get("worker_id") == worker_id else None
        task["git"] = {
            "worker_id": worker_id,
            "branch": branch,
            "worktree": str(path),
            "workdir": str(self.in_tree(path)),
            "base": base or g.out(path, "rev-parse", "HEAD"),
        }
        Path(task["git"]["workdir"]).mkdir(parents=True, exist_ok=True)
        return Path(task["git"]["workdir"])

    def sandbox_mounts(self, task: dict) -> list[str]:
        """What a sandboxed worker must write to commit in its worktree: the objects, its own worktree
        record and its branch's ref folder; the user's refs stay read-only."""
        common = g.common_dir(self.repo)
        branch = task["git"]["branch"]
        folders = [
            common / "objects",
            Path(g.out(Path(task["git"]["worktree"]), "rev-parse", "--absolute-git-dir")),
            common / "refs" / "heads" / Path(branch).parent,
            common / "logs" / "refs" / "heads" / Path(branch).parent,
        ]
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        return [str(f) for f in folders]

    def worktree_of(self, task: dict) -> Path | None:
        known = task.get("git") or {}
        return Path(known["worktree"]) if known.get("worktree") else None

    def attempt_diff(self, task: dict) -> dict:
        """Stage everything the attempt left (in its own index) and compare with its base: the
        diffstat and the files, for the evidence, the brain's context and the summary."""
        known = task.get("git") or {}
        wt = self.worktree_of(task)
        if wt is None or not (wt / ".git").exists():
            if known.get("branch") and g.rev(self.repo, f"refs/heads/{known['branch']}"):
                self.log.warning("git_worktree_missing", task=task["id"], worktree=str(wt))
                g.add_worktree(self.repo, Path(known["worktree"]), known["branch"], known["branch"])
                known["missing"] = (
                    f"its worktree {wt} was deleted while the attempt ran (made again from its branch; "
                    "what it had not committed is gone)"
                )
            else:
                return {"missing": f"the attempt's worktree {wt} is gone"}
        assert wt is not None
        g.stage_all(wt)
        stat = g.out(wt, "diff", "--cached", "--stat=100", known["base"])
        files = [p for p in g.out(wt, "diff", "--cached", "--name-only", known["base"]).splitlines() if p]
        summary = stat.splitlines()[-1].strip() if stat else "no change"
        known.update(diffstat=stat, diff_summary=summary, changed=files[:200])
        return known

    def commit_brain_write(self, rel: str) -> str:
        """The model's `write_file` lands on the integration branch as its own commit, so the
        integration worktree stays clean for the next merge."""
        return g.commit_all(self.integration, f"brain: write {rel}")

    # -- acceptance: commit, keep ignored artifacts, merge, check ----------------------------------------
    def accept(self, task: dict, evidence_line: str, commands: list[str], timeout: float) -> MergeOutcome:
        """Merge the attempt of `task` whose evidence the brain accepted (resuming a transaction a
        killed brain left for the same attempt)."""
        known = task.get("git") or {}
        try:
            self.ensure_integration()  # deleted by hand: made again at the branch's head
            txn = self.info.get("merging")
            if not txn or txn.get("worker_id") != known.get("worker_id"):
                txn = {
                    "task_id": task["id"],
                    "worker_id": known.get("worker_id"),
                    "branch": known.get("branch"),
                    "before": self.head(),
                    "stage": "commit",
                    "evidence": evidence_line[:500],
                }
                self.info["merging"] = txn
                self.save()
        except g.GitError as exc:
            return self._later(task, known, exc)  # no transaction yet: the attempt's record counts the tries
        wt = self.worktree_of(task)
        assert wt is not None
        try:
            return self._advance(txn, task, known, wt, commands, timeout)
        except g.GitError as exc:
            return self._later(task, txn, exc)

    def _later(self, task: dict, txn: dict, exc: g.GitError) -> MergeOutcome:
        """Git could not run the step now (a lock, a folder in the way): the transaction is kept and
        resumed at the next cycle, up to GIT_TRIES times; then the attempt fails with git's words."""
        txn["tries"] = int(txn.get("tries", 0)) + 1
        self.log.warning("git_merge_later", task=task["id"], stage=txn.get("stage"), tries=txn["tries"], error=str(exc))
        if txn["tries"] >= GIT_TRIES:
            return self._finish(txn, MergeOutcome(False, problem=f"git failed {txn['tries']} times: {exc}"))
        self.save()
        return MergeOutcome(False, problem=str(exc), later=True)

    def _advance(
        self, txn: dict, task: dict, known: dict, wt: Path, commands: list[str], timeout: float
    ) -> MergeOutcome:
        for folder in (wt, self.integration):
            if not self.settle_git(folder):
                return MergeOutcome(False, problem=f"git still runs in {folder}", later=True)
        if txn["stage"] == "commit":
            title = str(task.get("title") or "")[:60]
            message = f"{task['id']} attempt {attempt_no(task)}: {title}\n\nAura evidence: {txn['evidence']}"
            try:
                txn["head"] = known["head"] = g.commit_all(wt, message)
            except g.GitError as exc:  # a pre-commit hook of the repository refused it
                return self._finish(txn, MergeOutcome(False, problem=f"the commit of its work was refused: {exc}"))
            kept = self.keep_ignored_artifacts(task, Path(known.get("workdir") or wt))
            txn.update(stage="merge", kept=kept)
            self.save()
        if txn["stage"] == "merge":
            outcome = self._merge(txn, task)
            if not outcome.ok:
                return self._finish(txn, outcome)
            txn.update(stage="check", commit=outcome.commit)
            self.save()
        return self._finish(txn, self._check(txn, commands, timeout))

    def settle_git(self, folder: Path) -> bool:
        """Wait for a git a killed brain left running in `folder` (it finishes its commit or merge),
        then take away the lock it can leave behind. False when it is still running."""
        deadline = time.monotonic() + GIT_IDLE_WAIT_S
        while git_processes_in(folder):
            if time.monotonic() > deadline:
                return False
            self.wait(0.2)
        lock = Path(g.out(folder, "rev-parse", "--absolute-git-dir")) / "index.lock"
        if lock.exists():
            self.log.warning("git_stale_lock_removed", path=str(lock))
            lock.unlink(missing_ok=True)
        return True

    def _merge(self, txn: dict, task: dict) -> MergeOutcome:
        g.abort_merge(self.integration)  # a merge half done by a brain killed mid-merge
        head, before = txn["head"], txn["before"]
        if g.is_ancestor(self.integration, head, before):
            return MergeOutcome(True, None, facts=["no commit to merge (the attempt changed nothing)"])
        if g.is_ancestor(self.integration, head, "HEAD"):
            commit = g.merge_commit_of(self.integration, before, "HEAD", head) or self.head()
            return MergeOutcome(True, commit, facts=[f"merged as {commit[:10]} (before a restart)"])
        message = f"Merge {txn['task_id']} ({txn['worker_id']}) into {self.branch}\n\nAura evidence: {txn['evidence']}"
        result = g.merge(self.integration, txn["branch"], message, CONFLICT_HUNK_CHARS)
        if result.merged:
            return MergeOutcome(True, result.commit, facts=[f"merged into {self.branch} as {str(result.commit)[:10]}"])
        if not result.conflicts:
            return MergeOutcome(False, problem=f"the merge into {self.branch} failed: {result.error}")
        conflict = {"files": result.conflicts, "hunks": result.hunks, "head": self.head()}
        return MergeOutcome(
            False,
            problem=f"merge conflict with {self.branch} in {', '.join(result.conflicts[:8])}",
            conflict=conflict,
        )

    def _check(self, txn: dict, commands: list[str], timeout: float) -> MergeOutcome:
        """The task's acceptance commands on the merged tree; a failure takes the merge back."""
        commit = txn.get("commit")
        facts = [f"merged into {self.branch} as {commit[:10]}"] if commit else ["no commit to merge"]
        if not commands:
            return MergeOutcome(True, commit, facts=facts)
        proof = ev.run_acceptance(commands, self.work_root(), timeout, wait=self.wait)
        if proof.ok:
            return MergeOutcome(True, commit, facts=facts + [f"on the merged tree: {f}" for f in proof.facts])
        if commit and self.head() == commit:
            g.reset_to(self.integration, txn["before"])
        return MergeOutcome(
            False,
            problem="on the merged tree: " + "; ".join(proof.problems),
            conflict={"files": [], "hunks": "", "head": self.head(), "failed_checks": proof.problems},
        )

    def _finish(self, txn: dict, outcome: MergeOutcome) -> MergeOutcome:
        self.info.pop("merging", None)
        if outcome.ok:
            self.info.setdefault("merged", []).append(
                {"task_id": txn["task_id"], "worker_id": txn["worker_id"], "commit": outcome.commit, "at": time.time()}
            )
            self.info["head"] = self.head()
            self.info.setdefault("to_remove", []).append(txn["worker_id"])
        self.save()
        return outcome

    def keep_ignored_artifacts(self, task: dict, workdir: Path) -> list[str]:
        """A named artifact git ignores is copied to the run's output folder at the same path, so
        removing the worktree never loses it."""
        kept = []
        for rel in task.get("artifacts") or []:
            src = ev.resolve_inside(workdir, rel)
            if src is None or not src.exists() or not g.is_ignored(workdir, rel):
                continue
            dest = self.paths.outputs_dir / src.relative_to(workdir.resolve())
            dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dest, dirs_exist_ok=True, symlinks=True)
            else:
                shutil.copy2(src, dest)
            kept.append(str(dest))
        return kept

    # -- nothing left behind ------------------------------------------------------------------------------
    def remove_merged(self, live_cwds: Callable[[Path], list[int]] | None = None) -> list[str]:
        """Remove merged attempts' worktrees and branches once no process runs in them."""
        busy = live_cwds or processes_in
        removed = []
        for wid in list(self.info.get("to_remove") or []):
            path = self.paths.attempt_dir(wid)
            if busy(path):
                continue
            try:
                g.remove_worktree(self.repo, path)
                g.delete_branch(self.repo, attempt_branch(self.branch, wid))
            except g.GitError as exc:
                self.log.warning("git_cleanup_failed", worker=wid, error=str(exc))
                continue
            self.info["to_remove"].remove(wid)
            removed.append(wid)
        if removed:
            self.save()
        return removed

    def measure_disk(self) -> int:
        """The blocks the worktrees take, with each one's own folder in the repository (its index)."""
        total = tree_size(self.paths.git_dir, on_disk=True)
        for dot_git in [self.integration / ".git", *self.paths.attempts_dir.glob("*/.git")]:
            try:
                admin = dot_git.read_text().removeprefix("gitdir:").strip()
            except OSError:
                continue
            total += tree_size(Path(admin), on_disk=True)
        return total

    def disk_bytes(self) -> int:
        """The disk the worktrees use, measured at most once a minute (a walk of every file)."""
        now = time.time()
        if now - float(self.info.get("disk_at") or 0) >= DISK_EVERY_S:
            self.info.update(disk_bytes=self.measure_disk(), disk_at=now)
        return int(self.info.get("disk_bytes") or 0)


def status_of(info: dict) -> dict | None:
    """What `aura status` and the final report show of git mode (None when it is off)."""
    if not info.get("enabled"):
        return {"enabled": False, "notes": info.get("notes") or []} if info else None
    branch = info.get("branch")
    return {
        "enabled": True,
        "branch": branch,
        "base": info.get("base"),
        "head": info.get("head") or info.get("base"),
        "user_branch": info.get("user_branch"),
        "merged": [m.get("task_id") for m in info.get("merged") or []],
        "merging": (info.get("merging") or {}).get("task_id"),
        "disk_bytes": info.get("disk_bytes"),
        "bring_in": f"git merge {branch}",
    }


def git_processes_in(folder: Path) -> list[int]:
    """The git commands (and the hooks they run) working in `folder`."""
    import psutil

    found = []
    for pid in processes_in(folder):
        try:
            if psutil.Process(pid).name().startswith("git"):
                found.append(pid)
        except psutil.Error:
            continue
    return found
