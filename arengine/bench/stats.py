"""Percentiles, summaries and trends of latency samples.

Written out rather than delegated to ``numpy.percentile`` so the definition a report
states is the one that was computed: linear interpolation between closest ranks
(Hyndman & Fan type 7, numpy's and Excel's default), so p50 of ``[1, 2, 3, 4]`` is 2.5
and p99 of 300 samples lies between the 297th and 298th smallest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PERCENTILE_METHOD = "linear interpolation between closest ranks (Hyndman-Fan type 7)"


def _clean(samples: Iterable[float]) -> np.ndarray:
    a = np.asarray(list(samples) if not isinstance(samples, np.ndarray) else samples,
                   dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("no samples")
    if not np.all(np.isfinite(a)):
        raise ValueError("samples must be finite numbers (got NaN or infinity)")
    return a


def percentile(samples: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples``, type 7 interpolation."""
    if not 0.0 <= q <= 100.0 or math.isnan(q):
        raise ValueError(f"percentile must be within 0..100, got {q}")
    a = np.sort(_clean(samples))
    return _sorted_percentile(a, q)


def _sorted_percentile(a: np.ndarray, q: float) -> float:
    pos = (a.size - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, a.size - 1)
    frac = pos - lo
    return float(a[lo] + (a[hi] - a[lo]) * frac)


@dataclass(frozen=True)
class Summary:
    """The figures every latency series is reported with (same unit as the samples)."""

    count: int
    mean: float
    min: float
    median: float
    p95: float
    p99: float
    max: float
    std: float

    @property
    def spread(self) -> float:
        """p95 minus median: how noisy the series is, used to judge regressions."""
        return self.p95 - self.median

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Summary:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def summarize(samples: Iterable[float]) -> Summary:
    """Count, mean, min, median, p95, p99, max and standard deviation of ``samples``."""
    a = np.sort(_clean(samples))
    return Summary(count=int(a.size), mean=float(a.mean()), min=float(a[0]),
                   median=_sorted_percentile(a, 50), p95=_sorted_percentile(a, 95),
                   p99=_sorted_percentile(a, 99), max=float(a[-1]),
                   std=float(a.std(ddof=1)) if a.size > 1 else 0.0)


def slope(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Least-squares slope of ``y`` over ``x`` (e.g. ms of latency per minute of soak).

    Fewer than two distinct ``x`` values give 0: no trend can be seen.
    """
    xa = np.asarray(x, np.float64)
    ya = np.asarray(y, np.float64)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y differ in length ({xa.size} vs {ya.size})")
    if xa.size < 2 or np.ptp(xa) == 0:
        return 0.0
    xm = xa - xa.mean()
    return float(np.dot(xm, ya - ya.mean()) / np.dot(xm, xm))


def clock_resolution_ns() -> int:
    """The smallest step ``time.perf_counter_ns`` is seen to take on this machine.

    ``time.get_clock_info`` reports the nominal resolution; this measures the real one,
    which is what bounds a single timing.
    """
    import time

    best = 10**9
    for _ in range(2000):
        t0 = time.perf_counter_ns()
        t1 = time.perf_counter_ns()
        while t1 == t0:
            t1 = time.perf_counter_ns()
        best = min(best, t1 - t0)
    return int(best)
