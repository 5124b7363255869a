"""The sprite blend is the contract a GPU backend must match: test it pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest

from arengine.effects.avatars import Avatars
from arengine.effects.base import Effect
from arengine.effects.likes import Likes
from arengine.effects.product import ProductSticker
from arengine.effects.vote_sticker import VoteSticker
from arengine.render.cpu import CPUBackend
from arengine.render.sprites import (
    Canvas,
    SpriteCache,
    SpriteVersions,
    blend_sprite,
    blend_sprite_reference,
    circle_crop,
    from_mask,
    hex_to_bgr,
    over,
    premultiply,
    rounded_rect,
    solid,
)
from arengine.state import (
    LikeGoalView,
    PollOptionView,
    PollView,
    ProductView,
    RoomState,
    ViewerView,
)
from arengine.types import Scene


def _random_sprite(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return premultiply(rng.integers(0, 256, (h, w, 4), dtype=np.uint8))


def test_documented_formula_on_one_pixel() -> None:
    frame = np.full((1, 1, 3), 200, np.uint8)
    sprite = np.array([[[100, 50, 0, 128]]], np.uint8)  # premultiplied
    blend_sprite(frame, sprite, 0, 0)
    # out = src + round(dst * (255 - a) / 255)
    want = [100 + round(200 * 127 / 255), 50 + round(200 * 127 / 255), round(200 * 127 / 255)]
    assert frame[0, 0].tolist() == want


@pytest.mark.parametrize("opacity", [1.0, 0.75, 0.5, 0.2])
@pytest.mark.parametrize("xy", [(10, 20), (-15, -7), (90, 50), (-40, 55), (0, 0)])
def test_fast_blend_equals_reference_including_clipping(opacity: float,
                                                        xy: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (72, 128, 3), dtype=np.uint8)
    sprite = _random_sprite(30, 50)
    fast = blend_sprite(frame.copy(), sprite, *xy, opacity=opacity)
    ref = blend_sprite_reference(frame.copy(), sprite, *xy, opacity=opacity)
    np.testing.assert_array_equal(fast, ref)
    # Pixels outside the sprite's footprint are untouched.
    x, y = xy
    mask = np.ones(frame.shape[:2], bool)
    mask[max(y, 0):max(y + 30, 0), max(x, 0):max(x + 50, 0)] = False
    np.testing.assert_array_equal(fast[mask], frame[mask])


def test_reference_matches_float_formula_within_one_level() -> None:
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    sprite = _random_sprite(40, 40, 3)
    out = blend_sprite(frame.copy(), sprite, 0, 0, opacity=0.6)
    a = sprite[:, :, 3:4].astype(np.float64) / 255 * 0.6
    want = sprite[:, :, :3] * 0.6 + frame * (1 - a)
    assert np.abs(out - want).max() <= 1.5


def test_opaque_replaces_and_transparent_keeps() -> None:
    frame = np.full((10, 10, 3), 77, np.uint8)
    blend_sprite(frame, solid(4, 4, (1, 2, 3)), 2, 2)
    assert (frame[2:6, 2:6] == [1, 2, 3]).all()
    assert (frame[0, 0] == 77).all()
    before = frame.copy()
    blend_sprite(frame, np.zeros((5, 5, 4), np.uint8), 0, 0)
    blend_sprite(frame, solid(5, 5, (255, 255, 255)), 0, 0, opacity=0.0)
    blend_sprite(frame, solid(5, 5, (255, 255, 255)), 100, 100)  # entirely outside
    np.testing.assert_array_equal(frame, before)


def test_works_on_a_non_contiguous_frame_view() -> None:
    big = np.zeros((20, 40, 3), np.uint8)
    view = big[:, ::2]  # OpenCV cannot write through this; the reference path must
    blend_sprite(view, solid(3, 3, (9, 9, 9)), 1, 1)
    assert (big[1:4, 2:8:2] == 9).all()


def test_bad_input_is_rejected() -> None:
    frame = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="BGRA"):
        blend_sprite(frame, np.zeros((3, 3, 3), np.uint8), 0, 0)
    with pytest.raises(ValueError, match="BGR uint8"):
        blend_sprite(np.zeros((10, 10), np.uint8), solid(2, 2, (0, 0, 0)), 0, 0)


def test_shapes_are_antialiased_and_premultiplied() -> None:
    rr = rounded_rect(40, 80, 12, (0, 0, 255), alpha=1.0)
    assert rr[20, 40, 3] == 255 and rr[0, 0, 3] == 0  # centre solid, corner cut
    corner = rr[:12, :12, 3]
    assert ((corner > 0) & (corner < 255)).sum() >= 8  # soft edge along the curve
    assert (rr[:, :, :3] <= rr[:, :, 3:4]).all()  # premultiplied: colour <= alpha
    disc = circle_crop(np.full((50, 80, 3), 200, np.uint8), 32)
    assert disc.shape == (32, 32, 4) and disc[0, 0, 3] == 0 and disc[16, 16, 3] == 255
    m = from_mask(np.array([[0, 128, 255]], np.uint8), (255, 255, 255))
    assert m[0, :, 3].tolist() == [0, 128, 255]


def test_over_composites_premultiplied() -> None:
    dst = solid(2, 2, (0, 0, 255))
    over(dst, solid(1, 1, (255, 0, 0), 0.5), 0, 0)
    assert dst[0, 0].tolist() == [128, 0, 127, 255]
    assert dst[1, 1].tolist() == [0, 0, 255, 255]


def test_hex_colours() -> None:
    assert hex_to_bgr("#FF8000") == (0, 128, 255)
    with pytest.raises(ValueError, match="RRGGBB"):
        hex_to_bgr("red")


def test_sprite_cache_is_lru() -> None:
    cache: SpriteCache[int] = SpriteCache(2)
    calls: list[str] = []

    def make(k: str) -> int:
        calls.append(k)
        return len(calls)

    assert cache.get("a", lambda: make("a")) == 1
    assert cache.get("b", lambda: make("b")) == 2
    assert cache.get("a", lambda: make("a")) == 1  # hit, "a" now newest
    cache.get("c", lambda: make("c"))  # evicts "b"
    assert "a" in cache and "b" not in cache and len(cache) == 2
    assert calls == ["a", "b", "c"] and cache.hits == 1


# -- drawing through a render backend ------------------------------------------------------

def _busy_room() -> RoomState:
    viewers = tuple(ViewerView(f"v{i}", name, None, comment, 990.0 + i, 980.0)
                    for i, (name, comment) in enumerate([
                        ("Mai Anh", "Màu này đẹp quá"), ("王小明", "多少钱？"),
                        ("สมชาย", "สวยมากค่ะ"), ("Budi", None), ("Lucy", "love it")]))
    poll = PollView("p", "Which shade? 哪个颜色?", (
        PollOptionView("Velvet Ruby", 12, None, "#9B111E"),
        PollOptionView("Nude Rose", 30, None, "#C08081")), 990.0, 1060.0)
    return RoomState("r", taken_at=1000.0, viewers=viewers, poll=poll,
                     recent_likes=(999.0, 999.4, 999.8), like_goal=LikeGoalView(500, 321, "!"),
                     product=ProductView("sku", "Velvet Ruby Lipstick 丝绒口红", "¥129"))


def _layers(backend: object | None) -> list[Effect]:
    out: list[Effect] = []
    for cls in (VoteSticker, Likes, Avatars, ProductSticker):
        layer = cls(backend=backend)  # type: ignore[arg-type]
        layer.set_state(_busy_room())  # type: ignore[attr-defined]
        out.append(layer)
    return out


def _run(layers: list[Effect], image: np.ndarray, frames: int = 12) -> list[np.ndarray]:
    out = []
    for i in range(frames):
        scene = Scene.empty(image.shape[1], image.shape[0], 2.0 + i * 0.04, i)
        frame = image.copy()
        for layer in layers:
            frame = layer.apply(frame, scene)
        out.append(frame)
    return out


def test_layers_through_the_cpu_backend_are_identical(load_image) -> None:
    image = load_image("faces/obama-720p.jpg")
    direct = _run(_layers(None), image)
    backend = CPUBackend()
    via = _run(_layers(backend), image)
    assert backend.frames == 12 * 4  # one frame per layer per picture
    for a, b in zip(direct, via, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(direct[-1], image)


def test_layers_through_gl_match_within_3_levels(load_image, gl) -> None:
    image = load_image("faces/obama-720p.jpg")
    direct = _run(_layers(None), image)
    via = _run(_layers(gl), image)
    for a, b in zip(direct, via, strict=True):
        assert np.abs(a.astype(int) - b).max() <= 3
    assert gl.status["sprite_hits"] > 0  # cards and rows stayed on the GPU between frames


def test_canvas_aborts_the_frame_on_error() -> None:
    backend = CPUBackend()
    frame = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(RuntimeError, match="boom"), Canvas(frame, backend) as canvas:
        canvas.rect(0, 0, 5, 5, (1, 2, 3))
        raise RuntimeError("boom")
    backend.begin_frame(frame)  # not left open
    backend.end_frame()


def test_sprite_versions_change_with_the_picture() -> None:
    keys = SpriteVersions("t")
    a, b = solid(2, 2, (1, 1, 1)), solid(2, 2, (2, 2, 2))
    k1, v1 = keys.key("row", a)
    assert keys.key("row", a) == (k1, v1)
    k2, v2 = keys.key("row", b)
    assert k2 == k1 and v2 != v1
    assert keys.key("other", a)[0] != k1


def test_canvas_joins_an_open_frame() -> None:
    backend = CPUBackend()
    frame = np.zeros((20, 30, 3), np.uint8)
    backend.begin_frame(frame)
    with Canvas(frame, backend) as first:
        first.rect(0, 0, 5, 5, (0, 0, 255))
    assert first.joined and first.frame is frame and backend.frame_open  # not ended
    second = Canvas(frame, backend)
    second.rect(10, 0, 5, 5, (0, 255, 0))
    assert second.finish() is frame and backend.frame_open
    with pytest.raises(RuntimeError, match="boom"), Canvas(frame, backend):
        raise RuntimeError("boom")
    assert backend.frame_open  # dropping the frame is for whoever opened it
    out = backend.end_frame()
    assert (out[2, 2] == (0, 0, 255)).all() and (out[2, 12] == (0, 255, 0)).all()
    assert not frame.any()  # opened as a copy: the caller's frame is untouched
    assert backend.frames == 1


def test_canvas_opens_its_own_frame_when_none_is_open() -> None:
    backend = CPUBackend()
    frame = np.zeros((20, 30, 3), np.uint8)
    with Canvas(frame, backend) as canvas:
        canvas.rect(0, 0, 5, 5, (0, 0, 255))
        assert not canvas.joined and backend.frame_open
    assert not backend.frame_open and backend.frames == 1
    assert (canvas.frame[2, 2] == (0, 0, 255)).all()
