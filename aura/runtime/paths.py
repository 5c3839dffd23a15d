"""Where a project's files and sockets live.

The project root is the folder where `aura up` ran; everything Aura writes goes under
`<root>/.aura/` (the data folder; `--data-dir` or AURA_DATA_DIR put it elsewhere, so one folder
can hold several runs), except the sockets, which live in a short per-run runtime folder (Unix
socket paths must stay under ~107 bytes wherever the project is).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .fsutil import make_dirs

DAEMONS = ("supervisor", "watchdog", "brain")
DATA_DIRNAME = ".aura"


def project_id(root: Path) -> str:
    """A short stable id of a project folder, used for the runtime folder and service names."""
    return hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:12]


def runtime_base() -> Path:
    """`$XDG_RUNTIME_DIR/aura` when usable (not cleaned like /tmp), else a per-user temp folder."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK):
        return Path(xdg) / "aura"
    return Path(tempfile.gettempdir()) / f"aura-{os.getuid()}"


def find_project_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above `start` that holds a `.aura/` folder."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / DATA_DIRNAME).is_dir():
            return folder
    return None


@dataclass(frozen=True)
class ProjectPaths:
    """Every path of one project, derived from its root (and the data dir, if overridden)."""

    root: Path
    data: Path

    @classmethod
    def for_root(cls, root: Path, data_dir: Path | None = None) -> ProjectPaths:
        """`data_dir`, else $AURA_DATA_DIR (relative to the root), else `<root>/.aura`."""
        root = Path(root).resolve()
        data = data_dir or os.environ.get("AURA_DATA_DIR") or None
        return cls(root=root, data=(root / data).resolve() if data else root / DATA_DIRNAME)

    @property
    def default_data(self) -> bool:
        return self.data == self.root / DATA_DIRNAME

    # -- folders -----------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.data / "state"

    @property
    def memory_dir(self) -> Path:
        return self.data / "memory"

    @property
    def logs_dir(self) -> Path:
        return self.data / "logs"

    @property
    def run_dir(self) -> Path:
        return self.data / "run"

    @property
    def events_dir(self) -> Path:
        return self.data / "events"

    @property
    def workers_dir(self) -> Path:
        return self.run_dir / "workers"

    @property
    def watchdog_dir(self) -> Path:
        return self.run_dir / "watchdog"

    @property
    def workspace_dir(self) -> Path:
        return self.data / "workspace" / "tasks"

    def task_dir(self, task_id: str) -> Path:
        return self.workspace_dir / safe_name(task_id)

    @property
    def git_dir(self) -> Path:
        """Git mode's worktrees: `integration/` (the run's branch) and `attempts/<worker id>/`."""
        return self.data / "git"

    @property
    def integration_dir(self) -> Path:
        return self.git_dir / "integration"

    @property
    def attempts_dir(self) -> Path:
        return self.git_dir / "attempts"

    def attempt_dir(self, worker_id: str) -> Path:
        return self.attempts_dir / safe_name(worker_id)

    @property
    def outputs_dir(self) -> Path:
        """Files tasks named as evidence that git ignores, kept at their path in the repository."""
        return self.data / "outputs"

    def worker_dir(self, worker_id: str) -> Path:
        return self.workers_dir / safe_name(worker_id)

    # -- per-daemon files ------------------------------------------------------------
    def pidfile(self, daemon: str) -> Path:
        return self.run_dir / f"{daemon}.json"

    def lockfile(self, daemon: str) -> Path:
        return self.run_dir / f"{daemon}.lock"

    def logfile(self, daemon: str) -> Path:
        return self.logs_dir / f"{daemon}.log"

    def stdio_file(self, daemon: str) -> Path:
        return self.logs_dir / f"{daemon}.out"

    def journal(self, daemon: str) -> Path:
        return self.events_dir / f"{daemon}.jsonl"

    @property
    def launch_file(self) -> Path:
        return self.run_dir / "launch.json"

    # -- sockets -----------------------------------------------------------------------
    @property
    def runtime_dir(self) -> Path:
        """Keyed by the root (by the data folder when that was moved, so runs can sit side by side)."""
        return runtime_base() / project_id(self.root if self.default_data else self.data)

    def endpoint(self, daemon: str) -> str:
        return f"ipc://{self.runtime_dir / (daemon + '.sock')}"

    def pub_endpoint(self, daemon: str) -> str:
        return f"ipc://{self.runtime_dir / (daemon + '.pub')}"

    def ensure(self) -> None:
        """Create the folders, private to the user (mode 0700): the data folder holds prompts,
        decisions, worker output and logs; the runtime folder the sockets."""
        make_private(self.data)
        for folder in (
            self.state_dir,
            self.memory_dir,
            self.logs_dir,
            self.run_dir,
            self.events_dir,
            self.workers_dir,
            self.watchdog_dir,
            self.workspace_dir.parent,
            self.workspace_dir,
        ):
            make_private(folder)
        ensure_private_dir(self.runtime_dir)


PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private(folder: Path) -> None:
    """Create `folder` (and missing folders above it) with mode 0700, and take group and other access
    away from one that exists."""
    make_dirs(folder, PRIVATE_DIR)
    if folder.stat().st_mode & 0o077:
        os.chmod(folder, PRIVATE_DIR)


def ensure_private_dir(folder: Path) -> None:
    """Create `folder` (and a private parent) with mode 0700; refuse one owned by someone else."""
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)
    for f in (folder.parent, folder):
        st = f.stat()
        if st.st_uid != os.getuid():
            raise PermissionError(f"runtime folder {f} belongs to uid {st.st_uid}, not to you")
        if st.st_mode & 0o077:
            os.chmod(f, 0o700)


def remove_runtime_dir_if_empty(paths: ProjectPaths) -> None:
    """The last daemon out (or `aura down`) removes the run's socket folder; one that still
    holds a socket stays (rmdir fails on a folder that is not empty)."""
    try:
        paths.runtime_dir.rmdir()
    except OSError:
        pass


def safe_name(name: str) -> str:
    """A task or worker id as a file name: keep [A-Za-z0-9._-], replace the rest."""
    cleaned = "".join(c if (c.isalnum() or c in "._-") else "_" for c in name)
    cleaned = cleaned.lstrip(".") or "_"
    return cleaned[:120]
