"""Long-term memory (`MEMORY.md`), the short-term `session.md`, and reflection reviews.

The newest entries go into every context, bounded, so a lesson learnt on day one still shapes
day three. The file
itself is bounded too: beyond MAX_FILE_CHARS the oldest entries move to `MEMORY.archive.md`.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from aura.runtime.fsutil import atomic_write_text, open_private

MEM_TYPES = ("fact", "lesson", "pattern", "decision")
HEADER = "# Aura long-term memory\n\nNewest entries last in this file; the model sees them newest first.\n"
MAX_FILE_CHARS = 20000
SESSION_MAX_CHARS = 2000
_ENTRY = re.compile(r"^## \[", re.M)


class Memory:
    def __init__(self, memory_dir: Path):
        self.dir = memory_dir
        self.path = memory_dir / "MEMORY.md"
        self.archive = memory_dir / "MEMORY.archive.md"
        self.session = memory_dir / "session.md"
        self.reviews = memory_dir / "reviews"

    # -- long-term ---------------------------------------------------------------------------------
    def entries(self) -> list[str]:
        """Entries oldest first, each starting with `## [Type] date`."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        starts = [m.start() for m in _ENTRY.finditer(text)]
        return [text[a:b].strip() for a, b in zip(starts, starts[1:] + [len(text)], strict=True)]

    def append(self, mem_type: str, content: str) -> str:
        """Add one entry; returns it. Old entries beyond the size bound go to the archive."""
        if mem_type not in MEM_TYPES:
            raise ValueError(f"mem_type must be one of {', '.join(MEM_TYPES)}")
        entry = f"## [{mem_type.capitalize()}] {time.strftime('%Y-%m-%d %H:%M')}\n{content.strip()}"
        entries = self.entries() + [entry]
        moved: list[str] = []
        while len(entries) > 1 and sum(len(e) + 2 for e in entries) > MAX_FILE_CHARS:
            moved.append(entries.pop(0))
        if moved:
            with os.fdopen(open_private(self.archive), "a", encoding="utf-8") as fh:
                fh.write("\n\n".join(moved) + "\n\n")
        atomic_write_text(self.path, HEADER + "\n" + "\n\n".join(entries) + "\n")
        return entry

    def for_context(self, max_chars: int) -> str:
        """Newest entries first, whole entries only, within `max_chars`."""
        out: list[str] = []
        used = 0
        for entry in reversed(self.entries()):
            if used + len(entry) > max_chars:
                if not out:
                    out.append(entry[:max_chars] + " …")
                break
            out.append(entry)
            used += len(entry) + 2
        return "\n\n".join(out)

    # -- short-term ----------------------------------------------------------------------------------
    def write_session(self, cycle: int, tools: list[str], outcome: str, safe_mode: bool) -> None:
        lines = [
            f"# Session (cycle {cycle}, {time.strftime('%Y-%m-%d %H:%M:%S')})",
            "",
            f"- tools called: {', '.join(tools) or 'none'}",
            f"- outcome: {outcome}",
            f"- safe mode: {'on' if safe_mode else 'off'}",
        ]
        atomic_write_text(self.session, "\n".join(lines)[:SESSION_MAX_CHARS] + "\n")

    def session_text(self) -> str:
        try:
            return self.session.read_text(encoding="utf-8", errors="replace")[:SESSION_MAX_CHARS]
        except FileNotFoundError:
            return ""

    # -- reviews -------------------------------------------------------------------------------------
    def save_review(self, text: str) -> Path:
        path = self.reviews / f"review_{time.strftime('%Y%m%d_%H%M%S')}.md"
        n = 1
        while path.exists():
            n += 1
            path = self.reviews / f"review_{time.strftime('%Y%m%d_%H%M%S')}_{n}.md"
        atomic_write_text(path, text.rstrip() + "\n")
        return path


def recommendations(review: str, limit: int = 5) -> list[str]:
    """Bullets under headings that mention recommend / suggest / improve / next."""
    out: list[str] = []
    active = False
    for line in review.splitlines():
        if line.lstrip().startswith("#"):
            active = bool(re.search(r"recommend|suggest|improve|next", line, re.I))
            continue
        m = re.match(r"\s*(?:[-*+]|\d+\.)\s+(.*)", line)
        if active and m:
            out.append(m.group(1).strip())
    return out[:limit]
