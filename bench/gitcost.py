"""Git mode's cost per attempt, on a real repository of many small files (10,000 by default).

    python -m bench.gitcost                                    # 10,000 files, 20 runs, 10 accepts
    python -m bench.gitcost --files 200 --runs 3 --accepts 2 --json out.json

The repository is generated in a temporary folder (one commit) and git mode is started on it the
way the brain starts it (`GitWork.start`: the integration branch and its worktree under the data
folder). Then, with the same functions the brain calls:

- creating one attempt's worktree: `gitrepo.add_worktree` on a new branch from the integration
  head (the git step of `GitWork.prepare_attempt`), and the brain's whole step
  (`GitWork.prepare_attempt`, which first makes sure the integration worktree is clean);
- removing it: `gitrepo.remove_worktree` + `delete_branch` (what `GitWork.remove_merged` runs);
- for scale, copying the checkout's files without git (`shutil.copytree`);
- disk: `fsutil.tree_size` of a fresh worktree (what `aura status` counts) beside the repository's
  checkout, the worktree's own folder in the repository's git folder (its index), and the blocks
  the file system allocated for each (small files take a whole block);
- one accept: `commit_all` of a one-file change in the attempt's worktree plus `merge` into the
  integration worktree, and `GitWork.accept` with no acceptance commands (the brain's state saves
  are left out: they are no git cost).

Everything is removed at the end; the figures say how many worktrees were left (0 expected).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aura.brain.gitwork import GitWork  # noqa: E402
from aura.runtime import gitrepo as g  # noqa: E402
from aura.runtime.config import Config  # noqa: E402
from aura.runtime.fsutil import tree_size  # noqa: E402
from aura.runtime.gitmode import attempt_branch  # noqa: E402
from aura.runtime.paths import ProjectPaths  # noqa: E402
from bench.stats import percentile, summary  # noqa: E402

WARMUP = 1
COPY_RUNS = 3
FILLER = "an ordinary line of text, as in a small source file or a note\n"


class EventLog:
    """Keeps the events GitWork logs; its warnings and errors go into the figures."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def _keep(self, level: str, event: str) -> None:
        self.events.append((level, event))

    def info(self, event: str, **_fields: Any) -> None:
        self._keep("info", event)

    def warning(self, event: str, **_fields: Any) -> None:
        self._keep("warning", event)

    def error(self, event: str, **_fields: Any) -> None:
        self._keep("error", event)


# -- the repository ------------------------------------------------------------------------------------


def file_path(k: int, folders: int) -> str:
    """The k-th file: spread over the folders one after another, so every folder holds files/folders."""
    return f"d{k % folders:03d}/f{k // folders:04d}.txt"


def make_repo(root: Path, files: int) -> dict[str, Any]:
    """`files` small text files in about sqrt(files) folders, committed on `main` in one commit."""
    folders = max(1, round(math.sqrt(files)))
    t0 = time.perf_counter()
    root.mkdir(parents=True)
    g.run(root, "init", "--quiet")
    g.run(root, "symbolic-ref", "HEAD", "refs/heads/main")
    for k in range(files):
        path = root / file_path(k, folders)
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"file {k} of the bench repository\n" + FILLER * (1 + k % 4))
    g.commit_all(root, f"bench: {files} files")
    checkout = {"bytes": tree_size(root) - tree_size(root / ".git"), "allocated": allocated(root, skip=".git")}
    return {
        "files": files,
        "folders": folders,
        "checkout_bytes": checkout["bytes"],
        "checkout_allocated_bytes": checkout["allocated"],
        "git_dir_bytes": tree_size(root / ".git"),
        "build_s": round(time.perf_counter() - t0, 2),
    }


def allocated(path: Path, skip: str | None = None) -> int:
    """Bytes of the blocks the file system allocated under `path` (what `du` counts)."""
    total = path.lstat().st_blocks * 512
    for folder, dirs, names in os.walk(path, followlinks=False):
        if skip is not None and Path(folder) == path and skip in dirs:
            dirs.remove(skip)
        for name in dirs + names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                pass
    return total


def disk_of(worktree: Path) -> dict[str, int]:
    """A worktree's folder and its own folder in the repository's git folder (index, HEAD, logs)."""
    admin = Path(g.out(worktree, "rev-parse", "--absolute-git-dir"))
    return {
        "worktree_bytes": tree_size(worktree),
        "worktree_allocated_bytes": allocated(worktree),
        "admin_bytes": tree_size(admin),
        "admin_allocated_bytes": allocated(admin),
    }


# -- the measurements ------------------------------------------------------------------------------------


def ms(seconds: list[float]) -> dict[str, Any]:
    """n, min, median, p90, p95, p99, max in milliseconds."""
    out = summary(seconds, 1000, 1)
    if seconds:
        out["p90"] = round(percentile(seconds, 90) * 1000, 1)
    return out


def start_git_mode(root: Path, log: EventLog) -> GitWork:
    """Git mode as the brain starts it: decided on the folder, integration branch and worktree made."""
    paths = ProjectPaths.for_root(root, root / ".aura")
    gw = GitWork(paths, Config(), {}, log, lambda: None)
    refusal = gw.start()
    if refusal or not gw.enabled:
        raise RuntimeError(f"git mode did not start on the bench repository: {refusal or gw.info.get('notes')}")
    return gw


