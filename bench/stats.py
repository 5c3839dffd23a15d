"""Small, dependency-free statistics for the bench: medians and tail percentiles.

Percentiles use the nearest-rank method on the sorted sample, so a p99 of 100 samples is
the 99th value: a reader can check every figure against the raw list in the JSON file.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    if not values:
        raise ValueError("percentile of an empty sample")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Iterable[float], scale: float = 1.0, digits: int = 3) -> dict:
    """n, min, median, p95, p99 and max, each multiplied by `scale` (e.g. 1000 for ms)."""
    data = [float(v) * scale for v in values]
    if not data:
        return {"n": 0}
    return {
        "n": len(data),
        "min": round(min(data), digits),
        "median": round(percentile(data, 50), digits),
        "p95": round(percentile(data, 95), digits),
        "p99": round(percentile(data, 99), digits),
        "max": round(max(data), digits),
    }


def ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    """a / b, or None when either is missing or b is zero (a ratio nobody can check is not printed)."""
    if a is None or b is None or b == 0:
        return None
    return round(a / b, digits)
