"""Core data types that flow through arengine.

Every stage speaks in these few types: a :class:`Frame` (pixels plus timing), the
landmark containers :class:`FaceLandmarks` and :class:`HandLandmarks`, the :class:`Scene`
that says what was tracked in a frame, and :class:`StageTiming` records collected by
observers. Landmark containers are array-backed (one numpy array for all faces) so effects
can work on every face at once, in the spirit of supervision's ``Detections``.

Images are BGR ``uint8`` arrays of shape (H, W, 3), OpenCV's convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import av

# RTP's video clock (RFC 3551): every video pts in the engine counts 1/90000 s.
VIDEO_TIME_BASE = Fraction(1, 90000)

FACE_POINTS = 478
HAND_POINTS = 21

# MediaPipe FaceMesh indices, ordered around each contour.
LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291,
              375, 321, 405, 314, 17, 84, 181, 91, 146)
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308,
              324, 318, 402, 317, 14, 87, 178, 88, 95)
UPPER_LIP_INNER_MID = 13
LOWER_LIP_INNER_MID = 14
MOUTH_LEFT = 61
MOUTH_RIGHT = 291
FOREHEAD = 10
CHIN = 152
EYE_OUTER_RIGHT = 33  # subject's right, image left
EYE_OUTER_LEFT = 263


@dataclass
class Frame:
    """One video picture with the timing it came with.

    ``pts`` and ``time_base`` are carried unchanged from the source so that the output
    stream keeps the input's clock (aiortc and PyAV both rely on them).
    """

    image: np.ndarray
    pts: int | None = None
    time_base: Fraction | None = None
    index: int = 0

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def time(self) -> float | None:
        """Presentation time in seconds, when the source gave one."""
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)

    @classmethod
    def from_ndarray(cls, image: np.ndarray, pts: int | None = None,
                     time_base: Fraction | None = None, index: int = 0) -> Frame:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 image (H, W, 3), got {image.shape} "
                             f"{image.dtype}")
        return cls(np.ascontiguousarray(image), pts, time_base, index)

    def to_ndarray(self) -> np.ndarray:
        return self.image

    @classmethod
    def from_av(cls, frame: av.VideoFrame, index: int = 0) -> Frame:
        image = frame.to_ndarray(format="bgr24")
        tb = Fraction(frame.time_base) if frame.time_base is not None else None
        return cls(image, frame.pts, tb, index)

    def to_av(self) -> av.VideoFrame:
        import av

        out = av.VideoFrame.from_ndarray(self.image, format="bgr24")
        out.pts = self.pts
        if self.time_base is not None:
            out.time_base = self.time_base
        return out

    def replace(self, image: np.ndarray) -> Frame:
        """The same frame (timing, index) with other pixels."""
        return Frame(image, self.pts, self.time_base, self.index)


@dataclass(frozen=True)
class FaceLandmarks:
    """All faces tracked in one frame.

    ``points`` holds the (smoothed) landmarks in pixels, shape (n, 478, 3); z is in the
    same pixel scale as x (MediaPipe's convention). ``raw`` holds the unsmoothed ones.
    ``track_id`` stays the same for a face while it is tracked from frame to frame.
    """

    points: np.ndarray
    raw: np.ndarray
    confidence: np.ndarray
    track_id: np.ndarray

    @classmethod
    def empty(cls) -> FaceLandmarks:
        z = np.zeros((0, FACE_POINTS, 3), np.float32)
        return cls(z, z.copy(), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def boxes(self) -> np.ndarray:
        """Axis-aligned face boxes, (n, 4) as x1, y1, x2, y2 in pixels."""
        if len(self) == 0:
            return np.zeros((0, 4), np.float32)
        xy = self.points[:, :, :2]
        return np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1)

    def lips_outer(self) -> np.ndarray:
        """Outer lip contour per face, (n, 20, 2) pixels."""
        return self.points[:, LIPS_OUTER, :2]

    def lips_inner(self) -> np.ndarray:
        """Inner lip contour (mouth opening) per face, (n, 20, 2) pixels."""
        return self.points[:, LIPS_INNER, :2]

    def mouth_openness(self) -> np.ndarray:
        """Inner-lip gap over mouth width, per face: 0 closed, ~0.5+ wide open."""
        if len(self) == 0:
            return np.zeros(0, np.float32)
        p = self.points
        gap = np.linalg.norm(p[:, UPPER_LIP_INNER_MID, :2] - p[:, LOWER_LIP_INNER_MID, :2],
                             axis=1)
        width = np.linalg.norm(p[:, MOUTH_LEFT, :2] - p[:, MOUTH_RIGHT, :2], axis=1)
        return (gap / np.maximum(width, 1e-6)).astype(np.float32)

    def head_pose(self) -> np.ndarray:
        """Yaw, pitch and roll in degrees per face, (n, 3).

        Built from the eye line and the forehead-chin line of the 3D landmarks; positive
        yaw turns toward image right, positive pitch looks down, positive roll tilts
        clockwise in the image.
        """
        out = np.zeros((len(self), 3), np.float32)
        for i, p in enumerate(self.points.astype(np.float64)):
            x_axis = p[EYE_OUTER_LEFT] - p[EYE_OUTER_RIGHT]
            y_axis = p[CHIN] - p[FOREHEAD]
            x_axis /= np.linalg.norm(x_axis) + 1e-9
            y_axis -= x_axis * np.dot(y_axis, x_axis)
            y_axis /= np.linalg.norm(y_axis) + 1e-9
            z_axis = np.cross(x_axis, y_axis)
            yaw = np.degrees(np.arcsin(np.clip(-z_axis[0], -1, 1)))
            pitch = np.degrees(np.arctan2(-z_axis[1], z_axis[2]))
            roll = np.degrees(np.arctan2(x_axis[1], x_axis[0]))
            out[i] = (yaw, pitch, roll)
        return out

    def select(self, index: np.ndarray | list[int]) -> FaceLandmarks:
        return FaceLandmarks(self.points[index], self.raw[index], self.confidence[index],
                             self.track_id[index])


@dataclass(frozen=True)
class HandLandmarks:
    """All hands tracked in one frame: points (n, 21, 3) in pixels, handedness and score.

    Handedness is MediaPipe's label ("Left"/"Right"), which assumes a mirrored
    (selfie) picture.
    """

    points: np.ndarray
    handedness: tuple[str, ...]
    score: np.ndarray

    @classmethod
    def empty(cls) -> HandLandmarks:
        return cls(np.zeros((0, HAND_POINTS, 3), np.float32), (), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def boxes(self) -> np.ndarray:
        """Hand boxes, (n, 4) as x1, y1, x2, y2 in pixels."""
        if len(self) == 0:
            return np.zeros((0, 4), np.float32)
        xy = self.points[:, :, :2]
        return np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1)


@dataclass(frozen=True)
class Scene:
    """What was tracked in one frame, and when: the input every effect reads.

    ``timestamp`` (seconds) drives every animation and cross-fade, so an effect given the
    same frames and scenes always draws the same pictures.
    """

    width: int
    height: int
    faces: FaceLandmarks = field(default_factory=FaceLandmarks.empty)
    hands: HandLandmarks = field(default_factory=HandLandmarks.empty)
    timestamp: float = 0.0
    frame_index: int = 0
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls, width: int, height: int, timestamp: float = 0.0,
              frame_index: int = 0) -> Scene:
        return cls(width, height, timestamp=timestamp, frame_index=frame_index)

    def with_hands(self, hands: HandLandmarks) -> Scene:
        return Scene(self.width, self.height, self.faces, hands, self.timestamp,
                     self.frame_index, self.extras)

    def with_faces(self, faces: FaceLandmarks) -> Scene:
        return Scene(self.width, self.height, faces, self.hands, self.timestamp,
                     self.frame_index, self.extras)

    def at(self, timestamp: float, frame_index: int | None = None) -> Scene:
        """The same tracking results stamped for another frame (reused landmarks).

        ``extras`` holds per-frame notes (e.g. where layers drew), so the new frame starts
        with an empty one.
        """
        return Scene(self.width, self.height, self.faces, self.hands, timestamp,
                     self.frame_index if frame_index is None else frame_index)


@dataclass(frozen=True)
class StageTiming:
    """How long one stage took on one frame; collected by observers, never by the stage."""

    frame_index: int
    stage: str
    start: float
    end: float

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start) * 1000.0
