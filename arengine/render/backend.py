"""Where compositing runs: the render backend interface, backend selection and CPU fallback.

A frame is composited in three steps so that a GPU backend moves pixels across the bus
exactly twice: :meth:`RenderBackend.begin_frame` (one upload), any number of
:meth:`~RenderBackend.composite_lips` and :meth:`~RenderBackend.blend_sprite` calls (masks
are small, sprites are cached by key and version), then :meth:`~RenderBackend.end_frame`
(one readback). The CPU backend runs the numpy/OpenCV reference functions, the GL backend
runs the same formulas as GLSL; both must give the same pictures.

:func:`select_backend` is what the CLI's ``--render auto|cpu|gl`` calls.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

BackendName = Literal["auto", "cpu", "gl"]
BACKEND_NAMES: tuple[str, ...] = ("auto", "cpu", "gl")
MAX_FRAME_SIDE = 8192
SIMULATE_LOSS_ENV = "ARENGINE_RENDER_SIMULATE_LOSS"


class BackendError(RuntimeError):
    """A backend could not do what it was asked (lost context, driver error)."""


class RenderBackend(ABC):
    """Composites lipstick and sprites onto one frame at a time.

    The public methods check their arguments once, here, so every backend rejects the
    same bad input with the same message; subclasses implement the underscored steps.
    """

    name: str = ""
    # True when ``begin_frame(frame, inplace=True)`` leaves ``frame`` untouched until
    # ``end_frame`` writes the result into it (a GPU composites on its own copy). A caller
    # that may have to redo a frame (see arengine.effects.chain) then needs no backup copy.
    defers_writes: bool = False

    def __init__(self) -> None:
        self._size: tuple[int, int] | None = None  # (width, height) of the open frame
        self.frames = 0
        self.fallback_reason: str | None = None  # why this is not the backend asked for

    # -- the per-frame calls -------------------------------------------------------------
    def begin_frame(self, frame: np.ndarray, inplace: bool = False) -> None:
        """Start compositing onto ``frame`` (BGR uint8, (H, W, 3)).

        By default ``frame`` is left as it is and :meth:`end_frame` returns a new array;
        with ``inplace=True`` the result is written into ``frame`` (which must then be
        C-contiguous) and returned, which saves a full-frame copy when the caller owns a
        freshly decoded picture. Arrays passed to the calls of a frame must not change
        until :meth:`end_frame` (a GPU backend may use them only then).
        """
        if self._size is not None:
            raise RuntimeError("begin_frame called twice without end_frame")
        if (not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3
                or frame.dtype != np.uint8):
            raise ValueError("frame must be a BGR uint8 array of shape (H, W, 3), got "
                             f"{getattr(frame, 'shape', None)} {getattr(frame, 'dtype', None)}")
        h, w = frame.shape[:2]
        if not (1 <= w <= MAX_FRAME_SIDE and 1 <= h <= MAX_FRAME_SIDE):
            raise ValueError(f"frame size {w}x{h} is outside 1..{MAX_FRAME_SIDE} pixels")
        if inplace and not (frame.flags.c_contiguous and frame.flags.writeable):
            raise ValueError("inplace=True needs a writeable C-contiguous frame")
        self._begin(frame if inplace else np.ascontiguousarray(frame), inplace)
        self._size = (w, h)

    def composite_lips(self, box: tuple[int, int, int, int], mask: np.ndarray, params: Any,
                       **options: Any) -> None:
        """Colour the lips inside ``box`` (x1, y1, x2, y2) where ``mask`` (float32 0..1).

        ``mask`` has the box's shape; ``params`` (a ``LipParams``) and ``options`` go to
        ``arengine.render.lips.composite_lips`` unchanged on the CPU, and drive the
        same formula in the lip shader on the GPU.
        """
        w, h = self._open()
        x1, y1, x2, y2 = (int(v) for v in box)
        if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
            raise ValueError(f"lip box {box} is empty or outside the {w}x{h} frame")
        if mask.shape != (y2 - y1, x2 - x1):
            raise ValueError(f"lip mask shape {mask.shape} does not match box {box}")
        if mask.dtype != np.float32:
            raise ValueError(f"lip mask must be float32 0..1, got {mask.dtype}")
        self._lips((x1, y1, x2, y2), np.ascontiguousarray(mask), params, options)

    def blend_sprite(self, sprite: np.ndarray, x: int, y: int, key: Hashable | None = None,
                     version: int = 0, opacity: float = 1.0) -> None:
        """Draw a premultiplied BGRA uint8 sprite with its top-left corner at (x, y).

        ``out = src * opacity + dst * (1 - alpha * opacity)``, exactly as
        :func:`arengine.render.sprites.blend_sprite`. A sprite given a ``key`` is kept (as
        a texture on the GPU) and reused while ``version`` stays the same, so avatars and
        stickers cross the bus once, not once per frame. Parts outside the frame are cut
        off.
        """
        w, h = self._open()
        if (not isinstance(sprite, np.ndarray) or sprite.ndim != 3 or sprite.shape[2] != 4
                or sprite.dtype != np.uint8):
            raise ValueError("sprite must be a premultiplied BGRA uint8 array (h, w, 4), got "
                             f"{getattr(sprite, 'shape', None)} {getattr(sprite, 'dtype', None)}")
        sh, sw = sprite.shape[:2]
        x, y = int(x), int(y)
        opacity = float(opacity)
        if not opacity >= 0.0:  # also rejects NaN
            raise ValueError(f"sprite opacity must be >= 0, got {opacity}")
        if (sw == 0 or sh == 0 or x >= w or y >= h or x + sw <= 0 or y + sh <= 0
                or opacity <= 0.0):
            return
        self._sprite(sprite, x, y, key, int(version), min(opacity, 1.0))

    def end_frame(self) -> np.ndarray:
        """Finish the frame and return the composited picture (a new BGR uint8 array)."""
        self._open()
        try:
            out = self._end()
        finally:
            self._size = None
        self.frames += 1
        return out

    def abort_frame(self) -> None:
        """Drop the open frame (if any) without reading it back."""
        self._size = None

    @property
    def frame_open(self) -> bool:
        """True between :meth:`begin_frame` and :meth:`end_frame`/:meth:`abort_frame`.

        Effects that find a frame open join it (add their calls, return the frame
        untouched) instead of opening their own, so a chain of effects moves the frame
        across the bus once; whoever opened the frame reads it back.
        """
        return self._size is not None

    # -- bookkeeping ---------------------------------------------------------------------
    @property
    def status(self) -> dict[str, Any]:
        """What is rendering: backend name, GL renderer, fallback reason, counters."""
        return {"backend": self.name, "renderer": self.renderer,
                "fallback_reason": self.fallback_reason, "frames": self.frames}

    @property
    def renderer(self) -> str:
        return "cpu"

    def forget_sprite(self, key: Hashable) -> None:  # noqa: B027 - optional for backends
        """Drop a cached sprite (a viewer left); optional, the cache is also bounded."""

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release what the backend holds (GL context, textures)."""

    def __enter__(self) -> RenderBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> tuple[int, int]:
        if self._size is None:
            raise RuntimeError("no frame open: call begin_frame first")
        return self._size

    @abstractmethod
    def _begin(self, frame: np.ndarray, inplace: bool) -> None: ...

    @abstractmethod
    def _lips(self, box: tuple[int, int, int, int], mask: np.ndarray, params: Any,
              options: dict[str, Any]) -> None: ...

    @abstractmethod
    def _sprite(self, sprite: np.ndarray, x: int, y: int, key: Hashable | None,
                version: int, opacity: float) -> None: ...

    @abstractmethod
    def _end(self) -> np.ndarray: ...


