"""Masks and shapes derived from landmarks: lip polygons and hand silhouettes.

Effects use these to decide which pixels they may touch, so they are computed in the
region of interest only, never over the whole frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from arengine.types import HandLandmarks

# Bones of the MediaPipe hand skeleton, used to draw a silhouette.
HAND_BONES = (
    (0, 1), (1, 2), (2, 3), (3, 4),
    (0, 5), (5, 6), (6, 7), (7, 8),
    (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16),
    (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)
PALM = (0, 1, 5, 9, 13, 17)


def hand_scale(points: np.ndarray) -> float:
    """A hand's size in pixels: wrist to middle-finger knuckle."""
    return float(np.linalg.norm(points[9, :2] - points[0, :2]))


def fill_hand_silhouette(mask: np.ndarray, points: np.ndarray, offset: tuple[int, int] = (0, 0),
                         margin: float = 1.0) -> None:
    """Paint one hand's silhouette (palm plus fingers as thick strokes) into ``mask``.

    ``offset`` is the (x, y) of the mask's top-left corner in frame pixels, so the mask can
    be a small region of interest. ``margin`` scales finger thickness.
    """
    xy: np.ndarray = points[:, :2] - np.asarray(offset, np.float32)
    scale = hand_scale(points)
    thickness = max(3, round(scale * 0.38 * margin))
    pts = np.round(xy * 4).astype(np.int32)  # 2 bits of sub-pixel precision
    cv2.fillConvexPoly(mask, cv2.convexHull(pts[list(PALM)]), 255, cv2.LINE_AA, shift=2)
    for a, b in HAND_BONES:
        cv2.line(mask, tuple(pts[a]), tuple(pts[b]), 255, thickness, cv2.LINE_AA, shift=2)
    for tip in (4, 8, 12, 16, 20):
        cv2.circle(mask, tuple(pts[tip]), thickness * 2, 255, -1, cv2.LINE_AA, shift=2)


def hand_masks(hands: HandLandmarks, width: int, height: int) -> np.ndarray:
    """One full-frame uint8 silhouette mask per hand, (n, H, W)."""
    out = np.zeros((len(hands), height, width), np.uint8)
    for i, p in enumerate(hands.points):
        fill_hand_silhouette(out[i], p)
    return out


def hands_mask(hands: HandLandmarks, box: tuple[int, int, int, int],
               margin: float = 1.0) -> np.ndarray:
    """Union of all hand silhouettes inside ``box`` (x1, y1, x2, y2), as a uint8 mask."""
    x1, y1, x2, y2 = box
    mask = np.zeros((max(0, y2 - y1), max(0, x2 - x1)), np.uint8)
    for p in hands.points:
        hb = p[:, :2]
        if hb[:, 0].max() < x1 - 200 or hb[:, 0].min() > x2 + 200:
            continue
        if hb[:, 1].max() < y1 - 200 or hb[:, 1].min() > y2 + 200:
            continue
        fill_hand_silhouette(mask, p, (x1, y1), margin)
    return mask


def polygon_mask(polygon: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Anti-aliased filled polygon inside ``box``, as uint8 0..255."""
    x1, y1, x2, y2 = box
    mask = np.zeros((y2 - y1, x2 - x1), np.uint8)
    pts = np.round((polygon[:, :2] - (x1, y1)) * 4).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA, shift=2)
    return mask


def clip_box(box: np.ndarray | tuple[float, float, float, float], width: int, height: int,
             pad: float = 0.0) -> tuple[int, int, int, int]:
    """Integer box grown by ``pad`` pixels and clipped to the frame."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return (max(0, int(np.floor(x1 - pad))), max(0, int(np.floor(y1 - pad))),
            min(width, int(np.ceil(x2 + pad))), min(height, int(np.ceil(y2 + pad))))
