from __future__ import annotations

import numpy as np
import pytest

from arengine.bench.stages import (
    EncodedSource,
    StageRun,
    lip_shift,
    replay_realtime,
    run_stages,
    source_pictures,
)


def test_replay_keeps_up_when_service_is_shorter_than_the_period() -> None:
    r = replay_realtime([10.0] * 30, fps=30)
    assert r.dropped == 0
    assert r.latencies_ms == pytest.approx([10.0] * 30)
    assert r.fps == pytest.approx(30, rel=0.05)


def test_replay_drops_to_the_newest_frame_when_slow() -> None:
    # 50 ms per frame at 30 fps (33.3 ms period): frame 0 done at 50 ms, frame 1 (33.3 ms)
    # is newest then; done at 100 ms, frames 2 (66.7) is stale, 3 (100) is newest...
    r = replay_realtime([50.0] * 6, fps=30)
    assert r.processed == 6
    assert r.dropped > 0
    assert r.fps == pytest.approx(20, rel=0.05)  # one frame per 50 ms
    assert max(r.latencies_ms) <= 50.0 + 1000 / 30 + 1e-6  # never more than one wait
    assert r.latencies_ms[0] == pytest.approx(50.0)


def test_replay_one_long_stall_drops_the_frames_it_covers() -> None:
    r = replay_realtime([5.0, 200.0, 5.0, 5.0], fps=30)
    # The stall covers arrivals 2..6 (66.7..200 ms); only frame 6 is taken after it.
    assert r.dropped == 4
    assert r.processed == 4


def test_source_pictures_and_decode_loop(face_video) -> None:
    pics, name = source_pictures(face_video, 640, 360, 8)
    assert len(pics) == 8 and pics[0].shape == (360, 640, 3)
    assert face_video.name in name
    src = EncodedSource(pics)
    out = [src.next() for _ in range(20)]  # loops past the end
    assert all(o.shape == (360, 640, 3) for o in out)
    # The decoded picture is the source picture (through a lossy codec).
    assert np.abs(out[8].astype(int) - pics[0].astype(int)).mean() < 12


def test_lip_shift_sees_lipstick_and_no_change(load_image) -> None:
    from arengine.catalog import default_catalog
    from arengine.effects.lipstick import LipstickEffect
    from arengine.tracking import FaceTracker

    img = load_image("mediapipe_samples/business-person.png")
    with FaceTracker("image") as ft:
        scene = ft.track(img)
    assert len(scene.faces) == 1
    shade = default_catalog().get("velvet-ruby")
    after = LipstickEffect(shade="velvet-ruby").apply(img.copy(), scene)
    assert lip_shift(img, after, scene, shade.bgr) > 3.0
    assert lip_shift(img, img.copy(), scene, shade.bgr) == pytest.approx(0.0)
    from arengine.types import Scene

    assert lip_shift(img, after, Scene.empty(img.shape[1], img.shape[0]), shade.bgr) is None


@pytest.mark.slow
def test_run_stages_measures_every_stage_and_checks_correctness(face_video) -> None:
    res = run_stages(StageRun("480p", frames=12, warmup=3, input=face_video,
                              distinct_frames=15, checks=4))
    d = res.to_dict()
    assert d["frames"] == 12
    for stage in ("decode", "track_face", "track_hands", "effect:lipstick", "encode"):
        assert d["stages"][stage]["count"] == 12
        assert d["stages"][stage]["median"] > 0
    assert d["checks"]["face_found_share"] > 0.8
    assert d["checks"]["lipstick_checked"] >= 3
    assert res.passed_checks() == []
    assert sum(d["stages"][s]["mean"] for s in d["stages"]) == pytest.approx(
        d["total"]["mean"], rel=1e-6)


def test_lipstick_through_the_gl_backend_matches_the_effect(load_image) -> None:
    from arengine.effects.lipstick import LipstickEffect
    from arengine.render.backend import select_backend
    from arengine.tracking import FaceTracker

    backend = select_backend("gl")  # Mesa's llvmpipe where there is no GPU
    if backend.name == "cpu":
        pytest.skip(f"no OpenGL context here: {backend.fallback_reason}")
    img = load_image("mediapipe_samples/business-person.png")
    with FaceTracker("image") as ft:
        scene = ft.track(img)
    cpu = LipstickEffect(shade="velvet-ruby").apply(img.copy(), scene)
    gl = LipstickEffect(shade="velvet-ruby", backend=backend).apply(img.copy(), scene)
    backend.close()
    changed = np.any(cpu != img, axis=2)
    assert changed.sum() > 500  # the lips were painted
    diff = np.abs(cpu.astype(int) - gl.astype(int))
    assert diff[changed].mean() < 2.0 and diff.max() <= 12


def test_stage_pipeline_composites_every_effect_in_one_gl_frame(face_video) -> None:
    from arengine.bench.stages import StagePipeline
    from arengine.render.backend import select_backend

    backend = select_backend("gl")
    if backend.name == "cpu":
        pytest.skip(f"no OpenGL context here: {backend.fallback_reason}")
    run = StageRun("480p", input=face_video, distinct_frames=6, viewers=12)
    pipe = StagePipeline(run, backend=backend)
    try:
        assert pipe.gpu_chain
        assert all(pipe.compositor.effects.shares_frame(e) for e in pipe.effects.values())
        for k in range(4):
            frames = backend.status["frames"]
            ms, _ = pipe.step(check=k == 3)
            assert backend.status["frames"] == frames + 1  # one readback for five effects
            assert "effect:composite" in ms and "effect:lipstick" in ms
        assert pipe.last_lip_shift is not None and pipe.last_lip_shift > 3.0
        assert "one upload and one readback" in pipe.where["composite"]
    finally:
        pipe.close()
        backend.close()
