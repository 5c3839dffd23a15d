"""Git mode's git commands (aura.runtime.gitrepo) and its start decision and names (aura.runtime.gitmode),
with real git in temporary folders.

Why: each git command must fail with one line that names it, never touch the user's tree, and find
what a brain restarted mid-step left; the start decision is the one place that turns a folder that
cannot work (no repository, no commit, a bad or unusable branch, uncommitted changes under
AURA_GIT_DIRTY=refuse) into a clear refusal before anything starts."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from aura.runtime import gitrepo as g
from aura.runtime.config import Config
from aura.runtime.gitmode import (
    DIRTY_SHOWN,
    attempt_branch,
    attempts_prefix,
    decide,
    integration_branch,
    new_run_id,
)
from tests.support.gitrepos import GIT_ENV, commit_file, git, git_ok, make_repo

IDENTITY = ("user.name", "user.email")


@pytest.fixture(autouse=True)
def plain_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No identity, no global or system settings, and no repository above the temporary folder."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for key in (*GIT_ENV, "GIT_DIR", "GIT_WORK_TREE", "GIT_CONFIG_GLOBAL", "EMAIL"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    make_repo(root)
    return root


def settings(**values: str) -> Config:
    cfg = Config()
    for key, value in values.items():
        cfg.set(key, value, "test")
    return cfg


# -- gitrepo: running git ---------------------------------------------------------------------------------


def test_a_failing_command_raises_one_line_naming_it_and_git_s_words(repo: Path) -> None:
    with pytest.raises(g.GitError) as failed:
        g.run(repo, "rev-parse", "--verify", "no-such-branch")
    said = str(failed.value)
    assert said.startswith("git rev-parse --verify no-such-branch failed: ") and "\n" not in said
    assert "fatal" in said
    assert g.run(repo, "rev-parse", "--verify", "no-such-branch", check=False).returncode != 0


def test_git_missing_is_one_line_that_says_how_to_install_it(
    repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert g.git_binary() is None
    with pytest.raises(g.GitError, match=r"^git is not installed \(.*apt-get install git\)$"):
        g.run(repo, "status")


def test_a_command_over_its_time_limit_raises_naming_the_limit(repo: Path) -> None:
    with pytest.raises(g.GitError, match=r"^git status did not finish within 1e-09s$"):
        g.run(repo, "status", timeout=1e-9)


def test_git_variables_of_a_hook_or_another_repository_do_not_redirect_the_commands(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    make_repo(other)
    commit_file(other, "x.txt", "x\n", "other's second commit")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    info = g.probe(repo)
    assert info is not None and info.toplevel == repo.resolve()
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_WORK_TREE")
    assert info.head == git(repo, "rev-parse", "HEAD") != git(other, "rev-parse", "HEAD")


# -- gitrepo: probe -------------------------------------------------------------------------------------


def test_probe_of_a_folder_that_is_not_a_repository_is_none(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    assert g.probe(folder) is None


def test_probe_of_an_empty_repository_has_no_head(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "file.txt").write_text("not committed\n")
    info = g.probe(root)
    assert info is not None and info.head is None and info.branch == "main" and info.dirty == []


def test_probe_from_a_subfolder_finds_the_top_branch_and_head(repo: Path) -> None:
    sub = repo / "deep" / "er"
    sub.mkdir(parents=True)
    info = g.probe(sub)
    assert info is not None
    assert (info.toplevel, info.branch, info.head) == (repo.resolve(), "main", git(repo, "rev-parse", "HEAD"))
    assert info.dirty == [] and info.submodules is False


def test_probe_of_a_detached_head_has_no_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    info = g.probe(repo)
    assert info is not None and info.branch is None and info.head == git(repo, "rev-parse", "HEAD")


def test_probe_lists_changed_and_untracked_files_but_not_the_data_folder_or_ignored_ones(repo: Path) -> None:
    (repo / "a.txt").write_text("edited\n")
    (repo / "new" / "deep").mkdir(parents=True)
    (repo / "new" / "deep" / "n.txt").write_text("new\n")
    (repo / "model.ckpt").write_text("ignored\n")
    data = repo / "rundata" / "one"  # a data folder the repository does not ignore
    data.mkdir(parents=True)
    (data / "state.json").write_text("{}\n")
    info = g.probe(repo, leave_out=data)
    assert info is not None and sorted(info.dirty) == ["a.txt", "new/deep/n.txt"]
    assert "rundata/one/state.json" in g.changed_paths(repo)  # without leave_out it counts
    assert sorted(g.changed_paths(repo, leave_out=repo.parent / "elsewhere")) == sorted(g.changed_paths(repo))


def test_probe_sees_a_submodule(repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    make_repo(other)
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(other), "sub")
    git(repo, "commit", "-q", "-m", "sub")
    info = g.probe(repo)
    assert info is not None and info.submodules is True and info.dirty == []


# -- gitrepo: worktrees and branches ------------------------------------------------------------------------


def test_add_worktree_makes_a_branch_once_and_again_after_its_folder_was_deleted_by_hand(
    repo: Path, tmp_path: Path
) -> None:
    base = git(repo, "rev-parse", "HEAD")
    path = tmp_path / "data" / "git" / "attempts" / "T1-1"
    path.parent.mkdir(parents=True)
    g.add_worktree(repo, path, "aura/r-attempts/T1-1", base)
    assert g.current_branch(path) == "aura/r-attempts/T1-1" and (path / "a.txt").exists()
    (path / "work.txt").write_text("in progress\n")
    g.add_worktree(repo, path, "aura/r-attempts/T1-1", base)  # a spawn sent again: kept as it is
    assert (path / "work.txt").exists()
    commit_file(path, "a.txt", "committed in the attempt\n", "attempt work")
    committed = git(path, "rev-parse", "HEAD")

    shutil.rmtree(path)
    g.add_worktree(repo, path, "aura/r-attempts/T1-1", base)  # the branch and its commits are back
    assert git(path, "rev-parse", "HEAD") == committed and (path / "a.txt").read_text() == "committed in the attempt\n"
    listed = {Path(w["worktree"]).resolve(): w for w in g.worktrees(repo)}
    assert listed[path.resolve()]["branch"] == "aura/r-attempts/T1-1" and listed[path.resolve()]["HEAD"] == committed
    assert g.branches(repo, "aura/r-attempts/") == ["aura/r-attempts/T1-1"]
    assert git(repo, "rev-parse", "HEAD") == base and git(repo, "status", "--porcelain") == ""


def test_remove_worktree_removes_it_and_prunes_one_deleted_by_hand(repo: Path, tmp_path: Path) -> None:
    kept, gone = tmp_path / "w1", tmp_path / "w2"
    g.add_worktree(repo, kept, "aura/r-attempts/1", "HEAD")
    g.add_worktree(repo, gone, "aura/r-attempts/2", "HEAD")
    (kept / "left.txt").write_text("an uncommitted file\n")
    shutil.rmtree(gone)
    g.remove_worktree(repo, kept)
    g.remove_worktree(repo, gone)  # nothing there: only the stale record goes
    assert not kept.exists()
    assert [Path(w["worktree"]).resolve() for w in g.worktrees(repo)] == [repo.resolve()]
    g.delete_branch(repo, "aura/r-attempts/1")
    g.delete_branch(repo, "aura/r-attempts/no-such")  # a branch already gone is no error
    assert g.branches(repo, "aura/") == ["aura/r-attempts/2"]


# -- gitrepo: commits and merges ------------------------------------------------------------------------------


def test_commit_all_works_without_an_identity_and_leaves_ignored_files_out(repo: Path, tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    g.add_worktree(repo, wt, "aura/r-attempts/1", "HEAD")
    for key in IDENTITY:
        assert not git_ok(wt, "config", key)
    before = git(wt, "rev-parse", "HEAD")
    assert g.commit_all(wt, "nothing to commit") == before  # no empty commit
    (wt / "a.txt").write_text("changed\n")
    (wt / "out").mkdir()
    (wt / "out" / "model.ckpt").write_text("large\n")
    head = g.commit_all(wt, "T1 attempt 1: edit a\n\nAura evidence: a.txt")
    assert (
        head != before and git(wt, "log", "-1", "--format=%an <%ae>|%s") == "Aura <aura@localhost>|T1 attempt 1: edit a"
    )
    assert g.changed_files(wt, before) == ["a.txt"]
    assert g.is_ignored(wt, "out/model.ckpt") and not g.is_ignored(wt, "a.txt")
    assert (wt / "out" / "model.ckpt").exists() and git(wt, "status", "--porcelain") == ""
    assert g.diffstat(wt, before).splitlines()[-1].strip() == "1 file changed, 1 insertion(+), 1 deletion(-)"
    assert g.diffstat(wt, head) == "" and "+changed" in g.diff(wt, before)


def test_a_commit_a_hook_refuses_is_one_line_with_the_hook_s_words_and_the_message_s_first_line(
    repo: Path, tmp_path: Path
) -> None:
    wt = tmp_path / "wt"
    g.add_worktree(repo, wt, "aura/r-attempts/1", "HEAD")
    hook = repo / ".git" / "hooks" / "pre-commit"  # the user's hooks run in every worktree
    hook.write_text("#!/bin/sh\necho 'lint: trailing spaces in a.txt' >&2\nexit 1\n")
    hook.chmod(0o755)
    (wt / "a.txt").write_text("changed \n")
    with pytest.raises(g.GitError) as refused:
        g.commit_all(wt, "T1 attempt 1: edit a\n\nAura evidence: " + "long " * 40)
    said = str(refused.value)
    assert "\n" not in said and said.endswith("failed: lint: trailing spaces in a.txt"), said
    assert "-m T1 attempt 1: edit a... " in said and "Aura evidence" not in said
    assert g.shown(("log", "x" * 100)) == "log " + "x" * 80 + "..."


def integration_and_attempts(repo: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    integ, one, two = tmp_path / "integ", tmp_path / "one", tmp_path / "two"
    g.add_worktree(repo, integ, "aura/r", "HEAD")
    g.add_worktree(repo, one, "aura/r-attempts/1", "aura/r")
    g.add_worktree(repo, two, "aura/r-attempts/2", "aura/r")
    return integ, one, two


def test_merge_of_an_attempt_makes_a_merge_commit_on_the_integration_branch_only(repo: Path, tmp_path: Path) -> None:
    user_head = git(repo, "rev-parse", "HEAD")
    integ, one, _ = integration_and_attempts(repo, tmp_path)
    (one / "b.txt").write_text("B from 1\n")
    attempt = g.commit_all(one, "T1")
    result = g.merge(integ, "aura/r-attempts/1", "Merge T1")
    assert result.merged and result.commit == git(integ, "rev-parse", "HEAD") and result.conflicts == []
    assert git(integ, "log", "-1", "--format=%P").split() == [user_head, attempt]
    assert g.merge_commit_of(integ, user_head, "HEAD", attempt) == result.commit
    assert g.merge_commit_of(integ, user_head, "HEAD", user_head) is None
    assert g.is_ancestor(integ, attempt, "HEAD") and not g.is_ancestor(integ, "HEAD", attempt)
    assert g.rev(repo, "aura/r") == result.commit and g.rev(repo, "no-such") is None
    assert git(repo, "rev-parse", "main") == user_head and (repo / "b.txt").read_text() == "b.txt at the start\n"


def test_a_conflicting_merge_reports_the_files_and_hunks_and_leaves_the_integration_worktree_clean(
    repo: Path, tmp_path: Path
) -> None:
    integ, one, two = integration_and_attempts(repo, tmp_path)
    (one / "a.txt").write_text("A from 1\n")
    g.commit_all(one, "T1")
    assert g.merge(integ, "aura/r-attempts/1", "Merge T1").merged
    head = git(integ, "rev-parse", "HEAD")
    (two / "a.txt").write_text("A from 2\n")
    (two / "c.txt").write_text("C from 2\n")
    g.commit_all(two, "T2")
    result = g.merge(integ, "aura/r-attempts/2", "Merge T2")
    assert not result.merged and result.commit is None and result.conflicts == ["a.txt"]
    assert "<<<<<<<" in result.hunks and "A from 2" in result.hunks and "CONFLICT" in result.error
    assert git(integ, "rev-parse", "HEAD") == head and git(integ, "status", "--porcelain") == ""
    assert not (integ / "c.txt").exists()


def test_reset_to_moves_the_integration_branch_back(repo: Path, tmp_path: Path) -> None:
    integ, one, _ = integration_and_attempts(repo, tmp_path)
    before = git(integ, "rev-parse", "HEAD")
    (one / "b.txt").write_text("B\n")
    g.commit_all(one, "T1")
    assert g.merge(integ, "aura/r-attempts/1", "Merge T1").merged
    g.reset_to(integ, before)
    assert git(repo, "rev-parse", "aura/r") == before and (integ / "b.txt").read_text() == "b.txt at the start\n"


def test_common_dir_is_the_repository_s_git_folder_from_any_worktree(repo: Path, tmp_path: Path) -> None:
    integ, _, _ = integration_and_attempts(repo, tmp_path)
    assert g.common_dir(integ) == g.common_dir(repo) == (repo / ".git").resolve()


# -- gitmode: the start decision ------------------------------------------------------------------------------


def test_git_off_needs_no_repository(tmp_path: Path) -> None:
    made = decide(settings(AURA_GIT="off"), tmp_path, tmp_path / ".aura")
    assert not made.enabled and made.refusal is None
    assert made.notes == ["git mode is off (AURA_GIT=off): workers run in the project folder itself"]


def test_a_folder_that_is_not_a_repository_runs_without_git_mode_unless_git_is_on(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    auto = decide(settings(), folder, folder / ".aura")
    assert not auto.enabled and auto.refusal is None
    assert auto.notes == [f"{folder} is not a git work tree: workers run in the project folder itself (no git mode)"]
    on = decide(settings(AURA_GIT="on"), folder, folder / ".aura")
    assert not on.enabled and on.refusal == f"AURA_GIT=on but {folder} is not a git work tree"


def test_without_git_installed_auto_says_so_and_on_refuses(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    auto = decide(settings(), repo, repo / ".aura")
    assert not auto.enabled and auto.notes[0].startswith("git is not installed: workers run in the project folder")
    assert decide(settings(AURA_GIT="on"), repo, repo / ".aura").refusal == "AURA_GIT=on but git is not installed"


def test_an_empty_repository_is_refused_with_the_fix_named(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    git(root, "init", "-q")
    for mode in ("auto", "on"):
        made = decide(settings(AURA_GIT=mode), root, root / ".aura")
        assert not made.enabled and made.refusal and "without a commit" in made.refusal
        assert "git commit --allow-empty -m init" in made.refusal and "AURA_GIT=off" in made.refusal


def test_a_repository_runs_in_git_mode_from_its_branch_and_head(repo: Path) -> None:
    made = decide(settings(), repo, repo / ".aura")
    head = git(repo, "rev-parse", "HEAD")
    assert made.enabled and made.refusal is None
    assert (made.repo, made.base, made.user_branch) == (repo.resolve(), head, "main")
    assert made.notes == [
        f"git mode: workers branch from branch main at {head[:10]}; each attempt gets its own worktree"
    ]


def test_a_detached_head_runs_in_git_mode_from_its_commit(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    made = decide(settings(), repo, repo / ".aura")
    assert made.enabled and made.user_branch is None and made.base == git(repo, "rev-parse", "HEAD")
    assert "workers branch from a detached HEAD" in made.notes[0]


def test_a_submodule_is_named_as_not_checked_out_in_the_worktrees(repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    make_repo(other)
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(other), "sub")
    git(repo, "commit", "-q", "-m", "sub")
    made = decide(settings(), repo, repo / ".aura")
    assert made.enabled
    assert "git mode: submodules are not checked out in the workers' worktrees (not supported)" in made.notes


def test_uncommitted_changes_warn_by_default_and_are_refused_with_dirty_refuse(repo: Path) -> None:
    (repo / "notes.txt").write_text("the user's edit\n")
    for i in range(DIRTY_SHOWN + 1):
        (repo / f"new{i}.txt").write_text("new\n")
    data = repo / "rundata"  # a data folder the repository does not ignore
    data.mkdir()
    (data / "state.json").write_text("{}\n")
    warned = decide(settings(), repo, data)
    assert warned.enabled and warned.refusal is None
    (line,) = [n for n in warned.notes if "uncommitted" in n]
    assert line.startswith(f"warning: uncommitted changes in {repo.resolve()} are not visible to workers (")
    assert "and 2 more" in line and "rundata" not in line
    refused = decide(settings(AURA_GIT_DIRTY="refuse"), repo, data)
    assert not refused.enabled and refused.refusal
    assert "notes.txt" in refused.refusal and refused.refusal.endswith(
        "AURA_GIT_DIRTY=refuse: commit or stash them first"
    )
    assert (repo / "notes.txt").read_text() == "the user's edit\n"


@pytest.mark.parametrize("name", ["bad..name", "-dash", "HEAD", "has space", "end.lock", "@{-1}", "x@{u}"])
def test_an_invalid_branch_name_is_refused(repo: Path, name: str) -> None:
    git(repo, "checkout", "-q", "-b", "before")
    git(repo, "checkout", "-q", "main")  # so `@{-1}` names a branch: git would take it for `before`
    made = decide(settings(AURA_GIT_BRANCH=name), repo, repo / ".aura")
    assert not made.enabled and made.refusal == f"AURA_GIT_BRANCH={name!r} is not a valid git branch name"


def test_the_user_s_checked_out_branch_is_refused_as_the_integration_branch(repo: Path, tmp_path: Path) -> None:
    made = decide(settings(AURA_GIT_BRANCH="main"), repo, repo / ".aura")
    assert made.refusal == (
        f"AURA_GIT_BRANCH='main' is the branch checked out in {repo.resolve()}: "
        "Aura never works on it; name another branch"
    )
    elsewhere = tmp_path / "user-wt"
    git(repo, "worktree", "add", "-q", "-b", "topic", str(elsewhere))
    made = decide(settings(AURA_GIT_BRANCH="topic"), repo, repo / ".aura")
    assert made.refusal and f"checked out in {elsewhere.resolve()}" in made.refusal
    shutil.rmtree(elsewhere)  # a worktree deleted by hand holds its branch no more
    assert decide(settings(AURA_GIT_BRANCH="topic"), repo, repo / ".aura").enabled


def test_a_branch_checked_out_in_this_run_s_own_integration_worktree_is_used(repo: Path) -> None:
    data = repo / ".aura"
    integ = data / "git" / "integration"
    integ.parent.mkdir(parents=True)
    g.add_worktree(repo, integ, "feature/aura", "HEAD")  # a run started again on its branch
    made = decide(settings(AURA_GIT_BRANCH="feature/aura"), repo, data)
    assert made.enabled and made.refusal is None


@pytest.mark.parametrize(
    ("existing", "name", "clash"),
    [
        ("main", "main/run", "main"),  # the branch would sit inside an existing one
        ("run/one", "run", "run/one"),  # an existing one sits inside it
        ("run-attempts", "run", "run-attempts"),  # its attempts' branches could not be made
        ("aura", "", "aura"),  # the default aura/<run id>
    ],
)
def test_a_branch_git_cannot_create_next_to_an_existing_one_is_refused(
    repo: Path, existing: str, name: str, clash: str
) -> None:
    if existing != "main":
        git(repo, "branch", existing)
    made = decide(settings(AURA_GIT_BRANCH=name), repo, repo / ".aura")
    assert not made.enabled and made.refusal
    assert f"next to the existing branch {clash} " in made.refusal and "AURA_GIT_BRANCH" in made.refusal


def test_a_valid_new_branch_and_an_existing_free_one_are_used(repo: Path) -> None:
    assert decide(settings(AURA_GIT_BRANCH="team/aura-run"), repo, repo / ".aura").enabled
    git(repo, "branch", "earlier-run")
    assert decide(settings(AURA_GIT_BRANCH="earlier-run"), repo, repo / ".aura").enabled


# -- gitmode: names -----------------------------------------------------------------------------------------------


def test_branch_names_of_a_run_and_its_attempts_are_valid_and_never_nest(repo: Path) -> None:
    run_id = new_run_id(0.0)
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", run_id)
    default = integration_branch(settings(), run_id)
    assert default == f"aura/{run_id}"
    assert integration_branch(settings(AURA_GIT_BRANCH=" team/run "), run_id) == "team/run"
    attempt = attempt_branch(default, "T1-2")
    assert attempt == f"aura/{run_id}-attempts/T1-2" and attempt.startswith(attempts_prefix(default))
    for name in (default, attempt):
        assert git(repo, "check-ref-format", "--branch", name) == name
    git(repo, "branch", default)
    git(repo, "branch", attempt)  # both exist at once: the attempts are not inside the integration branch
    assert git(repo, "for-each-ref", "--format=%(refname:short)", f"refs/heads/{attempts_prefix(default)}") == attempt
