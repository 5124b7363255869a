"""Lipstick through a render backend: the CPU reference gives the very same pixels, GLSL
stays within 3 levels on the lips and leaves everything else alone, in a layer chain too.

Without an OpenGL context the GL tests skip on a developer machine but fail in CI
(``CI=true``), as in tests/render: CI installs Mesa's llvmpipe so that the shaders run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from arengine.catalog import FINISHES, Shade, default_catalog
from arengine.effects.avatars import Avatars
from arengine.effects.base import Effect, create_effect
from arengine.effects.lipstick import LipstickEffect, lip_geometry, lip_roi_mask
from arengine.effects.vote_sticker import VoteSticker
from arengine.render.backend import RenderBackend, select_backend
from arengine.render.cpu import CPUBackend
from arengine.state import PollOptionView, PollView, RoomState, ViewerView
from arengine.tracking import FaceTracker
from arengine.types import Scene

Scenes = dict[str, tuple[np.ndarray, Scene]]
IMAGES = ("mediapipe_samples/business-person.png", "faces/obama-720p.jpg")


def _shades() -> list[Shade]:
    """One shade of every finish, plus the shades with a liner and with an ombre."""
    catalog = list(default_catalog())
    picked = [next(s for s in catalog if s.finish == f) for f in FINISHES]
    picked.append(next(s for s in catalog if s.liner_hex and not s.ombre_inner_hex))
    picked += [s for s in catalog if s.ombre_inner_hex]
    return list({s.id: s for s in picked}.values())


SHADES = _shades()


def _no_gl(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"no OpenGL context in CI ({reason}); install the EGL/Mesa packages in "
                    ".ci/apt-packages", pytrace=False)
    pytest.skip(f"no OpenGL context: {reason}")


@pytest.fixture
def gl() -> Iterator[RenderBackend]:
    """The GL backend as the CLI's ``--render gl`` makes it (llvmpipe without a GPU)."""
    backend = select_backend("gl")
    if backend.name != "gl":
        backend.close()
        _no_gl(backend.fallback_reason or "select_backend('gl') gave no GL backend")
    yield backend
    # A context that failed mid-test would have moved the frames to the CPU unseen.
    assert backend.status["fallback_reason"] is None, backend.status
    backend.close()


@pytest.fixture(scope="module")
def scenes(load_image: Callable[[str], np.ndarray]) -> Scenes:
    """Each picture with its faces tracked once (image mode)."""
    out = {}
    with FaceTracker(mode="image") as tracker:
        for rel in (*IMAGES, "faces/two_people.jpg"):
            image = load_image(rel)
            scene = tracker.track(image)
            assert len(scene.faces) >= 1, f"no face found in {rel}"
            out[rel] = (image, scene)
    return out


def _lip_coverage(scene: Scene) -> np.ndarray:
    """Where any face's lipstick may paint (mask > 0), in frame pixels."""
    out = np.zeros((scene.height, scene.width), bool)
    for i in range(len(scene.faces)):
        geom = lip_geometry(scene.faces.points[i], scene.width, scene.height)
        assert geom is not None
        x1, y1, x2, y2 = geom.box
        out[y1:y2, x1:x2] |= lip_roi_mask(geom) > 0
    return out


def _paint(image: np.ndarray, scene: Scene, shade: Shade,
           backend: RenderBackend | None = None) -> np.ndarray:
    frame = image.copy()
    return LipstickEffect(shade, backend=backend).apply(frame, scene)


# --------------------------------------------------------------------------- CPU backend

@pytest.mark.parametrize("rel", [*IMAGES, "faces/two_people.jpg"])
def test_cpu_backend_gives_the_same_bytes(scenes: Scenes, rel: str) -> None:
    image, scene = scenes[rel]
    backend = CPUBackend()
    for shade in SHADES:
        direct = _paint(image, scene, shade)
        via = _paint(image, scene, shade, backend)
        np.testing.assert_array_equal(via, direct, err_msg=shade.id)
        assert not np.array_equal(via, image), shade.id
    assert backend.frames == len(SHADES)  # one frame per picture, however many faces


