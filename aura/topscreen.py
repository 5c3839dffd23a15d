"""`aura top`: the live screen (rich), its keys, and following one worker's output.

Why rich: it draws tables, colours and a full-screen live view in any terminal (and plain text when
the output is not one), so no escape code is written here. Keys are read from the terminal in
cbreak mode (Ctrl-C still stops it): `s` sort, `j`/`k` or the arrows select a worker, `f` or Enter
follows its output as `aura tail -f` prints it (again, or Esc, goes back to the events), `q` quits.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .runtime.paths import DAEMONS, ProjectPaths
from .runtime.vocab import LIVE_STATES
from .statusview import open_question_lines
from .topview import SORTS, SPARK_POINTS, Snapshot, TopModel, run_state, sort_workers, task_ages, worker_state

BARS = "▁▂▃▄▅▆▇█"
CATCH_UP_S = 5.0  # how often the journals are read for events the live stream missed
STATE_STYLE = {"running": "green", "done": "bold green", "budget reached": "bold red", "safe mode": "bold yellow"}
TASK_STYLE = {"in_progress": "cyan", "completed": "green", "blocked": "red", "failed": "red", "pending": "dim"}


def sparkline(values: list[float], top: float | None = None) -> str:
    """One bar per value, scaled to `top` (else the highest value)."""
    if not values:
        return ""
    peak = top if top else max(values)
    if peak <= 0:
        return BARS[0] * len(values)
    return "".join(BARS[min(len(BARS) - 1, int(len(BARS) * max(0.0, v) / peak))] for v in values)


def size(n: float | None) -> str:
    if not n:
        return "-"
    for unit in ("B", "K", "M", "G"):
        if n < 1024:
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}T"


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


# -- following one worker's output ----------------------------------------------------------------------


@dataclass
class Follow:
    """A worker's output as `aura tail` formats it, read on from where the last refresh stopped."""

    worker_id: str
    path: Path
    backend: str
    lines: deque = field(default_factory=lambda: deque(maxlen=500))
    offset: int = 0
    partial: bytes = b""

    @classmethod
    def of(cls, paths: ProjectPaths, worker_id: str) -> Follow:
        from .tail import find_worker

        w = find_worker(paths, worker_id)
        f = cls(worker_id, Path(w["output"]), str(w.get("backend") or "shell"))
        f.poll()
        return f

    def poll(self) -> None:
        from .tail import formatter

        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read(1 << 20)
        except OSError:
            return
        self.offset += len(chunk)
        parts = (self.partial + chunk).split(b"\n")
        self.partial = parts[-1]
        fmt = formatter(self.backend)
        for raw in parts[:-1]:
            self.lines.extend(fmt(raw.decode("utf-8", "replace")))


# -- the screen ---------------------------------------------------------------------------------------


@dataclass
class Ui:
    sort: str = "cpu"
    selected: int = 0
    follow: Follow | None = None
    note: str = ""


def header(paths: ProjectPaths, snap: Snapshot) -> RenderableType:
    brain = snap.brain
    state = run_state(brain, snap.daemons)
    line = Text.assemble(
        ("Aura top ", "bold"),
        (str(paths.root), "dim"),
        "  ",
        (time.strftime("%H:%M:%S", time.localtime(snap.at)), "dim"),
    )
    mission = Text.assemble(("Mission ", "bold"), str(brain.get("mission") or "-")[:200])
    daemons = Text.assemble(
        ("Run ", "bold"),
        (state, STATE_STYLE.get(state, "yellow")),
        f" · cycles {brain.get('cycles') or 0} · ",
        *[
            part
            for n in DAEMONS
            for part in (
                (f"{n} ", ""),
                (snap.daemons[n], "green" if snap.daemons[n] == "up" else "bold red"),
                ("  ", ""),
            )
        ],
    )
    asked = [Text(q, style="bold magenta") for q in open_question_lines(brain.get("questions"))[:3]]
    return Group(line, mission, daemons, spend_line(brain), *asked)


