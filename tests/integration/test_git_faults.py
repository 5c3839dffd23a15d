"""Git mode's faults and bad input, with real git, real daemons and the real CLI: a folder that is not
a repository, AURA_GIT on and off, an empty repository, uncommitted changes, bad branch names, a
detached HEAD, the user working on their branch during the run, worktrees deleted by hand, two runs
on one repository, a submodule, and an ignored artifact kept under the data folder. Each time the
user sees one line, never a traceback, and nothing of theirs is lost."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from aura.runtime.fsutil import read_json, read_jsonl
from tests.support.gitrepos import (
    GIT_ENV,
    branch_names,
    commit_file,
    git,
    git_ok,
    make_repo,
    worktree_paths,
)
from tests.support.harness import Project, run_in, wait_for

ONE_TASK = "# Write a note\n\n- [ ] write c `printf 'C\\n' > c.txt` creates `c.txt`\n"
RUN_S = 60  # a run of one or two shell tasks takes a few seconds; this is the ceiling on a loaded machine


def state(p: Project) -> dict:
    return read_json(p.paths.state_dir / "state.json") or {}


def finished(p: Project) -> dict | None:
    st = state(p)
    return st if (st.get("run") or {}).get("finished") else None


def run_to_end(p: Project, body: str = ONE_TASK, *up_args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """`aura up -d` on `body`, then the state once the run has finished."""
    p.write_task(body)
    said = p.up("task.md", *up_args)
    return said, wait_for(lambda: finished(p), RUN_S, what="the run to finish")


def tasks_by_title(st: dict) -> dict[str, dict]:
    return {t["title"].split(" `")[0]: t for t in st["tasks"].values() if t["id"] != "ROOT"}


def lines_with(text: str, words: str) -> list[str]:
    return [line for line in text.splitlines() if words in line]


def assert_refused(p: Project, said: subprocess.CompletedProcess, *words: str) -> str:
    """`aura up` refused in one line naming `words`, with no traceback, and started nothing."""
    err = said.stderr.strip()
    assert said.returncode == 1 and said.stdout == "", said
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("Error: ") and err.endswith("Nothing was started."), err
    for word in words:
        assert word in err, err
    assert not (p.paths.state_dir / "state.json").exists()
    assert not p.paths.git_dir.exists()
    assert p.all_up() is None and p.survivors() == []
    return err


def brain_errors(p: Project) -> list[str]:
    """Cycles the brain could not finish (a planner error), from its log."""
    log = p.paths.data / "logs" / "brain.log"
    return [line for line in log.read_text().splitlines() if '"planner_failed"' in line] if log.exists() else []


def cleaned(p: Project, *data_dir: str) -> str:
    out = p.aura(*data_dir, "clean-workspaces", "--all", "--no-dry-run").stdout
    assert "Traceback" not in out
    return out


@pytest.fixture
def repo_project(project: Project) -> Project:
    project.env.update(GIT_ENV)
    project.env.update(AURA_MAX_CONCURRENT_TASKS="3", GIT_CEILING_DIRECTORIES=str(project.root.parent))
    make_repo(project.root)
    return project


@pytest.fixture
def plain_project(project: Project) -> Project:
    """A project folder that is no git work tree, even when the temporary folder is inside one."""
    project.env["GIT_CEILING_DIRECTORIES"] = str(project.root.parent)
    return project


# -- not a repository, AURA_GIT on and off --------------------------------------------------------------


def test_a_folder_that_is_not_a_repository_says_so_in_one_line_and_runs_in_the_project_folder(
    plain_project: Project,
) -> None:
    p = plain_project
    said, st = run_to_end(p)
    assert said.stderr == ""
    assert len(lines_with(said.stdout, "is not a git work tree")) == 1, said.stdout
    assert "workers run in the project folder itself" in said.stdout
    assert st["git"]["enabled"] is False
    (task,) = tasks_by_title(st).values()
    assert task["status"] == "completed", task.get("reason")
    assert (p.root / "c.txt").read_text() == "C\n"  # the worker ran in the project folder
    assert not p.paths.git_dir.exists() and not (p.root / ".git").exists()
    assert "Traceback" not in p.aura("status").stdout


def test_git_on_in_a_folder_that_is_not_a_repository_is_refused_and_nothing_starts(plain_project: Project) -> None:
    p = plain_project
    p.env["AURA_GIT"] = "on"
    p.write_task(ONE_TASK)
    said = p.aura("up", "-d", "task.md", check=False)
    assert_refused(p, said, "AURA_GIT=on", "is not a git work tree")
    assert not (p.root / "c.txt").exists() and not (p.root / ".git").exists()


def test_git_off_in_a_repository_makes_no_worktree_and_no_branch(repo_project: Project) -> None:
    p = repo_project
    p.env["AURA_GIT"] = "off"
    said, st = run_to_end(p)
    assert len(lines_with(said.stdout, "git mode is off")) == 1, said.stdout
    assert st["git"]["enabled"] is False
    assert tasks_by_title(st)["write c"]["status"] == "completed"
    assert (p.root / "c.txt").read_text() == "C\n"  # in the project folder, as without git mode
    assert worktree_paths(p.root) == [str(p.root)]
    assert branch_names(p.root) == ["main"]
    assert not p.paths.git_dir.exists()


# -- the state of the repository at start ---------------------------------------------------------------


def test_an_empty_repository_is_refused_with_the_fix_named(project: Project) -> None:
    p = project
    p.env.update(GIT_ENV, GIT_CEILING_DIRECTORIES=str(p.root.parent))
    git(p.root, "init", "-q", "-b", "main")
    (p.root / "work.txt").write_text("the user's first file\n")
    p.write_task(ONE_TASK)
    said = p.aura("up", "-d", "task.md", check=False)
    assert_refused(p, said, "without a commit", "git commit --allow-empty", "AURA_GIT=off")
    assert not git_ok(p.root, "rev-parse", "--verify", "HEAD")  # still no commit: Aura made none
    assert branch_names(p.root) == [] and (p.root / "work.txt").read_text() == "the user's first file\n"


def test_uncommitted_changes_are_refused_with_dirty_refuse_and_a_warning_by_default(repo_project: Project) -> None:
    p = repo_project
    head = git(p.root, "rev-parse", "HEAD")
    (p.root / "notes.txt").write_text("the user's edit\n")
    (p.root / "draft.txt").write_text("the user's new file\n")
    p.env["AURA_GIT_DIRTY"] = "refuse"
    p.write_task(ONE_TASK)
    said = p.aura("up", "-d", "task.md", check=False)
    assert_refused(p, said, "AURA_GIT_DIRTY=refuse", "notes.txt", "draft.txt", "commit or stash them")
    assert branch_names(p.root) == ["main"] and worktree_paths(p.root) == [str(p.root)]

    del p.env["AURA_GIT_DIRTY"]
    said, st = run_to_end(p)
    (warning,) = lines_with(said.stdout, "uncommitted changes")
    assert warning.strip().startswith("warning:") and "notes.txt" in warning and "draft.txt" in warning
    assert tasks_by_title(st)["write c"]["status"] == "completed"
    branch = st["git"]["branch"]
    assert git(p.root, "show", f"{branch}:notes.txt") == "notes.txt at the start"  # workers never saw the edit
    assert git(p.root, "show", f"{branch}:c.txt") == "C"
    assert (p.root / "notes.txt").read_text() == "the user's edit\n"
    assert (p.root / "draft.txt").read_text() == "the user's new file\n"
    assert git(p.root, "rev-parse", "HEAD") == head and not (p.root / "c.txt").exists()


def test_a_bad_integration_branch_is_refused_and_a_valid_custom_one_is_used(repo_project: Project) -> None:
    p = repo_project
    p.write_task(ONE_TASK)
    refusals = {
        "bad..name": "is not a valid git branch name",
        "main": "is the branch checked out in",  # the user's own branch
        "main/run": "cannot be created next to the existing branch main",
    }
    for name, words in refusals.items():
        p.env["AURA_GIT_BRANCH"] = name
        said = p.aura("up", "-d", "task.md", check=False)
        assert_refused(p, said, f"AURA_GIT_BRANCH={name!r}", words)
    assert branch_names(p.root) == ["main"]

    p.env["AURA_GIT_BRANCH"] = "feature/aura-run"
    said, st = run_to_end(p)
    assert st["git"]["branch"] == "feature/aura-run"
    assert tasks_by_title(st)["write c"]["status"] == "completed"
    assert git(p.root, "show", "feature/aura-run:c.txt") == "C"
    assert git(p.root, "rev-parse", "feature/aura-run") == st["git"]["head"]
    assert "git merge feature/aura-run" in p.aura("status").stdout
    p.aura("down")
    cleaned(p)
    assert branch_names(p.root) == ["feature/aura-run", "main"]  # the attempts' branches are gone


def test_a_detached_head_works_and_stays_detached_at_the_same_commit(repo_project: Project) -> None:
    p = repo_project
    head = git(p.root, "rev-parse", "HEAD")
    git(p.root, "checkout", "-q", "--detach")
    said, st = run_to_end(p)
    assert len(lines_with(said.stdout, "workers branch from a detached HEAD")) == 1, said.stdout
    assert st["git"]["base"] == head and st["git"]["user_branch"] is None
    assert tasks_by_title(st)["write c"]["status"] == "completed"
    assert git(p.root, "show", f"{st['git']['branch']}:c.txt") == "C"
    assert not git_ok(p.root, "symbolic-ref", "-q", "HEAD")  # still detached
    assert git(p.root, "rev-parse", "HEAD") == head
    assert git(p.root, "rev-parse", "main") == head


def test_the_user_switching_branches_and_committing_during_the_run_leaves_the_integration_branch_alone(
    repo_project: Project,
) -> None:
    p = repo_project
    base = git(p.root, "rev-parse", "HEAD")
    p.write_task("# Slow edit\n\n- [ ] edit a `sleep 3; printf 'A from the task\\n' > a.txt`\n")
    p.up()
    wait_for(lambda: any(w.get("worker_pid") for w in p.workers().values()), 30, what="the worker to start")
    git(p.root, "checkout", "-q", "-b", "feature")
    on_feature = commit_file(p.root, "notes.txt", "the user's notes on feature\n", "user on feature")
    git(p.root, "checkout", "-q", "main")
    on_main = commit_file(p.root, "b.txt", "the user's b on main\n", "user on main")
    assert any(w["exit_file"] is None for w in p.workers().values()), "the task ended before the user acted"

    st = wait_for(lambda: finished(p), RUN_S, what="the run to finish")
    branch = st["git"]["branch"]
    assert tasks_by_title(st)["edit a"]["status"] == "completed"
    assert st["git"]["base"] == base and git_ok(p.root, "merge-base", "--is-ancestor", base, branch)
    for user_commit in (on_feature, on_main):
        assert not git_ok(p.root, "merge-base", "--is-ancestor", user_commit, branch)
    assert git(p.root, "show", f"{branch}:a.txt") == "A from the task"
    assert git(p.root, "show", f"{branch}:b.txt") == "b.txt at the start"
    assert git(p.root, "show", f"{branch}:notes.txt") == "notes.txt at the start"
    # the user's branches and checkout are as the user left them
    assert git(p.root, "symbolic-ref", "--short", "HEAD") == "main"
    assert git(p.root, "rev-parse", "main") == on_main and git(p.root, "rev-parse", "feature") == on_feature
    assert (p.root / "a.txt").read_text() == "a.txt at the start\n"
    assert git(p.root, "status", "--porcelain") == ""


# -- worktrees deleted by hand ----------------------------------------------------------------------------

SLOW_WRITE = "# Slow note\n\n- [ ] write c `sleep 3; printf 'C\\n' > c.txt` creates `c.txt`\n"


def delete_attempt_worktree_while_it_runs(p: Project) -> tuple[int, Path]:
    """Start the slow task, remove its attempt's worktree with `rm -rf` while its worker runs; the brain
    pid and the removed folder."""
    p.write_task(SLOW_WRITE)
    p.up()
    brain = p.daemon_pid("brain")
    assert brain
    worker = wait_for(
        lambda: next((w for w in p.workers().values() if w.get("worker_pid")), None), 30, what="the worker"
    )
    path = p.paths.attempt_dir(worker["worker_id"])
    assert (path / ".git").exists()
    shutil.rmtree(path)
    assert p.workers()[worker["worker_id"]]["exit_file"] is None, "the worker ended before its worktree went"
    return brain, path


def first_failure(p: Project) -> dict:
    return next(
        d
        for d in read_jsonl(p.paths.state_dir / "decisions.jsonl")
        if d.get("kind") == "status" and d.get("old") == "in_progress" and d.get("new") != "completed"
    )


def test_an_attempt_worktree_deleted_while_its_worker_runs_fails_that_attempt_and_the_retry_merges(
    repo_project: Project,
) -> None:
    p = repo_project
    brain, _ = delete_attempt_worktree_while_it_runs(p)
    st = wait_for(lambda: finished(p), RUN_S, what="the run to finish")
    task = tasks_by_title(st)["write c"]
    assert task["status"] == "completed" and task["attempts"] == 2, task.get("reason")
    failure = first_failure(p)
    assert failure["attempt"] == 1 and "attempt 1 failed" in failure["reason"] and "c.txt" in failure["reason"]
    assert git(p.root, "show", f"{st['git']['branch']}:c.txt") == "C"
    assert p.daemon_pid("brain") == brain and brain_errors(p) == []  # nothing crashed
    history = p.aura("history").stdout
    assert "attempt 1 failed" in history and "Traceback" not in history
    assert git(p.root, "status", "--porcelain") == ""
    p.aura("down")
    cleaned(p)
    assert worktree_paths(p.root) == [str(p.root)]
    assert [b for b in branch_names(p.root) if "-attempts/" in b] == []
    assert p.survivors() == []


def test_the_reason_of_an_attempt_whose_worktree_was_deleted_names_the_worktree(repo_project: Project) -> None:
    p = repo_project
    _, path = delete_attempt_worktree_while_it_runs(p)
    wait_for(lambda: finished(p), RUN_S, what="the run to finish")
    reason = first_failure(p)["reason"]
    assert "worktree" in reason and str(path) in reason, reason


def test_the_integration_worktree_deleted_by_hand_is_made_again_and_the_task_merges(repo_project: Project) -> None:
    p = repo_project
    p.write_task(SLOW_WRITE)
    p.up()
    wait_for(lambda: any(w.get("worker_pid") for w in p.workers().values()), 30, what="the worker to start")
    shutil.rmtree(p.paths.integration_dir)
    wait_for(lambda: finished(p) or brain_errors(p), RUN_S, what="the run to finish or the brain to fail")
    assert brain_errors(p) == []
    st = finished(p)
    assert st and tasks_by_title(st)["write c"]["status"] == "completed"
    assert git(p.root, "show", f"{st['git']['branch']}:c.txt") == "C"


def test_a_commit_refused_by_the_user_s_pre_commit_hook_fails_the_attempt_with_the_hook_s_words(
    repo_project: Project,
) -> None:
    p = repo_project
    hook = p.root / ".git" / "hooks" / "pre-commit"  # the user's hooks run in Aura's worktrees too
    hook.write_text("#!/bin/sh\necho 'lint: c.txt is not allowed' >&2\nexit 1\n")
    hook.chmod(0o755)
    p.write_task(ONE_TASK)
    p.up()
    wait_for(lambda: finished(p) or brain_errors(p), RUN_S, what="the run to finish or the brain to fail")
    assert brain_errors(p) == []
    assert "lint: c.txt is not allowed" in first_failure(p)["reason"]


# -- two runs, submodules, ignored artifacts ----------------------------------------------------------------


def test_two_runs_with_their_own_data_folders_on_one_repository_keep_apart(repo_project: Project) -> None:
    p = repo_project
    p.write_task("# Run A\n\n- [ ] write a `sleep 1; printf 'A\\n' > a.txt`\n", "a.md")
    p.write_task("# Run B\n\n- [ ] write b `sleep 1; printf 'B\\n' > b.txt`\n- [ ] fail `exit 3`\n", "b.md")
    a, b = run_in(p, p.root / "runs" / "a"), run_in(p, p.root / "runs" / "b")
    try:
        p.aura("--data-dir", "runs/a", "up", "-d", "a.md")  # the option
        a.remember()
        b.up("b.md")  # the environment variable, while A runs
        a_st = wait_for(lambda: finished(a), RUN_S, what="run A to finish")
        b_st = wait_for(lambda: finished(b), RUN_S, what="run B to finish")
        a_branch, b_branch = a_st["git"]["branch"], b_st["git"]["branch"]
        assert a_branch != b_branch
        assert git(p.root, "show", f"{a_branch}:a.txt") == "A" and git(p.root, "show", f"{a_branch}:b.txt") != "B"
        assert git(p.root, "show", f"{b_branch}:b.txt") == "B" and git(p.root, "show", f"{b_branch}:a.txt") != "A"
        assert tasks_by_title(b_st)["fail"]["status"] == "blocked"
        b_kept = sorted(str(d) for d in b.paths.attempts_dir.iterdir())  # the failed attempts, for inspection
        assert b_kept and all(path in worktree_paths(p.root) for path in b_kept)
        b_branches = [x for x in branch_names(p.root) if x.startswith(b_branch)]

        p.aura("--data-dir", "runs/a", "down")
        cleaned(p, "--data-dir", "runs/a")
        listed = worktree_paths(p.root)
        assert not any(w.startswith(str(a.paths.git_dir)) for w in listed), listed
        assert all(path in listed for path in [*b_kept, str(b.paths.integration_dir)]), listed
        assert all(Path(path, ".git").exists() for path in b_kept)
        assert [x for x in branch_names(p.root) if x.startswith(b_branch)] == b_branches
        assert a_branch in branch_names(p.root)

        b.aura("down")
        cleaned(b)
        assert worktree_paths(p.root) == [str(p.root)]
        assert [x for x in branch_names(p.root) if "-attempts/" in x] == []
        assert {a_branch, b_branch} <= set(branch_names(p.root))
    finally:
        left = a.cleanup() + b.cleanup()
    assert left == []


def test_a_repository_with_a_submodule_says_it_is_not_checked_out_and_the_run_works(
    repo_project: Project, tmp_path: Path
) -> None:
    p = repo_project
    other = tmp_path / "other"
    other.mkdir()
    make_repo(other)
    git(p.root, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "../other", "sub")
    git(p.root, "commit", "-q", "-m", "add a submodule")
    head = git(p.root, "rev-parse", "HEAD")
    sub_head = git(p.root / "sub", "rev-parse", "HEAD")
    said, st = run_to_end(p)
    assert len(lines_with(said.stdout, "submodules are not checked out in the workers' worktrees")) == 1, said.stdout
    assert tasks_by_title(st)["write c"]["status"] == "completed"
    branch = st["git"]["branch"]
    assert git(p.root, "show", f"{branch}:c.txt") == "C"
    assert git(p.root, "ls-tree", branch, "sub").split()[:3] == ["160000", "commit", sub_head]  # the link stays
    assert git(p.root, "rev-parse", "HEAD") == head and git(p.root / "sub", "rev-parse", "HEAD") == sub_head
    assert (p.root / "sub" / "a.txt").read_text() == "a.txt at the start\n"


def test_an_ignored_artifact_named_as_evidence_is_kept_under_outputs_after_the_worktree_goes(
    repo_project: Project,
) -> None:
    p = repo_project
    body = "# Train\n\n- [ ] make a checkpoint `mkdir -p out && echo x > out/model.ckpt` creates `out/model.ckpt`\n"
    _, st = run_to_end(p, body)
    task = tasks_by_title(st)["make a checkpoint"]
    assert task["status"] == "completed", task.get("reason")
    assert task["artifacts"] == ["out/model.ckpt"]
    kept = p.paths.outputs_dir / "out" / "model.ckpt"
    branch = st["git"]["branch"]
    assert kept.read_text() == "x\n"
    assert "out/model.ckpt" not in git(p.root, "ls-tree", "-r", "--name-only", branch)  # ignored: not committed
    assert not (p.root / "out").exists()
    p.aura("down")
    cleaned(p)
    assert kept.read_text() == "x\n"
    assert worktree_paths(p.root) == [str(p.root)]
    assert not p.paths.attempts_dir.exists() or not any(p.paths.attempts_dir.iterdir())
