"""The compositor: a frame and a room-state snapshot in; the composited frame and the
events it raised (host gestures) out.

One synchronous object (no asyncio) owns the tracking hand-off, the host's gestures, the
effect chain and its render backend. The live room runs it on its effects thread,
``arengine tryon`` in a loop over a file and ``arengine bench`` in a loop with a timing
observer, so a stage that is timed is the code the server runs. Before it, the frame path
existed three times (room pipeline, tryon loop, bench ``StagePipeline``), each with its
own effect set-up and tracking.

Tracking comes in two kinds behind one interface: :class:`WorkerTracking` (threads, the
newest landmarks, a frame never waits for inference: the live room) and
:class:`InlineTracking` (every frame tracked before it is drawn: deterministic, for files
and for timing the stages one after another).

What an enabled effect needs besides faces and hands (:meth:`EffectChain.needs`: the person
mask and room plate of the virtual host's replace mode) is added to the scene's extras the
same way: by a worker started on first need in the live room, inline for files.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arengine.effects.chain import EffectChain
from arengine.pipeline.tracking import TrackingWorker, segmentation_worker
from arengine.state import RoomState
from arengine.tracking.face import Mode
from arengine.tracking.gestures import GestureEvent, GestureRecognizer
from arengine.tracking.segmentation import PERSON_MASK, PersonMask
from arengine.types import HandLandmarks, Scene, StageTiming

logger = logging.getLogger(__name__)

OnTiming = Callable[[StageTiming], None]
OnError = Callable[[str], None]


def _ignore_timing(_: StageTiming) -> None:
    pass


def _ignore_error(_: str) -> None:
    pass


class Tracking(ABC):
    """Where the compositor gets a frame's scene (faces and hands)."""

    @abstractmethod
    def scene(self, image: np.ndarray, timestamp: float, index: int,
              on_timing: OnTiming) -> Scene:
        """The scene to draw ``image`` with, stamped with ``timestamp`` and ``index``;
        time spent tracking in this call goes to ``on_timing``."""

    @abstractmethod
    def close(self) -> None:
        """Stop whatever runs the models."""

    def add_extras(self, image: np.ndarray, scene: Scene,  # noqa: B027 (a hook: no-op)
                   needs: frozenset[str], on_timing: OnTiming) -> None:
        """Put what ``needs`` names (e.g. :data:`PERSON_MASK`) into ``scene.extras``, when
        it can; by default nothing."""


def _keep_out_boxes(scene: Scene) -> list[list[float]]:
    """The face and hand boxes of a scene, for the background plate to keep out."""
    return [list(map(float, b)) for b in (*scene.faces.boxes(), *scene.hands.boxes())]


class WorkerTracking(Tracking):
    """Tracking in worker threads: every frame is offered, none waits for inference.

    Each frame is drawn with the newest landmarks the workers have, re-stamped for this
    frame; a worker that is busy simply takes the next frame offered.
    """

    def __init__(self, face: TrackingWorker[Scene] | None,
                 hands: TrackingWorker[HandLandmarks] | None,
                 segment_interval: float = 0.1) -> None:
        self.face = face
        self.hands = hands
        self.segment_interval = segment_interval
        self.segmentation: TrackingWorker[PersonMask] | None = None  # started on first need
        self._segment_sent = -1e9

    def scene(self, image: np.ndarray, timestamp: float, index: int,
              on_timing: OnTiming) -> Scene:
        """(The workers time their own runs, off this thread.)"""
        h, w = image.shape[:2]
        now = time.monotonic()  # MediaPipe's video mode wants a rising clock per graph
        if self.face is not None:
            self.face.submit(image, now, index)
        if self.hands is not None:
            self.hands.submit(image, now, index)
        face = self.face.latest(w, h) if self.face is not None else None
        hands = self.hands.latest(w, h) if self.hands is not None else None
        scene = face if face is not None else Scene.empty(w, h)
        if hands is not None:
            scene = scene.with_hands(hands)
        return scene.at(timestamp, index)

    def add_extras(self, image: np.ndarray, scene: Scene, needs: frozenset[str],
                   on_timing: OnTiming) -> None:
        """The person mask from a segmentation worker, started on the first frame that
        needs one; frames are offered (as copies: effects may draw on this one) at most
        every ``segment_interval`` seconds, and each frame gets the newest result."""
        if PERSON_MASK not in needs:
            return
        if self.segmentation is None:
            nice = self.face.nice if self.face is not None else 0
            self.segmentation = segmentation_worker(on_timing, None, self.segment_interval,
                                                    nice=nice)
        now = time.monotonic()
        if now - self._segment_sent >= self.segment_interval:
            self._segment_sent = now
            self.segmentation.submit(image.copy(), now, scene.frame_index,
                                     _keep_out_boxes(scene))
        latest = self.segmentation.latest(scene.width, scene.height)
        if latest is not None:
            scene.extras[PERSON_MASK] = latest

    def close(self) -> None:
        for worker in (self.face, self.hands, self.segmentation):
            if worker is not None:
                worker.close()