def spend_line(brain: dict) -> Text:
    costs = brain.get("costs") or {}
    budget = brain.get("budget") or {}
    spent = float(costs.get("total_usd") or 0.0)
    limit = float(budget.get("limit_usd") or 0.0)
    parts = f"(brain ${float(costs.get('brain_usd') or 0):.4f}, workers ${float(costs.get('workers_usd') or 0):.4f})"
    if limit <= 0:
        return Text.assemble(("Spend ", "bold"), f"${spent:.4f} {parts}, no budget")
    share = min(1.0, spent / limit)
    bar = "█" * round(20 * share) + "░" * (20 - round(20 * share))
    style = "red" if share >= 1 else ("yellow" if budget.get("state") == "warning" else "green")
    return Text.assemble(
        ("Spend ", "bold"), f"${spent:.4f} of ${limit:.2f} ", (bar, style), f" {100 * spent / limit:.0f}% {parts}"
    )


def tasks_table(snap: Snapshot, rows: int) -> Table:
    t = Table(title="Tasks", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, expand=True)
    for col in ("TASK", "STATUS", "ATTEMPT", "AGE", "TITLE"):
        t.add_column(col, no_wrap=True, ratio=4 if col == "TITLE" else None)
    ages = task_ages(snap.workers, snap.at)
    tree = snap.brain.get("tree_rows") or []
    for r in tree[:rows]:
        indent = "  " * max(0, int(r.get("depth") or 1) - 1)
        status = str(r.get("status"))
        title = str(r.get("title") or "") + (f" (why: {r['reason']})" if r.get("reason") else "")
        t.add_row(
            indent + str(r["id"]),
            Text(status, TASK_STYLE.get(status, "")),
            str(r.get("attempt") or "-"),
            age(snap.at - float(r["since"]) if r.get("since") else ages.get(str(r["id"]))),
            title,
        )
    if len(tree) > rows:
        t.add_row(f"... {len(tree) - rows} more", "", "", "", "")
    return t


