from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import pytest

from arengine.demo import DemoSource
from arengine.effects.avatars import Avatars as AvatarsEffect
from arengine.effects.base import Effect
from arengine.effects.chain import BackendChain, EffectChain, render_chain
from arengine.effects.likes import Likes as LikesEffect
from arengine.effects.lipstick import LipstickEffect
from arengine.effects.product import ProductSticker as ProductEffect
from arengine.effects.vote_sticker import VoteSticker as VoteStickerEffect
from arengine.render.backend import RenderBackend
from arengine.render.cpu import CPUBackend
from arengine.state import (
    LikeGoalView,
    PollOptionView,
    PollView,
    ProductView,
    RoomState,
    ViewerView,
)
from arengine.tracking import FaceTracker
from arengine.types import Scene, StageTiming

LIP_IMAGES = ("mediapipe_samples/business-person.png", "faces/obama-720p.jpg")

NOW = 1_700_000_000.0
NAMES = ("lipstick", "vote_sticker", "avatars", "likes", "product")


def room_state(now: float = NOW) -> RoomState:
    """A room mid-show: 12 viewers who all commented, an open poll, likes, a product."""
    names = ["Mai", "Linh", "Ayu", "Siti", "小美", "Nong", "Putri", "Hoa", "Dewi", "阿珍",
             "Ana", "Bao"]
    viewers = tuple(ViewerView(id=f"v{i}", name=n, last_comment=f"shade {i} please!",
                               last_active=now - i, joined_at=now - 90 - i)
                    for i, n in enumerate(names))
    poll = PollView(id="p1", question="Which shade next?", options=(
        PollOptionView("Velvet Ruby", 40, "velvet-ruby", "#9B111E"),
        PollOptionView("Nude Rose", 25, None, "#C08081")), opened_at=now - 20,
        closes_at=now + 40)
    return RoomState(room_id="r1", taken_at=now, viewers=viewers, poll=poll, likes=321,
                     recent_likes=tuple(now - k * 0.15 for k in range(12)),
                     like_goal=LikeGoalView(500, 321, "500 likes: 10% off"),
                     product=ProductView("sku-1", "Velvet Ruby Lipstick", "$19.90"),
                     shade_id="velvet-ruby", viewer_count=12, interaction_rate=2.0)


def make_effects(backend: RenderBackend | None, state: RoomState,
                 extra: dict[str, Effect] | None = None) -> dict[str, Effect]:
    effects: dict[str, Effect] = {
        "lipstick": LipstickEffect(shade="velvet-ruby", backend=backend),
        "vote_sticker": VoteStickerEffect(backend=backend),
        "avatars": AvatarsEffect(backend=backend),
        "likes": LikesEffect(backend=backend),
        "product": ProductEffect(backend=backend),
    }
    for e in effects.values():
        set_state = getattr(e, "set_state", None)
        if set_state is not None:
            set_state(state)
    if extra:  # inserted after the vote sticker: a failure in the middle of the chain
        items = list(effects.items())
        effects = dict(items[:2] + list(extra.items()) + items[2:])
    return effects


@pytest.fixture(scope="module")
def scenes(load_image: Callable[[str], np.ndarray]) -> dict[str, tuple[np.ndarray, Scene]]:
    from arengine.tracking import FaceTracker

    out = {}
    with FaceTracker(mode="image") as tracker:
        for name in LIP_IMAGES:
            image = load_image(name)
            scene = tracker.track(image)
            assert len(scene.faces) == 1
            out[name] = (image, scene)
    return out


def at(scene: Scene, t: float, i: int) -> Scene:
    return Scene(scene.width, scene.height, scene.faces, scene.hands, timestamp=t,
                 frame_index=i)


class Broken(Effect):
    """Draws through the backend like a layer, then raises half way (on chosen frames)."""

    name = "broken"

    def __init__(self, backend: RenderBackend | None, fail_on: set[int]) -> None:
        self.backend = backend
        self.fail_on = fail_on
        self.calls = 0

    def apply(self, frame: np.ndarray, scene: Scene) -> np.ndarray:
        from arengine.render.sprites import Canvas, solid

        self.calls += 1
        with Canvas(frame, self.backend) as canvas:
            canvas.sprite(solid(40, 40, (0, 255, 0)), 5, 5)  # a visible half-drawn mark
            if scene.frame_index in self.fail_on:
                raise RuntimeError("layer bug")
            canvas.sprite(solid(40, 40, (255, 0, 0)), 60, 5)
        return canvas.frame