class FallbackBackend(RenderBackend):
    """A GPU backend that hands over to the CPU the moment it fails, mid-frame included.

    The calls of the open frame are remembered (references only, no copies), so when the
    GPU fails in the middle of a frame that frame is redone on the CPU and returned: the
    stream never drops a frame and never stops. The switch is one-way for the stream and
    is logged once; :attr:`status` says why it happened.
    """

    def __init__(self, primary: RenderBackend,
                 make_fallback: Callable[[], RenderBackend] | None = None) -> None:
        super().__init__()
        self.primary: RenderBackend | None = primary
        self._make_fallback = make_fallback or _cpu_backend
        self.active: RenderBackend = primary
        self.fallback_frame: int | None = None
        self._ops: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self._primary_status: dict[str, Any] = {}
        # The caller's in-place frame while a fallback that writes at once composites on a
        # copy of it (see _replay).
        self._write_back: np.ndarray | None = None
        self._began_deferred = False

    @property
    def defers_writes(self) -> bool:  # type: ignore[override]
        # Kept true for the rest of a frame begun on the GPU, also after a switch (the
        # replay composites on a copy); from the next frame on, the CPU's own answer.
        return self.active.defers_writes or (self.frame_open and self._write_back is not None)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.active.name

    @property
    def renderer(self) -> str:
        return self.active.renderer

    @property
    def status(self) -> dict[str, Any]:
        s = dict(self.active.status)
        s["frames"] = self.frames
        if self.fallback_reason is not None:
            s["fallback_reason"] = self.fallback_reason
            s["fallback_frame"] = self.fallback_frame
            s["failed_backend"] = self._primary_status.get("backend")
            s["failed_renderer"] = self._primary_status.get("renderer")
        return s

    def simulate_context_loss(self) -> None:
        """Make the GPU backend fail on its next call, as a lost context would (tests)."""
        sim = getattr(self.primary, "simulate_context_loss", None)
        if sim is None:
            raise RuntimeError("the active backend has no GPU context to lose")
        sim()

    def _run(self, op: str, *args: Any, **kwargs: Any) -> Any:
        self._ops.append((op, args, kwargs))
        try:
            if self.primary is not None:
                try:
                    return getattr(self.primary, op)(*args, **kwargs)
                except _recoverable() as e:
                    self._switch(e)
                    return self._replay()
            return getattr(self.active, op)(*args, **kwargs)
        except BaseException:
            # A call the backend refused (bad arguments) is not part of the frame: a
            # later replay on the CPU must not redo it.
            if self._ops and self._ops[-1][0] == op and self._ops[-1][1] is args:
                self._ops.pop()
            raise

    def _switch(self, error: BaseException) -> None:
        assert self.primary is not None
        self._primary_status = dict(self.primary.status)
        self.fallback_reason = f"{type(error).__name__}: {error}"
        self.fallback_frame = self.frames
        log.warning("GPU compositing failed (%s) at frame %d; continuing this stream on the "
                    "CPU", self.fallback_reason, self.frames)
        failed, self.primary = self.primary, None
        try:
            failed.abort_frame()
            failed.close()
        except Exception as e:  # a broken context may fail to release; the CPU goes on
            log.debug("releasing the failed GPU backend: %s", e)
        self.active = self._make_fallback()

    def _replay(self) -> Any:
        """Redo the open frame's calls on the new backend; return what the last one gave.

        A frame begun in place on a GPU that writes only at ``end_frame`` is redone on a
        copy when the new backend writes at once, and copied back at the end: a caller
        counting on ``defers_writes`` (to redo a frame without an effect) still finds its
        frame untouched until ``end_frame``.
        """
        result: Any = None
        for op, args, kwargs in self._ops:
            if (op == "begin_frame" and args[1] and self._began_deferred
                    and not self.active.defers_writes):
                self._write_back = args[0]
                args = (args[0], False)
            result = getattr(self.active, op)(*args, **kwargs)
        return result

    def _begin(self, frame: np.ndarray, inplace: bool) -> None:
        self._ops = []
        self._write_back = None
        self._began_deferred = self.active.defers_writes
        self._run("begin_frame", frame, inplace)

    def _lips(self, box: tuple[int, int, int, int], mask: np.ndarray, params: Any,
              options: dict[str, Any]) -> None:
        self._run("composite_lips", box, mask, params, **options)

    def _sprite(self, sprite: np.ndarray, x: int, y: int, key: Hashable | None,
                version: int, opacity: float) -> None:
        self._run("blend_sprite", sprite, x, y, key, version, opacity)

    def _end(self) -> np.ndarray:
        try:
            out: np.ndarray = self._run("end_frame")
            target = self._write_back
            if target is not None and out is not target:
                np.copyto(target, out)
                out = target
        finally:
            self._ops = []
            self._write_back = None
        return out

    def abort_frame(self) -> None:
        super().abort_frame()
        self._ops = []
        self._write_back = None
        self.active.abort_frame()

    def forget_sprite(self, key: Hashable) -> None:
        self.active.forget_sprite(key)

    def close(self) -> None:
        self.active.close()
        if self.primary is not None and self.primary is not self.active:
            self.primary.close()


