"""The compositor: one frame path for the live room, tryon and the stage benchmark."""

from __future__ import annotations

import time

import numpy as np
import pytest

from arengine.bench.stages import StagePipeline, StageRun
from arengine.demo import DemoSource
from arengine.effects.chain import EffectChain
from arengine.pipeline import RoomConfig, RoomPipeline
from arengine.pipeline.compositor import Compositor, InlineTracking, Tracking, WorkerTracking
from arengine.pipeline.live import LiveCompositor
from arengine.pipeline.tracking import face_worker
from arengine.state import RoomState
from arengine.tracking.gestures import GestureEvent
from arengine.types import Scene, StageTiming

PLUM = RoomState("r", shade_id="velvet-plum")


def test_the_room_tryon_and_bench_run_the_same_compositor() -> None:
    room = RoomPipeline("r", RoomConfig(track_faces=False, track_hands=False, effects=()))
    assert isinstance(room.compositor, LiveCompositor)
    assert isinstance(room.compositor.compositor, Compositor)
    pipe = StagePipeline(StageRun("480p", frames=1, distinct_frames=2, effects=("lipstick",)))
    try:
        assert isinstance(pipe.compositor, Compositor)
        assert isinstance(pipe.compositor.tracking, InlineTracking)
    finally:
        pipe.close()


def test_inline_and_worker_tracking_draw_the_same_lips() -> None:
    image = DemoSource(640, 360).frame_at(0.0)
    timings: list[StageTiming] = []
    inline = Compositor(EffectChain(("lipstick",)), InlineTracking("image"),
                        on_timing=timings.append)
    worker = face_worker()
    threaded = Compositor(EffectChain(("lipstick",)), WorkerTracking(worker, None))
    try:
        for c in (inline, threaded):  # the shade fades in over 300 ms
            c.process(image.copy(), 0.0, 0, PLUM)
        a = inline.process(image.copy(), 1.0, 1, PLUM)
        for _ in range(100):  # the worker's first result
            if worker.latest(640, 360) is not None:
                break
            time.sleep(0.05)
        b = threaded.process(image.copy(), 1.0, 1, PLUM)
        assert len(a.scene.faces) == len(b.scene.faces) == 1
        assert b.scene.timestamp == 1.0 and b.scene.frame_index == 1  # re-stamped
        changed = np.any(a.image != image, axis=2)
        assert changed.sum() > 300  # the lips were painted
        diff = np.abs(a.image.astype(int) - b.image.astype(int))
        assert diff.mean() < 0.5, diff.mean()  # image mode vs video mode landmarks
        stages = {t.stage for t in timings}
        assert {"track_face", "track_hands", "effect:lipstick", "effects"} <= stages
    finally:
        inline.close()
        threaded.close()


class _Boom(Tracking):
    def scene(self, image: np.ndarray, timestamp: float, index: int,
              on_timing: object) -> Scene:
        raise RuntimeError("model crashed")

    def close(self) -> None:
        pass


class _Gestures:
    """Counts updates and resets; fires one event per update."""

    def __init__(self) -> None:
        self.updates = 0
        self.resets = 0

    def update(self, scene: Scene) -> list[GestureEvent]:
        self.updates += 1
        return [GestureEvent("thumbs_up", "like_burst", 0, scene.timestamp)]

    def reset(self) -> None:
        self.resets += 1


def test_a_failing_tracker_costs_the_scene_not_the_frame() -> None:
    errors: list[str] = []
    c = Compositor(EffectChain(("lipstick",)), _Boom(), on_error=errors.append)
    image = DemoSource(320, 180).frame_at(0.0)
    out = c.process(image.copy(), 0.0, 0, PLUM)
    assert np.array_equal(out.image, image) and len(out.scene.faces) == 0
    assert errors == ["tracking"]


def test_gestures_count_on_the_host_picture_only_and_reset_on_resize() -> None:
    gestures = _Gestures()
    c = Compositor(EffectChain(()), None, gestures)  # type: ignore[arg-type]
    img = np.zeros((180, 320, 3), np.uint8)
    assert c.process(img, 0.0, 0, host=True).events
    assert not c.process(img, 0.1, 1, host=False).events  # the demo face makes no gestures
    assert gestures.updates == 1 and gestures.resets == 1
    c.process(np.zeros((360, 640, 3), np.uint8), 0.2, 2)
    assert gestures.resets == 2


@pytest.mark.parametrize("state", [None, PLUM])
def test_without_tracking_the_frame_goes_bare(state: RoomState | None) -> None:
    c = Compositor(EffectChain(("lipstick",)))
    img = DemoSource(320, 180).frame_at(0.0)
    out = c.process(img.copy(), 0.0, 0, state)
    assert np.array_equal(out.image, img) and len(out.scene.faces) == 0
