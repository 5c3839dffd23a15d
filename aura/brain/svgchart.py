"""Charts for the run report, as inline SVG written here.

Why SVG by hand: the report must open offline as one file, stay small for a run of days and draw
at once; a plotting library would embed its own script (hundreds of KB) and still need the data.
A line chart is a few paths (each series thinned to MAX_POINTS), a timeline a few rectangles.
Each drawn series carries `class="series"` and `data-points`, so the page (and its test) can check
that every chart drew what it was given.
"""

from __future__ import annotations

import math
import time
from html import escape

W, H = 900, 220
LEFT, RIGHT, TOP, BOTTOM = 70, 170, 16, 28
MAX_POINTS = 400
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
OUTCOME_COLOURS = {"succeeded": "#2ca02c", "running": "#1f77b4", "killed": "#d62728", "failed": "#ff7f0e"}

Series = tuple[str, list[tuple[float, float]]]  # name, (t, value) in time order


def thin(points: list[tuple[float, float]], n: int = MAX_POINTS) -> list[tuple[float, float]]:
    """At most `n` points: each run of points becomes its highest one (peaks stay visible)."""
    if len(points) <= n:
        return points
    step = len(points) / n
    return [max(points[int(i * step) : int((i + 1) * step)], key=lambda p: p[1]) for i in range(n)]


def _clock(t: float, span: float) -> str:
    form = "%H:%M:%S" if span < 3600 else ("%H:%M" if span < 86400 else "%d %H:%M")
    return time.strftime(form, time.localtime(t))


def nice_top(peak: float) -> float:
    """The axis top: the first of 1, 2, 2.5, 5 times a power of ten above the peak."""
    if peak <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(peak))
    return next(m * base for m in (1, 2, 2.5, 5, 10, 20) if m * base >= peak * 1.02)


class Frame:
    """The axes of one chart: time across, a value up."""

    def __init__(self, t0: float, t1: float, top: float):
        self.t0, self.t1 = t0, max(t1, t0 + 1.0)
        self.top = top if top > 0 else 1.0

    def x(self, t: float) -> float:
        return LEFT + (W - LEFT - RIGHT) * (t - self.t0) / (self.t1 - self.t0)

    def y(self, v: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (1 - min(v, self.top) / self.top)

    def axes(self, unit: str, fmt: str = "{:.0f}") -> list[str]:
        out = [f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" class="plot"/>']
        for i in range(5):
            v = self.top * i / 4
            y = self.y(v)
            out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt.format(v))}{unit}</text>')
        span = self.t1 - self.t0
        for i in range(5):
            t = self.t0 + span * i / 4
            out.append(f'<text x="{self.x(t):.1f}" y="{H - 8}" text-anchor="middle">{escape(_clock(t, span))}</text>')
        return out


def _svg(title: str, body: list[str], height: int = H) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>' + "".join(body) + "</svg>"
    )


