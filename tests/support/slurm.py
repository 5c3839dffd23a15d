"""A private one-node Slurm cluster for the tests: the real `slurmctld` and `slurmd` with a config of
their own in a temporary folder, and the real client commands pointed at it through `SLURM_CONF`.

Why: Aura's Slurm executor talks to Slurm only through its commands (`sbatch`, `squeue`, `scancel`,
`scontrol`), so it is tested against the real ones. Each cluster picks free ports, keeps its state,
spool, logs and pid files in its folder and has a unique ClusterName, so it never meets another.
One `munged` serves every cluster on the host: it is started only when none answers, and stopped at
the end only when this process started it. Every daemon is stopped by the PID in its pid file.

Like the harness it imports no pytest (the bench can use it); `require_slurm()` imports it when called.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psutil

from tests.support.harness import TimedOut, alive, wait_for

SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
CLIENTS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")
DAEMONS = ("slurmctld", "slurmd", "munged", "munge", "unmunge")
# The caller's own Slurm settings (a CI job inside a Slurm job has many) must not reach this cluster.
FOREIGN_ENV = ("SLURM_", "SBATCH_", "SQUEUE_", "SCANCEL_", "SINFO_", "SCONTROL_", "SALLOC_", "SRUN_", "SACCT_")
START_TIMEOUT_S = 30.0
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_DIRS = (Path("/run/munge"), Path("/var/log/munge"), Path("/var/lib/munge"))


class SlurmError(AssertionError):
    """The cluster did not start, or a Slurm command that had to succeed failed; the message says why."""


def which(name: str) -> str | None:
    """`name` on PATH or in the sbin folders (the daemons live there, outside a non-root PATH)."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *SBIN]))


def unavailable_reason() -> str | None:
    """Why a private cluster cannot run here, or None when it can."""
    missing = [name for name in (*CLIENTS, *DAEMONS) if which(name) is None]
    if missing:
        return f"Slurm is not installed (no {', '.join(missing)}; Debian: apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "a private Slurm cluster needs root (slurmd runs jobs as their user; munged runs as user munge)"
    return None


def require_slurm() -> None:
    """Skip the test when Slurm cannot run here; under CI=true fail it instead (a broken CI image)."""
    import pytest

    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{reason}: required under CI=true")
    pytest.skip(f"{reason} (and CI is not set)")


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"--- {path.name}: none"
    return f"--- {path.name}:\n" + "\n".join(text)


