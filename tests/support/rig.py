"""The supervisor and the watchdog of one temporary project, started as real daemons, and the
stand-in NVML that the watchdog can import in place of the real one; shared by the daemon tests
and the real-GPU tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aura.ipc.client import Client, RemoteError
from aura.runtime.fsutil import read_json
from aura.runtime.records import WorkerRecords
from tests.support.harness import REPO, Project, wait_for

GIB = 1024**3

FAKE_PYNVML = """\
'''pynvml for the watchdog under test: tests/support/fake_pynvml driven by the JSON file $FAKE_NVML_STATE.

Every call reloads the file, so a test changes what the "GPU" reports while the daemon runs.
Utilisation samples get the current time as their timestamp, so each sample counts as new.
A process can also put itself on the first GPU, as a CUDA program would: a file named by its pid
in the folder $FAKE_NVML_STATE.procs, holding {{"bytes": N, "sm": P}}; like the driver, the fake
forgets it once the process has ended.'''
import json, os, sys, time
sys.path.insert(0, {tests!r})
import fake_pynvml as _fake
from fake_pynvml import *  # noqa: F401,F403 - NVMLError and the NVML_ERROR_* codes


def _load():
    with open(os.environ["FAKE_NVML_STATE"]) as fh:
        spec = json.load(fh)
    now_us = int(time.time() * 1e6)
    devices = [_fake.FakeDevice(uuid=d["uuid"], total=d["total"], used=d["used"],
                                compute=[tuple(c) for c in d.get("compute", [])],
                                util=[(pid, now_us, sm) for pid, sm in d.get("util", [])])
               for d in spec["devices"]]
    for pid, nbytes, sm in _procs(os.environ["FAKE_NVML_STATE"] + ".procs"):
        devices[0].compute.append((pid, nbytes))
        devices[0].util.append((pid, now_us, sm))
        devices[0].used += nbytes
    initialised = _fake.CONFIG.initialised
    _fake.reset(devices, init_error=spec.get("init_error")).initialised = initialised


