"""Crash-safe file primitives shared by every daemon.

Each state file has exactly one writer; writers replace files atomically so that a
kill -9 at any instant leaves either the old or the new content, never half of one.
Files are private to the user by default (0600, folders made for them 0700): the data folder
holds prompts, decisions and worker output. A caller writing a file meant for others (a project
file, a service unit) passes its mode.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

PRIVATE = 0o600
CHUNK_BUFFER = 1 << 16  # a file written in pieces reaches write(2) in runs this long


def make_parent(path: Path, mode: int) -> None:
    """The folder of a file about to be written, and any missing folder above it: private (0700)
    when the file is private."""
    make_dirs(path.parent, 0o700 if not mode & 0o077 else 0o777)


def make_dirs(folder: Path, mode: int) -> None:
    """`mkdir -p` that gives every folder it creates `mode` (pathlib gives it only to the last)."""
    if os.path.isdir(folder):
        return
    try:
        os.mkdir(folder, mode)
    except FileNotFoundError:
        make_dirs(folder.parent, mode)
        folder.mkdir(mode=mode, exist_ok=True)
    except FileExistsError:  # made meanwhile, or a file: raised as before where it is not a folder
        folder.mkdir(mode=mode, exist_ok=True)


def atomic_write_bytes(path: Path, data: bytes, mode: int = PRIVATE, sync: bool = True) -> None:
    """Write to a temp file in the same folder, fsync, rename over `path`. With `sync=False` the
    fsyncs are the caller's (aura.runtime.flusher does them off the caller's thread): the rename
    alone already makes the new content whole and visible to other processes, and survives a
    kill -9 of the writer; only a crash of the machine needs the fsyncs."""
    atomic_write_chunks(path, (data,), mode, sync)


def atomic_write_chunks(path: Path, chunks: Iterable[bytes], mode: int = PRIVATE, sync: bool = True) -> int:
    """`atomic_write_bytes` for content made piece by piece, so it is never whole in memory; the
    bytes written."""
    path = Path(path)
    make_parent(path, mode)
    fd, tmp = _temp_beside(path)
    size = 0
    try:
        with os.fdopen(fd, "wb", buffering=CHUNK_BUFFER) as fh:
            for chunk in chunks:
                size += fh.write(chunk)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if sync:
        fsync_dir(path.parent)
    return size


_serial = itertools.count()


def _temp_beside(path: Path) -> tuple[int, str]:
    """A new temp file in the target's folder (same file system, so the rename is atomic).
    Not `tempfile`: the shim imports this module on every worker start and that import is slow."""
    while True:
        tmp = str(path.parent / f".{path.name}.{os.getpid()}.{next(_serial)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), tmp
        except FileExistsError:
            continue


def fsync_path(path: Path | str) -> bool:
    """fsync a file or a folder by its path (best effort: not every platform allows it on a folder);
    False when it could not be opened (it was removed meanwhile)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    return True


def fsync_dir(folder: Path) -> None:
    """Make the rename itself durable."""
    fsync_path(folder)


def sync_file(path: Path) -> None:
    """fsync a file written with `sync=False`, and its folder."""
    if fsync_path(path):
        fsync_dir(Path(path).parent)


