"""Aura's figures beside circus and supervisord, from one command.

    python bench/run.py            # the full run (about 25 minutes on 2 cores, 10 of them the soak)
    python bench/run.py --quick    # a smoke run (about 6 minutes): fewer runs, smaller scale
    python bench/run.py --no-rivals --sections control,events

It prints a table and writes every figure (n, min, median, p95, p99, max) to bench/results/<date>-<host>[-quick].json.
circus and supervisord are installed from the package index into a throwaway virtual
environment (a temporary folder, or --rivals-venv DIR to keep one between runs); they are
not dependencies of Aura. `aura ps` and `aura wake` are timed as a user installs them too: this
checkout, installed into an environment of its own (--aura-venv DIR to keep it; --dev-aura times
the running environment's `aura` instead). The commands are interleaved run by run (A, B, C, A, B, C, ...),
so a machine that slows down mid-run slows all three alike.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from aura import __version__  # noqa: E402
from bench import aura_bench, fsyncfloor, gitcost, installed, rivals, slurmcost, soak  # noqa: E402
from bench.report import render  # noqa: E402
from bench.stats import summary  # noqa: E402

SECTIONS = ("control", "events", "watchdog", "scale", "tokens", "git", "slurm", "soak")
RESULTS = Path(__file__).resolve().with_name("results")


def plan(quick: bool) -> dict[str, Any]:
    """How much of everything: the full run is what the README quotes."""
    if quick:
        return {
            "cmd_runs": 10,
            "rtt": 500,
            "event_items": 24,
            "wd_seconds": 6,
            "wd_kill_runs": 1,
            "sizes": [8, 32],
            "scale_rounds": 1,
            "token_cycles": 2,
            "git_files": 10_000,
            "git_runs": 5,
            "git_accepts": 3,
            "slurm_workers": 8,
            "slurm_ps_runs": 5,
            "soak_tasks": 1000,
        }
    return {
        "cmd_runs": 50,
        "rtt": 5000,
        "event_items": 200,
        "wd_seconds": 20,
        "wd_kill_runs": 3,
        "sizes": [8, 32, 128],
        "scale_rounds": 11,
        "token_cycles": 5,
        "git_files": 10_000,
        "git_runs": 20,
        "git_accepts": 10,
        "slurm_workers": 32,
        "slurm_ps_runs": 20,
        "soak_tasks": 5000,
    }


def machine() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": psutil.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "cpu_model": _cpu_model(),
        "autogroup": autogroup(),
        "aura": __version__,
    }


def autogroup() -> str | None:
    """Whether the kernel shares CPU time between sessions rather than between processes ("on",
    "off"; None where the kernel has no such setting). Every worker and every shim is a session of
    its own, so the scale figures depend on it: a manager that has work to do after each exit gets
    one share among N sessions instead of one per thread."""
    try:
        return "on" if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1" else "off"
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# -- whole commands -----------------------------------------------------------------------------------


def time_commands(commands: dict[str, tuple[list[str], Path, dict | None]], runs: int, warmup: int = 2) -> dict:
    """Wall seconds of each whole command (process start to exit), interleaved run by run. A command
    that fails stops the bench: the time it took to fail is no figure."""
    samples: dict[str, list[float]] = {k: [] for k in commands}
    for i in range(warmup + runs):
        for label, (argv, cwd, env) in commands.items():
            t = time.perf_counter()
            out = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True)
            took = time.perf_counter() - t
            if out.returncode not in (0, 3):  # supervisorctl status says 3 when a program has exited
                error = out.stderr.decode(errors="replace").strip()[-300:]
                raise SystemExit(f"bench: `{label}` failed (exit {out.returncode}): {error}")
            if i >= warmup:
                samples[label].append(took)
    return {k: {**summary(v, 1000, 1), "unit": "ms"} for k, v in samples.items()}


def control_plane(p: dict, managers: dict[str, rivals.Manager], aura: list[str] | None) -> dict:
    """`aura`: the command timed whole (an installed Aura); None: the bench's own environment's."""
    proj = aura_bench.control_project()
    try:
        argv, env = proj.aura_argv(), proj.env
        if aura:  # the checkout on PYTHONPATH (for the daemons' bench code) would shadow the installed package
            argv, env = aura, {k: v for k, v in proj.env.items() if k != "PYTHONPATH"}
        cmds: dict[str, tuple[list[str], Path, dict | None]] = {
            "aura ps": ([*argv, "ps"], proj.root, env),
            "aura wake": ([*argv, "wake", "bench"], proj.root, env),
        }
        for kind, mgr in managers.items():
            sig = ["signal", rivals.SLEEPER, "CONT"] if kind == "circus" else ["signal", "CONT", rivals.SLEEPER]
            cmds[f"{kind} status"] = (mgr.ctl_argv("status"), mgr.folder, None)
            cmds[f"{kind} signal"] = (mgr.ctl_argv(*sig), mgr.folder, None)
        whole = time_commands(cmds, p["cmd_runs"])
        rtt = {"aura": aura_bench.round_trips(proj, p["rtt"])}
        for kind, mgr in managers.items():
            rtt[kind] = mgr.driver("rtt", "--n", str(p["rtt"]))
        rtt_summary = {k: {op: summary(v, 1e6, 1) for op, v in r.items()} for k, r in rtt.items()}
        return {
            "whole_commands": whole,
            "aura_command": "installed" if aura else "the bench's own environment",
            "round_trip_us": rtt_summary,
            "mapping": {
                "ps": "aura ps | circusctl status | supervisorctl status",
                "wake": "aura wake | circusctl signal sleeper CONT | supervisorctl signal CONT sleeper",
                "light": "Aura ping | circus list | supervisord getState",
                "listing": "Aura list | circus status | supervisord getAllProcessInfo",
            },
        }
    finally:
        proj.cleanup()


class RivalScale:
    """A rival's side of the scale section: a fresh manager for each round, stopped after it."""

    def __init__(self, bindir: Path, kind: str):
        self.bindir = bindir
        self.kind = kind
        self.start = rivals.start_circus if kind == "circus" else rivals.start_supervisord
        self.rounds: dict[str, list[dict]] = {}
        self.idle: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def round(self, n: int) -> None:
        mgr = self.start(self.bindir, n)
        key = str(n)
        try:
            rss = mgr.rss()
            self.idle[key] = min(self.idle.get(key, rss), rss)
            with aura_bench.PeakRss(lambda: {self.kind: [mgr.daemon_pid()]}) as peak:
                raw = mgr.driver("scale", "--n", key, "--fifo", str(mgr.folder / "release.fifo"))
            self.rounds.setdefault(key, []).append(rivals.summary_scale(raw, rivals.ends(mgr)))
            if peak.peak.get(self.kind) is not None:
                self.peak[key] = max(self.peak.get(key, 0), peak.peak[self.kind])
        finally:
            mgr.stop()
            rivals.cleanup_folder(mgr)

    def result(self) -> dict:
        runs = {n: rivals.rounds_median(done) for n, done in self.rounds.items()}
        return {"runs": runs, "rss_idle": self.idle, "rss_peak": self.peak}


