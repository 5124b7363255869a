"""Face and hand tracking: MediaPipe landmarks in pixels, smoothed, with derived shapes."""

from __future__ import annotations

import numpy as np

from arengine.tracking.face import FaceTracker, Mode
from arengine.tracking.geometry import hand_masks, hands_mask, polygon_mask
from arengine.tracking.hands import HandTracker
from arengine.tracking.smoothing import (
    DEFAULT_SMOOTHING,
    JitterMeter,
    OneEuroConfig,
    OneEuroFilter,
)
from arengine.types import Scene

__all__ = ["FaceTracker", "HandTracker", "JitterMeter", "OneEuroConfig", "OneEuroFilter",
           "Tracker", "hand_masks", "hands_mask", "polygon_mask"]


class Tracker:
    """Face and hand tracking together: one call, one :class:`Scene`."""

    def __init__(self, mode: Mode = "video", max_faces: int = 4, hands: bool = True,
                 smoothing: OneEuroConfig | None = DEFAULT_SMOOTHING,
                 max_hands: int = 2) -> None:
        self.faces = FaceTracker(mode, max_faces, smoothing)
        self.hands = HandTracker(mode, max_hands) if hands else None

    def track(self, image: np.ndarray, timestamp: float | None = None,
              frame_index: int = 0) -> Scene:
        scene = self.faces.track(image, timestamp, frame_index)
        if self.hands is not None:
            scene = scene.with_hands(self.hands.detect(image))
        return scene

    def close(self) -> None:
        self.faces.close()
        if self.hands is not None:
            self.hands.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