def stop_pid(proc: subprocess.Popen | None, pid: int, timeout: float = 15.0) -> None:
    """SIGTERM `pid`, SIGKILL after `timeout`, and wait until it is gone (reaped when it is our child)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        if proc is not None and proc.pid == pid:
            proc.wait(timeout)
        else:
            psutil.Process(pid).wait(timeout)
    except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if proc is not None and proc.pid == pid:
            proc.wait(timeout)
        else:
            wait_for(lambda: not alive(pid, None), timeout, what=f"pid {pid} to die")
    except psutil.NoSuchProcess:
        pass


class Munge:
    """The host's one munged: started when none answers, stopped by PID when the last user releases it
    and this process started it. With `socket` it is a munged of its own on that socket, its pid, seed and
    log files beside it (the tests of this module start one even where the host's munged runs)."""

    def __init__(self, socket: Path | None = None) -> None:
        self.socket = socket
        self.proc: subprocess.Popen | None = None
        self.users = 0

    def client(self, name: str) -> list[str]:
        exe = which(name)
        assert exe is not None, f"{name} is not installed"
        return [exe, *(["--socket", str(self.socket)] if self.socket else [])]

    def answers(self) -> bool:
        """True when `munge -n | unmunge` succeeds: a munged runs and its key decodes its own credential."""
        try:
            cred = subprocess.run([*self.client("munge"), "-n"], capture_output=True, timeout=5)
            if cred.returncode != 0:
                return False
            check = subprocess.run(self.client("unmunge"), input=cred.stdout, capture_output=True, timeout=5)
        except subprocess.TimeoutExpired:
            return False
        return check.returncode == 0 and b"STATUS:" in check.stdout and b"Success" in check.stdout

    def acquire(self, log: Path) -> None:
        """One more user; munged is started (its output to `log`) when none answers."""
        self.users += 1
        if self.answers():
            return
        try:
            self.start(log)
        except BaseException:
            self.users -= 1
            raise

    def release(self) -> None:
        self.users = max(0, self.users - 1)
        if self.users == 0 and self.proc is not None:
            proc, self.proc = self.proc, None
            stop_pid(proc, proc.pid)

    def daemon_command(self) -> list[str]:
        exe = which("munged")
        assert exe is not None, "munged is not installed"
        if self.socket is None:
            return [exe, "--foreground"]
        own = {"pid-file": "munged.pid", "seed-file": "munged.seed", "log-file": "munged.log"}
        files = [f"--{key}={self.socket.parent / name}" for key, name in own.items()]
        return [exe, "--foreground", f"--socket={self.socket}", *files]

    def folders(self) -> tuple[Path, ...]:
        return MUNGE_DIRS if self.socket is None else (self.socket.parent,)

    def start(self, log: Path) -> None:
        """Start munged as user munge, in the foreground as our child; SlurmError quoting `log` when it
        does not answer within 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            raise SlurmError(f"munged (pid {self.proc.pid}, started by these tests) does not answer\n{tail(log)}")
        user = pwd.getpwnam("munge")
        if not MUNGE_KEY.exists():
            MUNGE_KEY.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            MUNGE_KEY.write_bytes(secrets.token_bytes(1024))
            os.chown(MUNGE_KEY, user.pw_uid, user.pw_gid)
            MUNGE_KEY.chmod(0o400)
        for folder in self.folders():
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, user.pw_uid, user.pw_gid)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                self.daemon_command(),
                user=user.pw_uid,
                group=user.pw_gid,
                extra_groups=[],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.proc = proc
        deadline = time.monotonic() + 10
        while not self.answers():
            if proc.poll() is not None or time.monotonic() > deadline:
                self.proc = None
                stop_pid(proc, proc.pid)
                raise SlurmError(f"munged did not start (munge -n | unmunge fails)\n{tail(log)}")
            time.sleep(0.1)


MUNGE = Munge()


def machine_cpus() -> int:
    """The CPUs this process may run on: what slurmd finds (a node configured with more is drained)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parse_record(line: str) -> dict[str, str]:
    """`scontrol show ... -o` output (`Key=value Key=value ...`, values may hold blanks) as a dict."""
    keys = list(re.finditer(r"(?:^|\s)([A-Za-z][\w:/]*)=", line))
    record = {}
    for here, after in zip(keys, [*keys[1:], None], strict=True):
        end = after.start() if after is not None else len(line)
        record[here.group(1)] = line[here.end() : end].strip()
    return record


class SlurmCluster:
    """One private cluster in `root`: node `localhost`, one partition, the machine's CPUs.

    `settings` and `partition` override or add slurm.conf keys and partition options;
    `more_partitions` adds partitions (name -> options) on the same node."""

    def __init__(
        self,
        root: Path,
        *,
        settings: Mapping[str, str] | None = None,
        partition: Mapping[str, str] | None = None,
        more_partitions: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.name = "aura" + secrets.token_hex(4)
        self.partition = "test"
        self.extra_settings = dict(settings or {})
        self.extra_partition = dict(partition or {})
        self.more_partitions = {name: dict(options) for name, options in (more_partitions or {}).items()}
        self.cpus = machine_cpus()
        self.memory_mb = max(256, int(psutil.virtual_memory().available / 2**20 * 0.9))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
        self.env["SLURM_CONF"] = str(self.conf)
        self.env["PATH"] = os.pathsep.join([self.env.get("PATH", ""), *SBIN])
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports = (0, 0)
        self.munge_held = False
        self.jobs = 0

    # -- files --------------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        return self.root / name

    def settings(self) -> dict[str, str]:
        """slurm.conf's keys, before the node and the partition lines."""
        base = {
            "ClusterName": self.name,
            "SlurmctldHost": "localhost",
            "SlurmctldPort": str(self.ports[0]),
            "SlurmdPort": str(self.ports[1]),
            "SlurmUser": pwd.getpwuid(os.geteuid()).pw_name,
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core_Memory",
            # Without a default a job that asks no --mem holds the whole node's memory, so jobs ran one at a time.
            "DefMemPerCPU": str(max(1, self.memory_mb // self.cpus)),
            "StateSaveLocation": str(self.path("state")),
            "SlurmdSpoolDir": str(self.path("spool")),
            "SlurmctldPidFile": str(self.path("slurmctld.pid")),
            "SlurmdPidFile": str(self.path("slurmd.pid")),
            "SlurmctldLogFile": str(self.path("slurmctld.log")),
            "SlurmdLogFile": str(self.path("slurmd.log")),
            "JobAcctGatherType": "jobacct_gather/linux",
            "AccountingStorageType": "accounting_storage/none",
            "MpiDefault": "none",
            "ReturnToService": "2",
            # `scontrol show job` remembers an ended job this long: longer than any test.
            "MinJobAge": "3600",
            # Seconds between scancel's (or a time limit's) SIGTERM and its SIGKILL; Slurm's 30 slows the tests.
            "KillWait": "5",
        }
        base.update(self.extra_settings)
        return base

    def write_conf(self) -> None:
        partition = {"Nodes": "localhost", "Default": "YES", "MaxTime": "INFINITE", "State": "UP"}
        partition.update(self.extra_partition)
        lines = [f"{key}={value}" for key, value in self.settings().items()]
        lines.append(f"NodeName=localhost CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN")
        lines.append(f"PartitionName={self.partition} " + " ".join(f"{k}={v}" for k, v in partition.items()))
        for name, options in self.more_partitions.items():
            more = {"Nodes": "localhost", "MaxTime": "INFINITE", "State": "UP", **options}
            lines.append(f"PartitionName={name} " + " ".join(f"{k}={v}" for k, v in more.items()))
        self.conf.write_text("\n".join(lines) + "\n")

    # -- daemons ------------------------------------------------------------------------------
    def start(self) -> SlurmCluster:
        """munged (when none answers), slurmctld and slurmd; returns once the node is idle."""
        for folder in ("state", "spool", "jobs"):
            self.path(folder).mkdir(parents=True, exist_ok=True)
        MUNGE.acquire(self.path("munged.log"))
        self.munge_held = True
        try:
            for attempt in range(3):
                self.ports = (free_port(), free_port())
                self.write_conf()
                self.start_daemon("slurmctld", clear=True)
                self.start_daemon("slurmd")
                try:
                    self.wait_idle(START_TIMEOUT_S)
                    return self
                except SlurmError:
                    if attempt == 2 or "Address already in use" not in self.logs():
                        raise
                    self.stop_daemons()  # a port was taken between the pick and the bind: pick again
        except BaseException:
            self.stop()
            raise
        return self

    def command(self, daemon: str, clear: bool = False) -> list[str]:
        exe = which(daemon)
        assert exe is not None, f"{daemon} is not installed"
        if daemon == "slurmctld":
            return [exe, "-D", "-f", str(self.conf), *(["-c"] if clear else [])]
        return [exe, "-D", "-f", str(self.conf), "-N", "localhost"]

    def start_daemon(self, daemon: str, clear: bool = False) -> None:
        """Start `daemon` in the foreground as our child (so we reap it); it writes its pid file too."""
        self.path(f"{daemon}.pid").unlink(missing_ok=True)
        with open(self.path(f"{daemon}.out"), "ab") as out:
            self.procs[daemon] = subprocess.Popen(
                self.command(daemon, clear),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def pid(self, daemon: str) -> int | None:
        """The PID in `daemon`'s pid file, when that process runs."""
        try:
            pid = int(self.path(f"{daemon}.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if alive(pid, None) else None

    def stop_daemon(self, daemon: str) -> None:
        """Stop `daemon` by the PID in its pid file (or, before it wrote one, the PID we started) and wait."""
        proc = self.procs.pop(daemon, None)
        pid = self.pid(daemon)
        if pid is None and proc is not None and proc.poll() is None:
            pid = proc.pid
        if pid is not None:
            stop_pid(proc, pid)
        if proc is not None and proc.poll() is None:
            stop_pid(proc, proc.pid)

    def stop_daemons(self) -> None:
        self.stop_daemon("slurmd")
        self.stop_daemon("slurmctld")

    def logs(self) -> str:
        names = ("slurmctld.log", "slurmctld.out", "slurmd.log", "slurmd.out", "munged.log")
        return "\n".join(tail(self.path(name)) for name in names if self.path(name).exists())

    def node_state(self) -> str:
        """The node's state as the controller holds it (IDLE, MIXED, IDLE+DRAIN, ...), "" when it does not
        answer. Not sinfo's: after a controller restart sinfo shows a node `mixed` that has nothing allocated."""
        proc = self.run("scontrol", "show", "node", "-o", "localhost", check=False, timeout=10)
        return parse_record(proc.stdout.strip()).get("State", "") if proc.returncode == 0 else ""

    def wait_idle(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until the node is idle; SlurmError quoting the daemons' logs otherwise."""
        deadline = time.monotonic() + timeout
        state = ""
        while True:
            dead = [name for name, proc in self.procs.items() if proc.poll() is not None]
            if dead:
                raise SlurmError(f"{', '.join(dead)} exited at start (cluster {self.root})\n{self.logs()}")
            state = self.node_state()
            if state == "IDLE":
                return
            if time.monotonic() > deadline:
                raise SlurmError(
                    f"node localhost not idle after {timeout:g}s (state: {state or 'no answer'}; "
                    f"cluster {self.root})\n{self.logs()}"
                )
            time.sleep(0.2)

    def restart_controller(self, timeout: float = START_TIMEOUT_S) -> None:
        """Stop slurmctld by PID and start it again on its saved state; returns once squeue answers."""
        self.stop_daemon("slurmctld")
        self.start_daemon("slurmctld")
        deadline = time.monotonic() + timeout
        while self.run("squeue", "-h", check=False, timeout=10).returncode != 0:
            if self.procs["slurmctld"].poll() is not None or time.monotonic() > deadline:
                raise SlurmError(f"slurmctld did not come back (cluster {self.root})\n{self.logs()}")
            time.sleep(0.2)

    # -- client commands ----------------------------------------------------------------------
    def run(
        self, *cmd: str, check: bool = True, timeout: float = 30.0, input: str | None = None
    ) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster; SlurmError with its output when `check` and it fails."""
        proc = subprocess.run(
            list(cmd),
            env=self.env,
            cwd=self.root,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise SlurmError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}{proc.stderr}")
        return proc

    def sbatch(self, script: str, *options: str) -> str:
        """Submit `script` (a shell script's text) with `options`; its output goes to jobs/out-ID.txt.
        Returns the job id."""
        self.jobs += 1
        path = self.path("jobs") / f"job{self.jobs}.sh"
        path.write_text(script if script.startswith("#!") else "#!/bin/sh\n" + script)
        out = str(self.path("jobs") / "out-%j.txt")
        proc = self.run("sbatch", "--parsable", "-o", out, "-D", str(self.path("jobs")), *options, str(path))
        return proc.stdout.strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job ID` as a dict (JobState, ExitCode, Reason, NodeList, ...)."""
        return parse_record(self.run("scontrol", "show", "job", "-o", job_id).stdout.strip())

    def wait_state(self, job_id: str, *states: str, timeout: float = 30.0) -> dict[str, str]:
        """Wait until the job's JobState is one of `states`; returns its record."""
        seen: dict[str, str] = {}

        def reached() -> bool:
            seen.update(self.job(job_id))
            return seen.get("JobState") in states

        try:
            wait_for(reached, timeout, what=f"job {job_id} to be {'/'.join(states)}", interval=0.2)
        except TimedOut as exc:
            raise TimedOut(f"{exc} (it is {seen.get('JobState')}, reason {seen.get('Reason')})") from None
        return seen

    def queue(self) -> list[str]:
        """Ids of the jobs squeue lists (pending, running, completing)."""
        return self.run("squeue", "-h", "-o", "%i").stdout.split()

    def cancel_all(self, timeout: float = 30.0) -> None:
        """scancel every job in the queue and wait until the queue is empty."""
        jobs = self.queue()
        if jobs:
            self.run("scancel", *jobs, check=False)
        wait_for(lambda: not self.queue(), timeout, what="the queue to empty", interval=0.2)

    def controller_alive(self) -> bool:
        return self.pid("slurmctld") is not None

    def reset(self) -> None:
        """Between tests: both daemons running, no job left (nor its processes), the node idle."""
        if not self.controller_alive():
            self.restart_controller()
        if self.pid("slurmd") is None:
            self.stop_daemon("slurmd")
            self.start_daemon("slurmd")
        self.cancel_all()
        self.wait_jobs_gone()
        self.wait_idle()

    # -- processes ----------------------------------------------------------------------------
    def owns(self, proc: psutil.Process) -> bool:
        """True for a process of this cluster: its environment names this config and it is a Slurm daemon
        or runs in a job (SLURM_JOB_ID), or it is a slurmstepd with a socket or file in this cluster's
        folder (its environment is empty). A client of the cluster (Aura's daemons under test) is not."""
        if proc.pid == os.getpid():
            return False
        env = proc.environ()
        if env.get("SLURM_CONF") == str(self.conf) and (env.get("SLURM_JOB_ID") or proc.name().startswith("slurm")):
            return True
        if proc.name() != "slurmstepd":
            return False
        paths = [conn.laddr for conn in proc.net_connections("unix")] + [f.path for f in proc.open_files()]
        return any(isinstance(path, str) and path.startswith(f"{self.root}/") for path in paths)

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster (see `owns`) and their descendants."""
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter():
            try:
                if self.owns(proc):
                    for member in (proc, *proc.children(recursive=True)):
                        found[member.pid] = member
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return [proc for proc in found.values() if alive(proc.pid, None)]

    def job_processes(self) -> list[psutil.Process]:
        """The processes of this cluster that are not slurmctld, slurmd or slurmctld's helper: the steps
        and the jobs."""
        daemons: set[int] = set()
        for name in ("slurmctld", "slurmd"):
            pid = self.pid(name)
            if pid is not None:
                daemons.add(pid)
                with contextlib.suppress(psutil.NoSuchProcess):
                    children = psutil.Process(pid).children()
                    daemons.update(child.pid for child in children if child.name() != "slurmstepd")
        return [proc for proc in self.processes() if proc.pid not in daemons]

    def stop(self) -> None:
        """Cancel any job left, stop slurmd and slurmctld by their pid files and wait until every process
        of the cluster is gone; release munged (stopped when this process started it)."""
        try:
            if self.controller_alive() and self.pid("slurmd") is not None:
                with contextlib.suppress(SlurmError, TimedOut, subprocess.TimeoutExpired):
                    self.cancel_all()
            self.wait_jobs_gone()
            self.stop_daemons()
            for proc in self.processes():  # a job that outlived its step
                stop_pid(None, proc.pid, timeout=5)
        finally:
            if self.munge_held:
                self.munge_held = False
                MUNGE.release()

    def wait_jobs_gone(self, timeout: float = 15.0) -> None:
        """Wait for the steps and the jobs to end by themselves; stop the rest by PID after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.job_processes()
            if not left:
                return
            if time.monotonic() > deadline:
                for proc in left:
                    stop_pid(None, proc.pid, timeout=5)
                return
            time.sleep(0.2)


@contextlib.contextmanager
def cluster(root: Path, **options: Any) -> Iterator[SlurmCluster]:
    """A started cluster in `root`, stopped at the end (for the bench and one-off scripts)."""
    instance = SlurmCluster(root, **options).start()
    try:
        yield instance
    finally:
        instance.stop()
