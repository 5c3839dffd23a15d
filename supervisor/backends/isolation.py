"""Optional isolation of a worker: bubblewrap on Linux, or a Docker container.

Why: agent CLIs run with their permission checks off. A sandboxed worker can write only its task
workspace, the paths its task names (spawn `mounts`) and AURA_WORKER_MOUNTS; Aura's data folder
(its state, the task file's history) is hidden, and so are the usual secret folders of $HOME. A
container is measured through its own cgroup, not through the docker client that started it.

AURA_WORKER_ISOLATION = none | bwrap | docker (AURA_WORKERS_IN_DOCKER=1 also means docker). A
spawn request may choose per worker with `isolation`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from aura.runtime.config import Config
from aura.runtime.limits import LIMIT_KEYS

from .base import BackendError, WorkerCommand

MODES = ("none", "bwrap", "docker")
DOCKERRUN = str(Path(__file__).resolve().with_name("dockerrun.py"))
# Folders under $HOME that hold credentials; hidden from a bubblewrap worker (AURA_BWRAP_HIDE adds more).
SECRET_HOME_DIRS = (
    ".aura",
    ".ssh",
    ".aws",
    ".gnupg",
    ".docker",
    ".kube",
    ".config/gcloud",
    ".azure",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
)
TASK_ENV = (
    "AURA_TASK_ID",
    "AURA_WORKER_ID",
    "AURA_TASK_DIR",
    "AURA_PROJECT_ROOT",
    "AURA_WORKER_FORBID_OFFLOAD",
    "CUDA_VISIBLE_DEVICES",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
)


def isolation_mode(spec: dict, cfg: Config) -> str:
    mode = (spec.get("isolation") or cfg.text("AURA_WORKER_ISOLATION") or "none").strip().lower()
    if mode == "none" and cfg.flag("AURA_WORKERS_IN_DOCKER"):
        mode = "docker"
    if mode not in MODES:
        raise BackendError(f"isolation {mode!r} is not one of {', '.join(MODES)}")
    return mode


def apply_isolation(plan: WorkerCommand, spec: dict, cfg: Config) -> WorkerCommand:
    """Wrap a backend's plan in the chosen sandbox (or return it unchanged)."""
    mode = isolation_mode(spec, cfg)
    if mode == "bwrap":
        return bwrap_plan(plan, spec, cfg)
    if mode == "docker":
        return docker_plan(plan, spec, cfg)
    return plan


def writable_paths(plan: WorkerCommand, spec: dict, cfg: Config) -> list[str]:
    """The task workspace, the paths the task names, and AURA_WORKER_MOUNTS. A missing folder is
    created inside the project (a task may name an output folder not made yet), refused elsewhere."""
    wanted = [
        spec["task_dir"],
        *(spec.get("mounts") or []),
        *[p.strip() for p in cfg.text("AURA_WORKER_MOUNTS").split(",") if p.strip()],
    ]
    root = os.path.realpath(spec.get("project_root") or spec["task_dir"])
    out: list[str] = []
    for raw in wanted:
        path = os.path.realpath(os.path.expanduser(str(raw)))
        if not os.path.exists(path):
            if path != root and not path.startswith(root + os.sep):
                raise BackendError(f"a sandboxed worker cannot mount {path}: it does not exist")
            os.makedirs(path, exist_ok=True)
        if path not in out:
            out.append(path)
    return out


# -- bubblewrap -----------------------------------------------------------------------------------------


def resolve_bwrap(cfg: Config) -> str:
    exe = shutil.which(cfg.text("AURA_BWRAP_BIN"))
    if not exe:
        raise BackendError(
            f"AURA_WORKER_ISOLATION=bwrap but {cfg.text('AURA_BWRAP_BIN')!r} is not installed: "
            "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) or set AURA_BWRAP_BIN"
        )
    return exe


def _home_binds(plan: WorkerCommand, home: str) -> list[str]:
    """What the CLI must write under $HOME stays writable; folders are created, files only if present."""
    args: list[str] = []
    for rel in plan.home_writable:
        path = os.path.join(home, rel)
        if not os.path.exists(path) and not os.path.splitext(rel)[1]:
            os.makedirs(path, exist_ok=True)
        if os.path.exists(path):
            args += ["--bind", path, path]
    return args


def _hidden(spec: dict, cfg: Config, home: str) -> list[str]:
    extra = [p.strip() for p in cfg.text("AURA_BWRAP_HIDE").split(",") if p.strip()]
    paths = [spec.get("data_dir") or ""] + [os.path.join(home, d) for d in SECRET_HOME_DIRS] + extra
    args: list[str] = []
    for path in paths:
        if path and os.path.isdir(path):
            args += ["--tmpfs", path]
        elif path and os.path.isfile(path):
            args += ["--ro-bind", "/dev/null", path]
    return args


