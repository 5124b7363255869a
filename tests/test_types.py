"""Core types: conversions keep timing, landmark containers give the right shapes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from arengine.types import (
    FACE_POINTS,
    LIPS_INNER,
    LIPS_OUTER,
    FaceLandmarks,
    Frame,
    HandLandmarks,
    Scene,
    StageTiming,
)


def test_frame_av_round_trip_keeps_pixels_and_timing() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frame = Frame.from_ndarray(img, pts=3003, time_base=Fraction(1, 90000), index=7)
    vf = frame.to_av()
    assert vf.pts == 3003 and vf.time_base == Fraction(1, 90000)
    back = Frame.from_av(vf, index=7)
    assert np.array_equal(back.image, img)
    assert back.pts == 3003 and back.time_base == Fraction(1, 90000)
    assert back.time == pytest.approx(3003 / 90000)
    assert (back.width, back.height) == (64, 48)


def test_frame_rejects_non_bgr_arrays() -> None:
    with pytest.raises(ValueError, match="BGR uint8"):
        Frame.from_ndarray(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="BGR uint8"):
        Frame.from_ndarray(np.zeros((4, 4, 3), np.float32))


def test_frame_without_clock_has_no_time() -> None:
    assert Frame(np.zeros((2, 2, 3), np.uint8)).time is None


def test_empty_containers() -> None:
    faces, hands = FaceLandmarks.empty(), HandLandmarks.empty()
    assert len(faces) == 0 and faces.boxes().shape == (0, 4)
    assert faces.mouth_openness().shape == (0,) and faces.head_pose().shape == (0, 3)
    assert len(hands) == 0 and hands.boxes().shape == (0, 4)
    scene = Scene.empty(640, 480, timestamp=1.5, frame_index=3)
    assert (scene.width, scene.height, len(scene.faces), len(scene.hands)) == (640, 480, 0, 0)


def _face(offset: float) -> np.ndarray:
    rng = np.random.default_rng(1)
    p = rng.uniform(100, 200, (FACE_POINTS, 3)).astype(np.float32)
    p[:, :2] += offset
    return p


def test_face_geometry_shapes_and_boxes() -> None:
    pts = np.stack([_face(0), _face(300)])
    faces = FaceLandmarks(pts, pts.copy(), np.ones(2, np.float32), np.array([4, 9]))
    boxes = faces.boxes()
    assert boxes.shape == (2, 4)
    assert np.allclose(boxes[1, :2] - boxes[0, :2], 300)
    assert faces.lips_outer().shape == (2, len(LIPS_OUTER), 2)
    assert faces.lips_inner().shape == (2, len(LIPS_INNER), 2)
    one = faces.select([1])
    assert len(one) == 1 and one.track_id[0] == 9


def test_scene_restamp_keeps_tracking_results() -> None:
    pts = _face(0)[None]
    faces = FaceLandmarks(pts, pts, np.ones(1, np.float32), np.array([0]))
    scene = Scene(320, 240, faces, timestamp=1.0, frame_index=10)
    later = scene.at(1.5, 12)
    assert later.faces is faces and later.timestamp == 1.5 and later.frame_index == 12
    scene.extras["keep_out"] = [(0, 0, 10, 10)]
    assert scene.at(2.0).extras == {}  # per-frame notes do not leak into the next frame
    assert scene.with_hands(HandLandmarks.empty()).faces is faces


def test_stage_timing_duration() -> None:
    assert StageTiming(0, "track", 1.0, 1.0125).duration_ms == pytest.approx(12.5)


def test_frame_from_real_av_stream(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            img = np.full((48, 64, 3), i * 40, np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    with av.open(str(path)) as inp:
        frames = [Frame.from_av(f, i) for i, f in enumerate(inp.decode(video=0))]
    assert len(frames) == 5
    assert [f.time for f in frames] == sorted(f.time for f in frames if f.time is not None)
