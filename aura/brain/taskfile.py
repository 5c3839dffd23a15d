"""Reading the user's task file: the mission, and checklist items for the local planner.

The first `# Heading` is the mission. Each `- [ ] item` becomes a task. An item whose text
holds a command in backticks runs that command with the `shell` backend; further backticked
paths after "creates", "produces", "writes", "artifact(s)" or "->" are the artifacts the
command must leave behind, e.g.

    - [ ] Fetch the data `python fetch.py` creates `data/prices.csv`

"on slurm" (or "on local") outside the backticks says where the item's worker runs, over AURA_EXECUTOR:

    - [ ] Train `python train.py` on slurm creates `model.ckpt`
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

MAX_TASK_FILE_BYTES = 1 << 20

_CHECK = re.compile(r"^(?P<indent>\s*)[-*+]\s+\[(?P<mark>[ xX])\]\s+(?P<text>.+?)\s*$")
_TICKS = re.compile(r"`([^`]+)`")
_ARTIFACT_WORDS = re.compile(r"(?:\bcreates?\b|\bproduces?\b|\bwrites?\b|\bartifacts?\b:?|->|→)", re.I)
_EXECUTOR = re.compile(r"\bon (slurm|local)\b", re.I)
_ACCEPT = re.compile(r"^\s*(?:[-*+]\s+)?(?:accept(?:ance)?|check|verify):\s*`(?P<cmd>[^`]+)`", re.I)


class TaskFileError(ValueError):
    """The task file cannot be used; the message says why and what to do."""


@dataclass
class ChecklistItem:
    id: str
    text: str
    checked: bool
    line: int
    command: str | None = None
    artifacts: list[str] = field(default_factory=list)
    executor: str | None = None  # "slurm" or "local" when the item says where it runs


@dataclass
class TaskFile:
    path: Path
    text: str
    digest: str
    mission: str
    items: list[ChecklistItem]
    acceptance: list[str]


def read_task_file(path: Path) -> TaskFile:
    """Load and validate a task file; raise TaskFileError with a clear reason."""
    path = Path(path)
    if not path.exists():
        raise TaskFileError(f"task file {path} does not exist")
    if not path.is_file():
        raise TaskFileError(f"task file {path} is not a regular file")
    data = path.read_bytes()
    if len(data) > MAX_TASK_FILE_BYTES:
        raise TaskFileError(f"task file {path} is {len(data)} bytes; the limit is {MAX_TASK_FILE_BYTES}")
    if b"\x00" in data:
        raise TaskFileError(f"task file {path} looks binary (it contains NUL bytes); write the goal as Markdown")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TaskFileError(f"task file {path} is not UTF-8 text; write the goal as Markdown") from None
    if not text.strip():
        raise TaskFileError(f"task file {path} is empty; write the goal as a `# Heading` and what done means")
    return TaskFile(
        path=path,
        text=text,
        digest=hashlib.sha256(data).hexdigest(),
        mission=extract_mission(text),
        items=parse_items(text),
        acceptance=parse_acceptance(text),
    )


def extract_mission(text: str) -> str:
    """The first `# ` heading, else the first non-blank, non-comment lines."""
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("<!--")]
    return " ".join(lines)[:300]


def item_id(text: str, seen: set[str]) -> str:
    """A stable id from the item's text, so editing other lines does not renumber it."""
    norm = " ".join(text.lower().split())
    base = "T" + hashlib.sha1(norm.encode()).hexdigest()[:6]
    tid, n = base, 2
    while tid in seen:
        tid, n = f"{base}-{n}", n + 1
    seen.add(tid)
    return tid


def parse_items(text: str) -> list[ChecklistItem]:
    items: list[ChecklistItem] = []
    seen: set[str] = set()
    in_fence = False
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        m = None if in_fence else _CHECK.match(line)
        if not m:
            continue
        body = m.group("text")
        command, artifacts = _split_command(body)
        items.append(
            ChecklistItem(
                id=item_id(body, seen),
                text=body,
                checked=m.group("mark") != " ",
                line=lineno,
                command=command,
                artifacts=artifacts,
                executor=item_executor(body),
            )
        )
    return items


def item_executor(body: str) -> str | None:
    m = _EXECUTOR.search(_TICKS.sub("", body))
    return m.group(1).lower() if m else None


def _split_command(body: str) -> tuple[str | None, list[str]]:
    spans = list(_TICKS.finditer(body))
    if not spans:
        return None, []
    command = spans[0].group(1).strip()
    artifacts: list[str] = []
    marker = _ARTIFACT_WORDS.search(body, spans[0].end())
    if marker:
        artifacts = [s.group(1).strip() for s in spans[1:] if s.start() >= marker.start()]
    return command or None, artifacts


def parse_acceptance(text: str) -> list[str]:
    """Commands given as `Accept: \\`cmd\\`` lines: the goal is done only when each exits 0."""
    return [m.group("cmd").strip() for line in text.splitlines() if (m := _ACCEPT.match(line))]
