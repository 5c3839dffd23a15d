"""circus and supervisord, installed from the package index into a throwaway virtual
environment and run with the same kind of sockets as Aura (a Unix socket in a private folder).

Neither is one of Aura's dependencies: the environment lives in a temporary folder (or in
one the caller names with --rivals-venv, to reuse it between runs) and is never committed.
Each manager is started in its own session; at the end it is asked to quit, and whatever
is left of it and its workers is killed by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.support.harness import PidBook, TimedOut, wait_for

from .stats import percentile

PACKAGES = ("circus==0.19.0", "supervisor==4.3.0")
DRIVER = Path(__file__).resolve().with_name("driver.py")
SLEEPER = "sleeper"  # an always-running program, so that `status` has a row and `signal` a target


def ensure_venv(folder: Path) -> Path:
    """A virtual environment in `folder` with circus and supervisord; returns its bin folder."""
    bindir = folder / "bin"
    if (bindir / "circusd").exists() and (bindir / "supervisord").exists():
        return bindir
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    subprocess.run(
        [str(bindir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PACKAGES],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return bindir


def versions(bindir: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({p: m.version(p) for p in ('circus', 'supervisor', 'pyzmq', 'tornado')}))"
    )
    out = subprocess.run([str(bindir / "python"), "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def worker_script(folder: Path) -> tuple[Path, Path, Path]:
    """A shell worker that waits on a FIFO (the release barrier) and appends its end time."""
    fifo, ends, script = folder / "release.fifo", folder / "ends.txt", folder / "worker.sh"
    if not fifo.exists():
        os.mkfifo(fifo)
    script.write_text(f"read x < {fifo}\ndate +%s.%N >> {ends}\n")
    return fifo, ends, script


@dataclass
class Manager:
    """One running circusd or supervisord."""

    kind: str
    bindir: Path
    folder: Path
    endpoint: str
    ctl: list[str]
    proc: subprocess.Popen | None = None
    pids: PidBook = field(default_factory=PidBook)

    def daemon_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss(self) -> int:
        """Resident memory of the manager process itself (not of its workers)."""
        return psutil.Process(self.daemon_pid()).memory_info().rss

    def ctl_argv(self, *args: str) -> list[str]:
        return [*self.ctl, *args]

    def driver(self, *args: str, timeout: float = 600.0) -> dict:
        """Run bench/driver.py with the throwaway environment's interpreter; its JSON reply."""
        cmd = [str(self.bindir / "python"), str(DRIVER), *args, "--kind", self.kind, "--endpoint", self.endpoint]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.folder)
        if out.returncode != 0:
            raise RuntimeError(f"driver {' '.join(args)} for {self.kind} failed:\n{out.stderr[-2000:]}")
        result = json.loads(out.stdout)
        for pid, created in result.get("pids", []):
            self.pids.add(pid, created)
        return result

    def remember(self) -> None:
        if self.proc is not None:
            self.pids.add_tree(self.proc.pid)

    def stop(self) -> list[int]:
        """Ask the manager to quit (it stops its workers), then kill what is left by PID."""
        self.remember()
        if self.proc is not None and self.proc.poll() is None:
            quit_cmd = ["quit"] if self.kind == "circus" else ["shutdown"]
            subprocess.run(self.ctl_argv(*quit_cmd), capture_output=True, timeout=30, cwd=self.folder)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        left = self.pids.kill_survivors()
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        return left


def _short_dir() -> Path:
    """A private folder with a short path: Unix socket paths must stay under 107 bytes."""
    return Path(tempfile.mkdtemp(prefix="aurb-"))


def start_circus(bindir: Path, n: int) -> Manager:
    """circusd with a worker group of `n` (not started) and the always-running sleeper; the
    documented defaults everywhere else (check_delay 5 s), except multicast discovery, which is off."""
    folder = _short_dir()
    fifo, ends, script = worker_script(folder)
    ctl_ep, pub_ep = f"ipc://{folder}/ctl.sock", f"ipc://{folder}/pub.sock"
    ini = folder / "circus.ini"
    ini.write_text(
        "\n".join(
            [
                "[circus]",
                f"endpoint = {ctl_ep}",
                f"pubsub_endpoint = {pub_ep}",
                "multicast_endpoint =",
                "statsd = False",
                f"logoutput = {folder}/circusd.log",
                "",
                f"[watcher:{SLEEPER}]",
                "cmd = sleep 3600",
                "numprocesses = 1",
                "",
                "[watcher:w]",
                f"cmd = /bin/sh {script}",
                f"numprocesses = {n}",
                "autostart = False",
                "respawn = False",
                "copy_env = True",
                "",
            ]
        )
    )
    ctl = [str(bindir / "circusctl"), "--endpoint", ctl_ep, "--timeout", "30"]
    mgr = Manager("circus", bindir, folder, ctl_ep, ctl)
    mgr.proc = _spawn([str(bindir / "circusd"), str(ini)], folder / "circusd.out", folder)
    _wait_answers(mgr, ["list"])
    return mgr