class InlineTracking(Tracking):
    """Every frame tracked before it is drawn (files, and the stage benchmark).

    ``mode`` is MediaPipe's: "video" tracks from frame to frame (smoothed, stable ids),
    "image" treats each frame alone. Timings are ``track_face`` and ``track_hands``, the
    stage names the live room's workers use.
    """

    def __init__(self, mode: Mode = "video", faces: bool = True, hands: bool = True,
                 max_faces: int = 4) -> None:
        from arengine.tracking import FaceTracker, HandTracker

        self.faces = FaceTracker(mode, max_faces=max_faces) if faces else None
        self.hands = HandTracker(mode, max_hands=2) if hands else None
        self._segmenter: Any = None  # PersonSegmenter and BackgroundPlate, on first need
        self._plate: Any = None

    def scene(self, image: np.ndarray, timestamp: float, index: int,
              on_timing: OnTiming) -> Scene:
        h, w = image.shape[:2]
        t0 = time.perf_counter()
        scene = self.faces.track(image, timestamp, index) if self.faces is not None \
            else Scene.empty(w, h).at(timestamp, index)
        t1 = time.perf_counter()
        if self.faces is not None:
            on_timing(StageTiming(index, "track_face", t0, t1))
        if self.hands is not None:
            scene = scene.with_hands(self.hands.detect(image))
            on_timing(StageTiming(index, "track_hands", t1, time.perf_counter()))
        return scene

    def add_extras(self, image: np.ndarray, scene: Scene, needs: frozenset[str],
                   on_timing: OnTiming) -> None:
        """The person mask of this very frame (timing ``segment``)."""
        if PERSON_MASK not in needs:
            return
        from arengine.tracking.segmentation import BackgroundPlate, PersonSegmenter

        if self._segmenter is None:
            self._segmenter, self._plate = PersonSegmenter(), BackgroundPlate()
        t0 = time.perf_counter()
        probability = self._segmenter.segment(image)
        scene.extras[PERSON_MASK] = self._plate.update(image, probability,
                                                       _keep_out_boxes(scene),
                                                       scene.frame_index)
        on_timing(StageTiming(scene.frame_index, "segment", t0, time.perf_counter()))

    def close(self) -> None:
        for model in (self.faces, self.hands, self._segmenter):
            if model is not None:
                model.close()


@dataclass
class Composite:
    """What the compositor made of one frame."""

    image: np.ndarray
    scene: Scene
    events: list[GestureEvent] = field(default_factory=list)


class Compositor:
    """Tracking hand-off, host gestures and the effect chain, for one stream.

    ``process`` is the whole per-frame path between the source and the outputs. Timings
    (``track_*``, ``gestures``, ``effect:<name>``, ``effects``) go to ``on_timing`` and a
    stage that raised to ``on_error``: a failing effect or tracker costs that stage, not
    the frame.
    """

    def __init__(self, effects: EffectChain, tracking: Tracking | None = None,
                 gestures: GestureRecognizer | None = None,
                 on_timing: OnTiming | None = None, on_error: OnError | None = None) -> None:
        self.effects = effects
        self.tracking = tracking
        self.gestures = gestures
        self.on_timing = on_timing or _ignore_timing
        self.on_error = on_error or _ignore_error
        self._size: tuple[int, int] | None = None

    def process(self, image: np.ndarray, timestamp: float, index: int,
                state: RoomState | None = None, *, host: bool = True,
                track: bool = True) -> Composite:
        """Composite ``image`` (BGR uint8, may be drawn on in place) at ``timestamp``
        seconds; ``host`` says it is the host's picture (gestures only count there);
        ``track=False`` for a picture with nobody in it (a slate)."""
        h, w = image.shape[:2]
        if self._size != (w, h):
            self._size = (w, h)
            if self.gestures is not None:
                self.gestures.reset()
        scene = Scene.empty(w, h).at(timestamp, index)
        if self.tracking is not None and track:
            try:
                scene = self.tracking.scene(image, timestamp, index, self.on_timing)
            except Exception:
                logger.exception("tracking failed on frame %d; drawn without it", index)
                self.on_error("tracking")
        needs = self.effects.needs()
        if needs and self.tracking is not None and track:
            try:
                self.tracking.add_extras(image, scene, needs, self.on_timing)
            except Exception:
                logger.exception("%s failed on frame %d; drawn without it",
                                 ", ".join(sorted(needs)), index)
                self.on_error("segment")
        events: list[GestureEvent] = []
        if self.gestures is not None and host:
            start = time.perf_counter()
            try:
                events = self.gestures.update(scene)
            except Exception:
                logger.exception("gesture recognition failed on frame %d", index)
                self.on_error("gestures")
            self.on_timing(StageTiming(index, "gestures", start, time.perf_counter()))
        self.effects.set_state(state)
        start = time.perf_counter()
        image = self.effects.apply(image, scene, self.on_timing, self.on_error)
        self.on_timing(StageTiming(index, "effects", start, time.perf_counter()))
        return Composite(image, scene, events)

    def close(self) -> None:
        if self.tracking is not None:
            self.tracking.close()