def workers_table(model: TopModel, snap: Snapshot, ui: Ui, rows: int, spark: int) -> tuple[Table, list[dict]]:
    shown = [w for w in sort_workers(snap.workers, snap.usage, ui.sort)]
    live = [w for w in shown if w.get("state") in LIVE_STATES]
    shown = (live + [w for w in shown if w not in live][: max(0, 3 - len(live))])[:rows]  # a few ended ones too
    src = "" if snap.workers_source == "supervisor" else " (from disk: the supervisor is down)"
    t = Table(
        title=f"Workers · sort {ui.sort}{src}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for col in ("WORKER", "BACKEND", "STATE", "AGE", "CPU%", "CPU", "RSS", "MEM", "GPU", "STRIKES", "TURNS", "COST$"):
        t.add_column(col, no_wrap=True, justify="right" if col in ("CPU%", "RSS", "GPU", "TURNS", "COST$") else "left")
    for i, w in enumerate(shown):
        wid = w["worker_id"]
        u, p = snap.usage.get(wid) or {}, w.get("progress") or {}
        s = model.series.get(wid)
        end = w.get("ended_at") or snap.at
        strikes = ",".join(f"{k.removeprefix('AURA_WORKER_').lower()}:{n}" for k, n in (u.get("strikes") or {}).items())
        t.add_row(
            wid,
            str(w.get("backend") or "-"),
            worker_state(w),
            age(end - (w.get("started_at") or w.get("created_at") or end)),
            f"{u['cpu_percent']:.1f}" if "cpu_percent" in u else "-",
            Text(sparkline(list(s.cpu)[-spark:], 100.0) if s else "", "cyan"),
            size(u.get("rss_bytes")),
            Text(sparkline(list(s.rss)[-spark:]) if s else "", "magenta"),
            size(u.get("gpu_mem_bytes")),
            strikes or "-",
            str(p.get("turns") or "-"),
            f"{p['total_cost_usd']:.4f}" if p.get("total_cost_usd") is not None else "-",
            style="reverse" if i == ui.selected else None,
        )
    return t, shown


def bottom_pane(model: TopModel, ui: Ui, rows: int) -> RenderableType:
    if ui.follow is not None:
        title = Text.assemble(("Output of ", "bold"), ui.follow.worker_id, (" (f or Esc: back to events)", "dim"))
        return Group(title, *[Text(line[:400], no_wrap=True) for line in list(ui.follow.lines)[-rows:]])
    from .runtime.eventkinds import stream_line

    lines = [line for ev in model.events if (line := stream_line(ev))]
    return Group(Text("Events", style="bold"), *[Text(line, no_wrap=True) for line in lines[-rows:]])


def screen(
    paths: ProjectPaths, model: TopModel, snap: Snapshot, ui: Ui, height: int, width: int
) -> tuple[RenderableType, list]:
    """The whole screen, fitted to `height` lines: the tasks and workers get what they need (up to
    a third each), the events or the output what is left."""
    budget = max(6, (height - 8) // 3)
    tasks = tasks_table(snap, budget)
    workers, shown = workers_table(model, snap, ui, budget, max(4, min(SPARK_POINTS, (width - 110) // 2)))
    used = 4 + 4 + min(budget, len(snap.brain.get("tree_rows") or [])) + 4 + len(shown) + 2
    keys = Text("s sort · j/k select · f follow output · q quit" + (f" · {ui.note}" if ui.note else ""), style="dim")
    return Group(header(paths, snap), tasks, workers, bottom_pane(model, ui, max(3, height - used)), keys), shown


# -- the loop and its keys -----------------------------------------------------------------------------


@contextmanager
def cbreak_keys() -> Iterator[int | None]:
    """Keys one at a time from a terminal (None when stdin is not one); the mode is restored after."""
    if not sys.stdin.isatty():
        yield None
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def read_key(fd: int | None, timeout: float) -> str:
    if fd is None:
        time.sleep(timeout)
        return ""
    ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
    return os.read(fd, 16).decode("utf-8", "replace") if ready else ""


def handle_key(key: str, ui: Ui, shown: list[dict], paths: ProjectPaths) -> bool:
    """Apply one key; False to quit."""
    ui.note = ""
    if key in ("q", "Q"):
        return False
    if key == "s":
        ui.sort = SORTS[(SORTS.index(ui.sort) + 1) % len(SORTS)]
    elif key in ("j", "\x1b[B"):
        ui.selected = min(ui.selected + 1, max(0, len(shown) - 1))
    elif key in ("k", "\x1b[A"):
        ui.selected = max(0, ui.selected - 1)
    elif key == "\x1b" or (key in ("f", "\r", "\n") and ui.follow is not None):
        ui.follow = None
    elif key in ("f", "\r", "\n") and shown:
        from .tail import TailError

        try:
            ui.follow = Follow.of(paths, shown[min(ui.selected, len(shown) - 1)]["worker_id"])
        except TailError as exc:
            ui.note = str(exc)
    return True


def run_top(paths: ProjectPaths, once: bool, interval: float) -> None:
    console = Console()
    model = TopModel(paths)
    model.open_events()
    ui = Ui()
    try:
        if once:
            snap = model.refresh()
            console.print(screen(paths, model, snap, ui, console.size.height, console.size.width)[0])
            return
        with cbreak_keys() as fd, Live(console=console, screen=True, auto_refresh=False) as live:
            loop(paths, model, ui, live, console, fd, interval)
    finally:
        model.close()


def loop(
    paths: ProjectPaths, model: TopModel, ui: Ui, live: Live, console: Console, fd: int | None, interval: float
) -> None:
    due = caught_up = 0.0
    snap: Snapshot | None = None
    shown: list[dict] = []
    while True:
        now = time.monotonic()
        if snap is None or now >= due:
            catch_up = now - caught_up >= CATCH_UP_S
            caught_up = now if catch_up else caught_up
            snap = model.refresh()
            model.take_events(catch_up)
            if ui.follow is not None:
                ui.follow.poll()
            due = now + interval
        view, shown = screen(paths, model, snap, ui, console.size.height, console.size.width)
        live.update(view, refresh=True)
        key = read_key(fd, due - time.monotonic())
        if key and not handle_key(key, ui, shown, paths):
            return
