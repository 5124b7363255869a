"""A camera-free video source: a real face that moves.

``arengine serve`` shows its effects before anybody publishes: the room plays this source
until a host goes live. The picture is scikit-image's astronaut portrait (a real face, so
MediaPipe tracks it and lipstick lands on real lips) under a slow pan, zoom and head tilt.
Every frame is a pure function of time, so tests and benchmarks see the same pictures.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING

import cv2
import numpy as np

from arengine.types import VIDEO_TIME_BASE, Frame

if TYPE_CHECKING:
    import av


# Face centre and height in the 512x512 astronaut portrait (from MediaPipe landmarks).
_FACE_CENTRE = (225.0, 125.0)
_FACE_HEIGHT = 106.0


def astronaut_bgr() -> np.ndarray:
    """The astronaut portrait as BGR (bundled with scikit-image, nothing downloads)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


class DemoSource:
    """Deterministic frames of a moving face, ``frame_at(t)`` for any time ``t`` seconds.

    ``face_fraction`` is the face height over the frame height; the motion (pan, zoom,
    tilt) is gentle enough for a tracker in video mode to follow it frame to frame.
    """

    def __init__(self, width: int = 1280, height: int = 720, fps: float = 30.0,
                 face_fraction: float = 0.36, motion: float = 1.0) -> None:
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ValueError(f"demo size must be even and at least 16x16, got {width}x{height}")
        if not 1.0 <= fps <= 120.0:
            raise ValueError(f"demo fps must be between 1 and 120, got {fps}")
        self.width = width
        self.height = height
        self.fps = fps
        self.face_fraction = face_fraction
        self.motion = motion
        self._image = astronaut_bgr()

    def matrix_at(self, t: float) -> np.ndarray:
        """The 2x3 affine map from the portrait to the output frame at time ``t``."""
        m = self.motion
        scale = self.face_fraction * self.height / _FACE_HEIGHT
        scale *= 1.0 + 0.08 * m * math.sin(2 * math.pi * t / 9.0)
        angle = 6.0 * m * math.sin(2 * math.pi * t / 7.0)
        cx = self.width / 2 + 0.06 * m * self.width * math.sin(2 * math.pi * t / 11.0)
        cy = self.height * 0.45 + 0.04 * m * self.height * math.sin(2 * math.pi * t / 13.0)
        mat = cv2.getRotationMatrix2D(_FACE_CENTRE, angle, scale)
        mat[0, 2] += cx - _FACE_CENTRE[0]
        mat[1, 2] += cy - _FACE_CENTRE[1]
        return mat

    def frame_at(self, t: float) -> np.ndarray:
        """The BGR picture at ``t`` seconds."""
        return cv2.warpAffine(self._image, self.matrix_at(t), (self.width, self.height),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)

    def frame(self, index: int) -> Frame:
        """Frame number ``index`` with pts in the 90 kHz video clock."""
        t = index / self.fps
        pts = round(t * VIDEO_TIME_BASE.denominator)
        return Frame(self.frame_at(t), pts, VIDEO_TIME_BASE, index)


class DemoClock:
    """Paces a :class:`DemoSource` in real time; skips frames rather than falling behind."""

    def __init__(self, source: DemoSource) -> None:
        self.source = source
        self._start: float | None = None
        self._index = -1

    async def next(self) -> Frame:
        """Sleep until the next frame is due, then render it (off the event loop)."""
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due_index = int((now - self._start) * self.source.fps)
        index = max(self._index + 1, due_index)
        wait = self._start + index / self.source.fps - now
        if wait > 0:
            await asyncio.sleep(wait)
        self._index = index
        return await asyncio.to_thread(self.source.frame, index)


class DemoTrack:
    """The demo as an aiortc video track (publish it over WHIP without a camera).

    Built lazily so importing this module does not need aiortc.
    """

    def __new__(cls, source: DemoSource | None = None) -> DemoTrack:
        from aiortc import MediaStreamTrack

        class _DemoTrack(MediaStreamTrack):
            kind = "video"

            def __init__(self, source: DemoSource) -> None:
                super().__init__()
                self.clock = DemoClock(source)

            async def recv(self) -> av.VideoFrame:
                return (await self.clock.next()).to_av()

        return _DemoTrack(source or DemoSource())  # type: ignore[return-value]
