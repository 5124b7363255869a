"""Observers: what collects stage timings, outside the code being timed.

As in pipecat, processors do not time themselves. The room pipeline (the runner) wraps
each stage call and hands a :class:`~arengine.types.StageTiming` to its observers. The
:class:`StatsObserver` keeps a rolling window per room and stage for the stats endpoint
and feeds Prometheus histograms in the default registry (shared with the rest of the app).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from typing import Any, Protocol

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from arengine.types import StageTiming

STAGE_SECONDS = Histogram(
    "arengine_stage_seconds", "Time spent in one pipeline stage per frame",
    ["room", "stage"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25,
             0.5, 1.0))
FRAMES = Counter("arengine_frames_total", "Frames counted at a point of the pipeline",
                 ["room", "point"])
DROPPED = Counter("arengine_frames_dropped_total",
                  "Frames dropped so that the newest frame is always processed",
                  ["room", "stage"])
ERRORS = Counter("arengine_stage_errors_total",
                 "Frames sent without a stage because the stage raised", ["room", "stage"])
VIEWERS = Gauge("arengine_viewers", "Connected WHEP viewers", ["room"])
PUBLISHING = Gauge("arengine_host_publishing", "1 while a host publishes over WHIP", ["room"])
ENCODERS = Gauge("arengine_encoders", "Shared video encoders running", ["room"])


class Observer(Protocol):
    def on_timing(self, room: str, timing: StageTiming) -> None: ...

    def on_count(self, room: str, point: str, n: int = 1) -> None: ...

    def on_drop(self, room: str, stage: str, n: int = 1) -> None: ...

    def on_error(self, room: str, stage: str) -> None: ...


class StatsObserver:
    """Rolling per-stage timings, frame rates and drop counts, plus Prometheus metrics."""

    def __init__(self, window: int = 300, rate_window: float = 2.0) -> None:
        self.window = window
        self.rate_window = rate_window
        self._lock = threading.Lock()
        self._timings: dict[str, dict[str, deque[float]]] = defaultdict(dict)
        self._events: dict[str, dict[str, deque[float]]] = defaultdict(dict)
        self._counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._drops: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._errors: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def on_timing(self, room: str, timing: StageTiming) -> None:
        seconds = max(0.0, timing.end - timing.start)
        with self._lock:
            d = self._timings[room].get(timing.stage)
            if d is None:
                d = self._timings[room][timing.stage] = deque(maxlen=self.window)
            d.append(seconds * 1000.0)
        STAGE_SECONDS.labels(room, timing.stage).observe(seconds)

    def on_count(self, room: str, point: str, n: int = 1) -> None:
        now = time.monotonic()
        with self._lock:
            self._counts[room][point] += n
            d = self._events[room].get(point)
            if d is None:
                d = self._events[room][point] = deque(maxlen=4096)
            d.append(now)
        FRAMES.labels(room, point).inc(n)

    def on_drop(self, room: str, stage: str, n: int = 1) -> None:
        with self._lock:
            self._drops[room][stage] += n
        DROPPED.labels(room, stage).inc(n)

    def on_error(self, room: str, stage: str) -> None:
        with self._lock:
            self._errors[room][stage] += 1
        ERRORS.labels(room, stage).inc()

    def rate(self, room: str, point: str) -> float:
        """Events per second at ``point`` over the last ``rate_window`` seconds."""
        now = time.monotonic()
        with self._lock:
            d = self._events[room].get(point)
            if not d:
                return 0.0
            n = sum(1 for t in d if now - t <= self.rate_window)
        return n / self.rate_window

    def snapshot(self, room: str) -> dict[str, Any]:
        """JSON-ready stats: per stage mean/p50/p95/p99 in ms, fps, counts, drops, errors."""
        with self._lock:
            timings = {k: list(v) for k, v in self._timings[room].items()}
            counts = dict(self._counts[room])
            drops = dict(self._drops[room])
            errors = dict(self._errors[room])
            points = list(self._events[room])
        stages = {}
        for stage, values in sorted(timings.items()):
            a = np.asarray(values)
            stages[stage] = {"n": len(values), "mean_ms": round(float(a.mean()), 3),
                             "p50_ms": round(float(np.percentile(a, 50)), 3),
                             "p95_ms": round(float(np.percentile(a, 95)), 3),
                             "p99_ms": round(float(np.percentile(a, 99)), 3)}
        fps = {p: round(self.rate(room, p), 2) for p in points}
        return {"stages": stages, "fps": fps, "frames": counts, "dropped": drops,
                "errors": errors}

    def forget(self, room: str) -> None:
        with self._lock:
            for d in (self._timings, self._events, self._counts, self._drops, self._errors):
                d.pop(room, None)
