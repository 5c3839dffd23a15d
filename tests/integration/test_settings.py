"""Settings from every source checked before anything starts; run-time changes checked by the same
rules; no traceback and no secret reaches a user or a command line (issue 12, items 1-5 and 15).

Real `aura` processes and real daemons in a temporary project; every process is stopped by PID."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from aura.runtime.config import KEYS, load_config
from aura.runtime.paths import DAEMONS
from tests.support.harness import REPO, Project, wait_for

TASK = "# Settings\n- [ ] sleep `sleep 60`\n"


def refused_start(project: Project, *args: str, env: dict | None = None) -> str:
    """Run `aura ARGS up -d task.md`; assert it refused in one line and started nothing."""
    project.write_task(TASK)
    saved = dict(project.env)
    project.env.update(env or {})
    try:
        proc = project.aura(*args, "up", "-d", "task.md", check=False)
    finally:
        project.env = saved
    assert proc.returncode == 1, f"started anyway:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("aura: warning:")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].endswith("Nothing was started."), proc.stderr
    assert not any(project.daemon_pid(n) for n in DAEMONS)
    assert not project.paths.launch_file.exists()
    return lines[0]


# -- item 1: every value checked against its type and range, from every source -----------------------------


@pytest.mark.parametrize(
    "setting, allowed",
    [
        ("AURA_MAX_CONCURRENT_TASKS=0", "a whole number >= 1"),
        ("AURA_MAX_CONCURRENT_TASKS=-3", "a whole number >= 1"),
        ("AURA_MAX_CONCURRENT_TASKS=abc", "a whole number >= 1"),
        ("AURA_MAX_CONCURRENT_TASKS=2.5", "a whole number >= 1"),
        ("AURA_CYCLE_INTERVAL=0", "a number >= 0.5"),
        ("AURA_CYCLE_INTERVAL=-1", "a number >= 0.5"),
        ("AURA_TASK_BUDGET=-5", "a number > 0"),
        ("AURA_LOG_LEVEL=bogus", "one of debug, info, warning, error"),
        ("AURA_PLANNER=bogus", "one of auto, llm, local"),
        ("AURA_RESTART_MAX=-1", "a whole number >= 0"),
        ("AURA_FILE_CACHE=maybe", "1/0, true/false, yes/no or on/off"),
        ("AURA_WORKER_RESOURCE_POLL_SECONDS=abc", "a number from 0.05 to 3600"),
        ("AURA_WORKER_RESOURCE_GUARD=", "one of 1, 0, dry-run"),
        ("AURA_WORKER_MAX_CPU_PERCENT=150", "a number from 0 to 100"),
        ("AURA_BUDGET_USD=nan", "a number >= 0"),
        ("AURA_PEER_HANG_SECONDS=1", "0 (no hang check) or at least 2"),
    ],
)
def test_a_bad_value_refuses_the_start_naming_key_value_source_and_range(
    project: Project, setting: str, allowed: str
) -> None:
    key, _, value = setting.partition("=")
    line = refused_start(project, "-O", setting)
    assert line.startswith(f"Error: {key}={value!r} from --override: "), line
    assert f"expected {allowed}" in line, line


def test_every_source_is_checked_and_named(project: Project, tmp_path: Path) -> None:
    (project.root / ".aura").mkdir()
    project_cfg = project.root / ".aura" / "config.env"
    project_cfg.write_text("AURA_MAX_TURNS=0\n")
    assert f"AURA_MAX_TURNS='0' from project config {project_cfg}:" in refused_start(project)
    project_cfg.unlink()
    home_cfg = Path(project.env["HOME"]) / ".aura" / "config.env"
    home_cfg.parent.mkdir(parents=True)
    home_cfg.write_text("AURA_API_TIMEOUT=-2\n")
    assert f"AURA_API_TIMEOUT='-2' from global config {home_cfg}:" in refused_start(project)
    home_cfg.unlink()
    explicit = tmp_path / "extra.env"
    explicit.write_text("AURA_NOTIFY_LEVEL=loud\n")
    assert "AURA_NOTIFY_LEVEL='loud' from --config" in refused_start(project, "-c", str(explicit))
    assert "AURA_SAFE_MODE_AFTER='0' from environment:" in refused_start(project, env={"AURA_SAFE_MODE_AFTER": "0"})


def test_a_daemon_started_on_its_own_refuses_a_bad_setting_in_one_line(project: Project) -> None:
    """Peers and service managers start daemons without `aura up`: each one checks too."""
    env = {**project.env, "AURA_LOG_LEVEL": "bogus"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "aura.daemon", "watchdog", "--project", str(project.root)],
            cwd=project.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
        )
    finally:
        project.remember()
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "aura watchdog: configuration error: AURA_LOG_LEVEL='bogus' from environment: "
        "expected one of debug, info, warning, error"
    )
    assert project.daemon_pid("watchdog") is None


def test_the_table_types_every_key_as_the_code_reads_it() -> None:
    """Each default passes its own rule, and each `cfg.integer/number/flag("KEY")` in the code reads a
    key of that type, so a check at start covers what the getters will meet."""
    for key, setting in KEYS.items():
        default = setting.default
        raw = ("1" if default else "0") if isinstance(default, bool) else str(default)
        assert setting.problem(raw) is None, key
    readers = {"integer": {"int"}, "number": {"float", "int"}, "flag": {"bool"}}
    pattern = re.compile(r"\.(integer|number|flag)\(\"(AURA_[A-Z0-9_]+)\"\)")
    seen = 0
    for folder in ("aura", "supervisor", "watchdog"):
        for path in (REPO / folder).rglob("*.py"):
            for getter, key in pattern.findall(path.read_text()):
                assert key in KEYS, f"{path}: {key}"
                assert KEYS[key].kind in readers[getter], f"{path}: cfg.{getter}({key}) reads a {KEYS[key].kind}"
                seen += 1
    assert seen > 50


def test_choices_and_booleans_take_the_usual_spellings_and_nothing_else() -> None:
    from aura.runtime.settings_check import problems

    cfg = load_config(None, None, ["AURA_PLANNER= LOCAL ", "AURA_FILE_CACHE=Off", "AURA_API_PROVIDER="], environ={})
    assert problems(cfg.values, cfg.sources) == []
    assert cfg.text("AURA_PLANNER") == "local" and cfg.flag("AURA_FILE_CACHE") is False
    bad = load_config(None, None, ["AURA_AUTO_RESUME=maybe", "AURA_PLANNER="], environ={})
    found = problems(bad.values, bad.sources)
    assert len(found) == 2 and "AURA_AUTO_RESUME='maybe'" in found[0] and "AURA_PLANNER=''" in found[1]


def test_aura_budget_is_checked_by_the_same_rule(project: Project) -> None:
    (project.root / ".aura").mkdir()
    for value in ("nan", "-5", "lots"):
        proc = project.aura("budget", value, check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.strip() == (
            f"Error: AURA_BUDGET_USD={value!r} from `aura budget`: expected a number >= 0 "
            "(run budget in USD for both layers; 0 = none)"
        )


# -- item 2: misspelt keys ------------------------------------------------------------------------------------


def test_a_misspelt_key_is_refused_with_the_nearest_names(project: Project) -> None:
    line = refused_start(project, "-O", "AURA_WORKER_MAX_MEMORY_GB=0.25")
    assert line.startswith("Error: AURA_WORKER_MAX_MEMORY_GB from --override is not an Aura setting; did you mean ")
    assert "AURA_WORKER_MAX_SYSTEM_MEMORY_GB" in line
    (project.root / ".aura").mkdir()
    (project.root / ".aura" / "config.env").write_text("AURA_MAX_CONCURENT_TASKS=1\n")
    assert "did you mean AURA_MAX_CONCURRENT_TASKS?" in refused_start(project)


def test_a_misspelt_key_in_the_environment_is_a_warning_and_aura_own_names_are_not(project: Project) -> None:
    project.write_task(TASK)
    project.env.update(
        {
            "AURA_WORKER_MAX_MEMORY_GB": "0.25",
            "AURA_HOME": str(Path(project.env["HOME"]) / ".aura"),
            "AURA_TASK_FILE": "x.md",
            "AURA_EVENT": "task_done",
            "AURA_TEST_CACHE": "/nowhere",
        }
    )
    proc = project.up()
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("aura: warning:")]
    assert warnings == [
        "aura: warning: AURA_WORKER_MAX_MEMORY_GB in the environment is not an Aura setting and is "
        "ignored; did you mean AURA_WORKER_MAX_GPU_MEMORY_GB or "
        "AURA_WORKER_MAX_SYSTEM_MEMORY_GB?"
    ], proc.stderr
    assert all(project.daemon_pid(n) for n in DAEMONS)


# -- item 3: a window no strike fits in --------------------------------------------------------------------------


def test_a_window_shorter_than_two_polls_is_refused_at_start(project: Project) -> None:
    line = refused_start(
        project, "-O", "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS=4", "-O", "AURA_WORKER_RESOURCE_POLL_SECONDS=10"
    )
    assert line.startswith(
        "Error: AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS='4' from --override is shorter than two "
        "polls of AURA_WORKER_RESOURCE_POLL_SECONDS=10 (from --override)"
    )
    assert "at least 20 s" in line


def test_an_action_aura_approve_cannot_hold_is_refused_at_start(project: Project) -> None:
    line = refused_start(project, "-O", "AURA_APPROVE=spawn, deploy")
    assert line.startswith("Error: AURA_APPROVE='spawn, deploy' from --override: unknown action 'deploy'; expected")
    assert "spend-over:5" not in line and "spend-over:USD" in line
    assert "needs one" in refused_start(project, "-O", "AURA_APPROVE=spend-over")


def test_limits_kept_from_an_earlier_run_are_checked_at_start(project: Project) -> None:
    project.paths.watchdog_dir.mkdir(parents=True)
    (project.paths.watchdog_dir / "limits.json").write_text(
        '{"overrides": {"AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS": "0.3"}}'
    )
    line = refused_start(project)
    assert "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS='0.3' from `aura limits` (kept in" in line


def test_aura_limits_answers_in_aura_words_and_shows_window_strikes_and_cooldown(rig: object) -> None:
    """Items 3, 4 and 15 at run time, against a real watchdog (poll 0.2 s, window 1 s, cooldown 15 s)."""
    from tests.support.rig import Rig

    assert isinstance(rig, Rig)
    rig.p.env["AURA_WORKER_RESOURCE_COOLDOWN_SECONDS"] = "15"
    rig.start("watchdog")
    shown = rig.p.aura("limits").stdout
    assert "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS=1.0\n" in shown
    assert "window: 1 s = 5 samples at one every 0.2 s" in shown
    assert "for 3 samples in a row: at the earliest 0.6 s after its first sample" in shown
    assert "cooldown: for 15 s after a kill (75 samples)" in shown and "can take more than 3 samples" in shown
    for setting, expected in [
        (
            "AURA_WORKER_RESOURCE_POLL_SECONDS=abc",
            "Error: AURA_WORKER_RESOURCE_POLL_SECONDS='abc' from `aura limits`: expected a number from 0.05 to 3600 "
            "(seconds between watchdog samples)",
        ),
        (
            "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS=0.3",
            "Error: AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS='0.3' from `aura limits` is shorter than two polls",
        ),
        (
            "AURA_WORKER_RESOURCE_POLL_SECONDS=0.6",
            "Error: AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS='1' from environment is shorter than two polls",
        ),
        ("AURA_WORKER_MAX_MEMORY_GB=1", "Error: unknown limit 'AURA_WORKER_MAX_MEMORY_GB'; did you mean"),
    ]:
        proc = rig.p.aura("limits", setting, check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith(expected), proc.stderr
    assert rig.logged("limits_changed") == []
    both = rig.p.aura("limits", "AURA_WORKER_RESOURCE_POLL_SECONDS=0.5", "AURA_WORKER_RESOURCE_AVG_WINDOW_SECONDS=1")
    assert "AURA_WORKER_RESOURCE_POLL_SECONDS: 0.2 -> 0.5" in both.stdout
    assert "window: 1 s = 2 samples at one every 0.5 s" in rig.p.aura("limits").stdout


# -- item 4: no traceback from a command or a daemon start ---------------------------------------------------------


def test_an_internal_error_is_one_line_and_the_traceback_goes_to_a_file(project: Project) -> None:
    project.write_task(TASK)
    (project.root / "not-a-folder").write_text("")
    project.env["AURA_DATA_DIR"] = str(project.root / "not-a-folder")  # every write under it fails
    proc = project.aura("up", "-d", "task.md", check=False)
    log = Path(project.env["HOME"]) / ".aura" / "logs" / "cli-errors.log"
    assert proc.returncode == 70 and "Traceback" not in proc.stderr + proc.stdout
    journal = project.root / "not-a-folder" / "events" / "supervisor.jsonl"
    assert proc.stderr.strip().splitlines() == [
        f"aura: internal error: NotADirectoryError: [Errno 20] Not a directory: '{journal}'; details in {log}"
    ]
    assert "Traceback" in log.read_text() and stat.S_IMODE(log.stat().st_mode) == 0o600


def test_a_daemon_that_cannot_start_says_why_in_one_line(project: Project) -> None:
    project.paths.logs_dir.mkdir(parents=True)
    project.paths.events_dir.parent.mkdir(parents=True, exist_ok=True)
    project.paths.events_dir.write_text("")  # a file where the event journals' folder belongs
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "aura.daemon", "supervisor", "--project", str(project.root)],
            cwd=project.root,
            env=project.env,
            capture_output=True,
            text=True,
            timeout=20,
        )
    finally:
        project.remember()
    log = project.paths.logs_dir / "supervisor-errors.log"
    assert proc.returncode == 70 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("aura supervisor: internal error: ") and len(proc.stderr.splitlines()) == 1
    assert proc.stderr.rstrip().endswith(f"details in {log}") and "Traceback" in log.read_text()


# -- item 5: no secret on any command line -------------------------------------------------------------------------

SECRETS = {
    "AURA_API_KEY": "sk-test-argv-0123456789",
    "AURA_SEARCH_API_KEY": "tvly-argv-secret",
    "AURA_DEEPSEEK_API_KEY": "sk-ds-argv-secret",
    "AURA_DOCKER_CLAUDE_API_KEY": "sk-docker-argv-secret",
}


def _cmdlines(pids: set[int]) -> dict[int, str]:
    """/proc/PID/cmdline of each process and all its descendants."""
    seen: dict[int, str] = {}
    for pid in pids:
        try:
            procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            try:
                seen[p.pid] = Path(f"/proc/{p.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                pass
    return seen


def test_no_secret_on_any_daemon_shim_or_worker_command_line(project: Project) -> None:
    project.write_task(TASK)
    args = [a for k, v in SECRETS.items() for a in ("-O", f"{k}={v}")]
    project.aura(
        *args, "-O", "AURA_PLANNER=local", "-O", "AURA_WORKER_RESOURCE_VIOLATION_STRIKES=7", "up", "-d", "task.md"
    )
    worker = wait_for(
        lambda: next((w for w in project.workers().values() if w.get("worker_pid")), None),
        20,
        what="the worker to start",
    )

    def check_all() -> dict[int, str]:
        pids = {project.daemon_pid(n) for n in DAEMONS} | {worker["shim_pid"], worker["worker_pid"]}
        lines = _cmdlines({p for p in pids if p})
        assert len(lines) >= 5, lines
        for pid, line in lines.items():
            assert not any(v in line for v in SECRETS.values()), f"pid {pid}: {line}"
        return lines

    lines = check_all()
    assert any("aura-shim" in line or "shim.py" in line for line in lines.values()), lines
    launch = project.paths.launch_file.read_text()
    assert not any(v in launch for v in SECRETS.values())
    private = project.paths.run_dir / "overrides.json"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and SECRETS["AURA_API_KEY"] in private.read_text()
    assert "AURA_WORKER_RESOURCE_VIOLATION_STRIKES=7\n" in project.aura("limits").stdout  # the -O values arrived

    old = project.kill9("watchdog")  # the supervisor restarts it from launch.json: the values still arrive
    wait_for(lambda: (pid := project.daemon_pid("watchdog")) and pid != old, 30, what="the watchdog's restart")
    project.remember()
    check_all()
    wait_for(
        lambda: "AURA_WORKER_RESOURCE_VIOLATION_STRIKES=7\n" in project.aura("limits", check=False).stdout,
        20,
        what="the restarted watchdog to answer with the -O value",
    )


def test_secret_values_are_never_printed_in_a_refusal(project: Project) -> None:
    line = refused_start(project, "-O", "AURA_NOTIFY_WEBHOOK=ftp://hook-token-123")
    assert "hook-token-123" not in line and "AURA_NOTIFY_WEBHOOK=<hidden> from --override" in line


def test_check_start_passes_the_defaults_and_the_test_settings() -> None:
    from aura.runtime.settings_check import check_start
    from tests.support.harness import FAST_ENV

    check_start(load_config(None, None, [], environ={}))
    check_start(load_config(None, None, [f"{k}={v}" for k, v in FAST_ENV.items()], environ={}))


def test_no_backend_puts_a_key_on_the_worker_command_line(tmp_path: Path) -> None:
    """The shim's command line ends with the worker's: each backend passes keys in the environment."""
    from aura.runtime.config import Config
    from aura.supervisor.backends import get_backend, plan_worker

    cfg = Config()
    for key, value in SECRETS.items():
        cfg.set(key, value, "test")
    for name in ("claude", "opencode", "codex", "dscode"):
        tool = tmp_path / name
        tool.write_text("#!/bin/sh\nexit 0\n")
        tool.chmod(0o755)
        cfg.set(f"AURA_{name.upper()}_BIN", str(tool), "test")
    cfg.set("AURA_CLAUDE_PERMISSION_MODE", "acceptEdits", "test")
    task = tmp_path / "proj" / ".aura" / "workspace" / "tasks" / "T1"
    task.mkdir(parents=True)
    (task / "task.md").write_text("# T1\n")
    spec: dict = {
        "worker_id": "T1-1",
        "task_id": "T1",
        "task_dir": str(task),
        "cwd": None,
        "env": {},
        "prompt": None,
        "project_root": str(tmp_path / "proj"),
        "data_dir": str(tmp_path / "proj" / ".aura"),
    }
    carried: set[str] = set()
    for backend in ("claude", "opencode", "codex", "ds_code"):
        for isolation in ("none", "docker"):
            cfg.set("AURA_WORKER_ISOLATION", isolation, "test")
            cfg.set("AURA_DOCKER_IMAGE", "aura-worker:1", "test")
            plan = plan_worker(get_backend(backend), dict(spec), cfg)
            line = " ".join(plan.argv)
            assert not any(v in line for v in SECRETS.values()), f"{backend}/{isolation}: {line}"
            carried |= {v for v in SECRETS.values() if v in (plan.env or {}).values()}
    # the keys are in play: carried in the environment
    assert carried >= {SECRETS["AURA_DEEPSEEK_API_KEY"], SECRETS["AURA_DOCKER_CLAUDE_API_KEY"]}
