"""Soak: one room streaming for minutes, watched for latency drift and memory growth.

A leak or a slowly filling buffer does not show in a 10-second run; it shows as RSS that
keeps rising after warm-up and as latency that creeps up. Both are reported as slopes
(least squares): latency from per-10-second medians, so a few outliers do not fake a
trend, and RSS from one-second samples after the first minute.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from arengine.bench.load import run_rooms
from arengine.bench.machine import rss_mb
from arengine.bench.stats import slope, summarize


def soak(minutes: float, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One room, one viewer, for ``minutes``: latency drift and memory growth."""
    rss: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample_rss() -> None:
        t0 = time.perf_counter()
        while not stop.wait(1.0):
            rss.append((time.perf_counter() - t0, rss_mb()))

    last_report = [0.0]

    def tick(t: float) -> None:
        if progress is not None and t - last_report[0] >= 60:
            last_report[0] = t
            progress(f"soak: {t / 60:.1f}/{minutes:g} min, RSS {rss_mb():.0f} MiB")

    sampler = threading.Thread(target=sample_rss, daemon=True)
    rss_start = rss_mb()
    sampler.start()
    try:
        samples, elapsed = run_rooms(1, 1, minutes * 60.0, on_tick=tick)
    finally:
        stop.set()
        sampler.join()
    s = next(iter(samples.values()))
    lat, at = s.latency_ms, s.at_s
    due = int(elapsed * 30)
    first = [v for v, t in zip(lat, at, strict=True) if t < 60]
    last = [v for v, t in zip(lat, at, strict=True) if t >= elapsed - 60]
    rss_t = [t for t, _ in rss]
    rss_v = [v for _, v in rss]
    # Median per 10 s window: the trend of typical latency, not of the outliers.
    windows: dict[int, list[float]] = {}
    for v, t in zip(lat, at, strict=True):
        windows.setdefault(int(t // 10), []).append(v)
    wx = [k * 10 + 5.0 for k in sorted(windows)]
    wy = [summarize(windows[k]).median for k in sorted(windows)]
    late_rss = sum(1 for t in rss_t if t >= 60)
    return {
        "minutes": minutes, "resolution": "720p", "seconds": elapsed,
        "processed": len(lat), "dropped": max(0, due - len(lat) - 1),
        "latency": summarize(lat).to_dict() if lat else None,
        "drift_ms_per_min": slope(wx, wy) * 60 if len(wx) > 1 else 0.0,
        "first_p50_ms": summarize(first).median if first else None,
        "last_p50_ms": summarize(last).median if last else None,
        "rss_start_mb": rss_start, "rss_end_mb": rss_v[-1] if rss_v else rss_mb(),
        "rss_peak_mb": max(rss_v) if rss_v else rss_mb(),
        # Growth after the first minute (model and encoder warm-up allocations are not
        # leaks) when the soak is long enough to have one, else over the whole run.
        "rss_growth_from_s": 60 if late_rss > 1 else 0,
        "rss_growth_mb_per_min": slope([t for t in rss_t if t >= 60],
                                       [v for t, v in rss if t >= 60]) * 60
        if late_rss > 1 else slope(rss_t, rss_v) * 60,
        "errors": s.errors,
        "samples_t_s": [round(t, 3) for t in at], "samples_ms": [round(v, 3) for v in lat],
        "rss_samples": [[round(t, 1), round(v, 1)] for t, v in rss],
    }