def test_writes_in_place_like_the_plain_effect(scenes: Scenes) -> None:
    image, scene = scenes[IMAGES[0]]
    frame = image.copy()
    out = LipstickEffect("velvet-ruby", backend=CPUBackend()).apply(frame, scene)
    assert out is frame


def test_read_only_frame_is_left_as_it_is(scenes: Scenes) -> None:
    image, scene = scenes[IMAGES[1]]
    frame = image.copy()
    frame.flags.writeable = False
    out = LipstickEffect("velvet-ruby", backend=CPUBackend()).apply(frame, scene)
    assert out is not frame
    np.testing.assert_array_equal(frame, image)
    np.testing.assert_array_equal(out, _paint(image, scene, default_catalog().get("velvet-ruby")))


def test_no_frame_is_opened_without_lips_to_paint(scenes: Scenes) -> None:
    image, scene = scenes[IMAGES[0]]
    backend = CPUBackend()
    frame = image.copy()
    assert LipstickEffect("velvet-ruby", backend=backend).apply(
        frame, Scene.empty(scene.width, scene.height)) is frame
    bare = LipstickEffect("velvet-ruby", crossfade_ms=0, backend=backend)
    bare.set_shade(None)
    assert bare.apply(frame, scene) is frame
    assert backend.frames == 0
    np.testing.assert_array_equal(frame, image)


def test_cross_fade_through_the_backend_matches(scenes: Scenes) -> None:
    image, scene = scenes[IMAGES[1]]
    direct, via = LipstickEffect("velvet-ruby"), LipstickEffect("velvet-ruby",
                                                                backend=CPUBackend())
    for effect in (direct, via):
        effect.set_shade("dew-glass-pink", at=1.0)
    for t in (0.9, 1.05, 1.15, 1.4):
        np.testing.assert_array_equal(via.apply(image.copy(), scene.at(t)),
                                      direct.apply(image.copy(), scene.at(t)))


def test_registered_effect_takes_the_backend(scenes: Scenes) -> None:
    image, scene = scenes[IMAGES[0]]
    backend = CPUBackend()
    effect = create_effect("lipstick", shade="silk-cherry", backend=backend)
    effect.apply(image.copy(), scene)
    assert backend.frames == 1


