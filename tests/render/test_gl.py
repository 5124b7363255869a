"""The GLSL backend against the CPU reference, on real faces (Mesa llvmpipe in CI)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arengine.catalog import FINISHES, default_catalog
from arengine.data import SHADERS_DIR
from arengine.effects.lipstick import LipParams
from arengine.render.cpu import CPUBackend
from arengine.render.gl_shaders import (
    ShaderCompileError,
    compile_error,
    load_source,
    split_moderngl_log,
)
from arengine.render.sprites import blend_sprite, circle_crop, premultiply

LIP_IMAGES = ("mediapipe_samples/business-person.png", "faces/obama-720p.jpg")
LipCase = Any  # tests/render/conftest.py: image, geom, mask, fields(params), full_mask()
LIP_TOLERANCE = 3  # levels of 255, inside the lips
SPRITE_TOLERANCE = 1  # the blend unit rounds once, the reference twice


def _render(backend: Any, image: np.ndarray, ops: list[tuple[str, tuple[Any, ...],
                                                            dict[str, Any]]]) -> np.ndarray:
    backend.begin_frame(image)
    for op, args, kwargs in ops:
        getattr(backend, op)(*args, **kwargs)
    out: np.ndarray = backend.end_frame()
    return out


def _lip_ops(case: LipCase, params: LipParams) -> list[tuple[str, tuple[Any, ...],
                                                             dict[str, Any]]]:
    return [("composite_lips", (case.geom.box, case.mask, params),
             {"fields": case.fields(params)})]


@pytest.mark.parametrize("image", LIP_IMAGES)
@pytest.mark.parametrize("finish", FINISHES)
def test_lip_parity_per_finish(gl: Any, cpu: CPUBackend, lip_cases: dict[str, LipCase],
                               image: str, finish: str) -> None:
    case = lip_cases[image]
    shades = [s for s in default_catalog() if s.finish == finish]
    assert shades, f"no catalog shade with finish {finish}"
    lips = case.full_mask() > 0
    for shade in shades:
        params = LipParams.from_shade(shade)
        ops = _lip_ops(case, params)
        want = _render(cpu, case.image, ops)
        got = _render(gl, case.image, ops)
        diff = np.abs(got.astype(np.int16) - want.astype(np.int16)).max(axis=2)
        assert (want[lips] != case.image[lips]).any(), f"{shade.id}: the CPU drew nothing"
        assert diff[lips].max() <= LIP_TOLERANCE, (
            f"{shade.id} ({finish}) on {image}: GL differs from CPU by "
            f"{diff[lips].max()}/255 inside the lips")
        assert np.array_equal(got[~lips], case.image[~lips]), (
            f"{shade.id} ({finish}) on {image}: GL changed pixels outside the lip mask")
        assert np.array_equal(want[~lips], case.image[~lips])


def test_lip_parity_with_liner_ombre_and_fade(gl: Any, cpu: CPUBackend,
                                              lip_cases: dict[str, LipCase]) -> None:
    """Liner, ombre and a cross-fade between two finishes use the same uniforms."""
    case = lip_cases[LIP_IMAGES[0]]
    cat = default_catalog()
    extras = [s for s in cat if s.liner_hex or s.ombre_inner_hex]
    assert extras, "the catalog should have a liner or ombre shade"
    fade = LipParams.from_shade(cat.get("star-galaxy")).blend(
        LipParams.from_shade(extras[0]), 0.4)
    lips = case.full_mask() > 0
    for params in [LipParams.from_shade(s) for s in extras] + [fade]:
        ops = _lip_ops(case, params)
        want, got = _render(cpu, case.image, ops), _render(gl, case.image, ops)
        diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
        assert diff.max() <= LIP_TOLERANCE
        assert np.array_equal(got[~lips], case.image[~lips])


def test_shimmer_follows_the_lips(gl: Any, lip_cases: dict[str, LipCase]) -> None:
    """The sparkle is fixed to the lips: the same face moved by whole pixels sparkles the
    same, moved with it (it does not crawl in screen space)."""
    case = lip_cases[LIP_IMAGES[0]]
    params = LipParams.from_shade(next(s for s in default_catalog() if s.finish == "shimmer"))
    fields = case.fields(params)
    dx, dy = 7, 5
    x1, y1, x2, y2 = case.geom.box
    shifted = np.roll(case.image, (dy, dx), axis=(0, 1))
    a = _render(gl, case.image, [("composite_lips", (case.geom.box, case.mask, params),
                                  {"fields": fields})])
    b = _render(gl, shifted, [("composite_lips", ((x1 + dx, y1 + dy, x2 + dx, y2 + dy),
                                                  case.mask, params), {"fields": fields})])
    assert np.array_equal(a[y1:y2, x1:x2], b[y1 + dy:y2 + dy, x1 + dx:x2 + dx])


def _sprites(rng: np.random.Generator) -> dict[str, np.ndarray]:
    straight = rng.integers(0, 256, (180, 240, 4), np.uint8)
    straight[:40, :, 3] = 0  # fully transparent rows
    straight[40:80, :, 3] = 255  # opaque rows
    face = circle_crop(rng.integers(0, 256, (120, 120, 3), np.uint8), 96)
    return {"sticker": premultiply(straight), "avatar": face}


@pytest.mark.parametrize("opacity", [1.0, 0.6, 0.25])
def test_sprite_parity(gl: Any, cpu: CPUBackend, lip_cases: dict[str, LipCase],
                       opacity: float) -> None:
    image = lip_cases[LIP_IMAGES[1]].image
    h, w = image.shape[:2]
    rng = np.random.default_rng(7)
    sp = _sprites(rng)
    placements = [("sticker", 40, 60), ("sticker", -100, -50), ("sticker", w - 90, h - 30)]
    placements += [("avatar", int(x), int(y)) for x, y in
                   zip(rng.integers(-40, w, 12), rng.integers(-40, h, 12), strict=True)]
    ops = [("blend_sprite", (sp[k], x, y), {"key": k, "opacity": opacity})
           for k, x, y in placements]
    want = _render(cpu, image, ops)
    got = _render(gl, image, ops)
    ref = image.copy()
    for k, x, y in placements:
        blend_sprite(ref, sp[k], x, y, opacity)
    assert np.array_equal(want, ref)  # the CPU backend is the shared reference blend
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= SPRITE_TOLERANCE
    covered = np.zeros((h, w), bool)
    for k, x, y in placements:
        s = sp[k]
        a = np.zeros((h, w), bool)
        ys, xs = slice(max(y, 0), min(y + s.shape[0], h)), slice(max(x, 0), min(x + s.shape[1], w))
        a[ys, xs] = s[ys.start - y:ys.stop - y, xs.start - x:xs.stop - x, 3] > 0
        covered |= a
    assert np.array_equal(got[~covered], image[~covered])
    assert (got[covered] != image[covered]).any()


def test_lips_then_sprite_over_them(gl: Any, cpu: CPUBackend,
                                    lip_cases: dict[str, LipCase]) -> None:
    """Order matters and is kept: a sprite over the lips covers the lipstick, and lips
    drawn after a sprite colour what the sprite left (both read the current canvas)."""
    case = lip_cases[LIP_IMAGES[0]]
    params = LipParams.from_shade(default_catalog().get("dew-glass-red"))
    x1, y1, _, _ = case.geom.box
    sticker = premultiply(np.full((30, 60, 4), (40, 200, 90, 128), np.uint8))
    lip = ("composite_lips", (case.geom.box, case.mask, params),
           {"fields": case.fields(params)})
    spr = ("blend_sprite", (sticker, x1 + 5, y1 + 5), {"key": "s"})
    for ops in ([lip, spr], [spr, lip]):
        want, got = _render(cpu, case.image, ops), _render(gl, case.image, ops)
        assert np.abs(got.astype(np.int16) - want.astype(np.int16)).max() <= LIP_TOLERANCE


def test_sprite_cache_keeps_textures_until_version_changes(gl: Any) -> None:
    frame = np.full((120, 160, 3), 50, np.uint8)
    red = premultiply(np.full((20, 20, 4), (0, 0, 255, 255), np.uint8))
    blue = premultiply(np.full((20, 20, 4), (255, 0, 0, 255), np.uint8))
    for _ in range(3):
        gl.begin_frame(frame)
        gl.blend_sprite(red, 10, 10, key="viewer-1", version=1)
        out = gl.end_frame()
    assert gl.sprites.misses == 1 and gl.sprites.hits == 2
    assert (out[15, 15] == (0, 0, 255)).all()
    # Same key, same version: the cached texture is used even if other pixels are passed.
    gl.begin_frame(frame)
    gl.blend_sprite(blue, 10, 10, key="viewer-1", version=1)
    assert (gl.end_frame()[15, 15] == (0, 0, 255)).all()
    gl.begin_frame(frame)
    gl.blend_sprite(blue, 10, 10, key="viewer-1", version=2)
    assert (gl.end_frame()[15, 15] == (255, 0, 0)).all()
    assert gl.sprites.misses == 2 and len(gl.sprites) == 1
    gl.forget_sprite("viewer-1")
    assert len(gl.sprites) == 0 and gl.sprites.bytes == 0


def test_sprite_cache_is_bounded(make_gl: Any) -> None:
    gl = make_gl(sprite_cache_bytes=3 * 32 * 32 * 4)
    frame = np.zeros((64, 64, 3), np.uint8)
    sprite = premultiply(np.full((32, 32, 4), 200, np.uint8))
    gl.begin_frame(frame)
    for i in range(10):
        gl.blend_sprite(sprite, 0, 0, key=i)
    gl.end_frame()
    assert len(gl.sprites) == 3 and gl.sprites.bytes <= 3 * 32 * 32 * 4


def test_only_touched_pixels_cross_the_bus(make_gl: Any, lip_cases: dict[str, LipCase]) -> None:
    """Per frame the pixels under the lips and the sprites go up once and come back once;
    the sticker texture goes up once per stream; untouched pixels never move."""
    case = lip_cases[LIP_IMAGES[1]]
    params = LipParams.from_shade(default_catalog().get("silk-cherry"))
    sticker = _sprites(np.random.default_rng(1))["sticker"]
    ops = [*_lip_ops(case, params), ("blend_sprite", (sticker, 10, 10), {"key": "sticker"})]
    x1, y1, x2, y2 = case.geom.box
    lip_px = (x2 - x1) * (y2 - y1)
    sticker_px = sticker.shape[0] * sticker.shape[1]
    n = 4
    for dirty in (True, False):
        gl = make_gl(dirty_regions=dirty)
        outs = [_render(gl, case.image, ops) for _ in range(n)]
        s = gl.status
        moved = (lip_px + sticker_px) * 3 if dirty else case.image.nbytes
        assert s["readback_bytes"] == n * moved
        # + mask and lip fields: two RGBA float textures (mask, blurred L, normal; spec,
        # edge, ombre), the flakes only for a shimmer
        assert s["upload_bytes"] == n * (moved + lip_px * 32)
        assert s["sprite_misses"] == 1 and s["sprite_hits"] == n - 1
        assert all(np.array_equal(o, outs[0]) for o in outs)
        if dirty:
            assert moved < case.image.nbytes / 4
            first = outs[0]
        else:
            assert np.array_equal(outs[0], first)


def test_inplace_writes_into_the_frame(gl: Any, cpu: CPUBackend,
                                       lip_cases: dict[str, LipCase]) -> None:
    case = lip_cases[LIP_IMAGES[0]]
    params = LipParams.from_shade(default_catalog().get("dew-glass-pink"))
    sticker = _sprites(np.random.default_rng(4))["sticker"]
    ops = [*_lip_ops(case, params), ("blend_sprite", (sticker, 300, 900), {"key": "s"})]
    for backend in (gl, cpu):
        frame = case.image.copy()
        backend.begin_frame(frame, inplace=True)
        for op, args, kwargs in ops:
            getattr(backend, op)(*args, **kwargs)
        out = backend.end_frame()
        assert out is frame
        assert np.array_equal(out, _render(backend, case.image, ops))
    with pytest.raises(ValueError, match="contiguous"):
        gl.begin_frame(case.image.copy()[:, ::2], inplace=True)


def test_no_calls_no_transfer(gl: Any) -> None:
    frame = np.full((50, 70, 3), 3, np.uint8)
    gl.begin_frame(frame)
    out = gl.end_frame()
    assert np.array_equal(out, frame) and out is not frame
    assert gl.status["upload_bytes"] == 0 and gl.status["readback_bytes"] == 0


def test_merge_regions() -> None:
    from arengine.render.gl import merge_regions

    assert merge_regions([], 100, 100) == []
    assert merge_regions([(0, 0, 0, 5)], 100, 100) == []  # empty rectangles drop out
    # Overlapping: one box.
    assert merge_regions([(0, 0, 10, 10), (5, 5, 15, 15)], 1000, 1000) == [(0, 0, 15, 15)]
    # Neighbours in a row (avatars): merged, the box is barely larger than both.
    assert merge_regions([(0, 0, 10, 10), (11, 0, 21, 10)], 1000, 1000) == [(0, 0, 21, 10)]
    # Far apart corners: kept apart, moving the gap would cost more.
    far = [(0, 0, 10, 10), (990, 990, 1000, 1000)]
    assert merge_regions(far, 1000, 1000) == far
    # Covering most of the frame: the whole frame in one go.
    assert merge_regions([(0, 0, 80, 100), (85, 0, 90, 10)], 100, 100) == [(0, 0, 100, 100)]


def test_frame_size_changes_and_4k(gl: Any) -> None:
    rng = np.random.default_rng(3)
    sprite = premultiply(rng.integers(0, 256, (64, 64, 4), np.uint8))
    for w, h in [(640, 360), (3840, 2160), (1281, 721), (640, 360)]:
        frame = rng.integers(0, 256, (h, w, 3), np.uint8)
        gl.begin_frame(frame)
        gl.blend_sprite(sprite, w - 32, h - 32, key="s")
        out = gl.end_frame()
        ref = blend_sprite(frame.copy(), sprite, w - 32, h - 32)
        assert out.shape == frame.shape
        assert np.abs(out.astype(np.int16) - ref).max() <= SPRITE_TOLERANCE


def test_backend_works_from_another_thread(gl: Any) -> None:
    """Streams composite in worker threads; each call makes the context current."""
    frame = np.full((90, 160, 3), 77, np.uint8)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            gl.begin_frame(frame)
            results.append(gl.end_frame())
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert not errors, errors
    gl.begin_frame(frame)
    results.append(gl.end_frame())
    assert all(np.array_equal(r, frame) for r in results)


# -- shader errors --------------------------------------------------------------------------

def _shader_copy(tmp_path: Path) -> Path:
    d = tmp_path / "shaders"
    shutil.copytree(SHADERS_DIR, d)
    return d


def _break(path: Path, line_no: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines.insert(line_no - 1, text)
    path.write_text("\n".join(lines) + "\n")


def test_compile_error_names_file_and_line(make_gl: Any, tmp_path: Path) -> None:
    shaders = _shader_copy(tmp_path)
    lips = shaders / "lips.frag"
    line_no = next(i for i, ln in enumerate(lips.read_text().splitlines(), 1)
                   if ln.startswith("void main"))
    _break(lips, line_no, "float broken = undefined_name * 2.0;")
    with pytest.raises(ShaderCompileError) as info:
        make_gl(shaders_dir=shaders)
    err = info.value
    assert err.path == lips
    assert err.line == line_no
    assert f"lips.frag:{line_no}:" in str(err)
    assert "undefined_name" in str(err)


def test_compile_error_inside_an_include(make_gl: Any, tmp_path: Path) -> None:
    shaders = _shader_copy(tmp_path)
    colour = shaders / "colour.glsl"
    _break(colour, 12, "float oops(float x) { return x +; }")
    with pytest.raises(ShaderCompileError) as info:
        make_gl(shaders_dir=shaders)
    assert info.value.path == colour
    assert info.value.line == 12
    assert "colour.glsl:12:" in str(info.value)


def test_compile_error_line_with_defines(gl: Any, tmp_path: Path) -> None:
    """Lines prepended by the loader (#version, #define) do not shift the reported line."""
    from arengine.render.gl import build_program

    frag = tmp_path / "bad.frag"
    frag.write_text("out vec4 c;\n\nvoid main() {\n    c = vec4(ONE, ONE, ONE) + nope;\n}\n")
    with pytest.raises(ShaderCompileError) as info, gl._ctx:
        build_program(gl._ctx, "quad.vert", frag, defines={"ONE": 1.0, "FAST": True})
    assert info.value.path == frag and info.value.line == 4


def test_missing_shader_file_is_a_clear_error(make_gl: Any, tmp_path: Path) -> None:
    shaders = _shader_copy(tmp_path)
    (shaders / "sprite.frag").unlink()
    with pytest.raises(Exception, match=r"cannot read shader .*sprite\.frag"):
        make_gl(shaders_dir=shaders)


@pytest.mark.parametrize("log_line", [
    "0:{n}(12): error: `x' undeclared",             # Mesa
    "0({n}) : error C1008: undefined variable \"x\"",  # NVIDIA
    "ERROR: 0:{n}: 'x' : undeclared identifier",    # AMD / ANGLE / glslang
])
def test_info_log_formats_map_to_file_lines(tmp_path: Path, log_line: str) -> None:
    frag = tmp_path / "a.frag"
    frag.write_text("#version 330 core\nout vec4 c;\nvoid main() { c = vec4(x); }\n")
    src = load_source(frag, {"A": 1, "B": 2})
    # #version, two defines, then the file; the file's line 3 is generated line 5 ...
    generated = src.text.splitlines().index("void main() { c = vec4(x); }") + 1
    err = compile_error(src, log_line.format(n=generated))
    assert (err.path, err.line) == (frag, 3)
    assert str(err).startswith(f"{frag}:3: ")


def test_moderngl_log_is_split_per_stage() -> None:
    text = ("GLSL Compiler failed\n\nfragment_shader\n===============\n"
            "0:3(30): error: `x' undeclared\n\n")
    assert split_moderngl_log(text) == {"fragment_shader": "0:3(30): error: `x' undeclared\n"}


# -- transfers ------------------------------------------------------------------------------

@pytest.mark.parametrize("transfer", ["packed", "direct"])
def test_frames_round_trip_exactly(make_gl: Any, transfer: str) -> None:
    """Upload and readback give back every byte, for sizes whose byte count is not a
    multiple of the packing (odd widths, a partial last row, a partial last texel)."""
    gl = make_gl(transfer=transfer)
    assert gl.status["transfer"] == transfer
    rng = np.random.default_rng(11)
    for w, h in [(1, 1), (3, 5), (641, 359), (1281, 721), (4099, 3), (5, 4000)]:
        frame = rng.integers(0, 256, (h, w, 3), np.uint8)
        clear_all = np.zeros((h, w, 4), np.uint8)  # a transparent sprite: moves, changes nothing
        clear_part = np.zeros(((h + 1) // 2, (w + 2) // 3, 4), np.uint8)
        for sprite, x, y in [(clear_all, 0, 0), (clear_part, w // 3, h // 2)]:
            gl.begin_frame(frame)
            gl.blend_sprite(sprite, x, y)
            assert np.array_equal(gl.end_frame(), frame), (w, h, x, y)
        assert gl.status["readback_bytes"] > 0


def test_packed_transfer_lip_and_sprite_parity(make_gl: Any, cpu: CPUBackend,
                                               lip_cases: dict[str, LipCase]) -> None:
    gl = make_gl(transfer="packed")
    case = lip_cases[LIP_IMAGES[1]]
    sticker = _sprites(np.random.default_rng(2))["sticker"]
    lips = case.full_mask() > 0
    for finish in FINISHES:
        shade = next(s for s in default_catalog() if s.finish == finish)
        params = LipParams.from_shade(shade)
        ops = [*_lip_ops(case, params), ("blend_sprite", (sticker, -20, 30), {"key": "s"})]
        want, got = _render(cpu, case.image, ops), _render(gl, case.image, ops)
        diff = np.abs(got.astype(np.int16) - want.astype(np.int16)).max(axis=2)
        assert diff[lips].max() <= LIP_TOLERANCE, finish
        assert diff[~lips].max() <= SPRITE_TOLERANCE, finish


def test_auto_transfer_follows_the_renderer(gl: Any) -> None:
    from arengine.render.gl import is_software_renderer

    assert gl.status["transfer"] == ("direct" if is_software_renderer(gl.renderer)
                                     else "packed")
