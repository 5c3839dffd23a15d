"""Commands that start or stop a run finish their job whatever happens to their terminal.

`aura down | head -1` closes the pipe after one line, a closed SSH session hangs up the
terminal, `timeout aura up` sends SIGTERM. Output to a reader that is gone is dropped (the
job goes on), and the stop signals are recorded so the command can stop the run gracefully
instead of dying half-way and leaving daemons and workers behind.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _DroppingWriter(io.RawIOBase):
    """Writes to a file descriptor until the reader goes away (EPIPE, or EIO on a hung-up
    terminal); from then on it accepts and drops everything."""

    def __init__(self, fd: int):
        super().__init__()
        self.fd = fd
        self.vanished = False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        size = len(view)
        while view and not self.vanished:
            try:
                view = view[os.write(self.fd, view) :]
            except InterruptedError:
                continue
            except OSError:
                self.vanished = True
        return size


class Output:
    """The streams in use while a command changes state; `vanished` once the reader is gone."""

    def __init__(self) -> None:
        self.writers: list[_DroppingWriter] = []

    @property
    def vanished(self) -> bool:
        return any(w.vanished for w in self.writers)


def _tolerant(stream: Any, out: Output) -> Any:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream  # not a real file (a test's capture): leave it as it is
    writer = _DroppingWriter(fd)
    out.writers.append(writer)
    buffered = io.BufferedWriter(writer)  # type: ignore[type-var]
    return io.TextIOWrapper(
        buffered,
        encoding=getattr(stream, "encoding", None) or "utf-8",
        errors=getattr(stream, "errors", None) or "strict",
        line_buffering=True,
    )


@contextmanager
def steady_output() -> Iterator[Output]:
    """Swap stdout and stderr for streams that drop output once its reader has gone."""
    out = Output()
    old: tuple[Any, Any] = (sys.stdout, sys.stderr)
    for stream in old:
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    sys.stdout, sys.stderr = (_tolerant(s, out) for s in old)
    try:
        yield out
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        sys.stdout, sys.stderr = old
        for writer in out.writers:
            if writer.vanished:  # the interpreter's last flush of the real stream must find nowhere to fail
                _to_devnull(writer.fd)


def _to_devnull(fd: int) -> None:
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except OSError:
        pass


class StopSignals:
    """Records SIGINT, SIGTERM and SIGHUP instead of dying of them, for a command that must
    stop the run itself before it exits (with the conventional code, 128 + the signal)."""

    def __init__(self, hangup: bool = True):
        """`hangup=False`: SIGHUP is ignored, for `aura up -d`, whose run outlives the terminal."""
        self.hangup = hangup
        self.received: int | None = None
        self._old: dict[int, object] = {}

    def __enter__(self) -> StopSignals:  # noqa: PYI034 - Python 3.10 has no typing.Self
        for sig in STOP_SIGNALS:
            ignore = sig == signal.SIGHUP and not self.hangup
            self._old[sig] = signal.signal(sig, signal.SIG_IGN if ignore else self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""

    @property
    def exit_code(self) -> int:
        return 128 + (self.received or 0)
