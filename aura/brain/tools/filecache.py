"""Reading project files for the model: a short-lived cache, and excerpts that fit its budget."""

from __future__ import annotations

import time
from pathlib import Path

MAX_READ_CHARS = 50000  # the most a read tool returns in one call


class FileCache:
    """A hit needs an unchanged mtime and size and an age under the TTL, so the model rereading a file
    costs no disk reads while it is unchanged. A file larger than READ_LIMIT is read in part: its head,
    its tail, or both (never cached)."""

    READ_LIMIT = 1 << 20

    def __init__(self, ttl: float, enabled: bool):
        self.ttl, self.enabled = ttl, enabled
        self.entries: dict[str, tuple[float, tuple, str]] = {}

    def read(self, path: Path, mode: str = "auto") -> str:
        st = path.stat()
        if st.st_size > self.READ_LIMIT:
            return self._read_part(path, st.st_size, mode)
        key, sig = str(path), (st.st_mtime_ns, st.st_size)
        hit = self.entries.get(key)
        if self.enabled and hit and hit[1] == sig and time.monotonic() - hit[0] < self.ttl:
            return hit[2]
        text = path.read_bytes().decode("utf-8", "replace")
        if self.enabled:
            self.entries[key] = (time.monotonic(), sig, text)
        return text

    def _read_part(self, path: Path, size: int, mode: str) -> str:
        half = self.READ_LIMIT // 2
        with open(path, "rb") as fh:
            head = fh.read(self.READ_LIMIT if mode in ("head", "full") else (0 if mode == "tail" else half))
            fh.seek(size - (self.READ_LIMIT if mode == "tail" else half))
            tail = b"" if mode in ("head", "full") else fh.read()
        gap = f"\n… [{size - len(head) - len(tail)} bytes not read] …\n" if head and tail else ""
        return head.decode("utf-8", "replace") + gap + tail.decode("utf-8", "replace")

    def forget(self, path: Path) -> None:
        self.entries.pop(str(path), None)


def excerpt(text: str, max_chars: int, mode: str) -> str:
    """At most `max_chars` of `text`: its head, its tail, or both (auto), saying what was left out."""
    if len(text) <= max_chars:
        return text
    if mode == "head" or mode == "full":
        return text[:max_chars] + f"\n… [{len(text) - max_chars} more characters]"
    if mode == "tail":
        return f"[{len(text) - max_chars} earlier characters] …\n" + text[-max_chars:]
    head = int(max_chars * 0.6)
    return text[:head] + f"\n… [{len(text) - max_chars} characters omitted] …\n" + text[-(max_chars - head) :]