def scale(bindir: Path | None, sizes: list[int], rounds: int) -> dict:
    """Every N, `rounds` times, the managers taking turns within each round, so a change in the
    machine's load between rounds falls on all three alike; then the fsync floor."""
    rival_sides = [RivalScale(bindir, kind) for kind in ("circus", "supervisord")] if bindir is not None else []
    with aura_bench.AuraScale() as aura:
        for n in sizes:
            for _ in range(rounds):
                aura.round(n)
                for side in rival_sides:
                    side.round(n)
        out = {"aura": aura.result()}
    out["aura"]["fsync_floor"] = fsyncfloor.measure(sizes, rounds)
    out.update({side.kind: side.result() for side in rival_sides})
    return out


# -- the run ---------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    p = plan(args.quick)
    sections = [s for s in args.sections.split(",") if s]
    result: dict[str, Any] = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": args.quick,
        "plan": p,
        "machine": machine(),
        "sections": {},
    }
    bindir, tmp_venv = _rivals_env(args)
    try:
        if bindir is not None:
            result["rivals"] = rivals.versions(bindir)
        for name in sections:
            t0 = time.monotonic()
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            result["sections"][name] = _section(name, p, bindir, args)
            print(f"[bench] {name} done in {time.monotonic() - t0:.0f}s", file=sys.stderr, flush=True)
    finally:
        if tmp_venv is not None:
            shutil.rmtree(tmp_venv, ignore_errors=True)
    return result