def start_supervisord(bindir: Path, n: int) -> Manager:
    """supervisord with a group of `n` workers (not started; startsecs 0 so a short life is not a
    failed start) and the always-running sleeper; documented defaults everywhere else."""
    folder = _short_dir()
    fifo, ends, script = worker_script(folder)
    sock = folder / "sv.sock"
    conf = folder / "supervisord.conf"
    conf.write_text(
        "\n".join(
            [
                "[unix_http_server]",
                f"file = {sock}",
                "chmod = 0700",
                "",
                "[supervisord]",
                f"logfile = {folder}/supervisord.log",
                f"pidfile = {folder}/supervisord.pid",
                "nodaemon = true",
                f"childlogdir = {folder}",
                "",
                "[rpcinterface:supervisor]",
                "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
                "",
                "[supervisorctl]",
                f"serverurl = unix://{sock}",
                "",
                f"[program:{SLEEPER}]",
                "command = sleep 3600",
                "autostart = true",
                "",
                "[program:w]",
                f"command = /bin/sh {script}",
                f"numprocs = {n}",
                "process_name = %(program_name)s_%(process_num)03d",
                "autostart = false",
                "autorestart = false",
                "startsecs = 0",
                "stdout_logfile = NONE",
                "stderr_logfile = NONE",
                "",
            ]
        )
    )
    ctl = [str(bindir / "supervisorctl"), "-c", str(conf)]
    mgr = Manager("supervisord", bindir, folder, f"unix://{sock}", ctl)
    mgr.proc = _spawn([str(bindir / "supervisord"), "-c", str(conf)], folder / "supervisord.out", folder)
    _wait_answers(mgr, ["status", SLEEPER])
    return mgr


def _spawn(argv: list[str], out: Path, cwd: Path) -> subprocess.Popen:
    with open(out, "ab") as fh:
        return subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_answers(mgr: Manager, args: list[str], timeout: float = 30.0) -> None:
    def answers() -> bool:
        if mgr.proc is not None and mgr.proc.poll() is not None:
            raise RuntimeError(f"{mgr.kind} exited with {mgr.proc.returncode}; see {mgr.folder}")
        out = subprocess.run(mgr.ctl_argv(*args), capture_output=True, text=True, timeout=30, cwd=mgr.folder)
        return out.returncode == 0 and "RUNNING" in out.stdout if mgr.kind == "supervisord" else out.returncode == 0

    try:
        wait_for(answers, timeout, f"{mgr.kind} to answer", interval=0.1)
    except TimedOut:
        mgr.stop()
        raise
    time.sleep(0.5)  # let the sleeper settle, as for Aura
    mgr.remember()


def cleanup_folder(mgr: Manager) -> None:
    shutil.rmtree(mgr.folder, ignore_errors=True)


def ends(mgr: Manager) -> list[float]:
    return read_ends(mgr.folder / "ends.txt")


def read_ends(path: Path) -> list[float]:
    try:
        return [float(x) for x in path.read_text().split()]
    except FileNotFoundError:
        return []


def summary_scale(raw: dict[str, Any], end_times: list[float]) -> dict:
    """Seconds: to start all N, from the last worker's exit to the manager reporting none running,
    and to every process being reaped."""
    last_end = max(end_times) if end_times else None

    def since(key: str, ref: float | None) -> float | None:
        v = raw.get(key)
        return round(v - ref, 4) if v is not None and ref is not None else None

    return {
        "n": raw["n"],
        "spawn_s": since("all_running", raw["t0"]),
        "exit_seen_s": since("exit_seen", last_end),
        "reaped_s": since("reaped", last_end),
        "ends_recorded": len(end_times),
    }


SCALE_FIGURES = ("spawn_s", "exit_seen_s", "reaped_s")


def rounds_median(rounds: list[dict]) -> dict:
    """One size's rounds as one summary: each figure's median and its quartiles (`KEY_iqr`: the
    25th and 75th percentiles, nearest rank, over the rounds that have it), with every round kept
    under `rounds` so they can be checked. The quartiles show how far apart two managers' rounds
    are: on a busy machine one round can take several times another."""
    out: dict[str, Any] = {"n": rounds[0]["n"], "ends_recorded": min(r["ends_recorded"] for r in rounds)}
    for key in SCALE_FIGURES:
        values = [r[key] for r in rounds if r.get(key) is not None]
        out[key] = percentile(values, 50) if values else None
        out[f"{key}_iqr"] = [percentile(values, 25), percentile(values, 75)] if values else None
    out["rounds"] = rounds
    return out
