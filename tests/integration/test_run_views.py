"""`aura top` in a real terminal (tmux) against the real daemons and workers, through a kill -9 of the
supervisor; then the run's `report.html` opened in headless Chromium.

One run serves both: two shell workers (one spinning a core, one holding 80 MB) long enough to be
seen, then the run finishes and the brain writes the report beside the final report.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.harness import Project, TimedOut, wait_for

IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")

TASK = """# Watch two busy workers

- [ ] Spin a while `timeout 15 sh -c 'while :; do :; done'; touch spun.txt` creates `spun.txt`
- [ ] Hold memory `python3 -c "import time; x=bytearray(80000000); time.sleep(15)"; touch held.txt` creates `held.txt`
"""


def need(command: str) -> str:
    path = shutil.which(command)
    if path is None:
        if IN_CI:
            pytest.fail(f"{command} is not installed (.ci/run installs it)")
        pytest.skip(f"needs {command}")
    return path


class Terminal:
    """`aura top` in a private tmux server (its own socket), read with capture-pane."""

    def __init__(self, project: Project, socket: Path):
        self.tmux = [need("tmux"), "-S", str(socket)]
        argv = " ".join(project.aura_argv("top", "--interval", "0.5"))
        env = " ".join(f"{k}='{v}'" for k, v in project.env.items() if k.startswith(("AURA_", "HOME", "PYTHONPATH")))
        subprocess.run(
            [
                *self.tmux,
                "new-session",
                "-d",
                "-s",
                "top",
                "-x",
                "170",
                "-y",
                "50",
                f"cd {project.root} && env -u COLUMNS -u LINES {env} {argv}",
            ],
            check=True,
        )

    def screen(self) -> str:
        out = subprocess.run([*self.tmux, "capture-pane", "-p", "-t", "top"], capture_output=True, text=True)
        return out.stdout

    def wait(self, pattern: str, what: str, timeout: float = 30.0) -> str:
        try:
            return wait_for(lambda: re.search(pattern, s := self.screen(), re.M) and s, timeout, what=what)
        except TimedOut as exc:
            raise TimedOut(f"{exc}; the screen:\n{self.screen()}") from None

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", "top", *keys], check=True)

    def alive(self) -> bool:
        return subprocess.run([*self.tmux, "has-session", "-t", "top"], capture_output=True).returncode == 0

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


def test_top_shows_the_run_live_and_survives_a_killed_supervisor_then_the_report_draws(
    project: Project, tmp_path: Path
) -> None:
    need("tmux")
    project.env.update(AURA_RESTART_MAX="0", AURA_BUDGET_USD="5")  # a killed supervisor stays down
    project.write_task(TASK)
    project.up()
    term = Terminal(project, tmp_path / "tmux.sock")
    try:
        wait_for(lambda: len(project.workers()) == 2, 30, what="two workers")
        ids = sorted(w["worker_id"] for w in project.workers().values())
        tasks = sorted(w["task_id"] for w in project.workers().values())
        for wid in ids:  # each worker with its state, a CPU figure and an RSS figure
            term.wait(rf"^ {wid}\s+shell\s+running\s+\S+\s+\d+\.\d\s+\S*\s+\d+(\.\d)?[KMG]", f"{wid} with figures")
        screen = term.wait(r"^ \S+-\d\s+shell\s+running\s+\S+\s+\d+\.\d\s+\S*\s+[89]\d\.\dM", "the 80 MB worker")
        for task in tasks:
            assert re.search(rf"^ {task}\s+in_progress\s+1\s", screen, re.M), screen
        assert "Run running" in screen and "Spend $0.0000 of $5.00" in screen, screen
        assert re.search(r"supervisor\s+worker \S+ started", screen), screen  # the events pane

        project.kill9("supervisor")
        # the note below the header: a capture taken while the screen is redrawn top to bottom can
        # hold the new header above the old workers pane, never the new pane under the old header
        screen = term.wait(r"from disk: the supervisor is down", "top to read the workers from disk")
        assert "supervisor DOWN" in screen and all(w in screen for w in ids), screen
        assert term.alive()

        term.keys("f")  # follow the selected worker's output, then back
        term.wait(r"^Output of \S+-1", "the output pane")
        term.keys("f")
        term.wait(r"^Events", "the events pane again")

        project.up()  # brings back the supervisor alone; it re-adopts the workers
        term.wait(r"supervisor up", "top to see the supervisor again")
        term.keys("q")
        wait_for(lambda: not term.alive(), 10, what="top to quit on q")
    finally:
        term.close()

    wait_for(lambda: project.status()["brain"].get("run", {}).get("finished"), 60, what="the run to finish")
    report = project.paths.data / "summaries" / "report.html"
    wait_for(report.exists, 10, what="report.html beside the final report")
    assert (project.paths.data / "summaries" / "final_report.md").exists()
    check_in_chromium(report, tmp_path)


def check_in_chromium(report: Path, tmp_path: Path) -> None:
    """Headless Chromium: a screenshot, no console message, every chart drew its series."""
    chromium = need("chromium")
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'chromium'}"]
    shot = tmp_path / "report.png"
    url = report.resolve().as_uri()
    run = subprocess.run(
        [*base, "--enable-logging=stderr", "--v=0", "--window-size=1100,1900", f"--screenshot={shot}", url],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert shot.exists() and shot.stat().st_size > 10_000, run.stderr[-2000:]
    assert ":CONSOLE" not in run.stderr, [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=90).stdout
    check = re.search(r'id="chart-check" data-charts="(\d+)" data-drawn="(\d+)"', dom)
    assert check and int(check[1]) >= 4 and check[1] == check[2], dom[-3000:]
    assert "data-errors" not in dom
    assert dom.count('data-drawn="yes"') == int(check[1])
    for name in ("Attempts", "CPU", "Memory", "Spend", "Task tree", "Decisions"):
        assert f"<h2>{name}</h2>" in dom
    if os.environ.get("AURA_KEEP_REPORT_SHOT"):
        shutil.copy(shot, os.environ["AURA_KEEP_REPORT_SHOT"])