def _section(name: str, p: dict, bindir: Path | None, args: argparse.Namespace) -> Any:
    quick = args.quick
    if name == "control":
        managers = {}
        try:
            if bindir is not None:
                managers = {
                    "circus": rivals.start_circus(bindir, 8),
                    "supervisord": rivals.start_supervisord(bindir, 8),
                }
            return control_plane(p, managers, _installed_aura(args))
        finally:
            for mgr in managers.values():
                mgr.stop()
                rivals.cleanup_folder(mgr)
    if name == "events":
        return aura_bench.event_latency(p["event_items"])
    if name == "watchdog":
        return {
            "cpu": aura_bench.watchdog_cpu(8, p["wd_seconds"], 1.0),
            "cpu_default_poll": aura_bench.watchdog_cpu(8, p["wd_seconds"], 10.0),
            "detect_and_kill": aura_bench.detect_and_kill(p["wd_kill_runs"]),
            "sampling_cost": aura_bench.watchdog_overhead_script(quick),
        }
    if name == "scale":
        return scale(bindir, p["sizes"], p["scale_rounds"])
    if name == "tokens":
        return aura_bench.brain_tokens(p["token_cycles"])
    if name == "git":
        return gitcost.measure(p["git_files"], p["git_runs"], p["git_accepts"])
    if name == "slurm":
        return slurmcost.measure(p["slurm_workers"], p["slurm_ps_runs"])
    if name == "soak":
        return soak.soak(p["soak_tasks"])
    raise SystemExit(f"unknown section {name!r}; choose from {', '.join(SECTIONS)}")


def _rivals_env(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    if args.no_rivals:
        return None, None
    if args.rivals_venv:
        return rivals.ensure_venv(Path(args.rivals_venv)), None
    tmp = Path(tempfile.mkdtemp(prefix="aura-rivals-"))
    print("[bench] installing circus and supervisor into a throwaway environment ...", file=sys.stderr, flush=True)
    return rivals.ensure_venv(tmp / "venv"), tmp


def _installed_aura(args: argparse.Namespace) -> list[str] | None:
    """Aura installed as a user installs it, for the whole-command timings (bench/installed.py)."""
    if args.dev_aura:
        return None
    if args.aura_venv:
        return [str(installed.ensure_installed(Path(args.aura_venv)))]
    print("[bench] installing Aura into a throwaway environment ...", file=sys.stderr, flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="aura-installed-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return [str(installed.ensure_installed(tmp / "venv"))]


def write(result: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H%M")
    name = f"{stamp}-{result['machine']['host'][:20]}{'-quick' if result['quick'] else ''}.json"
    path = out_dir / name
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Aura's benchmark, side by side with circus and supervisord.")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (fewer runs, N up to 32)")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument("--no-rivals", action="store_true", help="Aura only: do not install circus and supervisord")
    parser.add_argument("--rivals-venv", metavar="DIR", help="reuse (or create) the rivals' environment in DIR")
    which_aura = parser.add_mutually_exclusive_group()
    which_aura.add_argument(
        "--aura-venv", metavar="DIR", help="reuse (or create) the environment Aura is installed into"
    )
    which_aura.add_argument(
        "--dev-aura", action="store_true", help="time this environment's `aura` (no install; an editable one is slower)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON result (default bench/results)")
    args = parser.parse_args(argv)
    result = run(args)
    path = write(result, args.out)
    print(render(result))
    print(f"\nraw figures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
