"""Hand tracking on real pictures and clips, and the hand shapes effects rely on."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from arengine.tracking import HandTracker, hand_masks, hands_mask

from .conftest import VideoTrack


@pytest.fixture(scope="module")
def thumbs_up(data_dir: Path) -> np.ndarray:
    """The RGBA reference picture, as the BGR the trackers take."""
    raw = cv2.imread(str(data_dir / "mediapipe_samples" / "thumbs-up.png"), cv2.IMREAD_UNCHANGED)
    assert raw is not None and raw.shape[2] == 4
    return cv2.cvtColor(raw, cv2.COLOR_BGRA2BGR)


def test_landmarks_match_reference(thumbs_up: np.ndarray, data_dir: Path) -> None:
    ref = json.loads((data_dir / "mediapipe_samples"
                      / "thumbs-up_expected_hand_landmarks.json").read_text())
    expected = np.array(ref["landmarks"], np.float64)[0]
    with HandTracker("image") as ht:
        hands = ht.detect(thumbs_up)
    assert len(hands) == 1
    h, w = thumbs_up.shape[:2]
    got = hands.points[0, :, :2].astype(np.float64) / (w, h)
    err = np.abs(got - expected[:, :2])
    assert err.max() <= 0.05, err.max()
    assert err.mean() <= 0.02, err.mean()


def test_handedness(load_image) -> None:
    with HandTracker("image") as ht:
        hands = ht.detect(load_image("mediapipe_samples/test_image.jpg"))
    assert hands.handedness == ("Left",)
    assert hands.score[0] > 0.6


def test_hands_in_the_720p_clip_and_their_shapes(face_video_track: VideoTrack) -> None:
    """A hand is in most frames; each hand's box and silhouette cover its 21 landmarks."""
    with_hand = sum(1 for c in face_video_track.hand_counts if c)
    assert with_hand >= 0.8 * len(face_video_track.hand_counts)
    assert len(face_video_track.hands_cover) == with_hand
    assert all(face_video_track.hands_cover)


def test_hands_mask_in_a_box(thumbs_up: np.ndarray) -> None:
    with HandTracker("image") as ht:
        hands = ht.detect(thumbs_up)
    x1, y1, x2, y2 = (int(v) for v in hands.boxes()[0])
    box = (x1 - 20, y1 - 20, x2 + 20, y2 + 20)
    mask = hands_mask(hands, box)
    assert mask.shape == (box[3] - box[1], box[2] - box[0])
    xy = np.round(hands.points[0, :, :2]).astype(int) - (box[0], box[1])
    assert (mask[xy[:, 1], xy[:, 0]] > 0).all()
    full = hand_masks(hands, thumbs_up.shape[1], thumbs_up.shape[0])[0]
    # The box crop of the full-frame silhouette is the same shape.
    crop = full[box[1]:box[3], box[0]:box[2]]
    assert np.mean(np.abs(crop.astype(int) - mask)) < 1.0
    # The silhouette is a hand, not the whole box: well under the box's area.
    assert 0.15 < (mask > 127).mean() < 0.8
