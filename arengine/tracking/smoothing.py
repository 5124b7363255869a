"""One Euro filter over whole landmark arrays.

The One Euro filter (Casiez et al., CHI 2012) smooths strongly when a point is still and
lightly when it moves fast, which is what kills lip jitter without making the lipstick lag
behind a talking mouth. It runs vectorised over every coordinate of a landmark array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from arengine.types import LIPS_INNER, LIPS_OUTER


@dataclass(frozen=True)
class OneEuroConfig:
    """Filter settings. ``min_cutoff`` (Hz) trades jitter for lag when still; ``beta``
    raises the cutoff with speed (in pixels per second) so fast motion is not delayed."""

    min_cutoff: float = 1.5
    beta: float = 0.05
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ValueError("min_cutoff and d_cutoff must be > 0 and beta >= 0")


DEFAULT_SMOOTHING = OneEuroConfig()
# The lips' own settings. A talking mouth opens and closes within 3-4 frames; with the
# face's settings its 40 contour landmarks trailed the raw ones by 0.7-1.35 frames on the
# GRID clips (0.55 on the 720p clip), and the lipstick showed bare lip after every closure.
# A high beta with a fast speed estimate (d_cutoff 8 Hz, so the cutoff rises on the first
# frame of a movement) brings that to 0.10-0.15 frames, keeping 19-25 % of the jitter cut
# (the face's keeps 64-70 %). The lip mask follows the picture, so it still flickers less
# than a mask drawn from raw landmarks (bench/bench_lip_mask.py).
MOUTH_SMOOTHING = OneEuroConfig(min_cutoff=1.5, beta=1.0, d_cutoff=8.0)
MOUTH_POINTS: tuple[int, ...] = tuple(sorted(set(LIPS_OUTER + LIPS_INNER)))


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters a fixed-shape array over time; call :meth:`reset` when the target is lost."""

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self.config = config or OneEuroConfig()
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def reset(self) -> None:
        self._x = self._dx = None
        self._t = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None or self._t is None or self._x.shape != x.shape or t <= self._t:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        c = self.config
        dt = t - self._t
        dx = (x - self._x) / dt
        assert self._dx is not None
        dx_hat = self._dx + _alpha(c.d_cutoff, dt) * (dx - self._dx)
        cutoff = c.min_cutoff + c.beta * np.abs(dx_hat)
        x_hat = self._x + _alpha(cutoff, dt) * (x - self._x)
        self._x, self._dx, self._t = x_hat, dx_hat, t
        return x_hat.copy()


class LandmarkSmoother:
    """One Euro filtering of a face's landmarks, the mouth with its own settings.

    ``mouth`` None smooths every point with ``config``. Call :meth:`reset` when the face is
    lost.
    """

    def __init__(self, config: OneEuroConfig | None = None,
                 mouth: OneEuroConfig | None = MOUTH_SMOOTHING,
                 mouth_points: tuple[int, ...] = MOUTH_POINTS) -> None:
        self.face = OneEuroFilter(config)
        self.mouth = OneEuroFilter(mouth) if mouth is not None else None
        self.mouth_points = list(mouth_points)

    def reset(self) -> None:
        self.face.reset()
        if self.mouth is not None:
            self.mouth.reset()

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        out = self.face(x, t)
        if self.mouth is not None and len(x) > max(self.mouth_points, default=-1):
            out[self.mouth_points] = self.mouth(np.asarray(x)[self.mouth_points], t)
        return out


class JitterMeter:
    """Running mean landmark jitter of tracked faces, raw and smoothed, in pixels.

    Jitter here is the mean absolute second difference of each landmark coordinate over
    consecutive frames of the same track: ``|x[t] - 2 x[t-1] + x[t-2]|``. Steady motion
    (constant velocity) scores zero, frame-to-frame shake scores high, so it measures what
    a viewer sees as lipstick "swimming". Only the last two frames per track are held, and
    only the mean leaves this object: no landmarks are stored.
    """

    def __init__(self, indices: tuple[int, ...] | None = None) -> None:
        self.indices = None if indices is None else list(indices)
        self._hist: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._sum = np.zeros(2)
        self._count = 0

    def update(self, track_ids: np.ndarray, raw: np.ndarray, smooth: np.ndarray) -> None:
        """Add one frame: per-face track ids and (n, points, 3) raw and smoothed landmarks."""
        seen = set()
        for i, tid in enumerate(int(t) for t in track_ids):
            seen.add(tid)
            r, s = raw[i, :, :2], smooth[i, :, :2]
            if self.indices is not None:
                r, s = r[self.indices], s[self.indices]
            hist = self._hist.setdefault(tid, [])
            hist.append((np.asarray(r, np.float64), np.asarray(s, np.float64)))
            if len(hist) > 3:
                hist.pop(0)
            if len(hist) == 3:
                (r0, s0), (r1, s1), (r2, s2) = hist
                self._sum += (np.abs(r2 - 2 * r1 + r0).mean(), np.abs(s2 - 2 * s1 + s0).mean())
                self._count += 1
        for tid in set(self._hist) - seen:
            del self._hist[tid]  # a lost face starts a new series

    @property
    def samples(self) -> int:
        return self._count

    @property
    def raw(self) -> float | None:
        return float(self._sum[0] / self._count) if self._count else None

    @property
    def smoothed(self) -> float | None:
        return float(self._sum[1] / self._count) if self._count else None
