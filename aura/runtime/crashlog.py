"""An unexpected error ends a command or a daemon start with one line in Aura's words; the
traceback goes to a private file that the line names, never to the user's terminal."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path


def cli_log_path() -> Path:
    """Where `aura` commands keep tracebacks: beside the global config (AURA_HOME, ~/.aura)."""
    return Path(os.environ.get("AURA_HOME") or Path.home() / ".aura") / "logs" / "cli-errors.log"


def crash_line(exc: BaseException, log: Path) -> str:
    """Save the traceback of `exc` to `log` (0600; the temp folder when that cannot be written)
    and return the one line to show instead of it."""
    summary = f"{type(exc).__name__}: {exc}".splitlines()[0][:300] if str(exc) else type(exc).__name__
    record = f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()} {Path(sys.argv[0]).name}\n" + "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__)
    )
    for path in (log, Path(tempfile.gettempdir()) / f"aura-{os.getuid()}-{log.name}"):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(record)
        except OSError:
            continue
        return f"internal error: {summary}; details in {path}"
    return f"internal error: {summary} (the details could not be saved)"


def report_and_exit(exc: BaseException, code: int = 70) -> None:
    """For the `aura` entry point: print the one line on stderr and exit with `code`."""
    print(f"aura: {crash_line(exc, cli_log_path())}", file=sys.stderr)
    sys.exit(code)