def disk_full(exc: BaseException) -> bool:
    """An error that says the file system (or the user's quota on it) has no room left."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def datasync(fd: int) -> None:
    """fdatasync where the platform has it (Linux), else fsync (macOS has no fdatasync)."""
    getattr(os, "fdatasync", os.fsync)(fd)


def rewrite_in_place(path: Path, data: bytes) -> None:
    """Overwrite a small existing file inside the blocks it already has: where `atomic_write_bytes`
    cannot create its temp file (a full disk), and for the exit record (supervisor/exitrecord.py).
    Refused (ENOSPC) unless `data` fits in the file's current size; the rest is padded with spaces
    (valid trailing JSON whitespace), so one pwrite, no allocation and no change of size, which
    makes fdatasync enough to make it durable. Not atomic: a reader that races it sees unparseable
    JSON, never a valid wrong value."""
    fd = os.open(path, os.O_WRONLY)
    try:
        size = os.fstat(fd).st_size
        if len(data) > size:
            raise OSError(errno.ENOSPC, f"no room to rewrite {path} in place ({len(data)} > {size} bytes)")
        os.pwrite(fd, data + b" " * (size - len(data)), 0)
        datasync(fd)
    finally:
        os.close(fd)


def write_json_even_if_full(path: Path, obj: Any, mode: int = PRIVATE) -> None:
    """`atomic_write_json`, falling back to a compact in-place rewrite of the existing file when the
    disk is full (for the few small records a stop must update: pid files, launch.json)."""
    try:
        atomic_write_json(path, obj, mode)
    except OSError as exc:
        if not disk_full(exc) or not os.path.exists(path):
            raise
        rewrite_in_place(path, json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode("utf-8"))


def atomic_write_text(path: Path, text: str, mode: int = PRIVATE, sync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode, sync)


def atomic_write_json(path: Path, obj: Any, mode: int = PRIVATE, sync: bool = True) -> None:
    atomic_write_bytes(path, json_bytes(obj), mode, sync)


def json_bytes(obj: Any, compact: bool = False) -> bytes:
    """A state file's content, as every writer here lays it out: one key a line, or `compact` on
    one line for the records written on a hot path (json's C encoder does not indent)."""
    if compact:
        return json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode("utf-8")
    return json.dumps(obj, indent=1, sort_keys=True, default=str).encode("utf-8")


RACY_NS = 1_000_000_000  # a timestamp this young may hide a change made in the same clock tick


def stat_key(st: os.stat_result) -> tuple[int, int, int]:
    """What tells a file or folder changed: its mtime, inode and size."""
    return st.st_mtime_ns, st.st_ino, st.st_size


class FolderWatch:
    """Whether a folder must be listed again: it changed since the last listing, or that listing
    was taken while its mtime was too young to reveal a change made in the same clock tick (such
    a listing is never trusted later, when the mtime has aged but may still hide that change)."""

    def __init__(self, folder: str | Path):
        self.folder = str(folder)
        self._key: tuple[int, int, int] | None = None

    def changed(self) -> bool | None:
        """True: list it now; False: the last listing still holds; None: there is no folder."""
        try:
            st = os.stat(self.folder)
        except OSError:
            self._key = None
            return None
        key = stat_key(st)
        if key == self._key:
            return False
        self._key = key if time.time_ns() - st.st_mtime_ns >= RACY_NS else None
        return True

    def forget(self) -> None:
        """The next `changed` says True: what the caller holds was not listed from this folder."""
        self._key = None


def read_json(path: str | Path, default: Any = None) -> Any:
    """Read a JSON file written by another process; a missing or unreadable file gives `default`.
    Plain descriptor reads: records are read on every worker's exit, and a buffered file object
    costs twice the system calls."""
    try:
        return json.loads(unpadded(read_bytes(path)))
    except (ValueError, OSError):
        return default


def unpadded(data: bytes) -> bytes:
    """A record rewritten in place (`rewrite_in_place`) without its padding of spaces: json would
    decode all of it to text and match it with a regular expression, where finding the object's
    or the list's end from the back is a memrchr each. All spaces give b"" (no JSON)."""
    if not data.endswith(b" "):
        return data
    return data[: max(data.rfind(b"}"), data.rfind(b"]")) + 1]


def read_bytes(path: str | Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def append_line(path: Path, line: str) -> None:
    """Append one line with a single write(2) on an O_APPEND descriptor.

    A crash can only leave a truncated last line, which readers skip.
    """
    make_parent(path, PRIVATE)
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def open_private(path: Path, append: bool = True) -> int:
    """A descriptor for writing a log or an output file only the user may read (0600): created so,
    and an existing file made so."""
    make_parent(path, PRIVATE)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, PRIVATE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, PRIVATE)
    except OSError:
        pass
    return fd


def json_lines(lines: Iterable[bytes]) -> Iterator[Any]:
    """The JSON value of each line; a torn or corrupt line is skipped."""
    for raw in lines:
        try:
            yield json.loads(raw)
        except ValueError:
            continue


def read_jsonl(path: Path) -> list[dict]:
    """Every valid JSON object line of a journal; a torn or corrupt line is skipped."""
    try:
        with open(path, "rb") as fh:
            return [obj for obj in json_lines(fh) if isinstance(obj, dict)]
    except FileNotFoundError:
        return []


def tree_size(path: Path, on_disk: bool = False) -> int:
    """Bytes under `path` (links counted as links, never followed). `on_disk`: the blocks the files
    take rather than their lengths (many small files take far more than they hold)."""

    def size(st: os.stat_result) -> int:
        return st.st_blocks * 512 if on_disk else st.st_size

    total = 0
    try:
        total += size(path.lstat())
    except OSError:
        return 0
    if path.is_symlink() or not path.is_dir():
        return total
    for folder, dirs, files in os.walk(path, followlinks=False):
        for name in dirs + files:
            try:
                total += size(os.lstat(os.path.join(folder, name)))
            except OSError:
                pass
    return total
