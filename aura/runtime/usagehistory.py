"""Each worker's resource use over the whole run, on disk: written by the watchdog, read by views.

Why: `usage` answers with the latest figures only, so a view opened after a restart, or the
end-of-run report, would see nothing of the hours before. The watchdog keeps one file per worker
in `.aura/run/watchdog/usage/<worker>.jsonl` (it is the only writer): a header object
`{"worker_id", "task_id"}`, then one point a line, `[t, cpu_percent, rss_bytes, gpu_mem_bytes,
gpu_util_percent]`.

Resolution and size, per worker: every sample (at most one a second) for the last hour, one point a
minute for the day before that, one point every ten minutes before that; so a file holds at most
3,600 + 1,440 points plus 144 a day (about 60 bytes each). A merged point has the mean CPU and GPU
use and the highest RSS and GPU memory of the samples it replaces.

The sampling pass only appends a tuple to a list (`add`); the watchdog's timer writes the buffered
points (`flush`: one O_APPEND write per worker, whole lines) and now and then rewrites one file in
its coarser form (temp file and rename). A watchdog killed with -9 loses at most the points not yet
flushed (FLUSH_S); a torn last line is skipped by the reader.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from .fsutil import PRIVATE, atomic_write_bytes, json_lines, make_dirs
from .paths import ProjectPaths, safe_name

FOLDER = "usage"
MIN_STEP_S = 1.0  # the finest resolution kept, whatever the poll
FLUSH_S = 5.0  # how often the watchdog writes what it buffered
HOUR_S, DAY_S = 3600.0, 86400.0
TIERS = ((DAY_S, 600.0), (HOUR_S, 60.0))  # (older than, one point per) from the coarsest
COMPACT_EVERY_S = 600.0  # each live worker's file is rewritten this often, one file per flush

Point = tuple[float, float, int, int, "float | None"]  # t, cpu %, rss, gpu mem, gpu util %


def history_dir(paths: ProjectPaths) -> Path:
    return paths.watchdog_dir / FOLDER


def history_file(folder: Path, worker_id: str) -> Path:
    return folder / f"{safe_name(worker_id)}.jsonl"


# -- the shape of the series ---------------------------------------------------------------------------


def merge(points: list[list]) -> list:
    """One point for several: the first time, mean CPU and GPU use, highest RSS and GPU memory."""
    if len(points) == 1:
        return points[0]
    utils = [p[4] for p in points if p[4] is not None]
    return [
        points[0][0],
        round(sum(p[1] for p in points) / len(points), 1),
        max(p[2] for p in points),
        max(p[3] for p in points),
        round(sum(utils) / len(utils), 1) if utils else None,
    ]


def downsample(points: list[list], now: float) -> list[list]:
    """The points as kept on disk: full resolution for the last hour, coarser before (TIERS)."""
    out: list[list] = []
    bucket: list[list] = []
    key: tuple[float, int] | None = None
    for p in points:
        age = now - p[0]
        step = next((s for older, s in TIERS if age > older), 0.0)
        k = (step, int(p[0] // step)) if step else None
        if bucket and (k is None or k != key):
            out.append(merge(bucket))
            bucket = []
        if k is None:
            out.append(p)
        else:
            bucket.append(p)
        key = k
    if bucket:
        out.append(merge(bucket))
    return out


def _line(p: Iterable) -> bytes:
    return (json.dumps(list(p), separators=(",", ":")) + "\n").encode()


# -- the watchdog's side: buffer in the pass, write on a timer --------------------------------------------


class UsageHistory:
    """The watchdog's writer. `add` is called in the sampling pass and does no I/O."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.pending: dict[str, list[Point]] = {}
        self.last_t: dict[str, float] = {}
        self.known: set[str] = set()  # files this watchdog has checked or created
        self.compact_due: dict[str, float] = {}
        self.ended: dict[str, str | None] = {}  # worker id -> task id, of workers no longer watched
        self.dropped = 0  # points lost to a full disk

    def add(self, wid: str, t: float, cpu: float, rss: int, gpu_mem: int, gpu_util: float | None) -> None:
        if t - self.last_t.get(wid, 0.0) < MIN_STEP_S:
            return
        self.last_t[wid] = t
        buf = self.pending.get(wid)
        if buf is None:
            buf = self.pending[wid] = []
        buf.append((t, cpu, rss, gpu_mem, gpu_util))

    def end(self, wid: str, task_id: str | None) -> None:
        """The worker is no longer watched: write what is left, then forget it."""
        self.ended[wid] = task_id

    def flush(self, now: float, task_of: Callable[[str], str | None]) -> None:
        """Write the buffered points; rewrite at most one file that is due for downsampling."""
        pending, self.pending = self.pending, {}
        for wid, points in pending.items():
            self._append(wid, points, task_of)
        due = [w for w, t in self.compact_due.items() if t <= now and w not in self.ended]
        if due:
            self.compact(due[0], now)
        for wid in self.ended:
            for table in (self.last_t, self.compact_due):
                table.pop(wid, None)
            self.known.discard(wid)
        self.ended = {}

    def _append(self, wid: str, points: list[Point], task_of: Callable[[str], str | None]) -> None:
        path = history_file(self.folder, wid)
        data = b"".join(_line((round(p[0], 1), round(p[1], 1), p[2], p[3], p[4])) for p in points)
        try:
            if wid not in self.known:
                data = self._start(path, wid, self.ended.get(wid) or task_of(wid)) + data
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError:
            self.dropped += len(points)

    def _start(self, path: Path, wid: str, task_id: str | None) -> bytes:
        """What goes before the first points this watchdog writes: the header in a new file, a
        newline after a line a killed predecessor left torn."""
        make_dirs(self.folder, 0o700)
        self.known.add(wid)
        self.compact_due[wid] = 0.0  # an earlier watchdog's points may be due for downsampling
        try:
            with open(path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                return b"" if fh.read(1) == b"\n" else b"\n"
        except FileNotFoundError:
            header = {"worker_id": wid, "task_id": task_id}
            return (json.dumps(header, separators=(",", ":")) + "\n").encode()
        except OSError:  # an empty file
            return b""

    def compact(self, wid: str, now: float) -> None:
        """Rewrite one worker's file in its downsampled form (temp file and rename)."""
        self.compact_due[wid] = now + COMPACT_EVERY_S
        path = history_file(self.folder, wid)
        header, points = read_file(path)
        kept = downsample(points, now)
        if len(kept) == len(points):
            return
        body = b"".join(_line(p) for p in kept)
        head = (json.dumps(header, separators=(",", ":")) + "\n").encode() if header else b""
        try:
            atomic_write_bytes(path, head + body)
        except OSError:
            pass


# -- the readers' side ----------------------------------------------------------------------------------


def read_file(path: Path) -> tuple[dict | None, list[list]]:
    """The header and the points of one file, in time order; torn or foreign lines skipped."""
    header: dict | None = None
    points: list[list] = []
    try:
        with open(path, "rb") as fh:
            for obj in json_lines(fh):
                if isinstance(obj, dict) and header is None:
                    header = obj
                elif isinstance(obj, list) and len(obj) == 5 and all(isinstance(v, (int, float)) for v in obj[:4]):
                    points.append(obj)
    except OSError:
        pass
    points.sort(key=lambda p: p[0])
    return header, points


def read_history(paths: ProjectPaths, worker_ids: Iterable[str] | None = None) -> dict[str, dict]:
    """worker id -> {"task_id", "points"} for every worker with a history (or those named)."""
    folder = history_dir(paths)
    if worker_ids is None:
        try:
            files = sorted(folder.glob("*.jsonl"))
        except OSError:
            return {}
    else:
        files = [history_file(folder, w) for w in worker_ids]
    out: dict[str, dict] = {}
    for path in files:
        header, points = read_file(path)
        if header is None and not points:
            continue
        wid = str((header or {}).get("worker_id") or path.stem)
        out[wid] = {"task_id": (header or {}).get("task_id"), "points": points}
    return out
