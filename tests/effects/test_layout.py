"""Placement keeps panels off faces and hands, and the state clock is deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from arengine.effects.layout import (
    Placer,
    Rect,
    StateClock,
    anchor_rect,
    blocked,
    obstacles,
    reserve,
    ui_scale,
)
from arengine.state import RoomState
from arengine.types import FaceLandmarks, HandLandmarks, Scene


def face_scene(box: tuple[float, float, float, float], w: int = 1280, h: int = 720,
               ts: float = 0.0) -> Scene:
    """A scene with one 'face' whose landmarks span ``box``."""
    x1, y1, x2, y2 = box
    pts = np.zeros((1, 478, 3), np.float32)
    pts[0, :, 0] = np.linspace(x1, x2, 478)
    pts[0, :, 1] = np.linspace(y1, y2, 478)
    faces = FaceLandmarks(pts, pts.copy(), np.ones(1, np.float32), np.zeros(1, np.int64))
    return Scene(w, h, faces=faces, timestamp=ts)


def test_rect_maths() -> None:
    a, b = Rect(0, 0, 10, 10), Rect(5, 5, 10, 10)
    assert a.overlap(b) == 25 and a.intersects(b)
    assert not a.intersects(Rect(10, 0, 5, 5))  # touching edges do not overlap
    assert Rect.from_xyxy([1.4, 2.6, 11.4, 12.6]) == Rect(1, 3, 10, 10)
    assert Rect(64, 36, 128, 72).normalized(1280, 720) == (0.05, 0.05, 0.1, 0.1)


def test_anchors() -> None:
    assert anchor_rect("top-right", 100, 50, 1280, 720, 10) == Rect(1170, 10, 100, 50)
    assert anchor_rect("bottom-left", 100, 50, 1280, 720, 10) == Rect(10, 660, 100, 50)
    assert anchor_rect("left", 100, 50, 1280, 720, 10) == Rect(10, 335, 100, 50)
    with pytest.raises(ValueError, match="unknown anchor"):
        anchor_rect("middle", 1, 1, 10, 10, 0)
    with pytest.raises(ValueError, match="unknown anchor"):
        Placer(["nowhere"])


def test_obstacles_pad_faces_and_hands() -> None:
    scene = face_scene((500, 100, 700, 350))
    hand = np.zeros((1, 21, 3), np.float32)
    hand[0, :, 0] = np.linspace(900, 1000, 21)
    hand[0, :, 1] = np.linspace(200, 300, 21)
    scene = scene.with_hands(HandLandmarks(hand, ("Right",), np.ones(1, np.float32)))
    face, hnd = obstacles(scene)
    assert face.x < 500 and face.x2 > 700 and face.y < 100 - 50 and face.y2 > 350
    assert hnd.x < 900 and hnd.x2 > 1000


def test_placer_avoids_and_sticks() -> None:
    placer = Placer(("top-right", "top-left", "bottom-right"))
    free = placer.place(300, 200, 1280, 720, [])
    assert free.x2 > 1200 and free.y < 30  # first anchor
    # A face under the top-right spot: the panel moves and does not cover it.
    face = Rect(900, 0, 300, 300)
    moved = placer.place(300, 200, 1280, 720, [face])
    assert blocked(moved, [face]) == 0 and moved != free
    # It stays put while that spot stays clear, even if the first anchor frees up.
    assert placer.place(300, 200, 1280, 720, []) == moved
    # Everything blocked: the least-covered spot wins, inside the frame.
    wall = [Rect(0, 0, 1280, 700)]
    least = placer.place(300, 200, 1280, 720, wall)
    assert least.y2 <= 720 and blocked(least, wall) < 300 * 200


def test_reservations_last_one_frame() -> None:
    scene = Scene(1280, 720, timestamp=1.0, frame_index=1)
    reserve(scene, Rect(0, 0, 10, 10))
    assert Rect(0, 0, 10, 10) in obstacles(scene)
    assert obstacles(scene, reserved=False) == []
    later = scene.at(1.04, 2)  # shares extras with the first frame
    assert obstacles(later) == []


def test_state_clock_maps_scene_time_to_room_time() -> None:
    clock = StateClock()
    assert clock.read(5.0) == (None, 5.0)
    clock.set_state(RoomState("r", taken_at=1000.0))
    state, now = clock.read(5.0)
    assert state is not None and now == 1000.0
    assert clock.read(6.5)[1] == 1001.5
    clock.set_state(RoomState("r", taken_at=1001.0))  # older than the running clock
    assert clock.read(7.0)[1] == 1002.0  # never runs backwards
    clock.set_state(RoomState("r", taken_at=1010.0))  # newer: jump ahead
    assert clock.read(7.5)[1] == 1010.0
    assert clock.state is not None and clock.state.taken_at == 1010.0


def test_ui_scale_uses_the_short_side() -> None:
    assert ui_scale(1280, 720) == 1.0
    assert ui_scale(720, 1280) == 1.0
    assert ui_scale(854, 480, 2.0) == pytest.approx(4 / 3)