def run_frames(effects: dict[str, Effect], backend: RenderBackend | None, image: np.ndarray,
               scene: Scene, frames: int = 3) -> tuple[list[np.ndarray], BackendChain]:
    chain = BackendChain(effects, backend)
    outs = [chain.apply(image.copy(), at(scene, 0.4 * k, k)) for k in range(frames)]
    return outs, chain


def painted(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.any(a != b, axis=2).sum())


# -- GL: one upload, one readback per frame ---------------------------------------------

@pytest.mark.parametrize("image_name", LIP_IMAGES)
def test_gl_chain_moves_the_frame_once_and_matches_the_cpu(
        make_gl: Callable[..., Any], scenes: dict[str, tuple[np.ndarray, Scene]],
        image_name: str) -> None:
    image, scene = scenes[image_name]
    h, w = image.shape[:2]
    state = room_state()
    ref, _ = run_frames(make_effects(None, state), None, image, scene)
    # Whole-frame transfers, so "one upload" is one transfer (dirty regions may split the
    # one upload of a frame into a few rectangles, never more bytes than the frame).
    gl = make_gl(dirty_regions=False)
    chain = BackendChain(make_effects(gl, state), gl)
    for k in range(3):
        before = dict(gl.status)
        out = chain.apply(image.copy(), at(scene, 0.4 * k, k))
        after = gl.status
        assert after["frames"] - before["frames"] == 1  # one end_frame: one readback
        assert after["uploads"] - before["uploads"] == 1
        # The frame once (lip fields are small extra uploads; a second frame is not).
        assert w * h * 3 <= after["upload_bytes"] - before["upload_bytes"] < 1.5 * w * h * 3
        assert after["readback_bytes"] - before["readback_bytes"] == w * h * 3
        assert not gl.frame_open
        diff = np.abs(out.astype(int) - ref[k].astype(int))
        assert diff.max() <= 3, f"frame {k}: GL differs from the CPU by {diff.max()}"
        assert painted(out, image) > 20_000  # lips, card, avatars, hearts and product
    # Cached sprites: the later frames re-use the textures of the first.
    assert gl.status["sprite_hits"] > 0
    assert chain.stats.backend_frames == 3 and chain.stats.failures == {}


@pytest.mark.parametrize("image_name", LIP_IMAGES)
def test_gl_chain_with_dirty_regions_reads_back_once(
        make_gl: Callable[..., Any], scenes: dict[str, tuple[np.ndarray, Scene]],
        image_name: str) -> None:
    image, scene = scenes[image_name]
    h, w = image.shape[:2]
    state = room_state()
    ref, _ = run_frames(make_effects(None, state), None, image, scene, frames=2)
    gl = make_gl()
    chain = BackendChain(make_effects(gl, state), gl)
    for k in range(2):
        before = dict(gl.status)
        out = chain.apply(image.copy(), at(scene, 0.4 * k, k))
        after = gl.status
        assert after["frames"] - before["frames"] == 1
        assert after["uploads"] - before["uploads"] >= 1
        assert after["upload_bytes"] - before["upload_bytes"] < 1.5 * w * h * 3
        assert after["readback_bytes"] - before["readback_bytes"] <= w * h * 3
        assert np.abs(out.astype(int) - ref[k].astype(int)).max() <= 3


def test_separate_frames_would_move_the_picture_per_effect(
        make_gl: Callable[..., Any], scenes: dict[str, tuple[np.ndarray, Scene]]) -> None:
    # What the chain saves: the same effects, each opening its own frame.
    image, scene = scenes[LIP_IMAGES[1]]
    gl = make_gl(dirty_regions=False)
    effects = make_effects(gl, room_state())
    frame = image.copy()
    for e in effects.values():
        frame = e.apply(frame, at(scene, 0.0, 0))
    assert gl.status["frames"] == 5 and gl.status["uploads"] >= 4  # five readbacks


