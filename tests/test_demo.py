"""The demo source: a real face that moves, the same pictures for the same times."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from arengine.demo import DemoClock, DemoSource, DemoTrack
from arengine.tracking import FaceTracker


def test_frames_are_a_function_of_time() -> None:
    a, b = DemoSource(), DemoSource()
    assert a.frame_at(3.25).shape == (720, 1280, 3)
    assert np.array_equal(a.frame_at(3.25), b.frame_at(3.25))
    assert not np.array_equal(a.frame_at(0.0), a.frame_at(1.0))  # it moves


def test_frame_has_pts_in_90khz() -> None:
    f = DemoSource(fps=30).frame(45)
    assert f.pts == 135000 and f.time_base is not None and f.time == pytest.approx(1.5)


def test_the_face_is_tracked_and_moves() -> None:
    src = DemoSource(640, 360)
    centres = []
    with FaceTracker("image", max_faces=1) as ft:
        for t in (0.0, 2.0, 4.0, 6.0):
            faces = ft.detect(src.frame_at(t))
            assert len(faces) == 1, t
            x1, y1, x2, y2 = faces.boxes()[0]
            assert 0.25 < (y2 - y1) / 360 < 0.6  # a large face, as a host's would be
            centres.append(((x1 + x2) / 2, (y1 + y2) / 2))
    spread = np.ptp(np.array(centres), axis=0)
    assert spread.max() > 10  # gentle pan, but a pan


@pytest.mark.parametrize("size", [(15, 16), (640, 361), (8, 8)])
def test_bad_sizes_are_rejected(size) -> None:
    with pytest.raises(ValueError, match="even"):
        DemoSource(*size)


def test_track_paces_in_real_time() -> None:
    async def main() -> list[int]:
        track = DemoTrack(DemoSource(320, 180, fps=20))
        frames = [await track.recv() for _ in range(6)]
        return [f.pts for f in frames]

    pts = asyncio.run(main())
    assert pts == sorted(pts) and pts[1] - pts[0] == 4500


def test_clock_skips_rather_than_lags() -> None:
    async def main() -> list[int]:
        clock = DemoClock(DemoSource(320, 180, fps=50))
        first = await clock.next()
        await asyncio.sleep(0.2)  # a slow consumer
        later = await clock.next()
        return [first.index, later.index]

    first, later = asyncio.run(main())
    assert later - first >= 8
