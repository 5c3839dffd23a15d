"""The bench's git section at a tiny size: a real repository, the functions git mode runs, every figure
present and positive, and nothing left behind (the real measurement: `python -m bench.gitcost`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import gitcost
from bench.report import git_lines
from tests.support.harness import REPO

TIMINGS = ("create_ms", "prepare_attempt_ms", "remove_ms")
ACCEPT_TIMINGS = ("commit_all_ms", "merge_ms", "commit_and_merge_ms", "gitwork_accept_ms")


@pytest.mark.timeout(120)
def test_git_section_measures_every_figure_on_a_real_repository_and_leaves_nothing(tmp_path: Path) -> None:
    sec = gitcost.measure(200, 2, 2, where=tmp_path)
    assert sec["available"], sec
    repo, disk, acc = sec["repo"], sec["disk"], sec["accept"]
    assert repo["files"] == 200 and repo["checkout_bytes"] > 0 and repo["git_dir_bytes"] > 0
    for key in TIMINGS:
        assert sec[key]["n"] == 2 and 0 < sec[key]["median"] <= sec[key]["p90"], (key, sec[key])
    assert sec["copy_checkout_ms"]["n"] == 2 and sec["copy_checkout_ms"]["median"] > 0
    for key in ACCEPT_TIMINGS:
        assert acc[key]["n"] == 2 and acc[key]["median"] > 0, (key, acc[key])
    # a worktree holds the same files as the checkout, plus a `.git` file naming its admin folder
    assert repo["checkout_bytes"] < disk["worktree_bytes"] < repo["checkout_bytes"] + 4096
    assert disk["worktree_allocated_bytes"] >= repo["checkout_allocated_bytes"] > 0
    assert disk["admin_bytes"] > 0
    merged = 2 * (2 + gitcost.WARMUP)
    assert acc["merges"] == acc["changes"] == merged, "every change merged into the integration branch"
    assert sec["worktrees_left"] == 0
    assert list(tmp_path.iterdir()) == [], "the temporary repository is removed"
    text = "\n".join(git_lines(sec))
    assert "200 small files" in text and " - ms" not in text and "(- " not in text


@pytest.mark.timeout(120)
def test_git_section_runs_alone_and_refuses_a_bad_size_in_one_line(tmp_path: Path) -> None:
    out_json = tmp_path / "git.json"
    argv = [sys.executable, "-m", "bench.gitcost", "--files", "30", "--runs", "1", "--accepts", "1"]
    done = subprocess.run([*argv, "--json", str(out_json)], cwd=REPO, capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    assert "a repository of 30 small files" in done.stdout
    assert json.loads(out_json.read_text())["worktrees_left"] == 0
    bad = subprocess.run([*argv[:3], "--files", "0"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].endswith("--files, --runs and --accepts must be at least 1")