@pytest.mark.parametrize("deferred", [False, True])
def test_gl_chain_drops_a_failing_effect_and_keeps_the_others(
        make_gl: Callable[..., Any], scenes: dict[str, tuple[np.ndarray, Scene]],
        deferred: bool) -> None:
    image, scene = scenes[LIP_IMAGES[1]]
    state = room_state()
    ref, _ = run_frames(make_effects(None, state), None, image, scene)
    gl = make_gl(dirty_regions=False)
    # GL writes an in-place frame only when reading back; said so, the chain redoes a
    # frame from the caller's picture without keeping a copy of it.
    gl.defers_writes = deferred or gl.defers_writes
    broken = Broken(gl, fail_on={1})
    chain = BackendChain(make_effects(gl, state, {"broken": broken}), gl)
    errors: list[str] = []
    timings: list[StageTiming] = []
    outs = []
    for k in range(3):
        before = dict(gl.status)
        outs.append(chain.apply(image.copy(), at(scene, 0.4 * k, k), on_error=errors.append,
                                on_timing=timings.append))
        assert gl.status["frames"] - before["frames"] == 1  # redone, still one readback
        assert not gl.frame_open
    assert errors == ["effect:broken"]
    assert chain.stats.failures == {"broken": 1} and chain.stats.redone_frames == 1
    # Frame 1: everything but the broken layer, not even its half-drawn mark.
    assert np.abs(outs[1].astype(int) - ref[1].astype(int)).max() <= 3
    # Frames 0 and 2: the broken layer drew both of its squares.
    for k in (0, 2):
        assert (outs[k][10, 10] == (0, 255, 0)).all() and (outs[k][10, 70] == (255, 0, 0)).all()
    stages = {t.stage for t in timings}
    assert {f"effect:{n}" for n in NAMES} | {"effect:broken", "composite"} <= stages


# -- CPU and no backend -------------------------------------------------------------------

@pytest.mark.parametrize("image_name", LIP_IMAGES)
def test_cpu_chain_equals_the_chain_without_a_backend(
        scenes: dict[str, tuple[np.ndarray, Scene]], image_name: str) -> None:
    image, scene = scenes[image_name]
    state = room_state()
    ref, plain = run_frames(make_effects(None, state), None, image, scene)
    cpu = CPUBackend()
    outs, chain = run_frames(make_effects(cpu, state), cpu, image, scene)
    for k in range(3):
        assert np.array_equal(outs[k], ref[k])
        assert painted(outs[k], image) > 20_000
    assert cpu.frames == 3 and chain.stats.backend_frames == 3
    assert plain.stats.backend_frames == 0 and plain.stats.frames == 3


def test_cpu_chain_redoes_the_frame_from_the_untouched_picture(
        scenes: dict[str, tuple[np.ndarray, Scene]]) -> None:
    image, scene = scenes[LIP_IMAGES[0]]
    state = room_state()
    ref, _ = run_frames(make_effects(None, state), None, image, scene, frames=1)
    cpu = CPUBackend()
    chain = BackendChain(make_effects(cpu, state, {"broken": Broken(cpu, {0})}), cpu)
    frame = image.copy()  # writeable: the CPU draws in place, so the chain keeps a backup
    out = chain.apply(frame, at(scene, 0.0, 0))
    assert np.array_equal(out, ref[0])
    assert chain.stats.failures == {"broken": 1} and not cpu.frame_open


def test_no_backend_chain_leaves_a_failing_effect_out(
        scenes: dict[str, tuple[np.ndarray, Scene]]) -> None:
    image, scene = scenes[LIP_IMAGES[0]]
    state = room_state()
    ref, _ = run_frames(make_effects(None, state), None, image, scene, frames=1)
    chain = BackendChain(make_effects(None, state, {"broken": Broken(None, {0})}))
    out = chain.apply(image.copy(), at(scene, 0.0, 0))
    assert np.array_equal(out, ref[0])  # not even the half-drawn mark
    assert chain.stats.to_dict()["failures"] == {"broken": 1}


def test_read_only_frames_are_left_untouched(
        scenes: dict[str, tuple[np.ndarray, Scene]]) -> None:
    image, scene = scenes[LIP_IMAGES[0]]
    frozen = image.copy()
    frozen.flags.writeable = False
    cpu = CPUBackend()
    out = render_chain(make_effects(cpu, room_state()), frozen, at(scene, 0.0, 0), cpu)
    assert np.array_equal(frozen, image) and painted(out, image) > 20_000