def _recoverable() -> tuple[type[BaseException], ...]:
    """Errors that mean "the GPU failed", not "the caller is wrong": ours and moderngl's
    (looked up without importing moderngl for CPU-only users)."""
    import sys

    mgl = sys.modules.get("moderngl")
    return (BackendError, mgl.Error) if mgl is not None else (BackendError,)


def _cpu_backend() -> RenderBackend:
    from arengine.render.cpu import CPUBackend

    return CPUBackend()


RENDER_HELP = ("where compositing runs: auto (GL on a GPU with a hardware driver, else "
               "CPU), cpu (numpy/OpenCV reference), gl (GLSL, also on Mesa llvmpipe)")


def add_render_argument(parser: argparse.ArgumentParser) -> None:
    """``--render auto|cpu|gl`` for a command; pass ``args.render`` to select_backend."""
    parser.add_argument("--render", choices=BACKEND_NAMES, default="auto", help=RENDER_HELP)


def select_backend(name: str = "auto", *, device_index: int | None = None) -> RenderBackend:
    """The backend for one stream, by ``--render`` name.

    ``auto``: GL when an EGL device with a real (hardware) driver gives a context, else the
    CPU; ``gl``: GL on a GPU when one has a driver, else even on Mesa's software rasteriser
    (llvmpipe), for CI and for testing the shaders without a GPU; ``cpu``: the
    numpy/OpenCV reference. The choice and the
    GL_RENDERER string are logged. GL backends come wrapped in :class:`FallbackBackend`,
    so a context that fails later moves the stream to the CPU instead of stopping it; a
    context that cannot be made at all gives a CPU backend whose status says why.
    Shader compile errors are bugs, not driver trouble: they raise. With
    ``ARENGINE_RENDER_SIMULATE_LOSS=N`` set, GL backends drop their context at frame N (for
    end-to-end tests of the fallback).
    """
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown render backend {name!r}; choose one of "
                         f"{', '.join(BACKEND_NAMES)}")
    if name == "cpu":
        log.info("render backend: cpu (requested)")
        return _cpu_backend()
    t0 = time.perf_counter()
    lose_at = _simulated_loss_frame()
    try:
        from arengine.render.gl import GLBackend, GLUnavailable, find_device
    except ImportError as e:  # moderngl missing from a trimmed install
        return _cpu_instead(name, f"moderngl cannot be imported: {e}")
    try:
        if name == "auto":
            dev = find_device(hardware_only=True) if device_index is None else device_index
            if dev is None:
                return _cpu_instead(name, "no hardware OpenGL device (only software "
                                    "rasterisers or none)", quiet=True)
            gl = GLBackend(device_index=dev, hardware_only=True, lose_context_at_frame=lose_at)
        else:
            gl = GLBackend(device_index=device_index, lose_context_at_frame=lose_at)
            if device_index is None and gl.software:
                # EGL device 0 is a software rasteriser: take a GPU if another device has
                # one (device order is the EGL vendor libraries', not ours).
                dev = find_device(hardware_only=True)
                if dev is not None and dev != gl.device_index:
                    gl.close()
                    gl = GLBackend(device_index=dev, lose_context_at_frame=lose_at)
    except GLUnavailable as e:
        return _cpu_instead(name, str(e), quiet=name == "auto")
    log.info("render backend: gl (%s), GL_RENDERER=%r, ready in %.0f ms", name, gl.renderer,
             (time.perf_counter() - t0) * 1000)
    return FallbackBackend(gl)


def _simulated_loss_frame() -> int | None:
    """``ARENGINE_RENDER_SIMULATE_LOSS=N``: every GL backend loses its context at frame N.

    For end-to-end tests of a running server (the stream must go on, on the CPU).
    """
    value = os.environ.get(SIMULATE_LOSS_ENV, "").strip()
    if not value:
        return None
    try:
        frame = int(value)
    except ValueError:
        raise ValueError(f"{SIMULATE_LOSS_ENV} must be a frame number, not {value!r}") from None
    log.warning("%s=%d: GL contexts will be dropped at frame %d (test mode)",
                SIMULATE_LOSS_ENV, frame, frame)
    return frame


def _cpu_instead(requested: str, reason: str, quiet: bool = False) -> RenderBackend:
    (log.info if quiet else log.warning)("render backend: cpu (%s requested; %s)", requested,
                                         reason)
    cpu = _cpu_backend()
    cpu.fallback_reason = reason
    return cpu
