"""Face tracking with MediaPipe FaceMesh (478 landmarks with irises)."""

from __future__ import annotations

import time
from typing import Any, Literal

import cv2
import numpy as np

from arengine.tracking.smoothing import (
    DEFAULT_SMOOTHING,
    MOUTH_SMOOTHING,
    LandmarkSmoother,
    OneEuroConfig,
)
from arengine.types import FACE_POINTS, FaceLandmarks, Scene

Mode = Literal["video", "image"]


def landmarks_to_array(landmarks: Any) -> np.ndarray:
    """A MediaPipe ``NormalizedLandmarkList`` as an (n, 3) float32 array of x, y, z.

    Reading 478 protobuf messages one attribute at a time costs 0.5-0.9 ms a face, a tenth
    of the whole tracking budget; the serialized list is a fixed 17-byte record per point
    (tag, length, three tagged little-endian floats) when only x, y and z are set, which
    numpy reads in place. Any other layout falls back to the attribute loop.
    """
    data = landmarks.SerializeToString()
    n = len(landmarks.landmark)
    if n and len(data) == 17 * n:
        rec = np.frombuffer(data, np.uint8).reshape(n, 17)
        if ((rec[:, 0] == 0x0A) & (rec[:, 1] == 15) & (rec[:, 2] == 0x0D)
                & (rec[:, 7] == 0x15) & (rec[:, 12] == 0x1D)).all():
            floats = np.ascontiguousarray(rec[:, [3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16]])
            return floats.view("<f4").astype(np.float32).reshape(n, 3)
    return np.array([(p.x, p.y, p.z) for p in landmarks.landmark], np.float32).reshape(n, 3)


def _resize_rgb(rgb: np.ndarray, max_width: int) -> tuple[np.ndarray, float]:
    h, w = rgb.shape[:2]
    if w <= max_width:
        return rgb, 1.0
    s = max_width / w
    return cv2.resize(rgb, (max_width, round(h * s)), interpolation=cv2.INTER_AREA), 1.0 / s


def _resize_for_model(image: np.ndarray, max_width: int) -> tuple[np.ndarray, float]:
    """RGB copy of ``image`` no wider than ``max_width``, and the scale back to the input.

    The landmark models read 192-256 px crops, so feeding them a 4K frame only costs time.
    """
    h, w = image.shape[:2]
    if w > max_width:
        s = max_width / w
        small = cv2.resize(image, (max_width, round(h * s)), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_BGR2RGB), 1.0 / s
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), 1.0