def test_effects_without_the_backend_run_between_frames(
        scenes: dict[str, tuple[np.ndarray, Scene]]) -> None:
    image, scene = scenes[LIP_IMAGES[0]]
    state = room_state()
    ref, _ = run_frames(make_effects(None, state), None, image, scene, frames=1)
    cpu = CPUBackend()
    effects = make_effects(cpu, state)
    effects["avatars"] = make_effects(None, state)["avatars"]  # a plain numpy effect
    chain = BackendChain(effects, cpu)
    out = chain.apply(image.copy(), at(scene, 0.0, 0))
    assert np.array_equal(out, ref[0])
    assert cpu.frames == 2  # lipstick + sticker, then likes + product


def test_skip_and_names() -> None:
    cpu = CPUBackend()
    a, b = Broken(cpu, set()), Broken(cpu, set())
    with pytest.raises(ValueError, match="two effects named"):
        BackendChain([a, b], cpu)
    chain = BackendChain({"a": a, "b": b}, cpu)
    assert chain.names == ["a", "b"]
    out = chain.apply(np.zeros((100, 120, 3), np.uint8), Scene.empty(120, 100), skip={"b"})
    assert a.calls == 1 and b.calls == 0 and out[10, 10, 1] == 255


class _Recorder(RenderBackend):
    """A CPU backend that counts frames, to check the chain's begin/end pairing."""

    name = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.inner = CPUBackend()
        self.begins = 0

    def _begin(self, frame: np.ndarray, inplace: bool) -> None:
        self.begins += 1
        self.inner.begin_frame(frame, inplace)

    def _lips(self, box: tuple[int, int, int, int], mask: np.ndarray, params: Any,
              options: dict[str, Any]) -> None:
        self.inner.composite_lips(box, mask, params, **options)

    def _sprite(self, sprite: np.ndarray, x: int, y: int, key: Hashable | None,
                version: int, opacity: float) -> None:
        self.inner.blend_sprite(sprite, x, y, key, version, opacity)

    def _end(self) -> np.ndarray:
        return self.inner.end_frame()

    def abort_frame(self) -> None:
        super().abort_frame()
        self.inner.abort_frame()


def test_a_frame_left_open_before_the_chain_is_dropped() -> None:
    rec = _Recorder()
    rec.begin_frame(np.zeros((50, 50, 3), np.uint8))
    chain = BackendChain({"a": Broken(rec, set())}, rec)
    out = chain.apply(np.zeros((100, 120, 3), np.uint8), Scene.empty(120, 100))
    assert out.shape == (100, 120, 3) and out[10, 10, 1] == 255
    assert rec.begins == 2 and not rec.frame_open


def test_a_backend_that_cannot_start_a_frame_sends_the_picture(
        make_gl: Callable[..., Any]) -> None:
    gl = make_gl()
    gl.simulate_context_loss()  # a bare GL backend (no CPU fallback) with a lost context
    chain = BackendChain({"a": Broken(gl, set())}, gl)
    errors: list[str] = []
    frame = np.full((40, 50, 3), 7, np.uint8)
    out = chain.apply(frame, Scene.empty(50, 40), on_error=errors.append)
    assert out is frame and (out == 7).all()
    assert errors == ["composite"] and chain.stats.failures == {"composite": 1}


def test_gl_context_lost_mid_stream_the_chain_goes_on_on_the_cpu(
        make_gl: Callable[..., Any], scenes: dict[str, tuple[np.ndarray, Scene]]) -> None:
    from arengine.render.backend import FallbackBackend

    image, scene = scenes[LIP_IMAGES[0]]
    state = room_state()
    ref, _ = run_frames(make_effects(None, state), None, image, scene)
    stream = FallbackBackend(make_gl(lose_context_at_frame=1))
    outs, chain = run_frames(make_effects(stream, state), stream, image, scene)
    for k in range(3):
        assert np.abs(outs[k].astype(int) - ref[k].astype(int)).max() <= 3
    assert stream.status["backend"] == "cpu" and stream.fallback_frame == 1
    assert chain.stats.backend_frames == 3 and chain.stats.failures == {}
    assert not stream.frame_open


# -- the room's chain (EffectChain): shade, toggles, settings from the room state


def _apply(chain: EffectChain, image: np.ndarray, scene, t: float) -> np.ndarray:
    return chain.apply(image.copy(), scene.at(t), lambda _: None, lambda _: None)


