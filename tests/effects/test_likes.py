"""Like hearts (deterministic, rising, fading) and the like-goal bar."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from arengine.effects import create_effect
from arengine.effects.layout import Rect
from arengine.effects.likes import HEART_COLOURS, Likes, heart_mask
from arengine.effects.vote_sticker import WINNER
from arengine.state import LikeGoalView, RoomState
from arengine.tracking import FaceTracker
from arengine.types import Scene


def draw(layer: Likes, t: float, w: int = 1280, h: int = 720,
         scene: Scene | None = None) -> np.ndarray:
    frame = np.full((h, w, 3), 40, np.uint8)
    sc = scene.at(t, int(t * 25)) if scene is not None else Scene.empty(w, h, t, int(t * 25))
    return layer.apply(frame, sc)


def test_registered_and_validates() -> None:
    assert isinstance(create_effect("likes"), Likes)
    with pytest.raises(ValueError, match="life_s"):
        Likes(life_s=0)


def test_heart_shape() -> None:
    m = heart_mask(40)
    assert m.shape == (40, 40)
    assert m[28, 20] == 1.0  # body
    assert m[2, 20] < 0.5  # the notch between the lobes
    assert m[38, 2] == 0.0  # below the lobes, beside the tip
    assert np.allclose(m, m[:, ::-1], atol=1e-6)  # symmetric


def test_one_heart_per_recent_like_and_they_expire() -> None:
    layer = Likes(show_goal=False, life_s=2.5)
    likes = (999.0, 999.5, 999.9, 1000.0)  # 999.0 is too old at room time 1001.6
    layer.set_state(RoomState("r", taken_at=1001.6, recent_likes=likes))
    draw(layer, 10.0)
    assert [t for t, _, _ in layer.last_hearts] == [999.5, 999.9, 1000.0]
    draw(layer, 13.0)
    assert layer.last_hearts == []
    capped = Likes(show_goal=False, max_hearts=5)
    capped.set_state(RoomState("r", taken_at=1000.0,
                               recent_likes=tuple(999.0 + i * 0.01 for i in range(50))))
    draw(capped, 1.0)
    assert len(capped.last_hearts) == 5


def test_hearts_rise_and_are_deterministic() -> None:
    def run() -> tuple[list[np.ndarray], list[int]]:
        layer = Likes(show_goal=False)
        layer.set_state(RoomState("r", taken_at=1000.0, recent_likes=(1000.0, 1000.0)))
        frames, ys = [], []
        for i in range(8):
            frames.append(draw(layer, 5.0 + i * 0.2))
            ys.append(layer.last_hearts[0][2])
        return frames, ys

    (fa, ya), (fb, yb) = run(), run()
    for a, b in zip(fa, fb, strict=True):
        np.testing.assert_array_equal(a, b)
    assert ya == yb and all(y2 < y1 for y1, y2 in pairwise(ya[1:]))
    layer = Likes(show_goal=False)
    p1, p2 = layer.heart_params(1000.0, 0), layer.heart_params(1000.0, 1)
    assert p1 != p2  # two likes at the same instant do not overlap exactly


def goal_fill(layer: Likes, frame: np.ndarray, colour: tuple[int, int, int]) -> tuple[int, int]:
    """Pixels of the bar's middle row in the fill colour, and the track length."""
    bar = layer.last_goal_bar
    assert bar is not None
    row = frame[bar.y + bar.h // 2, bar.x:bar.x2]
    return int((row == colour).all(axis=1).sum()), bar.w


def test_goal_bar_follows_the_count_and_celebrates() -> None:
    layer = Likes(hearts=False)
    layer.set_state(RoomState("r", taken_at=1000.0,
                              like_goal=LikeGoalView(400, 100, "Goal reached! 10% off")))
    draw(layer, 1.0)
    quarter, track = goal_fill(layer, draw(layer, 1.5), HEART_COLOURS[0])
    assert quarter == pytest.approx(track / 4, abs=1)
    layer.set_state(RoomState("r", taken_at=1001.0,
                              like_goal=LikeGoalView(400, 300, "Goal reached! 10% off")))
    draw(layer, 2.0)
    three_q, _ = goal_fill(layer, draw(layer, 2.5), HEART_COLOURS[0])
    assert three_q == pytest.approx(3 * quarter, rel=0.03)
    before = draw(layer, 2.6)
    layer.set_state(RoomState("r", taken_at=1002.0, like_goal=LikeGoalView(
        400, 400, "Goal reached! 10% off", reached=True)))
    draw(layer, 3.0)
    after = draw(layer, 3.5)
    full, _ = goal_fill(layer, after, WINNER)
    assert full == track  # the whole track, in gold
    r = layer.last_goal_rect
    assert r is not None
    assert not np.array_equal(before[r.y:r.y2, r.x:r.x2], after[r.y:r.y2, r.x:r.x2])


def test_goal_avoids_faces_on_real_pictures(load_image) -> None:
    with FaceTracker(mode="image") as ft:
        for name in ("mediapipe_samples/business-person.png", "faces/obama-720p.jpg",
                     "faces/two_people.jpg"):
            img = load_image(name)
            scene = ft.track(img, 0.0)
            faces = [Rect.from_xyxy(b) for b in scene.faces.boxes()]
            assert faces
            layer = Likes()
            layer.set_state(RoomState("r", taken_at=1000.0,
                                      like_goal=LikeGoalView(500, 321, "Thanks!"),
                                      recent_likes=(999.5, 999.8)))
            layer.apply(img.copy(), scene.at(1.0, 1))
            assert layer.last_goal_rect is not None
            assert all(not layer.last_goal_rect.intersects(f) for f in faces), name