class FaceTracker:
    """Finds and follows up to ``max_faces`` faces.

    ``mode="video"`` tracks between frames (landmarks of the last frame seed the next, so
    only the first frame pays for detection); ``mode="image"`` detects afresh each call.
    Each face keeps a track id while it stays in view, and its landmarks are smoothed by a
    One Euro filter that restarts when the face is lost; the lips have their own, faster
    settings (``mouth_smoothing``; None smooths them like the rest of the face). Pass
    ``smoothing=None`` for raw landmarks only.

    ``min_detection_confidence`` defaults to 0.7, not MediaPipe's 0.5: an open palm scores
    0.50-0.60 with the face detector (and then gets a face mesh drawn on it), while real
    faces in the test pictures, small or partly covered ones included, score 0.86 or more.

    MediaPipe runs its face detector on every frame while fewer than ``max_num_faces``
    faces are tracked, which with ``max_faces=4`` and one host on camera is every frame
    (about 2.5 ms of 8 at 720p). So in video mode, once the face count has held for a few
    frames, tracking moves to a graph sized for exactly those faces, which detects only
    when one is lost, and a lone detector pass every ``search_interval`` frames looks for
    newcomers (a new face then appears within that many frames).
    """

    def __init__(self, mode: Mode = "video", max_faces: int = 4,
                 smoothing: OneEuroConfig | None = DEFAULT_SMOOTHING,
                 min_detection_confidence: float = 0.7,
                 min_tracking_confidence: float = 0.5,
                 max_input_width: int = 1280, search_interval: int = 12,
                 mouth_smoothing: OneEuroConfig | None = MOUTH_SMOOTHING) -> None:

        if mode not in ("video", "image"):
            raise ValueError(f"mode must be 'video' or 'image', not {mode!r}")
        if not 1 <= max_faces <= 16:
            raise ValueError("max_faces must be between 1 and 16")
        self.mode = mode
        self.max_faces = max_faces
        self.smoothing = smoothing
        self.mouth_smoothing = mouth_smoothing
        self.min_tracking_confidence = min_tracking_confidence
        self.max_input_width = max_input_width
        if search_interval < 1:
            raise ValueError("search_interval must be >= 1")
        self.search_interval = search_interval
        self.min_detection_confidence = min_detection_confidence
        self._mesh = self._new_mesh(max_faces)
        self._sized: dict[int, Any] = {}  # face count -> graph that never searches
        self._active = self._mesh
        self._active_n = max_faces
        self._steady = 0  # frames the face count has held on the searching graph
        self._since_search = 0
        self._detector: Any = None
        self._filters: dict[int, LandmarkSmoother] = {}
        self._scores: dict[int, float] = {}  # track id -> face detector score
        self._detections: list[tuple[float, float, float]] | None = None  # this frame's
        self._last: dict[int, np.ndarray] = {}  # track id -> face centre and size
        self._next_id = 0
        self._t0 = time.monotonic()

    def _new_mesh(self, faces: int) -> Any:
        import mediapipe as mp

        return mp.solutions.face_mesh.FaceMesh(
            static_image_mode=self.mode == "image", max_num_faces=faces,
            refine_landmarks=True, min_detection_confidence=self.min_detection_confidence,
            min_tracking_confidence=self.min_tracking_confidence)

    @property
    def searching(self) -> bool:
        """True while every frame is searched for faces (image mode, or a count changed)."""
        return self._active is self._mesh

    def close(self) -> None:
        self._mesh.close()
        for mesh in self._sized.values():
            mesh.close()
        if self._detector is not None:
            self._detector.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self) -> None:
        """Forget every track (and its filter), e.g. after a scene cut or a new source."""
        self._filters.clear()
        self._scores.clear()
        self._last.clear()

    def detect(self, image: np.ndarray, timestamp: float | None = None) -> FaceLandmarks:
        """Landmarks of the faces in a BGR image, in pixels."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a BGR image (H, W, 3), got shape {image.shape}")
        h, w = image.shape[:2]
        rgb, back = _resize_for_model(image, self.max_input_width)
        self._detections = None
        faces = self._process(rgb)
        if not faces:
            self.reset()
            return FaceLandmarks.empty()
        raw = np.empty((len(faces), FACE_POINTS, 3), np.float32)
        for i, face in enumerate(faces):
            raw[i] = landmarks_to_array(face)
        raw[:, :, 0] *= w
        raw[:, :, 1] *= h
        raw[:, :, 2] *= w
        ids = self._assign_ids(raw)
        t = time.monotonic() - self._t0 if timestamp is None else timestamp
        smooth = raw.copy()
        if self.smoothing is not None and self.mode == "video":
            for i, tid in enumerate(ids):
                filt = self._filters.get(int(tid))
                if filt is None:
                    filt = self._filters[int(tid)] = LandmarkSmoother(self.smoothing,
                                                                      self.mouth_smoothing)
                smooth[i] = filt(raw[i], t)
        del back  # landmarks are normalised, so the model's input scale needs no undoing
        return FaceLandmarks(smooth, raw, self._confidence(rgb, raw, ids, w, h), ids)

    def _confidence(self, rgb: np.ndarray, raw: np.ndarray, ids: np.ndarray, w: int,
                    h: int) -> np.ndarray:
        """Per-face score of MediaPipe's face detector (FaceMesh itself reports none).

        The detector runs when a track has no score yet (a new face, or every still in
        image mode) and whenever the newcomer search ran it anyway; a track keeps its last
        score in between, so steady video tracking pays nothing for it. A face the detector
        misses (e.g. half covered by a hand) gets the tracking threshold it passed.
        """
        if self._detections is None and any(int(t) not in self._scores for t in ids):
            self._detections = self._detect_faces(rgb)
        if self._detections is not None:
            for i, tid in enumerate(ids):
                x1, y1 = raw[i, :, 0].min() / w, raw[i, :, 1].min() / h
                x2, y2 = raw[i, :, 0].max() / w, raw[i, :, 1].max() / h
                inside = [sc for cx, cy, sc in self._detections
                          if x1 <= cx <= x2 and y1 <= cy <= y2]
                if inside:
                    self._scores[int(tid)] = max(inside)
        floor = self.min_tracking_confidence
        return np.array([self._scores.get(int(t), floor) for t in ids], np.float32)

    def _detect_faces(self, rgb: np.ndarray) -> list[tuple[float, float, float]]:
        """Face detector boxes as (centre x, centre y, score), normalised to the frame."""
        import mediapipe as mp

        if self._detector is None:
            self._detector = mp.solutions.face_detection.FaceDetection(
                model_selection=0, min_detection_confidence=self.min_detection_confidence)
        small, _ = _resize_rgb(rgb, 640)
        out = []
        for det in self._detector.process(small).detections or []:
            r = det.location_data.relative_bounding_box
            out.append((r.xmin + r.width / 2, r.ymin + r.height / 2, float(det.score[0])))
        return out

    def _process(self, rgb: np.ndarray) -> list[Any]:
        """Landmarks from the searching graph, or the sized one while the count holds."""
        if self.mode == "image" or self.max_faces == 1:
            return list(self._mesh.process(rgb).multi_face_landmarks or [])
        if not self.searching:
            faces = list(self._active.process(rgb).multi_face_landmarks or [])
            self._since_search += 1
            lost = len(faces) < self._active_n
            if not lost and self._since_search < self.search_interval:
                return faces
            self._since_search = 0
            if not lost and not self._newcomer(rgb, faces):
                return faces
            # A face left or arrived: search every frame again, from a clean state.
            self._active, self._steady = self._mesh, 0
            self._mesh.reset()
        faces = list(self._mesh.process(rgb).multi_face_landmarks or [])
        n = len(faces)
        self._steady = self._steady + 1 if 0 < n < self.max_faces else 0
        if self._steady >= 3:
            mesh = self._sized.get(n)
            if mesh is None:
                mesh = self._sized[n] = self._new_mesh(n)
            else:
                mesh.reset()  # forget where its faces were when it last ran
            mesh.process(rgb)  # it detects on its first frame; keep this frame's result
            self._active, self._active_n, self._since_search = mesh, n, 0
        return faces

    def _newcomer(self, rgb: np.ndarray, faces: list[Any]) -> bool:
        """Whether the face detector sees a face none of the tracked ones covers."""
        self._detections = self._detect_faces(rgb)
        boxes = []
        for face in faces:
            xy = landmarks_to_array(face)[:, :2]
            boxes.append((*xy.min(axis=0), *xy.max(axis=0)))
        for cx, cy, _ in self._detections:
            if not any(x1 <= cx <= x2 and y1 <= cy <= y2 for x1, y1, x2, y2 in boxes):
                return True
        return False

    def track(self, image: np.ndarray, timestamp: float | None = None,
              frame_index: int = 0) -> Scene:
        """A :class:`Scene` with the faces of ``image`` (no hands)."""
        faces = self.detect(image, timestamp)
        return Scene(image.shape[1], image.shape[0], faces,
                     timestamp=0.0 if timestamp is None else timestamp,
                     frame_index=frame_index)

    def _assign_ids(self, raw: np.ndarray) -> np.ndarray:
        """Match faces to the previous frame's by centre distance (greedy, nearest first)."""
        xy = raw[:, :, :2]
        centre = xy.mean(axis=1)
        size = (xy.max(axis=1) - xy.min(axis=1)).max(axis=1)
        ids = np.full(len(raw), -1, np.int64)
        if self.mode == "video" and self._last:
            prev_ids = list(self._last)
            prev = np.array([self._last[k] for k in prev_ids])
            d = np.linalg.norm(centre[:, None, :] - prev[None, :, :2], axis=2)
            for flat in np.argsort(d, axis=None):
                i, j = divmod(int(flat), len(prev_ids))
                if ids[i] >= 0 or prev_ids[j] in ids:
                    continue
                if d[i, j] <= 0.5 * max(size[i], prev[j, 2]):
                    ids[i] = prev_ids[j]
        for i in range(len(raw)):
            if ids[i] < 0:
                ids[i] = self._next_id
                self._next_id += 1
        lost = set(self._last) - {int(x) for x in ids}
        for k in lost:
            self._filters.pop(k, None)
            self._scores.pop(k, None)
        self._last = {int(ids[i]): np.array([*centre[i], size[i]]) for i in range(len(raw))}
        return ids