def create_and_remove(gw: GitWork, runs: int) -> dict[str, Any]:
    """Attempt worktrees made and removed one at a time, by the git step alone and by the brain's step."""
    add, prepare, remove = [], [], []
    disk: dict[str, int] = {}
    gw.paths.attempts_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for i in range(WARMUP + runs):
        wid = f"bench-add-{i}"
        path, branch = gw.paths.attempt_dir(wid), attempt_branch(gw.branch, wid)
        head = gw.head()
        t0 = time.perf_counter()
        g.add_worktree(gw.repo, path, branch, head)
        took_add = time.perf_counter() - t0
        if not disk:
            disk = disk_of(path)
        t0 = time.perf_counter()
        g.remove_worktree(gw.repo, path)
        g.delete_branch(gw.repo, branch)
        took_remove = time.perf_counter() - t0

        wid = f"bench-prepare-{i}"
        t0 = time.perf_counter()
        path = gw.prepare_attempt({"id": f"P{i}", "title": "bench"}, wid)
        took_prepare = time.perf_counter() - t0
        g.remove_worktree(gw.repo, path)
        g.delete_branch(gw.repo, attempt_branch(gw.branch, wid))
        if i >= WARMUP:
            add.append(took_add)
            remove.append(took_remove)
            prepare.append(took_prepare)
    return {
        "create_ms": ms(add),
        "prepare_attempt_ms": ms(prepare),
        "remove_ms": ms(remove),
        "copy_checkout_ms": copy_checkout(gw.repo, min(COPY_RUNS, runs)),
        "disk": disk,
    }


def copy_checkout(repo: Path, runs: int) -> dict[str, Any]:
    """For scale: copying the checkout's files (no git) with shutil.copytree, so a reader can tell
    what of a worktree's creation is git and what is the file system creating the files."""
    took = []
    for i in range(runs):
        dest = repo.parent / f"copy-{i}"
        t0 = time.perf_counter()
        shutil.copytree(repo, dest, ignore=shutil.ignore_patterns(".git", ".aura"))
        took.append(time.perf_counter() - t0)
        shutil.rmtree(dest)
    return ms(took)


def accepts(gw: GitWork, runs: int, files: int, folders: int) -> dict[str, Any]:
    """One-file changes accepted into the integration branch: by the two git steps, and by GitWork.accept."""
    commit, merge, whole, brain = [], [], [], []
    changed = 0
    before = gw.head()
    for i in range(WARMUP + runs):
        for how in ("git", "brain"):
            wid = f"bench-accept-{how}-{i}"
            task = {"id": f"A{i}-{how}", "title": "bench change", "spawns": 1}
            path = gw.prepare_attempt(task, wid)
            rel = file_path((changed * 7919) % files, folders)
            changed += 1
            with open(path / rel, "a") as f:
                f.write(f"changed by {wid}\n")
            if how == "git":
                t0 = time.perf_counter()
                g.commit_all(path, f"{task['id']}: bench change")
                t1 = time.perf_counter()
                result = g.merge(gw.integration, task["git"]["branch"], f"Merge {task['id']}")
                t2 = time.perf_counter()
                if not result.merged:
                    raise RuntimeError(f"the bench's merge failed: {result.error}")
                g.remove_worktree(gw.repo, path)
                g.delete_branch(gw.repo, task["git"]["branch"])
                if i >= WARMUP:
                    commit.append(t1 - t0)
                    merge.append(t2 - t1)
                    whole.append(t2 - t0)
            else:
                t0 = time.perf_counter()
                outcome = gw.accept(task, "bench change", [], 60.0)
                took = time.perf_counter() - t0
                if not outcome.ok:
                    raise RuntimeError(f"GitWork.accept failed: {outcome.problem}")
                gw.remove_merged()
                if i >= WARMUP:
                    brain.append(took)
    merges = g.out(gw.integration, "rev-list", "--count", "--merges", f"{before}..HEAD")
    return {
        "commit_all_ms": ms(commit),
        "merge_ms": ms(merge),
        "commit_and_merge_ms": ms(whole),
        "gitwork_accept_ms": ms(brain),
        "merges": int(merges),
        "changes": changed,
    }


def measure(files: int, runs: int, accept_runs: int, where: Path | None = None) -> dict[str, Any]:
    """The whole section, in a temporary folder (under `where` when given) removed at the end."""
    if g.git_binary() is None:
        return {"available": False, "reason": "git is not installed"}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aura-bench-git-", dir=where) as tmp:
        root = Path(tmp) / "repo"
        repo = make_repo(root, files)
        log = EventLog()
        gw = start_git_mode(root, log)
        made = create_and_remove(gw, runs)
        accepted = accepts(gw, accept_runs, files, repo["folders"])
        left = [w for w in g.worktrees(root) if Path(w["worktree"]) not in (root, gw.integration)]
        return {
            "available": True,
            "git": g.out(root, "--version"),
            "repo": repo,
            "runs": runs,
            "accept_runs": accept_runs,
            **made,
            "accept": accepted,
            "worktrees_left": len(left),
            "log_events": [f"{level} {event}" for level, event in log.events if level != "info"],
            "seconds": round(time.monotonic() - t0, 1),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Git mode's cost per attempt on a generated repository.")
    parser.add_argument("--files", type=int, default=10_000, help="files in the repository (default 10,000)")
    parser.add_argument("--runs", type=int, default=20, help="worktrees created and removed (default 20)")
    parser.add_argument("--accepts", type=int, default=10, help="accept steps of each kind (default 10)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.files < 1 or args.runs < 1 or args.accepts < 1:
        parser.error("--files, --runs and --accepts must be at least 1")
    from bench.report import git_lines

    try:
        result = measure(args.files, args.runs, args.accepts)
    except (g.GitError, RuntimeError, OSError) as exc:
        print(f"bench.gitcost: {exc}", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(git_lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
