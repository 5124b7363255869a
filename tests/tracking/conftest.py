"""Tracking results over the real 720p face clip, computed once per test session.

Only what the tests need is kept (lip landmarks, ids, counts), not the decoded frames,
so the session does not hold half a gigabyte of pictures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from arengine.tracking import FaceTracker, HandTracker
from arengine.types import LIPS_INNER, LIPS_OUTER

LIP_POINTS = list(LIPS_OUTER + LIPS_INNER)


@dataclass
class VideoTrack:
    """Per-frame tracking of one clip: face counts and ids, lip landmarks, hand counts."""

    fps: float
    face_counts: list[int]
    track_ids: list[tuple[int, ...]]
    raw_lips: np.ndarray  # (frames, 40, 2) of the first face; NaN where none
    smooth_lips: np.ndarray
    hand_counts: list[int]
    hands_cover: list[bool]  # per frame with hands: every landmark inside its mask and box


def decode_frames(path: Path):
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        for f in c.decode(stream):
            yield f.to_ndarray(format="bgr24")


def track_video(path: Path, hands: bool = True) -> VideoTrack:
    from arengine.tracking.geometry import hand_masks

    with av.open(str(path)) as c:
        fps = float(c.streams.video[0].average_rate or 25)
    counts, ids, raw, smooth, hand_counts, cover = [], [], [], [], [], []
    ht = HandTracker("video") if hands else None
    with FaceTracker("video") as ft:
        for i, image in enumerate(decode_frames(path)):
            faces = ft.detect(image, i / fps)
            counts.append(len(faces))
            ids.append(tuple(int(t) for t in faces.track_id))
            nan = np.full((len(LIP_POINTS), 2), np.nan)
            raw.append(faces.raw[0, LIP_POINTS, :2] if len(faces) else nan)
            smooth.append(faces.points[0, LIP_POINTS, :2] if len(faces) else nan)
            if ht is not None:
                h = ht.detect(image)
                hand_counts.append(len(h))
                if len(h):
                    masks = hand_masks(h, image.shape[1], image.shape[0])
                    ok = True
                    for m, p, b in zip(masks, h.points, h.boxes(), strict=True):
                        xy = np.clip(np.round(p[:, :2]).astype(int), 0,
                                     [image.shape[1] - 1, image.shape[0] - 1])
                        ok &= bool((m[xy[:, 1], xy[:, 0]] > 0).all())
                        ok &= bool((p[:, 0] >= b[0]).all() and (p[:, 0] <= b[2]).all()
                                   and (p[:, 1] >= b[1]).all() and (p[:, 1] <= b[3]).all())
                    cover.append(ok)
    if ht is not None:
        ht.close()
    return VideoTrack(fps, counts, ids, np.array(raw), np.array(smooth), hand_counts, cover)


@pytest.fixture(scope="session")
def face_video_track(face_video: Path) -> VideoTrack:
    return track_video(face_video)


@pytest.fixture(scope="session")
def hand_video(data_dir: Path) -> Path:
    return data_dir / "mediapipe_samples" / "hand_landmarker_test_video.mp4"