def _under_tmp(paths: list[str]) -> list[str]:
    """The private /tmp would hide a project that lives under /tmp: show it again, read-only."""
    shown: list[str] = []
    for path in paths:
        real = os.path.realpath(path) if path else ""
        inside_shown = any(real == s or real.startswith(s + os.sep) for s in shown)
        if real.startswith("/tmp/") and os.path.isdir(real) and not inside_shown:
            shown.append(real)
    return [arg for real in shown for arg in ("--ro-bind", real, real)]


def bwrap_argv(plan: WorkerCommand, spec: dict, cfg: Config, home: str) -> list[str]:
    """The whole file system read-only, /tmp private, Aura's data and $HOME's secrets hidden, then the
    writable paths bound back. Same process group as the shim's worker, so a kill reaches it all."""
    args = [
        resolve_bwrap(cfg),
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args += ["--cap-drop", "ALL"]  # root in the sandbox must not remount its way out
    if not cfg.flag("AURA_BWRAP_SHARE_NET"):
        args.append("--unshare-net")
    args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    args += _under_tmp([spec.get("project_root") or "", plan.cwd])
    args += _hidden(spec, cfg, home)
    for path in writable_paths(plan, spec, cfg):
        args += ["--bind", path, path]
    args += _home_binds(plan, home)
    return [*args, "--chdir", plan.cwd, "--", *plan.argv]


def bwrap_plan(plan: WorkerCommand, spec: dict, cfg: Config) -> WorkerCommand:
    home = (spec.get("env") or {}).get("HOME") or os.environ.get("HOME") or "/"
    record = {**plan.record, "isolation": "bwrap", "writable": writable_paths(plan, spec, cfg)}
    return replace(plan, argv=bwrap_argv(plan, spec, cfg, home), record=record)


# -- docker ---------------------------------------------------------------------------------------------


def _mem_total_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def docker_resource_args(cfg: Config) -> list[str]:
    """--cpus and --memory from the per-worker limits, --gpus, then the extra args."""
    args: list[str] = []
    cpu_pct = cfg.number("AURA_WORKER_MAX_CPU_PERCENT")
    if cpu_pct > 0:
        args += ["--cpus", f"{max(0.01, (os.cpu_count() or 1) * cpu_pct / 100):.2f}"]
    mem_pct, total = cfg.number("AURA_WORKER_MAX_SYSTEM_MEMORY_PERCENT"), _mem_total_bytes()
    mem_gb = cfg.number("AURA_WORKER_MAX_SYSTEM_MEMORY_GB")
    limits = [
        b
        for b in ((total * mem_pct / 100) if total and mem_pct > 0 else None, mem_gb * 1024**3 if mem_gb > 0 else None)
        if b
    ]
    if limits:
        args += ["--memory", f"{max(6, int(min(limits) / 1024**2))}m"]
    if cfg.text("AURA_DOCKER_GPUS"):
        args += ["--gpus", cfg.text("AURA_DOCKER_GPUS")]
    return args + shlex.split(cfg.text("AURA_DOCKER_EXTRA_ARGS"))


def docker_claude_env(cfg: Config) -> dict[str, str]:
    """The container's variables for claude (AURA_DOCKER_CLAUDE_*), non-empty only."""
    key, model = cfg.text("AURA_DOCKER_CLAUDE_API_KEY"), cfg.text("AURA_DOCKER_CLAUDE_MODEL")
    small = cfg.text("AURA_DOCKER_CLAUDE_SMALL_MODEL") or model
    env = {
        "ANTHROPIC_API_KEY": key,
        "ANTHROPIC_AUTH_TOKEN": key,
        "ANTHROPIC_BASE_URL": cfg.text("AURA_DOCKER_CLAUDE_BASE_URL"),
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": small,
        "ANTHROPIC_SMALL_FAST_MODEL": small,
        "CLAUDE_CODE_SUBAGENT_MODEL": cfg.text("AURA_DOCKER_CLAUDE_SUBAGENT_MODEL") or model,
    }
    return {k: v for k, v in env.items() if v}


def container_name(spec: dict) -> str:
    wid = "".join(c if c.isalnum() or c in "_.-" else "-" for c in str(spec.get("worker_id") or "worker"))
    return f"aura-{wid}"[:120]


def docker_run_args(plan: WorkerCommand, spec: dict, cfg: Config, env_names: list[str]) -> list[str]:
    """`docker run ...` arguments: only the writable paths are mounted, at the same paths as on the
    host (so task.md's paths hold inside); variables go by name only, values stay out of argv."""
    image = cfg.text("AURA_DOCKER_IMAGE")
    if not image:
        raise BackendError(
            "AURA_WORKERS_IN_DOCKER / isolation docker needs AURA_DOCKER_IMAGE (an image that holds the worker CLI)"
        )
    cidfile = Path(spec["task_dir"]) / "container.id"
    mounts = writable_paths(plan, spec, cfg)
    workdir = plan.cwd if any(plan.cwd == m or plan.cwd.startswith(m + os.sep) for m in mounts) else spec["task_dir"]
    args = ["run", "--rm", "--init", "--name", container_name(spec), "--cidfile", str(cidfile)]
    if hasattr(os, "getuid"):
        args += ["--user", f"{os.getuid()}:{os.getgid()}"]
    args += docker_resource_args(cfg)
    for path in mounts:
        args += ["-v", f"{path}:{path}"]
    args += ["-w", workdir]
    for name in sorted(set(env_names)):
        args += ["-e", name]
    exe = plan.exe
    inner = [os.path.basename(a) if exe and a == exe else a for a in plan.argv]
    return [*args, image, *inner]


def docker_plan(plan: WorkerCommand, spec: dict, cfg: Config) -> WorkerCommand:
    env = dict(plan.env)
    if plan.exe and os.path.basename(plan.exe) == "claude":
        env.update(docker_claude_env(cfg))
    names = [*env, *(spec.get("env") or {}), *TASK_ENV, *LIMIT_KEYS]
    run = docker_run_args(replace(plan, env=env), spec, cfg, names)
    cidfile = Path(spec["task_dir"]) / "container.id"
    cidfile.unlink(missing_ok=True)  # docker refuses to start when the cidfile exists
    grace = max(1.0, cfg.number("AURA_KILL_GRACE_SECONDS") * 0.6)
    argv = [
        sys.executable,
        "-I",
        DOCKERRUN,
        "--docker",
        cfg.text("AURA_DOCKER_BIN"),
        "--name",
        container_name(spec),
        "--grace",
        f"{grace:g}",
        "--",
        *run,
    ]
    container = {"name": container_name(spec), "cidfile": str(cidfile), "image": cfg.text("AURA_DOCKER_IMAGE")}
    record = {**plan.record, "isolation": "docker", "container": container}
    return replace(plan, argv=argv, env=env, record=record)


# -- measuring a container: its own cgroup, not the docker client ---------------------------------------

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _first_existing(paths: list[Path]) -> Path | None:
    return next((p for p in paths if p.is_dir()), None)


def container_cgroups(cid: str, root: Path = CGROUP_ROOT) -> dict[str, Path | None]:
    """The container's cgroup folders for CPU and memory: cgroup v2 (systemd or cgroupfs driver,
    `unified` on hybrid hosts), else v1 (`cpuacct` and `memory` hierarchies)."""
    names = [Path("system.slice") / f"docker-{cid}.scope", Path("docker") / cid]
    v2 = _first_existing([root / n for n in names] + [root / "unified" / n for n in names])
    if v2 is not None and (v2 / "cpu.stat").exists():
        return {"cpu": v2, "memory": v2}
    cpu = _first_existing([root / h / n for h in ("cpuacct", "cpu,cpuacct") for n in names])
    mem = _first_existing([root / "memory" / n for n in names])
    return {"cpu": cpu, "memory": mem}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None


def cgroup_cpu_seconds(folder: Path | None) -> float | None:
    if folder is None:
        return None
    stat = _read(folder / "cpu.stat")
    if stat:
        for line in stat.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec" and value.strip().isdigit():
                return int(value) / 1e6
    usage = _read(folder / "cpuacct.usage")
    return int(usage) / 1e9 if usage and usage.strip().isdigit() else None


def cgroup_memory_bytes(folder: Path | None) -> int | None:
    if folder is None:
        return None
    for name in ("memory.current", "memory.usage_in_bytes"):
        value = _read(folder / name)
        if value and value.strip().isdigit():
            return int(value)
    return None


def container_usage(cidfile: str, root: Path = CGROUP_ROOT) -> dict | None:
    """CPU seconds and memory of the container named in a `--cidfile`, or None before it started."""
    cid = (_read(Path(cidfile)) or "").strip()
    if not cid:
        return None
    groups = container_cgroups(cid, root)
    if groups["cpu"] is None and groups["memory"] is None:
        return None
    return {
        "container_id": cid,
        "cpu_seconds": cgroup_cpu_seconds(groups["cpu"]),
        "memory_bytes": cgroup_memory_bytes(groups["memory"]),
    }


def process_cgroups(pid: int, root: Path = CGROUP_ROOT) -> dict[str, Path | None]:
    """A process's own cgroup folders for CPU and memory (v2 line `0::/path`, or v1 lines)."""
    text = _read(Path(f"/proc/{pid}/cgroup")) or ""
    cpu = mem = None
    for line in text.splitlines():
        if line.count(":") < 2:
            continue
        _, controllers, rel = line.split(":", 2)
        rel = rel.lstrip("/")
        if controllers == "":
            unified = root / rel if (root / "cgroup.controllers").exists() else root / "unified" / rel
            cpu = cpu or (unified if (unified / "cpu.stat").exists() else None)
            mem = mem or (unified if (unified / "memory.current").exists() else None)
        elif "cpuacct" in controllers.split(","):
            cpu = root / controllers / rel
        elif "memory" in controllers.split(","):
            mem = root / controllers / rel
    return {"cpu": cpu, "memory": mem}