def line_chart(
    title: str,
    series: list[Series],
    unit: str = "",
    top: float | None = None,
    scale: float = 1.0,
    fmt: str = "{:.0f}",
    limit: tuple[str, float] | None = None,
    steps: bool = False,
) -> str:
    """One line per series over a shared time axis; `limit` draws a labelled horizontal line (a
    budget); `steps` draws a running total as steps. Values are divided by `scale` for the labels."""
    drawn = [(name, thin(pts)) for name, pts in series if pts]
    if not drawn:
        return f'<p class="empty">{escape(title)}: no data</p>'
    ts = [p[0] for _, pts in drawn for p in pts]
    peak = max([p[1] for _, pts in drawn for p in pts] + ([limit[1]] if limit else []))
    frame = Frame(min(ts), max(ts), top if top is not None else nice_top(peak / scale))
    body = frame.axes(unit, fmt)
    for i, (name, pts) in enumerate(drawn):
        colour = COLOURS[i % len(COLOURS)]
        coords: list[str] = []
        for j, (t, v) in enumerate(pts):
            if steps and j:
                coords.append(f"{frame.x(t):.1f},{frame.y(pts[j - 1][1] / scale):.1f}")
            coords.append(f"{frame.x(t):.1f},{frame.y(v / scale):.1f}")
        if len(coords) == 1:  # a single sample: a short tick, so it still shows
            x, y = coords[0].split(",")
            coords.append(f"{float(x) + 2:.1f},{y}")
        body.append(
            f'<polyline class="series" data-series="{escape(name)}" data-points="{len(pts)}" '
            f'stroke="{colour}" points="{" ".join(coords)}"><title>{escape(name)}</title></polyline>'
        )
        if i < 12:
            body.append(
                f'<text x="{W - RIGHT + 10}" y="{TOP + 12 + 15 * i}" style="fill:{colour}" class="legend">'
                f"{escape(name[:24])}</text>"
            )
    if len(drawn) > 12:
        body.append(f'<text x="{W - RIGHT + 10}" y="{TOP + 12 + 15 * 12}">and {len(drawn) - 12} more</text>')
    if limit:
        ly = frame.y(limit[1] / scale)
        body.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{ly:.1f}" y2="{ly:.1f}" class="limit"/>')
        body.append(f'<text x="{LEFT + 4}" y="{ly - 4:.1f}" class="limit-label">{escape(limit[0])}</text>')
    return _svg(title, body)


def timeline(title: str, rows: list[dict], now: float) -> str:
    """One bar per attempt (start to end, coloured by outcome), the watchdog's kills marked with a
    red cross at the time of the kill. Each row: label, start, end (None: running), outcome, kill_at."""
    rows = [r for r in rows if r.get("start")]
    if not rows:
        return f'<p class="empty">{escape(title)}: no attempts</p>'
    t0 = min(r["start"] for r in rows)
    t1 = max([r.get("end") or now for r in rows] + [r.get("kill_at") or 0 for r in rows])
    row_h = 18
    height = TOP + BOTTOM + row_h * len(rows)
    frame = Frame(t0, t1, 1.0)
    body = []
    span = frame.t1 - frame.t0
    for i in range(5):
        t = t0 + span * i / 4
        body.append(
            f'<text x="{frame.x(t):.1f}" y="{height - 8}" text-anchor="middle">{escape(_clock(t, span))}</text>'
        )
    for i, r in enumerate(rows):
        y = TOP + row_h * i
        x0, x1 = frame.x(r["start"]), frame.x(r.get("end") or now)
        outcome = str(r.get("outcome") or "running")
        colour = OUTCOME_COLOURS.get(outcome, "#ff7f0e")
        tip = f"{r['label']}: {outcome}, {_clock(r['start'], 0)} to {_clock(r.get('end') or now, 0)}"
        body.append(f'<text x="{LEFT - 6}" y="{y + 13}" text-anchor="end">{escape(str(r["label"])[:14])}</text>')
        body.append(
            f'<rect class="series" data-series="{escape(str(r["label"]))}" data-points="1" x="{x0:.1f}" '
            f'y="{y + 3}" width="{max(2.0, x1 - x0):.1f}" height="{row_h - 6}" fill="{colour}">'
            f"<title>{escape(tip)}</title></rect>"
        )
        body.append(f'<text x="{max(x1, x0 + 2) + 4:.1f}" y="{y + 13}" class="outcome">{escape(outcome)}</text>')
        if r.get("kill_at"):
            kx, ky = frame.x(r["kill_at"]), y + row_h / 2
            body.append(
                f'<path class="kill" d="M{kx - 5:.1f},{ky - 5:.1f}L{kx + 5:.1f},{ky + 5:.1f}M{kx - 5:.1f},{ky + 5:.1f}'
                f'L{kx + 5:.1f},{ky - 5:.1f}"><title>killed by the watchdog: {escape(str(r.get("kill_reason") or ""))}'
                "</title></path>"
            )
    return _svg(title, body, height)
