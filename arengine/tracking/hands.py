"""Hand tracking with MediaPipe Hands (21 landmarks and handedness per hand)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from arengine.tracking.face import _resize_for_model, landmarks_to_array
from arengine.types import HAND_POINTS, HandLandmarks, Scene


class HandTracker:
    """Finds up to ``max_hands`` hands; ``mode="video"`` follows them between frames.

    Input wider than ``max_input_width`` is downscaled first: the palm detector reads a
    192 px picture, so larger input adds cost and no precision worth having.

    The defaults (the lite landmark model, 640 px input) were measured on the 720p test
    clip: about 18 ms a frame instead of 30 ms for the full model at 960 px, with landmarks
    still within 0.03 of MediaPipe's reference on ``thumbs-up.png`` (the tolerance is 0.05).
    While fewer than ``max_hands`` hands are in view MediaPipe runs its palm detector on
    every frame; ``max_hands=1`` skips that once a hand is found (about 6 ms a frame).
    """

    def __init__(self, mode: Literal["video", "image"] = "video", max_hands: int = 2,
                 model_complexity: int = 0, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, max_input_width: int = 640) -> None:
        import mediapipe as mp

        if mode not in ("video", "image"):
            raise ValueError(f"mode must be 'video' or 'image', not {mode!r}")
        self.mode = mode
        self.max_input_width = max_input_width
        self._hands = mp.solutions.hands.Hands(
            static_image_mode=mode == "image", max_num_hands=max_hands,
            model_complexity=model_complexity,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence)

    def close(self) -> None:
        self._hands.close()

    def __enter__(self) -> HandTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def detect(self, image: np.ndarray) -> HandLandmarks:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a BGR image (H, W, 3), got shape {image.shape}")
        h, w = image.shape[:2]
        rgb, _ = _resize_for_model(image, self.max_input_width)
        result = self._hands.process(rgb)
        hands = result.multi_hand_landmarks or []
        if not hands:
            return HandLandmarks.empty()
        pts = np.empty((len(hands), HAND_POINTS, 3), np.float32)
        for i, hand in enumerate(hands):
            pts[i] = landmarks_to_array(hand)
        pts[:, :, 0] *= w
        pts[:, :, 1] *= h
        pts[:, :, 2] *= w
        labels = tuple(c.classification[0].label for c in result.multi_handedness)
        scores = np.array([c.classification[0].score for c in result.multi_handedness],
                          np.float32)
        return HandLandmarks(pts, labels, scores)

    def track(self, image: np.ndarray, timestamp: float = 0.0, frame_index: int = 0) -> Scene:
        """A :class:`Scene` with the hands of ``image`` (no faces)."""
        return Scene(image.shape[1], image.shape[0], hands=self.detect(image),
                     timestamp=timestamp, frame_index=frame_index)
