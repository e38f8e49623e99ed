"""Percentiles, medians and per-bucket time series (no numpy needed)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterable, Sequence

SPEED_ROUNDS = 10  # best of these many timings of the fixed workload, spread over ~0.3 s,
SPEED_GAP_SECONDS = 0.02  # so that a passing burst (a flush after the last run) is filtered out
SPEED_LOOP = 200_000  # iterations of the fixed workload; ~15 ms on a current core


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of values (any order); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summary_ms(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50/p90/p99/max of durations given in seconds, reported in milliseconds."""
    if not seconds:
        return {"p50": None, "p90": None, "p99": None, "max": None, "n": 0}
    ordered = sorted(seconds)

    def at(pct: float) -> float:
        return round(ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1] * 1000, 2)

    return {
        "p50": at(50),
        "p90": at(90),
        "p99": at(99),
        "max": round(ordered[-1] * 1000, 2),
        "n": len(ordered),
    }


def rate_series(times: Iterable[float], origin: float, bucket: float) -> list[tuple[float, float]]:
    """Events per second in consecutive buckets, as (seconds since origin, rate)."""
    counts: dict[int, int] = {}
    for t in times:
        index = int((t - origin) // bucket)
        counts[index] = counts.get(index, 0) + 1
    if not counts:
        return []
    last = max(counts)
    return [(round(i * bucket, 3), counts.get(i, 0) / bucket) for i in range(0, last + 1)]


def latency_series(
    pairs: Iterable[tuple[float, float]], origin: float, bucket: float
) -> list[tuple[float, float, float]]:
    """(time, latency s) pairs -> (seconds since origin, p50 ms, p99 ms) per bucket."""
    groups: dict[int, list[float]] = {}
    for t, latency in pairs:
        groups.setdefault(int((t - origin) // bucket), []).append(latency)
    out = []
    for index in sorted(groups):
        values = sorted(groups[index])
        p50 = values[max(1, math.ceil(0.5 * len(values))) - 1]
        p99 = values[max(1, math.ceil(0.99 * len(values))) - 1]
        out.append((round(index * bucket, 3), round(p50 * 1000, 2), round(p99 * 1000, 2)))
    return out


def bucket_for(span: float) -> float:
    """A bucket width giving at most about 60 points over a span of seconds."""
    for width in (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0):
        if span / width <= 60:
            return width
    return 30.0


def machine_speed() -> float:
    """Million iterations per second of a fixed pure-Python loop, best of a few tries.

    Taken while the system under test is idle, it shows how fast this machine is at that
    moment: shared hosts drift, and a run's figures mean little without it.
    """
    best = math.inf
    for _ in range(SPEED_ROUNDS):
        began = time.perf_counter()
        value = 0
        for index in range(SPEED_LOOP):
            value = (value + index * 2654435761) & 0xFFFFFFFF
        best = min(best, time.perf_counter() - began)
        time.sleep(SPEED_GAP_SECONDS)
    return round(SPEED_LOOP / best / 1e6, 2)
