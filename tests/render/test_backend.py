"""The backend interface: argument checks, backend selection, CPU fallback mid-stream."""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any, ClassVar

import numpy as np
import pytest

from arengine.catalog import default_catalog
from arengine.effects.lipstick import LipParams
from arengine.render import backend as backend_mod
from arengine.render.backend import (
    BackendError,
    FallbackBackend,
    RenderBackend,
    select_backend,
)
from arengine.render.cpu import CPUBackend
from arengine.render.sprites import blend_sprite, premultiply

IMAGE = "faces/obama-720p.jpg"


def _sprite(seed: int = 0, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return premultiply(rng.integers(0, 256, (*size, 4), np.uint8))


def _frame_ops(backend: RenderBackend, case: Any, params: LipParams, image: np.ndarray,
               sprites: list[tuple[np.ndarray, int, int, Hashable]]) -> np.ndarray:
    backend.begin_frame(image)
    backend.composite_lips(case.geom.box, case.mask, params, fields=case.fields(params))
    for s, x, y, key in sprites:
        backend.blend_sprite(s, x, y, key=key)
    return backend.end_frame()


# -- the interface ---------------------------------------------------------------------------

def test_cpu_backend_is_the_reference(cpu: CPUBackend, lip_cases: dict[str, Any]) -> None:
    from arengine.effects.lipstick import composite_lips

    case = lip_cases[IMAGE]
    image = case.image
    before = image.copy()
    params = LipParams.from_shade(default_catalog().get("dew-glass-red"))
    sprite = _sprite()
    out = _frame_ops(cpu, case, params, image, [(sprite, 100, -10, "s")])
    assert np.array_equal(image, before), "begin_frame must not modify the caller's frame"
    ref = image.copy()
    x1, y1, x2, y2 = case.geom.box
    ref[y1:y2, x1:x2] = composite_lips(ref[y1:y2, x1:x2], case.mask, params,
                                       case.fields(params))
    blend_sprite(ref, sprite, 100, -10)
    assert np.array_equal(out, ref)
    assert cpu.status == {"backend": "cpu", "renderer": "cpu", "fallback_reason": None,
                          "frames": 1}


def test_bad_calls_are_clear_errors(cpu: CPUBackend) -> None:
    frame = np.zeros((40, 60, 3), np.uint8)
    with pytest.raises(RuntimeError, match="begin_frame first"):
        cpu.end_frame()
    with pytest.raises(ValueError, match="BGR uint8"):
        cpu.begin_frame(np.zeros((40, 60), np.uint8))
    with pytest.raises(ValueError, match="BGR uint8"):
        cpu.begin_frame(np.zeros((40, 60, 3), np.float32))
    cpu.begin_frame(frame)
    with pytest.raises(RuntimeError, match="twice"):
        cpu.begin_frame(frame)
    params = LipParams.from_shade(default_catalog().get("velvet-ruby"))
    with pytest.raises(ValueError, match="outside"):
        cpu.composite_lips((50, 10, 70, 20), np.zeros((10, 20), np.float32), params)
    with pytest.raises(ValueError, match="shape"):
        cpu.composite_lips((10, 10, 30, 20), np.zeros((5, 5), np.float32), params)
    with pytest.raises(ValueError, match="float32"):
        cpu.composite_lips((10, 10, 30, 20), np.zeros((10, 20), np.uint8), params)
    with pytest.raises(ValueError, match="BGRA uint8"):
        cpu.blend_sprite(np.zeros((4, 4, 3), np.uint8), 0, 0)
    with pytest.raises(ValueError, match="opacity"):
        cpu.blend_sprite(_sprite(), 0, 0, opacity=float("nan"))
    cpu.blend_sprite(_sprite(), 500, 500)  # entirely off-frame: nothing to do
    assert np.array_equal(cpu.end_frame(), frame)


def test_abort_frame_allows_a_new_frame(cpu: CPUBackend) -> None:
    frame = np.zeros((10, 10, 3), np.uint8)
    cpu.begin_frame(frame)
    cpu.abort_frame()
    cpu.begin_frame(frame)
    assert cpu.end_frame().shape == frame.shape


# -- selection -------------------------------------------------------------------------------

def test_select_cpu_and_unknown() -> None:
    b = select_backend("cpu")
    assert isinstance(b, CPUBackend) and b.status["backend"] == "cpu"
    with pytest.raises(ValueError, match="auto, cpu, gl"):
        select_backend("vulkan")


def test_select_gl_uses_any_driver_and_logs_the_renderer(
        caplog: pytest.LogCaptureFixture, make_gl: Any) -> None:
    make_gl()  # skips (locally) or fails (CI) when no GL context can be made at all
    with caplog.at_level(logging.INFO, logger="arengine.render.backend"):
        b = select_backend("gl")
    try:
        assert isinstance(b, FallbackBackend)
        assert b.status["backend"] == "gl"
        assert b.renderer and b.renderer in caplog.text and "GL_RENDERER" in caplog.text
    finally:
        b.close()


class _FakeGL:
    """Stands in for GLBackend: EGL device 0 is llvmpipe, device 1 a GPU."""

    name = "gl"
    made: ClassVar[list[_FakeGL]] = []

    def __init__(self, device_index: int | None = None, **_: Any) -> None:
        self.device_index = device_index or 0
        self.renderer = ("llvmpipe (LLVM 15.0.6, 256 bits)" if self.device_index == 0
                         else "NVIDIA H100 80GB HBM3/PCIe/SSE2")
        self.closed = False
        _FakeGL.made.append(self)

    @property
    def software(self) -> bool:
        from arengine.render.gl import is_software_renderer

        return is_software_renderer(self.renderer)

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("gpu, device_index, want", [
    (1, None, 1),  # a GPU listed after the software device is taken
    (None, None, 0),  # no GPU: gl still runs, on llvmpipe
    (1, 0, 0),  # a device named by the caller is kept
])
def test_select_gl_prefers_a_gpu_to_a_software_device_0(
        monkeypatch: pytest.MonkeyPatch, gpu: int | None, device_index: int | None,
        want: int) -> None:
    from arengine.render import gl as gl_mod

    _FakeGL.made = []
    monkeypatch.setattr(gl_mod, "GLBackend", _FakeGL)
    monkeypatch.setattr(gl_mod, "find_device", lambda hardware_only=True: gpu)
    b = select_backend("gl", device_index=device_index)
    assert isinstance(b, FallbackBackend)
    active = b.active
    assert isinstance(active, _FakeGL) and active.device_index == want
    # Device 0 was opened first and closed when the GPU was taken instead.
    assert [m.closed for m in _FakeGL.made] == ([True, False] if want == 1 else [False])


def test_select_auto_wants_a_hardware_driver(caplog: pytest.LogCaptureFixture,
                                             make_gl: Any) -> None:
    from arengine.render.gl import find_device, is_software_renderer

    make_gl()
    hardware = find_device(hardware_only=True)
    with caplog.at_level(logging.INFO, logger="arengine.render.backend"):
        b = select_backend("auto")
    try:
        if hardware is None:
            assert b.status["backend"] == "cpu"
            assert "hardware" in (b.status["fallback_reason"] or "")
        else:
            assert b.status["backend"] == "gl" and not is_software_renderer(b.renderer)
        assert "render backend:" in caplog.text
    finally:
        b.close()


def test_gl_unavailable_at_start_gives_cpu_with_a_reason(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from arengine.render import gl as gl_mod

    def no_context(device_index: int | None = None) -> Any:
        raise gl_mod.GLUnavailable("no EGL OpenGL 3.3 context on device 0: test")

    monkeypatch.setattr(gl_mod, "create_context", no_context)
    with caplog.at_level(logging.WARNING, logger="arengine.render.backend"):
        b = select_backend("gl")
    assert isinstance(b, CPUBackend)
    assert "no EGL OpenGL" in (b.status["fallback_reason"] or "")
    assert "cpu" in caplog.text
    b.begin_frame(np.zeros((8, 8, 3), np.uint8))
    assert b.end_frame().shape == (8, 8, 3)


# -- fallback mid-stream ---------------------------------------------------------------------

def test_context_loss_mid_stream_keeps_frames_flowing(
        make_gl: Any, lip_cases: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    case = lip_cases[IMAGE]
    params = LipParams.from_shade(default_catalog().get("star-galaxy"))
    sprites = [(_sprite(i), 30 + 70 * i, 40, f"avatar-{i}") for i in range(3)]
    stream = FallbackBackend(make_gl())
    ref = CPUBackend()
    outputs = []
    with caplog.at_level(logging.WARNING, logger="arengine.render.backend"):
        for i in range(6):
            stream.begin_frame(case.image)
            stream.composite_lips(case.geom.box, case.mask, params,
                                  fields=case.fields(params))
            if i == 2:  # the GPU goes away in the middle of frame 2
                stream.simulate_context_loss()
            for s, x, y, key in sprites:
                stream.blend_sprite(s, x, y, key=key)
            outputs.append(stream.end_frame())
            assert stream.status["backend"] == ("gl" if i < 2 else "cpu")
    want = _frame_ops(ref, case, params, case.image, sprites)
    assert len(outputs) == 6
    for i, out in enumerate(outputs):
        tol = 0 if i >= 2 else 3  # frames from frame 2 on are composited on the CPU
        assert np.abs(out.astype(np.int16) - want.astype(np.int16)).max() <= tol, i
    s = stream.status
    assert s["fallback_frame"] == 2 and s["frames"] == 6
    assert "ContextLost" in s["fallback_reason"]
    assert s["failed_backend"] == "gl" and s["failed_renderer"]
    assert "continuing this stream on the CPU" in caplog.text
    stream.close()


class _Flaky(CPUBackend):
    """A stand-in GPU backend that fails on a chosen call of a chosen frame."""

    name = "gl"

    def __init__(self, fail_frame: int, fail_op: str) -> None:
        super().__init__()
        self.fail_frame, self.fail_op = fail_frame, fail_op

    def _maybe_fail(self, op: str) -> None:
        if self.frames == self.fail_frame and op == self.fail_op:
            raise BackendError("OpenGL error GL_CONTEXT_LOST")

    def _begin(self, frame: np.ndarray, inplace: bool) -> None:
        self._maybe_fail("begin")
        super()._begin(frame, inplace)

    def _sprite(self, sprite: np.ndarray, x: int, y: int, key: Hashable | None,
                version: int, opacity: float) -> None:
        self._maybe_fail("sprite")
        super()._sprite(sprite, x, y, key, version, opacity)

    def _end(self) -> np.ndarray:
        self._maybe_fail("end")
        return super()._end()


@pytest.mark.parametrize("fail_op", ["begin", "sprite", "end"])
def test_fallback_redoes_the_failed_frame(fail_op: str) -> None:
    frame = np.random.default_rng(0).integers(0, 256, (60, 80, 3), np.uint8)
    sprite = _sprite(1, (20, 20))
    want = blend_sprite(frame.copy(), sprite, 5, 5, 0.5)
    stream = FallbackBackend(_Flaky(fail_frame=1, fail_op=fail_op))
    for i in range(3):
        stream.begin_frame(frame)
        stream.blend_sprite(sprite, 5, 5, key="k", opacity=0.5)
        assert np.array_equal(stream.end_frame(), want)
        assert stream.status["backend"] == ("gl" if i < 1 else "cpu")
    assert stream.fallback_frame == 1


def test_caller_errors_do_not_trigger_fallback(make_gl: Any) -> None:
    stream = FallbackBackend(make_gl())
    stream.begin_frame(np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ValueError):
        stream.blend_sprite(np.zeros((2, 2), np.uint8), 0, 0)
    assert stream.end_frame().shape == (20, 20, 3)
    assert stream.status["backend"] == "gl" and stream.fallback_reason is None
    stream.close()


def test_backend_names_match_the_cli_choices() -> None:
    assert backend_mod.BACKEND_NAMES == ("auto", "cpu", "gl")


def test_render_argument_for_commands() -> None:
    import argparse

    from arengine.render.backend import add_render_argument

    parser = argparse.ArgumentParser()
    add_render_argument(parser)
    assert parser.parse_args([]).render == "auto"
    assert parser.parse_args(["--render", "gl"]).render == "gl"
    with pytest.raises(SystemExit):
        parser.parse_args(["--render", "metal"])


def test_egl_devices_list_the_renderers(make_gl: Any) -> None:
    from arengine.render.gl import egl_devices

    gl = make_gl(device_index=0)
    devices = egl_devices()
    assert (0, gl.renderer) in devices


def test_simulated_loss_from_the_environment(make_gl: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A running server can be told to lose its GL context (end-to-end tests)."""
    make_gl()
    monkeypatch.setenv("ARENGINE_RENDER_SIMULATE_LOSS", "3")
    stream = select_backend("gl")
    frame = np.full((32, 48, 3), 9, np.uint8)
    sprite = _sprite(2, (8, 8))
    want = blend_sprite(frame.copy(), sprite, 4, 4)
    for i in range(6):
        stream.begin_frame(frame)
        stream.blend_sprite(sprite, 4, 4, key="s")
        out = stream.end_frame()
        assert np.abs(out.astype(np.int16) - want).max() <= 1
        assert stream.status["backend"] == ("gl" if i < 3 else "cpu")
    assert stream.status["fallback_frame"] == 3
    monkeypatch.setenv("ARENGINE_RENDER_SIMULATE_LOSS", "soon")
    with pytest.raises(ValueError, match="frame number"):
        select_backend("gl")


def test_auto_never_settles_for_a_software_rasteriser(make_gl: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Even if device probing were wrong, auto re-checks GL_RENDERER and takes the CPU."""
    from arengine.render import gl as gl_mod

    probe = make_gl()
    if not gl_mod.is_software_renderer(probe.renderer):
        pytest.skip("this machine's GL device is real hardware")
    monkeypatch.setattr(gl_mod, "find_device", lambda hardware_only=True: 0)
    b = select_backend("auto")
    assert b.status["backend"] == "cpu"
    assert "software rasteriser" in b.status["fallback_reason"]


def test_refused_call_is_not_replayed_after_a_fallback(make_gl: Any) -> None:
    stream = FallbackBackend(make_gl())
    params = LipParams.from_shade(default_catalog().get("velvet-ruby"))
    frame = np.zeros((40, 40, 3), np.uint8)
    sprite = _sprite(3, (10, 10))
    stream.begin_frame(frame)
    with pytest.raises(TypeError, match="fields"):
        stream.composite_lips((0, 0, 10, 10), np.ones((10, 10), np.float32), params)
    stream.simulate_context_loss()
    stream.blend_sprite(sprite, 5, 5)
    out = stream.end_frame()  # redone on the CPU without the refused lip call
    assert stream.status["backend"] == "cpu"
    assert np.array_equal(out, blend_sprite(frame.copy(), sprite, 5, 5))


def test_frame_open_follows_begin_end_and_abort(cpu: CPUBackend) -> None:
    frame = np.zeros((10, 10, 3), np.uint8)
    assert not cpu.frame_open
    cpu.begin_frame(frame)
    assert cpu.frame_open
    cpu.end_frame()
    assert not cpu.frame_open
    cpu.begin_frame(frame)
    cpu.abort_frame()
    assert not cpu.frame_open
    with pytest.raises(ValueError):  # a refused frame is not open
        cpu.begin_frame(np.zeros((10, 10), np.uint8))
    assert not cpu.frame_open


@pytest.mark.parametrize("fail_op", ["begin", "sprite", "end"])
def test_fallback_frame_open_across_a_switch(fail_op: str) -> None:
    frame = np.zeros((30, 40, 3), np.uint8)
    stream = FallbackBackend(_Flaky(fail_frame=0, fail_op=fail_op))
    stream.begin_frame(frame)
    assert stream.frame_open and stream.active.frame_open
    stream.blend_sprite(_sprite(1, (8, 8)), 2, 2)
    assert stream.frame_open and stream.active.frame_open
    stream.end_frame()
    assert stream.status["backend"] == "cpu"
    assert not stream.frame_open and not stream.active.frame_open
    stream.begin_frame(frame)
    assert stream.frame_open
    stream.abort_frame()
    assert not stream.frame_open and not stream.active.frame_open


class _Deferring(_Flaky):
    """A stand-in GPU that, like GL, writes an in-place frame only in end_frame."""

    defers_writes = True

    def _begin(self, frame: np.ndarray, inplace: bool) -> None:
        self._maybe_fail("begin")
        self._target = frame if inplace else None
        CPUBackend._begin(self, frame, False)

    def _end(self) -> np.ndarray:
        self._maybe_fail("end")
        out = CPUBackend._end(self)
        if self._target is not None:
            self._target[...] = out
            return self._target
        return out


@pytest.mark.parametrize("fail_op", ["begin", "sprite", "end"])
def test_in_place_frame_stays_untouched_until_end_after_a_switch(fail_op: str) -> None:
    # A chain may drop a frame half way and redo it from the picture: that must hold
    # also when the GPU fails in that frame and the CPU (which writes at once) takes over.
    original = np.random.default_rng(1).integers(0, 256, (30, 40, 3), np.uint8)
    sprite = _sprite(2, (10, 10))
    want = blend_sprite(original.copy(), sprite, 3, 3)
    stream = FallbackBackend(_Deferring(fail_frame=0, fail_op=fail_op))
    assert stream.defers_writes
    frame = original.copy()
    stream.begin_frame(frame, inplace=True)
    stream.blend_sprite(sprite, 3, 3)
    if fail_op != "end":
        assert stream.active.name == "cpu" and stream.defers_writes
        assert np.array_equal(frame, original)  # the CPU draws on a copy this frame
        stream.abort_frame()
        assert np.array_equal(frame, original)
        stream.begin_frame(frame, inplace=True)
        stream.blend_sprite(sprite, 3, 3)
    out = stream.end_frame()
    assert out is frame and np.array_equal(frame, want)
    assert stream.active.name == "cpu" and not stream.defers_writes  # from now on, at once
    stream.begin_frame(frame, inplace=True)
    stream.blend_sprite(sprite, 3, 3)
    assert not np.array_equal(frame, want)  # the CPU drew straight into it
    stream.end_frame()


def test_gl_backend_frame_open(make_gl: Any) -> None:
    stream = FallbackBackend(make_gl())
    stream.begin_frame(np.zeros((20, 20, 3), np.uint8))
    assert stream.frame_open
    stream.end_frame()
    assert not stream.frame_open
    stream.close()
