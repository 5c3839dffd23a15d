"""Pure functions: config precedence, task-file parsing, evidence checks, paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aura.brain import evidence as ev
from aura.brain.taskfile import TaskFileError, parse_items, read_task_file
from aura.runtime.config import ConfigError, load_config, parse_env_file
from aura.runtime.paths import ProjectPaths
from tests.support.harness import REPO


def test_config_precedence_and_aliases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".aura").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("AURA_HOME", raising=False)
    (home / ".aura" / "config.env").write_text(
        "AURA_CYCLE_INTERVAL=10\nAURA_MAX_TURNS=7\nAURA_TASK_BUDGET=5\nAURA_DEEP_REVIEW_INTERVAL=3\n"
    )
    proj = tmp_path / "p"
    (proj / ".aura").mkdir(parents=True)
    (proj / ".aura" / "config.env").write_text("export AURA_MAX_TURNS='8'  \nAURA_TASK_BUDGET=6 # comment\n")
    explicit = tmp_path / "x.env"
    explicit.write_text('AURA_TASK_BUDGET="9"\n')
    env = {"AURA_MAX_TURNS": "11", "AURA_TASK_BUDGET": "8", "UNRELATED": "1"}
    cfg = load_config(proj, explicit, ["AURA_TASK_BUDGET=12"], environ=env)
    assert cfg.number("AURA_CYCLE_INTERVAL") == 10  # global file
    assert cfg.integer("AURA_MAX_TURNS") == 11  # environment beats both files
    assert cfg.number("AURA_TASK_BUDGET") == 12  # --override beats --config beats env
    assert cfg.integer("AURA_DEEP_REFLECTION_INTERVAL") == 3  # the README's name is an alias
    assert cfg.integer("AURA_MAX_CONCURRENT_TASKS") == 2  # default
    assert "--override" in cfg.sources["AURA_TASK_BUDGET"]
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(proj, tmp_path / "missing.env", environ={})
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(proj, None, ["nokey"], environ={})
    bad = load_config(proj, None, ["AURA_MAX_TURNS=lots"], environ={})
    with pytest.raises(ConfigError, match="AURA_MAX_TURNS='lots'"):
        bad.integer("AURA_MAX_TURNS")


def test_env_file_parser_edge_cases() -> None:
    parsed = parse_env_file("# c\n\nA=1\nexport B = two words \nC='x # y'\nD=v # trailing\nnot a line\n")
    assert parsed == {"A": "1", "B": "two words", "C": "x # y", "D": "v"}


def test_checklist_items_commands_and_artifacts() -> None:
    items = parse_items(
        "# Goal\n"
        "- [ ] Fetch `python fetch.py` creates `data/a.csv` and `data/b.csv`\n"
        "- [x] Already done\n"
        "* [ ] Think about `naming` of things\n"
        "```\n- [ ] inside a fence\n```\n"
        "- [ ] Fetch `python fetch.py` creates `data/a.csv` and `data/b.csv`\n"
    )
    assert [i.checked for i in items] == [False, True, False, False]
    assert items[0].command == "python fetch.py" and items[0].artifacts == ["data/a.csv", "data/b.csv"]
    assert items[1].command is None
    assert items[2].command == "naming" and items[2].artifacts == []
    assert items[0].id != items[3].id and items[3].id.startswith(items[0].id)  # duplicates stay distinct
    again = parse_items("intro line\n- [ ] Fetch `python fetch.py` creates `data/a.csv` and `data/b.csv`\n")
    assert again[0].id == items[0].id, "ids do not depend on the item's position"


def test_task_file_errors(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match="does not exist"):
        read_task_file(tmp_path / "nope.md")
    (tmp_path / "d").mkdir()
    with pytest.raises(TaskFileError, match="not a regular file"):
        read_task_file(tmp_path / "d")
    (tmp_path / "latin.md").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(TaskFileError, match="not UTF-8"):
        read_task_file(tmp_path / "latin.md")
    (tmp_path / "ok.md").write_text("no heading here\nsecond line\n\nAccept: `make test`\n")
    tf = read_task_file(tmp_path / "ok.md")
    assert tf.mission.startswith("no heading here") and tf.acceptance == ["make test"]


def test_evidence_refuses_stale_missing_and_outside_artifacts(tmp_path: Path) -> None:
    root = tmp_path
    (root / "old.txt").write_text("old")
    old = time.time() - 3600
    os.utime(root / "old.txt", (old, old))
    (root / "new.txt").write_text("new")
    worker = {
        "worker_id": "T1-1",
        "outcome": "succeeded",
        "exit": {"exit_code": 0},
        "started_at": time.time() - 10,
        "task_dir": str(root),
    }
    assert ev.check_worker(worker, root, ["new.txt"], need_result_md=False).ok
    for rel, why in (
        ("old.txt", "older than this attempt"),
        ("gone.txt", "does not exist"),
        ("../escape.txt", "outside the project"),
    ):
        proof = ev.check_worker(worker, root, [rel], need_result_md=False)
        assert not proof.ok and why in proof.summary()
    failed = {**worker, "outcome": "failed", "exit": {"exit_code": 2}}
    assert "exit code 2" in ev.check_worker(failed, root, [], False).summary()


@pytest.mark.parametrize(
    "text,accepted",
    [
        ("# Report\nStatus: done\n", True),
        ("**Status:** Completed\n", True),
        ("status = success", True),
        ("Status: partial\n", False),
        ("Status: failed — could not build\n", False),
        ("All good, trust me.\n", False),
    ],
)
def test_result_md_status_line(tmp_path: Path, text: str, accepted: bool) -> None:
    (tmp_path / "result.md").write_text(text)
    worker = {
        "worker_id": "T-1",
        "outcome": "succeeded",
        "exit": {"exit_code": 0},
        "started_at": time.time() - 5,
        "task_dir": str(tmp_path),
    }
    assert ev.check_worker(worker, tmp_path, [], need_result_md=True).ok is accepted


def test_result_md_from_an_earlier_attempt_does_not_count(tmp_path: Path) -> None:
    (tmp_path / "result.md").write_text("Status: done\n")
    old = time.time() - 600
    os.utime(tmp_path / "result.md", (old, old))
    worker = {
        "worker_id": "T-2",
        "outcome": "succeeded",
        "exit": {"exit_code": 0},
        "started_at": time.time() - 5,
        "task_dir": str(tmp_path),
    }
    proof = ev.check_worker(worker, tmp_path, [], need_result_md=True)
    assert not proof.ok and "earlier attempt" in proof.summary()


def test_socket_paths_stay_short_for_deep_project_paths(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 12)
    paths = ProjectPaths.for_root(deep)
    for name in ("supervisor", "watchdog", "brain"):
        assert len(paths.endpoint(name)) - len("ipc://") < 100
        assert len(paths.pub_endpoint(name)) - len("ipc://") < 100
    assert paths.runtime_dir != ProjectPaths.for_root(tmp_path).runtime_dir


def test_read_commands_do_not_import_the_model_sdk() -> None:
    code = (
        "import sys; import aura.cli, aura.control, aura.startstop, aura.ipc.client, aura.supervisor.registry; "
        "print('anthropic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_daemon_process_does_not_import_rich() -> None:
    """rich is for `aura top`: in a daemon, structlog would import it with its console renderer, which
    no daemon uses, at a quarter of the daemon's start (bench/soak.py `restart_cost`)."""
    code = (
        "import json, runpy, sys; sys.argv = ['aura.daemon', '--help']\n"
        "try:\n    runpy.run_module('aura.daemon', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(m for m, mod in sys.modules.items()\n"
        "    if mod and m.split('.')[0] in ('rich', 'structlog'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.startswith("Usage") or "usage" in out.stdout
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "structlog" in loaded and not [m for m in loaded if m.split(".")[0] == "rich"]
    imported_here = subprocess.run(  # imported as a module (a test, a tool), nothing is held back
        [sys.executable, "-c", "import aura.daemon, rich.table"], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert imported_here.returncode == 0, imported_here.stderr


@pytest.mark.parametrize("argv", [["-h"], ["ps", "-h"], ["--help"]])
def test_short_and_long_help_options_work_as_in_the_original(argv: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "aura.cli", *argv], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout.startswith("Usage: "), proc.stderr