def test_room_shade_turns_lipstick_on_and_off() -> None:
    image = DemoSource(640, 360).frame_at(0.0)
    with FaceTracker("image") as ft:
        scene = ft.track(image)
    chain = EffectChain(("lipstick",))
    chain.set_state(RoomState("r"))  # no shade chosen: no lipstick (after a fade-out)
    _apply(chain, image, scene, 1.0)
    assert np.array_equal(_apply(chain, image, scene, 2.0), image)
    chain.set_state(RoomState("r", shade_id="velvet-plum"))
    _apply(chain, image, scene, 3.0)  # the cross-fade starts here
    on = _apply(chain, image, scene, 5.0)
    assert np.abs(on.astype(int) - image).max() > 40
    chain.set_state(RoomState("r", shade_id=None))
    _apply(chain, image, scene, 6.0)
    assert np.array_equal(_apply(chain, image, scene, 8.0), image)


def test_room_effect_settings_reach_the_effect() -> None:
    """A host's lipstick intensity changes the picture (settings were stored and ignored)."""
    image = DemoSource(640, 360).frame_at(0.0)
    with FaceTracker("image") as ft:
        scene = ft.track(image)
    chain = EffectChain(("lipstick",))
    chain.set_state(RoomState("r", shade_id="velvet-plum"))
    _apply(chain, image, scene, 1.0)
    full = _apply(chain, image, scene, 3.0)
    change = np.abs(full.astype(int) - image).sum()
    assert change > 0
    chain.set_state(RoomState("r", shade_id="velvet-plum",
                              effect_settings={"lipstick": {"intensity": 0.3}}))
    weak = _apply(chain, image, scene, 3.1)  # the shade stays on: no fade from bare lips
    weak_change = np.abs(weak.astype(int) - image).sum()
    assert 0.15 * change < weak_change < 0.5 * change, (weak_change, change)
    chain.set_state(RoomState("r", shade_id="velvet-plum",
                              effect_settings={"lipstick": {"intensity": 7}}))  # kept out
    assert np.array_equal(_apply(chain, image, scene, 3.2), weak)
    chain.set_state(RoomState("r", shade_id="velvet-plum", effect_settings={}))
    assert np.array_equal(_apply(chain, image, scene, 3.3), full)


def test_room_effect_toggles_and_unknown_effects(caplog) -> None:
    caplog.set_level(logging.WARNING)
    chain = EffectChain(("lipstick", "no_such_layer"))
    assert chain.names == ["lipstick"]
    assert "no_such_layer" in caplog.text
    chain.set_state(RoomState("r", effects={"lipstick": False}))
    assert chain.enabled["lipstick"] is False


def test_gl_backend_chain_matches_cpu_with_one_readback_per_frame() -> None:
    """The room's chain on the GL backend (llvmpipe without a GPU) draws what the CPU draws,
    reading each frame back once; CI must have a GL context, a developer box may not."""
    import os

    import pytest

    from arengine.render.backend import select_backend
    from arengine.state import PollOptionView, PollView, ViewerView

    backend = select_backend("gl")
    if backend.name != "gl":
        reason = backend.status.get("fallback_reason")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"no GL context in CI: {reason}", pytrace=False)
        pytest.skip(f"no GL context: {reason}")
    image = DemoSource(640, 360).frame_at(0.0)
    with FaceTracker("image") as ft:
        scene = ft.track(image)
    state = RoomState(
        "r", taken_at=100.0, shade_id="velvet-ruby",
        viewers=tuple(ViewerView(f"v{i}", f"Viewer {i}", last_comment="好看!",
                                 last_active=99.0 + i * 0.01) for i in range(6)),
        poll=PollView("p1", "Which shade?", (PollOptionView("Ruby", 3, "velvet-ruby", "#9B1B30"),
                                             PollOptionView("Nude", 1)), 90.0, 190.0))
    names = ("lipstick", "avatars", "vote_sticker", "likes", "product")
    cpu, gl = EffectChain(names), EffectChain(names, backend=backend)
    for chain in (cpu, gl):
        chain.set_state(state)
    before = dict(backend.status)
    for t in (0.0, 0.5, 1.0):
        a, b = _apply(cpu, image, scene, t), _apply(gl, image, scene, t)
    assert np.abs(a.astype(int) - b).max() <= 3
    assert np.abs(b.astype(int) - image).max() > 40  # lipstick and layers really drawn
    stats = gl.render_stats()
    assert stats["backend"] == "gl" and stats["chain"]["frames"] == 3
    assert stats["frames"] - before["frames"] == 3  # one backend frame (one readback) each
