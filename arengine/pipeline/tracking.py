"""Tracking off the event loop: one worker thread per model, newest frame only.

MediaPipe releases the GIL inside its graph, so a worker thread runs inference while the
event loop keeps receiving, compositing and sending. The pipeline never waits for a
result: it submits the newest frame (replacing any unread one) and composites with the
latest result available. Face and hand tracking run in separate workers so each goes at
its own rate (hands can be throttled with ``min_interval``). A worker can also search more
slowly while its last result found nothing (``idle_interval``): MediaPipe's hand graph
runs its palm detector on every call until a hand is in view, which costs about three
face-mesh passes, and a host who is not gesturing should not pay that 15 times a second.

Workers can also run at a lower OS scheduling priority (``nice``): when the machine is
short of CPU, the frame path (decode, compositing, encode) and everything else on the box
go first and tracking takes what is left, so inference falls behind instead of frames.
MediaPipe's own threads start inside the worker and inherit its priority.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from arengine.pipeline.slot import ThreadSlot
from arengine.tracking.segmentation import PersonMask
from arengine.types import HandLandmarks, Scene, StageTiming

logger = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass(frozen=True)
class TrackRequest:
    image: np.ndarray
    timestamp: float
    frame_index: int
    extra: object = None  # what a worker needs besides the picture (e.g. face boxes)


class TrackingWorker(Generic[R]):
    """Runs ``infer(request)`` on the newest submitted image in its own thread.

    ``make`` builds the model inside the thread (MediaPipe graphs are used from one thread
    only) and again after a frame-size change, so a new resolution starts from a fresh
    tracker. ``on_timing`` and ``on_error`` report to the pipeline's observers.
    """

    def __init__(self, name: str, make: Callable[[], object],
                 infer: Callable[[object, TrackRequest], R],
                 on_timing: Callable[[StageTiming], None] | None = None,
                 on_error: Callable[[str], None] | None = None,
                 min_interval: float = 0.0, nice: int = 0,
                 idle_interval: float | None = None,
                 is_idle: Callable[[R], bool] | None = None) -> None:
        if (idle_interval is None) != (is_idle is None):
            raise ValueError("idle_interval and is_idle go together")
        self.name = name
        self.nice = nice
        self.idle_interval = idle_interval
        self._is_idle = is_idle
        self._make = make
        self._infer = infer
        self._on_timing = on_timing
        self._on_error = on_error
        self.min_interval = min_interval
        self._slot: ThreadSlot[TrackRequest] = ThreadSlot()
        self._lock = threading.Lock()
        self._result: R | None = None
        self._result_size: tuple[int, int] | None = None
        self.processed = 0
        self._thread = threading.Thread(target=self._run, name=f"arengine-{name}", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        return self._slot.dropped

    def submit(self, image: np.ndarray, timestamp: float, frame_index: int,
               extra: object = None) -> None:
        """Offer the newest frame; an unprocessed older one is dropped."""
        self._slot.put(TrackRequest(image, timestamp, frame_index, extra))

    def latest(self, width: int, height: int) -> R | None:
        """The newest result for frames of this size (None before one, or after a resize)."""
        with self._lock:
            if self._result_size != (width, height):
                return None
            return self._result

    def close(self) -> None:
        self._slot.close()
        self._thread.join(timeout=5)

    def _lower_priority(self) -> None:
        if not self.nice:
            return
        try:  # Linux schedules threads one by one: this changes this thread only
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                           os.getpriority(os.PRIO_PROCESS, 0) + self.nice)
        except (AttributeError, OSError) as e:
            logger.info("%s: cannot lower its priority (%s); it runs at normal priority",
                        self.name, e)

    def _run(self) -> None:
        self._lower_priority()
        model: object | None = None
        size: tuple[int, int] | None = None
        last = 0.0
        try:
            while True:
                req = self._slot.get(timeout=1.0)
                if req is None:
                    if self._slot._closed:
                        break
                    continue
                h, w = req.image.shape[:2]
                if model is None or size != (w, h):
                    _close(model)
                    if size is not None:
                        logger.info("%s: frame size %sx%s -> %sx%s, tracker reset",
                                    self.name, *size, w, h)
                    model = self._make()
                    size = (w, h)
                interval = self.min_interval
                if self._is_idle is not None and self.idle_interval is not None:
                    with self._lock:
                        prev = self._result
                    if prev is not None and self._is_idle(prev):
                        interval = max(interval, self.idle_interval)
                wait = last + interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                start = time.perf_counter()
                last = time.monotonic()
                try:
                    result = self._infer(model, req)
                except Exception:
                    logger.exception("%s failed on frame %d; frames go on without it",
                                     self.name, req.frame_index)
                    if self._on_error is not None:
                        self._on_error(self.name)
                    continue
                end = time.perf_counter()
                with self._lock:
                    self._result = result
                    self._result_size = (w, h)
                self.processed += 1
                if self._on_timing is not None:
                    self._on_timing(StageTiming(req.frame_index, self.name, start, end))
        finally:
            _close(model)


def _close(model: object | None) -> None:
    close = getattr(model, "close", None)
    if callable(close):
        close()


def face_worker(on_timing: Callable[[StageTiming], None] | None = None,
                on_error: Callable[[str], None] | None = None,
                max_faces: int = 4, nice: int = 0,
                min_interval: float = 0.0) -> TrackingWorker[Scene]:
    """A worker running :class:`~arengine.tracking.FaceTracker` in video mode, on every
    frame it can take unless ``min_interval`` spaces them out."""
    from arengine.tracking import FaceTracker

    def infer(model: object, req: TrackRequest) -> Scene:
        assert isinstance(model, FaceTracker)
        return model.track(req.image, req.timestamp, req.frame_index)

    return TrackingWorker("track_face", lambda: FaceTracker("video", max_faces), infer,
                          on_timing, on_error, min_interval, nice=nice)


def hand_worker(on_timing: Callable[[StageTiming], None] | None = None,
                on_error: Callable[[str], None] | None = None,
                min_interval: float = 1 / 15, nice: int = 0,
                idle_interval: float | None = 1 / 5) -> TrackingWorker[HandLandmarks]:
    """A worker running :class:`~arengine.tracking.HandTracker`, by default at most 15 Hz
    while a hand is in view and 5 Hz while none is (a raised hand is found within 0.2 s,
    then tracked at the full rate; ``idle_interval=None`` always runs at ``min_interval``).
    """
    from arengine.tracking import HandTracker

    def infer(model: object, req: TrackRequest) -> HandLandmarks:
        assert isinstance(model, HandTracker)
        return model.detect(req.image)

    return TrackingWorker("track_hands", lambda: HandTracker("video"), infer, on_timing,
                          on_error, min_interval, nice, idle_interval,
                          None if idle_interval is None else _no_hands)


def _no_hands(hands: HandLandmarks) -> bool:
    return len(hands) == 0


def segmentation_worker(on_timing: Callable[[StageTiming], None] | None = None,
                        on_error: Callable[[str], None] | None = None,
                        min_interval: float = 0.1, nice: int = 0
                        ) -> TrackingWorker[PersonMask]:
    """A worker running selfie segmentation and the background plate of the room
    (:mod:`arengine.tracking.segmentation`), at most 10 Hz by default: the room behind a
    host changes slowly, and the plate only ever takes background pixels. A request's
    ``extra`` is the face and hand boxes to keep out of the plate."""
    from arengine.tracking.segmentation import BackgroundPlate, PersonSegmenter

    class _Model:
        def __init__(self) -> None:
            self.segmenter = PersonSegmenter()
            self.plate = BackgroundPlate()

        def close(self) -> None:
            self.segmenter.close()

    def infer(model: object, req: TrackRequest) -> PersonMask:
        assert isinstance(model, _Model)
        boxes: list[list[float]] = req.extra if isinstance(req.extra, list) else []
        return model.plate.update(req.image, model.segmenter.segment(req.image), boxes,
                                  req.frame_index)

    return TrackingWorker("segment", _Model, infer, on_timing, on_error, min_interval,
                          nice=nice)
