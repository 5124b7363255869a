"""Landmark-derived shapes: clipped boxes and anti-aliased polygons."""

from __future__ import annotations

import numpy as np

from arengine.tracking.geometry import clip_box, hand_scale, polygon_mask


def test_clip_box_pads_and_clips() -> None:
    assert clip_box((10.2, 20.7, 30.1, 40.0), 100, 100, pad=5) == (5, 15, 36, 45)
    assert clip_box((-10, -10, 500, 500), 64, 48) == (0, 0, 64, 48)


def test_polygon_mask_fills_inside_only() -> None:
    square = np.array([[10, 10], [30, 10], [30, 30], [10, 30]], np.float32)
    mask = polygon_mask(square, (0, 0, 40, 40))
    assert mask.shape == (40, 40)
    assert mask[20, 20] == 255 and mask[5, 5] == 0 and mask[35, 35] == 0
    assert abs((mask > 127).sum() - 400) < 45  # area of the 20x20 square
    # In a box that starts elsewhere, the same polygon lands at the same frame pixels.
    sub = polygon_mask(square, (5, 5, 40, 40))
    assert sub[15, 15] == 255 and sub[0, 0] == 0


def test_hand_scale_is_wrist_to_middle_knuckle() -> None:
    pts = np.zeros((21, 3), np.float32)
    pts[9, :2] = (30, 40)
    assert hand_scale(pts) == 50