class _Failing(CPUBackend):
    def _lips(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("driver fell over")


def test_a_failing_composite_leaves_no_frame_open(scenes: Scenes) -> None:
    image, scene = scenes[IMAGES[0]]
    backend = _Failing()
    with pytest.raises(RuntimeError, match="driver fell over"):
        LipstickEffect("velvet-ruby", backend=backend).apply(image.copy(), scene)
    backend.begin_frame(image)  # would raise "begin_frame called twice" if left open
    backend.end_frame()


class _SharedCPU(CPUBackend):
    """A backend that says when a frame is open, so effects join it instead of opening."""

    @property
    def frame_open(self) -> bool:
        return self._size is not None


def test_joins_a_frame_someone_else_opened(scenes: Scenes) -> None:
    image, scene = scenes["faces/two_people.jpg"]
    shade = default_catalog().get("star-champagne")
    backend = _SharedCPU()
    frame = image.copy()
    backend.begin_frame(frame)  # not in place: the lips appear only in what end_frame gives
    assert LipstickEffect(shade, backend=backend).apply(frame, scene) is frame
    np.testing.assert_array_equal(frame, image)
    out = backend.end_frame()
    assert backend.frames == 1
    np.testing.assert_array_equal(out, _paint(image, scene, shade))


# --------------------------------------------------------------------------- GL backend

@pytest.mark.parametrize("rel", IMAGES)
def test_gl_matches_within_3_levels_on_the_lips_and_exactly_elsewhere(
        scenes: Scenes, gl: RenderBackend, rel: str) -> None:
    image, scene = scenes[rel]
    lips = _lip_coverage(scene)
    for shade in SHADES:
        direct = _paint(image, scene, shade)
        via = _paint(image, scene, shade, gl)
        diff = np.abs(direct.astype(np.int16) - via).max(axis=2)
        assert diff[lips].max() <= 3, f"{shade.id} ({shade.finish}): {diff[lips].max()}"
        assert not diff[~lips].any(), f"{shade.id}: pixels off the lips changed"
        # The shade moves many lip pixels by more than the tolerance, so a GL pass that
        # painted nothing could not pass the check above.
        assert (np.abs(direct.astype(np.int16) - image).max(axis=2)[lips] > 3).sum() > 300, \
            f"{shade.id}: the lips were not painted"
    assert gl.frames == len(SHADES)


@pytest.mark.parametrize("rel", IMAGES)
def test_the_colour_readout_is_the_same_through_a_backend(scenes: Scenes, gl: RenderBackend,
                                                          rel: str) -> None:
    """Through a backend the readout is computed from the picture with the CPU reference
    (the GPU's pixels are not back yet); it matches what the CPU path reads off its own
    painted pixels."""
    from arengine.render.lips import delta_e00

    image, scene = scenes[rel]
    for shade in SHADES:
        direct = LipstickEffect(shade)
        direct.apply(image.copy(), scene)
        for backend in (CPUBackend(), gl):
            via = LipstickEffect(shade, backend=backend)
            via.apply(image.copy(), scene)
            assert len(via.last_readout) == len(direct.last_readout) >= 1
            for a, b in zip(direct.last_readout, via.last_readout, strict=True):
                # (an ombre's or a liner's target is a mean over the pixels read: a grid)
                assert float(delta_e00(a.colour.target, b.colour.target)) < 0.3, shade.id
                assert float(delta_e00(a.colour.rendered, b.colour.rendered)) < 1.0, shade.id


def _room() -> RoomState:
    viewers = tuple(ViewerView(f"v{i}", name, None, comment, 990.0 + i, 980.0)
                    for i, (name, comment) in enumerate([
                        ("Mai Anh", "Màu này đẹp quá"), ("Budi", None), ("Lucy", "love it")]))
    poll = PollView("p", "Which shade?", (
        PollOptionView("Velvet Ruby", 12, None, "#9B111E"),
        PollOptionView("Nude Rose", 30, None, "#C08081")), 990.0, 1060.0)
    return RoomState("r", taken_at=1000.0, viewers=viewers, poll=poll)


def _chain(backend: RenderBackend | None) -> list[Effect]:
    lipstick = LipstickEffect("gradient-nude-liner", backend=backend)
    lipstick.set_shade("star-rose-gold", at=2.1)  # a cross-fade runs during the frames
    sticker, avatars = VoteSticker(backend=backend), Avatars(backend=backend)
    for layer in (sticker, avatars):
        layer.set_state(_room())
    return [lipstick, sticker, avatars]


def _run(chain: list[Effect], image: np.ndarray, scene: Scene,
         frames: int = 8) -> list[np.ndarray]:
    out = []
    for i in range(frames):
        frame = image.copy()
        for effect in chain:
            frame = effect.apply(frame, scene.at(2.0 + i * 0.04, i))
        out.append(frame)
    return out


@pytest.mark.parametrize("rel", IMAGES)
def test_chain_on_one_gl_backend_matches_the_cpu_chain(scenes: Scenes, gl: RenderBackend,
                                                       rel: str) -> None:
    image, scene = scenes[rel]
    direct = _run(_chain(None), image, scene)
    via = _run(_chain(gl), image, scene)
    lips = _lip_coverage(scene)
    for a, b in zip(direct, via, strict=True):
        assert np.abs(a.astype(np.int16) - b).max() <= 3
        assert (np.abs(b.astype(np.int16) - image).max(axis=2)[lips] > 8).sum() > 300
        assert (np.abs(b.astype(np.int16) - image).max(axis=2)[~lips] > 8).sum() > 2000
    assert gl.frames == len(direct) * 3  # each effect opens and reads back its own frame