def _procs(folder):
    # (pid, bytes, sm) of every live process that put itself on the GPU
    out = []
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        try:
            with open("/proc/" + name + "/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(os.path.join(folder, name)) as fh:
                rec = json.load(fh)
        except (OSError, ValueError, IndexError):
            continue
        out.append((int(name), rec["bytes"], rec["sm"]))
    return out


def _wrap(name):
    real = getattr(_fake, name)

    def call(*args, **kwargs):
        _load()
        return real(*args, **kwargs)
    call.__name__ = name
    return call


for _name in [n for n in dir(_fake) if n.startswith("nvml")]:
    globals()[_name] = _wrap(_name)
"""


class Rig:
    """The supervisor and the watchdog of one project, started as `python -m aura.daemon NAME`."""

    def __init__(self, project: Project, tmp: Path):
        self.p = project
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen] = {}
        self.clients: dict[str, Client] = {}
        self.scripts = tmp / "scripts"
        self.scripts.mkdir()

    # -- daemons -----------------------------------------------------------------------------------
    def start(self, *names: str) -> None:
        self.p.paths.logs_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            with open(self.p.paths.stdio_file(name), "ab") as out:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "aura.daemon", name, "--project", str(self.p.root)],
                    env=self.p.env,
                    cwd=self.p.root,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        for name in names:
            wait_for(lambda name=name: self._answers(name), 30, what=f"the {name} to answer")
        self.p.remember()

    def _answers(self, name: str) -> bool:
        proc = self.procs[name]
        if proc.poll() is not None:
            pytest.fail(f"the {name} exited {proc.returncode}: {self.p.paths.stdio_file(name).read_text()[-2000:]}")
        try:
            return bool(self.call(name, "ping", timeout=1.0).get("pong"))
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def call(self, name: str, op: str, args: dict | None = None, timeout: float = 10.0) -> Any:
        endpoint = self.p.pidfile(name).get("endpoint")
        if not endpoint:
            raise RemoteError("unavailable", f"{name} has no pid file yet")
        client = self.clients.get(name)
        if client is None or client.endpoint != endpoint:
            client = self.clients[name] = Client(endpoint, name, timeout=timeout, retries=0)
        return client.call(op, args, timeout=timeout)

    def stop_daemon(self, name: str) -> None:
        self.call(name, "shutdown", {"reason": "test"})
        self.procs[name].wait(timeout=30)

    def stop(self) -> None:
        """`aura down` (workers included), then SIGKILL by PID what is left; reap our children."""
        for client in self.clients.values():
            client.close()
        self.p.cleanup()
        for proc in self.procs.values():
            proc.wait(timeout=30)

    # -- workers ---------------------------------------------------------------------------------
    def script(self, name: str, body: str) -> str:
        path = self.scripts / f"{name}.py"
        path.write_text(body)
        return str(path)

    def spawn(self, wid: str, body: str, *argv: str, **extra: Any) -> dict:
        """A `shell` worker that runs `body` as a Python script with `argv`."""
        return self.spawn_argv(wid, [sys.executable, self.script(wid, body), *argv], **extra)

    def spawn_argv(self, wid: str, argv: list[str], **extra: Any) -> dict:
        args = {"worker_id": wid, "task_id": wid, "backend": "shell", "argv": argv, **extra}
        try:
            rec = self.call("supervisor", "spawn", args, timeout=30.0)
        finally:
            self.p.remember()
        assert rec["state"] == "running", rec
        return rec

    def readopted_after_down(self, ended: str, code: int, running: str, release: Path) -> None:
        """After a supervisor restart: `ended` (which exited with `code` while it was down) is
        recorded so, and `running` is re-adopted and ends normally once `release` exists."""
        assert self.worker(running)["state"] == "running"  # re-adopted: its shim, at its start time, still runs
        done = self.exited(ended)
        assert done and done["exit"]["exit_code"] == code and done["note"] == "ended while the supervisor was down"
        # the watchdog's list of live workers: an ended worker leaves it once its end is on disk (the flusher's write)
        wait_for(lambda: self.indexed_live() == {running}, 10, what="the live index to name only the re-adopted worker")
        release.touch()
        late = wait_for(lambda: self.exited(running), 20, what="the re-adopted worker's exit")
        assert late["exit"]["exit_code"] == 0 and late["outcome"] == "succeeded"
        wait_for(lambda: self.indexed_live() == set(), 10, what="the live index to empty")

    def indexed_live(self) -> set[str]:
        return set(WorkerRecords(self.p.paths).live_ids() or [])

    def usage(self, wid: str) -> dict | None:
        return self.call("watchdog", "usage")["workers"].get(wid)

    def kill_record(self, wid: str) -> dict | None:
        return read_json(self.p.paths.watchdog_dir / "kills" / f"{wid}.json")

    def worker(self, wid: str) -> dict:
        return self.call("supervisor", "get", {"worker_id": wid})

    def exited(self, wid: str) -> dict | None:
        rec = self.worker(wid)
        return rec if rec.get("state") == "exited" else None

    def log(self, name: str = "watchdog") -> list[dict]:
        path = self.p.paths.logfile(name)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def logged(self, event: str, name: str = "watchdog") -> list[dict]:
        return [r for r in self.log(name) if r.get("event") == event]

    def samples_after(self, t: float, n: int) -> None:
        """Wait until the watchdog has taken `n` more samples after wall time `t`."""
        poll = float(self.p.env["AURA_WORKER_RESOURCE_POLL_SECONDS"])
        wait_for(
            lambda: (self.call("watchdog", "status").get("last_sample_at") or 0) >= t + n * poll,
            20,
            what=f"{n} more watchdog samples",
        )

    def fake_gpu(self, state: dict) -> Path:
        """Put the stand-in NVML in front of the real one for daemons started after this."""
        return install_fake_nvml(self.tmp, self.p.env, state)


def install_fake_nvml(tmp: Path, env: dict[str, str], state: dict) -> Path:
    """Make processes started with `env` import the stand-in NVML as `pynvml`; returns its state file."""
    lib = tmp / "fake_nvml"
    lib.mkdir(exist_ok=True)
    (lib / "pynvml.py").write_text(FAKE_PYNVML.format(tests=str(REPO / "tests" / "support")))
    state_file = tmp / "nvml_state.json"
    set_gpu(state_file, state)
    env["FAKE_NVML_STATE"] = str(state_file)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(lib), env.get("PYTHONPATH", str(REPO))) if p)
    return state_file


def set_gpu(state_file: Path, state: dict) -> None:
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, state_file)


def gpu_state(
    compute: list[tuple[int, int]] = (), util: list[tuple[int, int]] = (), used: int = 0, init_error: int | None = None
) -> dict:
    return {
        "init_error": init_error,
        "devices": [
            {
                "uuid": "GPU-11111111-2222-3333-4444-555555555555",
                "total": 80 * GIB,
                "used": used,
                "compute": [list(c) for c in compute],
                "util": [list(u) for u in util],
            }
        ],
    }


def rolling_averages(samples: list[dict], metric: str, window_s: float) -> list[tuple[float, float, int]]:
    """(t, window average, samples in the window) at each sample, as the policy computes them."""
    out = []
    for i, s in enumerate(samples):
        inside = [x[metric] for x in samples[: i + 1] if s["t"] - x["t"] <= window_s and x.get(metric) is not None]
        out.append((s["t"], sum(inside) / len(inside), len(inside)))
    return out
