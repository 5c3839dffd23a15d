"""The data folder is private: after a real run (daemons, workers, a worker's output, a watchdog kill, a
crash and restart of a daemon) every folder under `.aura/` is 0700 and every file 0600, whoever wrote it
(brain, supervisor, watchdog, shim, the CLI). Prompts, decisions, worker output and logs live there.
Files a worker writes into the project are the user's and keep their usual mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.support.harness import Project, wait_for

HOG = "import time; b = bytearray(300 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); time.sleep(120)"


def modes_under(folder: Path) -> dict[str, list[str]]:
    """Folders not 0700 and files not 0600 under `folder` (sockets and links are not files here)."""
    wrong: dict[str, list[str]] = {"folders": [], "files": []}
    for path in [folder, *folder.rglob("*")]:
        st = path.lstat()
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode) and mode != 0o700:
            wrong["folders"].append(f"{oct(mode)} {path}")
        elif stat.S_ISREG(st.st_mode) and mode != 0o600:
            wrong["files"].append(f"{oct(mode)} {path}")
    return wrong


def test_every_file_aura_writes_in_the_data_folder_is_private(project: Project) -> None:
    project.env["AURA_WORKER_MAX_SYSTEM_MEMORY_GB"] = "0.2"
    old_umask = os.umask(0o022)  # the usual umask, inherited by every process of the run: 0644 files by default
    project.write_task(
        "# Private\n\n"
        "- [ ] talk `echo to stdout; echo to stderr >&2; mkdir -p out && echo hi > out/a.txt` "
        "creates `out/a.txt`\n"
        f'- [ ] hog `python3 -c "{HOG}"`\n'
        "Accept: `test -s out/a.txt`\n"
    )
    try:
        project.up()
    finally:
        os.umask(old_umask)
    wait_for(
        lambda: ((project.status().get("brain") or {}).get("run") or {}).get("finished"), 90, what="the run to end"
    )
    project.kill9("watchdog")  # a restarted daemon appends to its log and journal
    wait_for(lambda: project.daemon_pid("watchdog"), 20, what="the watchdog to be restarted")
    project.aura("history")
    project.aura("down")
    data = project.paths.data
    assert (data / "run" / "watchdog" / "kills").is_dir() and list(data.rglob("output.txt"))
    assert modes_under(data) == {"folders": [], "files": []}
    assert stat.S_IMODE((project.root / "out" / "a.txt").stat().st_mode) == 0o644  # the project's own file
