"""Face tracking paced by how busy the machine is.

Tracking never holds a frame, but it competes with the frame path for CPU: on a 2-core
machine with the browser beside it, face tracking on every 720p30 frame kept the CPU at
90-94% busy and the frames themselves waited (glass to glass p95 150 ms, against 92 ms
with faces tracked at 15 Hz). Holding landmarks a little longer costs little: on the
real face clip, the lips moved 0.5 px a frame on average (p95 1.2 px) between
consecutive frames and 0.9 px (p95 2.1 px) between frames two apart.

So a :class:`TrackingPacer` sets the face worker's ``min_interval`` once a second from the
machine's CPU use: above ``high`` it lowers the tracking rate (not below ``min_rate``),
below ``low`` it raises it again up to every frame. A machine with room to spare tracks
every frame; a small one trades a pixel of landmark age for its frame latency. The hand
worker's search while no hand is in view (``idle_interval``, a palm-detector pass of about
20 ms at 720p) is paced the same way, between 5 and 2 searches a second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

logger = logging.getLogger(__name__)


class Paced(Protocol):
    name: str


class CpuLoad:
    """The machine's busy CPU share (0..1) between two reads, from /proc/stat."""

    def __init__(self, path: str = "/proc/stat") -> None:
        self.path = path
        self._last: tuple[int, int] | None = self._times()

    def _times(self) -> tuple[int, int] | None:
        try:
            with open(self.path) as f:
                fields = f.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != "cpu":
            return None
        values = [int(x) for x in fields[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values[:8]), idle  # guest time is already in user

    def read(self) -> float | None:
        """Busy share since the previous read; None where /proc/stat is missing."""
        now = self._times()
        last, self._last = self._last, now
        if now is None or last is None or now[0] <= last[0]:
            return None
        total, idle = now[0] - last[0], now[1] - last[1]
        return max(0.0, min(1.0, 1.0 - idle / total))


class TrackingPacer:
    """Moves a worker's rate between ``min_rate`` and ``max_rate`` (per second) by load."""

    def __init__(self, worker: Paced, max_rate: float, min_rate: float = 15.0,
                 high: float = 0.85, low: float = 0.70,
                 load: Callable[[], float | None] | None = None,
                 attr: str = "min_interval", at_max: float | None = 0.0) -> None:
        """``attr`` is the worker's interval to set; at ``max_rate`` it is ``at_max``
        (0: every frame) or, when that is None, ``1 / max_rate``. ``load`` is read by
        :meth:`update` when no reading is passed in (a room reads :class:`CpuLoad` once
        for all its pacers and passes it)."""
        if not 0 < min_rate <= max_rate:
            raise ValueError("need 0 < min_rate <= max_rate")
        if not 0 < low < high <= 1:
            raise ValueError("need 0 < low < high <= 1")
        self.worker = worker
        self.max_rate = max_rate
        self.min_rate = min_rate
        self.high = high
        self.low = low
        self._load = load
        if not hasattr(worker, attr):
            raise ValueError(f"{worker.name} has no {attr}")
        self.attr = attr
        self.at_max = at_max
        self.rate = max_rate
        self.busy: float | None = None
        self._apply()

    def _apply(self) -> None:
        at_max = self.rate >= self.max_rate and self.at_max is not None
        setattr(self.worker, self.attr, self.at_max if at_max else 1.0 / self.rate)

    @property
    def interval(self) -> float:
        return float(getattr(self.worker, self.attr))

    def update(self, busy: float | None = None) -> float:
        """Adjust to ``busy`` (else read the load); returns the rate now asked."""
        if busy is None and self._load is not None:
            busy = self._load()
        self.busy = busy
        if self.busy is None:
            return self.rate
        before = self.rate
        if self.busy > self.high:
            self.rate = max(self.min_rate, self.rate * 0.75)
        elif self.busy < self.low:
            self.rate = min(self.max_rate, self.rate * 1.15 + 0.5)
        if self.rate != before:
            self._apply()
            logger.debug("%s: machine %.0f%% busy, tracking at %.1f/s", self.worker.name,
                         100 * self.busy, self.rate)
        return self.rate

