"""The GLSL render backend: headless OpenGL through EGL (moderngl), GPU or Mesa llvmpipe.

A frame's calls are recorded and run in ``end_frame``, when it is known which pixels
they touch: only those regions (the lip box, each sprite's rectangle, merged when close,
the whole frame when they cover most of it) go up to the GPU and come back, each once. A
4K frame with lipstick, a sticker and 12 avatars moves about 4 MB each way instead of 25.
On a GPU the regions' raw BGR bytes are uploaded into an RGBA8 texture as they lie in
memory ("packed": no format conversion in the driver, so the upload is a plain copy) and
a shader pass spreads them into the RGBA8 canvas; the readback is the same in reverse. On
a software rasteriser, where shader passes cost more than the driver's conversion, the
canvas is RGB8 and is written and read directly. Sprites blend in the blend unit with
premultiplied alpha; the lip pass needs the pixels under the lips, so it first copies its
small box into a scratch texture. Masks, scratch areas and uncached sprites live in
textures reused from frame to frame; sprites with a key stay on the GPU until their
version changes.

Headless selection: moderngl's ``egl`` backend enumerates EGL devices
(EGL_EXT_device_enumeration) and needs no display server, so no ``EGL_PLATFORM`` or
``DISPLAY`` setting is needed. On a machine without a GPU Mesa offers its software device
(llvmpipe; Debian packages libegl1, libegl-mesa0, libgl1-mesa-dri); on an NVIDIA machine
the driver's EGL vendor library is found through glvnd. ``LIBGL_ALWAYS_SOFTWARE=1`` forces
llvmpipe where a Mesa hardware driver exists.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import moderngl
import numpy as np

from arengine.render import lips
from arengine.render.backend import BackendError, RenderBackend
from arengine.render.gl_shaders import (
    ShaderCompileError,
    ShaderSource,
    compile_error,
    load_source,
    split_moderngl_log,
)

log = logging.getLogger(__name__)

SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software", "swiftshader", "lavapipe")
GL_REQUIRE = 330
TRANSFERS = ("auto", "packed", "direct")
PACK_WIDTH = 4096  # texels (16 KiB) per row of the packed upload/readback textures
_BUCKET = 64  # scratch textures grow in steps of this many pixels, to be reused


class GLUnavailable(BackendError):
    """No OpenGL context could be made (no EGL, no device, driver too old)."""


class ContextLost(BackendError):
    """The GL context went away in the middle of a stream."""


def is_software_renderer(renderer: str) -> bool:
    """Whether a GL_RENDERER string names a CPU rasteriser rather than a GPU."""
    r = renderer.lower()
    return any(s in r for s in SOFTWARE_RENDERERS)


def create_context(device_index: int | None = None) -> moderngl.Context:
    """A headless OpenGL 3.3+ core context on EGL device ``device_index`` (default 0)."""
    kwargs: dict[str, Any] = {"backend": "egl", "require": GL_REQUIRE}
    if device_index is not None:
        kwargs["device_index"] = int(device_index)
    try:
        return moderngl.create_standalone_context(**kwargs)
    except Exception as e:  # glcontext raises plain Exception / ImportError / OSError
        raise GLUnavailable(f"no EGL OpenGL {GL_REQUIRE // 100}.{GL_REQUIRE % 100 // 10} "
                            f"context on device {device_index or 0}: {e}") from e


def egl_devices(max_devices: int = 16) -> list[tuple[int, str]]:
    """(device index, GL_RENDERER) for every EGL device that gives a context.

    A device that fails (a GPU whose driver is missing, say) is passed over, so a
    software device listed after it is still found.
    """
    out: list[tuple[int, str]] = []
    for index in range(max_devices):
        try:
            ctx = create_context(index)
        except GLUnavailable as e:
            m = re.search(r"found (\d+) devices", str(e))
            if m and index >= int(m.group(1)):
                break  # past the last device
            if m is None and "device" not in str(e).lower() and index == 0:
                break  # no EGL at all: every index would fail the same way
            continue
        out.append((index, str(ctx.info["GL_RENDERER"])))
        ctx.release()
    return out


def find_device(hardware_only: bool = True) -> int | None:
    """The first EGL device with a hardware driver (or any driver), or None."""
    for index, renderer in egl_devices():
        if not hardware_only or not is_software_renderer(renderer):
            return index
    return None


def build_program(ctx: moderngl.Context, vertex: str, fragment: str,
                  defines: dict[str, Any] | None = None,
                  shaders_dir: Path | None = None) -> moderngl.Program:
    """Compile and link two shader files; errors name the file and line.

    ``ctx`` must be current on this thread (``with ctx:``); moderngl contexts do not nest.
    """
    sources: dict[str, ShaderSource] = {
        "vertex_shader": load_source(vertex, defines, shaders_dir),
        "fragment_shader": load_source(fragment, defines, shaders_dir),
    }
    try:
        return ctx.program(vertex_shader=sources["vertex_shader"].text,
                           fragment_shader=sources["fragment_shader"].text)
    except moderngl.Error as e:
        text = str(e)
        logs = split_moderngl_log(text)
        for stage, src in sources.items():
            if logs.get(stage, "").strip():
                raise compile_error(src, logs[stage]) from None
        where = sources["fragment_shader"].path
        raise ShaderCompileError(where, None, text.strip().replace("\n\n", "\n"), text) \
            from None


def _bucket(n: int) -> int:
    return max(_BUCKET, -(-n // _BUCKET) * _BUCKET)


class _Scratch:
    """A reusable texture (and framebuffer) at least as large as asked, per format."""

    def __init__(self, ctx: moderngl.Context, components: int, dtype: str,
                 with_fbo: bool = False) -> None:
        self.ctx = ctx
        self.components = components
        self.dtype = dtype
        self.with_fbo = with_fbo
        self.texture: moderngl.Texture | None = None
        self.fbo: moderngl.Framebuffer | None = None
        self.reallocations = 0

    def get(self, w: int, h: int) -> moderngl.Texture:
        old, old_fbo = self.texture, self.fbo
        if old is None or old.width < w or old.height < h:
            size = (_bucket(max(w, old.width if old else 0)),
                    _bucket(max(h, old.height if old else 0)))
            t = self.ctx.texture(size, self.components, dtype=self.dtype, alignment=1)
            t.filter = (moderngl.NEAREST, moderngl.NEAREST)
            self.texture = t
            if self.with_fbo:
                self.fbo = self.ctx.framebuffer(color_attachments=[t])
                # moderngl rebinds the last used framebuffer after a readback; binding a
                # deleted name is GL_INVALID_OPERATION, so never leave the old one bound.
                self.fbo.use()
            if old_fbo is not None:
                old_fbo.release()
            if old is not None:
                old.release()
            self.reallocations += 1
            return t
        return old

    def release(self) -> None:
        if self.fbo is not None:
            self.fbo.release()
        if self.texture is not None:
            self.texture.release()
        self.texture = self.fbo = None


class SpriteCache:
    """Sprite textures by key, replaced when the version changes, least recently used out.

    Bounded in bytes of texture memory, so a stream whose viewers come and go for hours
    keeps a steady footprint.
    """

    def __init__(self, ctx: moderngl.Context, max_bytes: int) -> None:
        self.ctx = ctx
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, tuple[int, moderngl.Texture, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable, version: int, sprite: np.ndarray) -> moderngl.Texture:
        item = self._items.get(key)
        h, w = sprite.shape[:2]
        if item is not None and item[0] == version and (item[1].width, item[1].height) == (w, h):
            self._items.move_to_end(key)
            self.hits += 1
            return item[1]
        self.misses += 1
        if item is not None:
            self.forget(key)
        tex = self.ctx.texture((w, h), 4, np.ascontiguousarray(sprite), alignment=1)
        tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
        nbytes = w * h * 4
        self._items[key] = (version, tex, nbytes)
        self.bytes += nbytes
        while self.bytes > self.max_bytes and len(self._items) > 1:
            self.forget(next(iter(self._items)))
        return tex

    def forget(self, key: Hashable) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            item[1].release()
            self.bytes -= item[2]

    def release(self) -> None:
        for key in list(self._items):
            self.forget(key)


class GLBackend(RenderBackend):
    """Compositing in GLSL on one headless EGL context (one per stream).

    Every call makes the context current for its own duration, so a backend may be used
    from a worker thread and several streams may share a process.
    """

    name = "gl"
    # An in-place frame is only written when end_frame pastes the readback into it, so a
    # chain can abort and redo a frame from the untouched picture without a backup copy.
    defers_writes = True

    def __init__(self, device_index: int | None = None, hardware_only: bool = False,
                 shaders_dir: Path | None = None, sprite_cache_bytes: int = 512 << 20,
                 context: moderngl.Context | None = None, transfer: str = "auto",
                 lose_context_at_frame: int | None = None, dirty_regions: bool = True) -> None:
        super().__init__()
        # Move only the pixels a frame's calls touch (and the whole frame when they cover
        # most of it); False always moves the whole frame.
        self.dirty_regions = dirty_regions
        self._frame = np.zeros((0, 0, 3), np.uint8)
        self._inplace = False
        self._pending: list[tuple[Any, ...]] = []
        self._dirty: list[tuple[int, int, int, int]] = []
        self.lose_context_at_frame = lose_context_at_frame  # tests: a GPU reset on cue
        if transfer not in TRANSFERS:
            raise ValueError(f"transfer must be one of {', '.join(TRANSFERS)}, not {transfer!r}")
        self._ctx = context if context is not None else create_context(device_index)
        self._lock = threading.RLock()
        self._lost = False
        self.device_index = device_index or 0
        info = self._ctx.info
        self._renderer = str(info["GL_RENDERER"])
        self.vendor = str(info["GL_VENDOR"])
        self.gl_version = str(info["GL_VERSION"])
        # A GPU takes the frame as raw RGBA8-packed bytes (no driver-side conversion, two
        # cheap shader passes); a CPU rasteriser is faster letting its driver convert RGB.
        self.transfer = transfer if transfer != "auto" else (
            "direct" if is_software_renderer(self._renderer) else "packed")
        if hardware_only and is_software_renderer(self._renderer):
            self._ctx.release()
            raise GLUnavailable(f"EGL device {self.device_index} is a software rasteriser "
                                f"({self._renderer})")
        try:
            with self._ctx:
                self._init_gl(shaders_dir, sprite_cache_bytes)
        except BaseException:
            self._ctx.release()
            raise
        self.uploads = 0
        self.upload_bytes = 0
        self.readback_bytes = 0
        self.passes = 0

    def _init_gl(self, shaders_dir: Path | None, sprite_cache_bytes: int) -> None:
        ctx = self._ctx
        self._programs = {
            "copy": build_program(ctx, "quad.vert", "copy.frag", shaders_dir=shaders_dir),
            "sprite": build_program(ctx, "quad.vert", "sprite.frag", shaders_dir=shaders_dir),
            "lips": build_program(ctx, "quad.vert", "lips.frag", shaders_dir=shaders_dir),
            "unpack": build_program(ctx, "quad.vert", "unpack.frag", shaders_dir=shaders_dir),
            "pack": build_program(ctx, "quad.vert", "pack.frag", shaders_dir=shaders_dir),
        }
        self._vaos = {k: ctx.vertex_array(p, []) for k, p in self._programs.items()}
        self._canvas: moderngl.Texture | None = None
        self._fbo: moderngl.Framebuffer | None = None
        self._pack_width = min(PACK_WIDTH, int(ctx.info["GL_MAX_TEXTURE_SIZE"]))
        self._packed_in = _Scratch(ctx, 4, "f1")
        self._packed_out = _Scratch(ctx, 4, "f1", with_fbo=True)
        self._roi = _Scratch(ctx, 4, "f1", with_fbo=True)
        self._fields = _Scratch(ctx, 4, "f4")
        self._fields1 = _Scratch(ctx, 4, "f4")
        self._glint = _Scratch(ctx, 4, "f4")
        self._loose_sprite = _Scratch(ctx, 4, "f1")
        self.sprites = SpriteCache(ctx, sprite_cache_bytes)

    # -- status --------------------------------------------------------------------------
    @property
    def renderer(self) -> str:
        return self._renderer

    @property
    def software(self) -> bool:
        return is_software_renderer(self._renderer)

    @property
    def status(self) -> dict[str, Any]:
        s = super().status
        s.update(vendor=self.vendor, gl_version=self.gl_version, software=self.software,
                 device_index=self.device_index, uploads=self.uploads,
                 upload_bytes=self.upload_bytes, readback_bytes=self.readback_bytes,
                 passes=self.passes, transfer=self.transfer, sprite_textures=len(self.sprites),
                 sprite_bytes=self.sprites.bytes, sprite_hits=self.sprites.hits,
                 sprite_misses=self.sprites.misses, context_lost=self._lost)
        return s

    def simulate_context_loss(self) -> None:
        """Drop the context as a GPU reset would: every later call raises ContextLost."""
        with self._lock:
            self._lost = True
            try:
                self._ctx.release()
            except Exception as e:
                log.debug("releasing context: %s", e)

    def close(self) -> None:
        with self._lock:
            if self._lost:
                return
            self._lost = True
            with self._ctx:
                self.sprites.release()
                for s in (self._roi, self._fields, self._fields1, self._glint, self._loose_sprite,
                          self._packed_in, self._packed_out):
                    s.release()
                if self._fbo is not None:
                    self._fbo.release()
                if self._canvas is not None:
                    self._canvas.release()
            self._ctx.release()

    def forget_sprite(self, key: Hashable) -> None:
        with self._current():
            self.sprites.forget(key)

    # -- passes --------------------------------------------------------------------------
    def _current(self) -> _Current:
        if self._lost:
            raise ContextLost(f"GL context on {self._renderer} was lost")
        return _Current(self)

    def _layout(self, nbytes: int) -> tuple[int, int, int, int]:
        """Packed layout of ``nbytes`` bytes: (texels per row, full rows, texels in the
        last partial row, bytes in the last partial texel)."""
        texels, tail = divmod(nbytes, 4)
        pw = max(1, min(self._pack_width, texels))
        rows, rem = divmod(texels, pw)
        return pw, rows, rem, tail

    def _begin(self, frame: np.ndarray, inplace: bool) -> None:
        # Nothing moves yet: which pixels must go up and come back is known only once the
        # frame's calls are in, so the work is recorded and done in end_frame.
        if self.lose_context_at_frame is not None and self.frames >= self.lose_context_at_frame:
            self.simulate_context_loss()
        self._current()  # a lost context fails here, at the start of the frame
        self._frame = frame
        self._inplace = inplace
        self._pending = []
        self._dirty = []

    def _ensure_canvas(self, w: int, h: int) -> moderngl.Framebuffer:
        direct = self.transfer == "direct"
        if self._canvas is None or self._canvas.size != (w, h):
            old, old_fbo = self._canvas, self._fbo
            self._canvas = self._ctx.texture((w, h), 3 if direct else 4, alignment=1)
            self._canvas.filter = (moderngl.NEAREST, moderngl.NEAREST)
            self._fbo = self._ctx.framebuffer(color_attachments=[self._canvas])
            self._fbo.use()  # never leave a deleted framebuffer bound (see _Scratch)
            if old_fbo is not None:
                old_fbo.release()
            if old is not None:
                old.release()
        assert self._fbo is not None
        return self._fbo

    def _upload(self, region: tuple[int, int, int, int]) -> None:
        """Put the frame's pixels inside ``region`` on the canvas."""
        assert self._canvas is not None and self._fbo is not None
        x1, y1, x2, y2 = region
        w, h = x2 - x1, y2 - y1
        full = w == self._frame.shape[1]
        data = self._frame[y1:y2] if full else np.ascontiguousarray(self._frame[y1:y2, x1:x2])
        self.uploads += 1
        self.upload_bytes += data.nbytes
        if self.transfer == "direct":
            self._canvas.write(data, viewport=(x1, y1, w, h), alignment=1)
            return
        # Raw bytes into an RGBA8 texture (no conversion in the driver), in at most three
        # writes, then spread into the canvas by unpack.frag.
        flat = data.reshape(-1)
        pw, rows, rem, tail = self._layout(flat.size)
        packed = self._packed_in.get(pw, rows + (1 if rem or tail else 0))
        done = rows * pw * 4
        if rows:
            packed.write(flat[:done], viewport=(0, 0, pw, rows), alignment=1)
        if rem:
            packed.write(flat[done:done + rem * 4], viewport=(0, rows, rem, 1), alignment=1)
        if tail:
            last = np.zeros(4, np.uint8)
            last[:tail] = flat[done + rem * 4:]
            packed.write(last, viewport=(rem, rows, 1, 1), alignment=1)
        self._fbo.use()
        packed.use(0)
        self._draw("unpack", (x1, y1, w, h), self._canvas.size, u_packed=0, u_width=w,
                   u_pack_width=pw, u_origin=(x1, y1))

    def _readback(self, region: tuple[int, int, int, int], out: np.ndarray) -> None:
        """Read the canvas inside ``region`` into ``out`` (C-contiguous, region-sized)."""
        assert self._canvas is not None and self._fbo is not None
        x1, y1, x2, y2 = region
        w, h = x2 - x1, y2 - y1
        self.readback_bytes += out.nbytes
        if self.transfer == "direct":
            self._fbo.read_into(out, viewport=(x1, y1, w, h), components=3, alignment=1)
            return
        flat = out.reshape(-1)
        pw, rows, rem, tail = self._layout(flat.size)
        height = rows + (1 if rem or tail else 0)
        packed = self._packed_out.get(pw, height)
        fbo = self._packed_out.fbo
        assert fbo is not None
        fbo.use()
        self._canvas.use(0)
        self._draw("pack", (0, 0, pw, height), packed.size, u_canvas=0, u_width=w,
                   u_pixels=w * h, u_pack_width=pw, u_origin=(x1, y1))
        done = rows * pw * 4
        if rows:
            fbo.read_into(flat, viewport=(0, 0, pw, rows), components=4, alignment=1)
        if rem:
            fbo.read_into(flat, viewport=(0, rows, rem, 1), components=4, alignment=1,
                          write_offset=done)
        if tail:
            last = np.empty(4, np.uint8)
            fbo.read_into(last, viewport=(rem, rows, 1, 1), components=4, alignment=1)
            flat[done + rem * 4:] = last[:tail]

    def _draw(self, name: str, rect: tuple[int, int, int, int], target: tuple[int, int],
              **uniforms: Any) -> None:
        prog = self._programs[name]
        uniforms["u_rect"] = tuple(float(v) for v in rect)
        uniforms["u_target"] = (float(target[0]), float(target[1]))
        for k, v in uniforms.items():
            member = prog.get(k, None)
            if isinstance(member, moderngl.Uniform):  # unused uniforms are compiled away
                member.value = v
        self._vaos[name].render(mode=moderngl.TRIANGLE_STRIP, vertices=4)
        self.passes += 1

    def _lips(self, box: tuple[int, int, int, int], mask: np.ndarray, params: Any,
              options: dict[str, Any]) -> None:
        fields = options.get("fields")
        if fields is None:
            raise TypeError("composite_lips needs fields= (a LipFields from lip_fields())")
        unknown = set(options) - {"fields", "roi_lab"}
        if unknown:
            raise TypeError(f"unexpected composite_lips options: {', '.join(sorted(unknown))}")
        self._pending.append(("lips", box, mask, params, fields))
        self._dirty.append(box)

    def _run_lips(self, box: tuple[int, int, int, int], mask: np.ndarray, p: Any,
                  fields: Any) -> None:
        """``composite_lips`` in lips.frag; the effect's per-pixel fields ride in textures,
        the light-dependent colours and the lobe constants in uniforms."""
        assert self._fbo is not None and self._size is not None
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        packed = np.zeros((h, w, 4), np.float32)
        packed[:, :, 0] = mask
        packed[:, :, 1] = fields.l_blur
        second = np.zeros((h, w, 4), np.float32)
        if fields.normal is not None:
            packed[:, :, 2:4] = fields.normal[:, :, :2]
            second[:, :, 0] = fields.normal[:, :, 2]
        else:
            second[:, :, 0] = 1.0  # facing the camera
        second[:, :, 1] = fields.spec if fields.spec is not None else 1.0
        if fields.edge is not None:
            second[:, :, 2] = fields.edge
        if fields.radial is not None:
            second[:, :, 3] = fields.radial
        shimmer = float(p.shimmer) if fields.glint is not None else 0.0
        src = self._copy_roi(box)
        ftex = self._fields.get(w, h)
        ftex.write(packed, viewport=(0, 0, w, h), alignment=1)
        f1tex = self._fields1.get(w, h)
        f1tex.write(second, viewport=(0, 0, w, h), alignment=1)
        gtex = self._glint.get(w, h) if shimmer > 0 else self._glint.get(1, 1)
        if shimmer > 0:
            flakes = np.zeros((h, w, 4), np.float32)
            flakes[:, :, :3] = fields.glint
            gtex.write(flakes, viewport=(0, 0, w, h), alignment=1)
        lit = lips.LitColours.of(p, fields.light)
        self._fbo.use()
        src.use(0)
        ftex.use(1)
        f1tex.use(2)
        gtex.use(3)
        self._draw(
            "lips", (x1, y1, w, h), self._size, u_src=0, u_fields0=1, u_fields1=2,
            u_glint=3, u_origin=(x1, y1), u_colour=tuple(map(float, lit.colour)),
            u_opacity=float(p.opacity), u_detail=float(p.detail), u_sheer=float(p.sheer),
            u_blot=float(p.blot), u_gloss=float(p.gloss), u_sheen=float(p.sheen),
            u_shimmer=shimmer, u_metallic=float(p.metallic),
            u_liner_colour=tuple(map(float, lit.liner)),
            u_liner=float(p.liner) if fields.edge is not None else 0.0,
            u_liner_width=float(p.liner_width), u_ombre_colour=tuple(map(float, lit.ombre)),
            u_ombre=float(p.ombre) if fields.radial is not None else 0.0,
            u_ombre_ratio=float(p.ombre_ratio), u_l_ref=float(fields.l_ref),
            u_l_std=float(fields.l_std), u_specular=lit.specular_bgr, u_half=lips.HALF_VECTOR,
            u_sheen_lift=lips.SHEEN_LIFT, u_sheen_power=lips.SHEEN_SHININESS,
            u_gloss_cos=lips.GLOSS_COS, u_gloss_halo=lips.GLOSS_HALO,
            u_gloss_coat=lips.GLOSS_COAT, u_metal_cos=lips.METAL_COS,
            u_metal_dim=lips.METAL_DIM, u_glint_tilt=lips.GLINT_TILT,
            u_glint_cos=lips.GLINT_COS, u_chroma_max=lips.CHROMA_MAX,
            u_white_rolloff=lips.WHITE_ROLLOFF)
        self.upload_bytes += packed.nbytes + second.nbytes + (
            w * h * 16 if shimmer > 0 else 0)

    def _copy_roi(self, box: tuple[int, int, int, int]) -> moderngl.Texture:
        """Copy the canvas inside ``box`` to the scratch texture (origin at its 0, 0)."""
        assert self._canvas is not None
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        tex = self._roi.get(w, h)
        assert self._roi.fbo is not None
        self._roi.fbo.use()
        self._canvas.use(0)
        self._draw("copy", (0, 0, w, h), tex.size, u_src=0, u_offset=(x1, y1))
        return tex

    def _sprite(self, sprite: np.ndarray, x: int, y: int, key: Hashable | None,
                version: int, opacity: float) -> None:
        assert self._size is not None
        w, h = self._size
        sh, sw = sprite.shape[:2]
        rect = (max(x, 0), max(y, 0), min(x + sw, w), min(y + sh, h))
        self._pending.append(("sprite", sprite, x, y, key, version, opacity, rect))
        self._dirty.append(rect)

    def _run_sprite(self, sprite: np.ndarray, x: int, y: int, key: Hashable | None,
                    version: int, opacity: float, rect: tuple[int, int, int, int]) -> None:
        assert self._fbo is not None and self._size is not None
        sh, sw = sprite.shape[:2]
        if key is not None:
            tex = self.sprites.get(key, version, sprite)
        else:
            tex = self._loose_sprite.get(sw, sh)
            tex.write(np.ascontiguousarray(sprite), viewport=(0, 0, sw, sh), alignment=1)
        self._fbo.use()
        tex.use(0)
        self._ctx.enable(moderngl.BLEND)
        self._ctx.blend_func = moderngl.ONE, moderngl.ONE_MINUS_SRC_ALPHA
        try:
            x1, y1, x2, y2 = rect
            self._draw("sprite", (x1, y1, x2 - x1, y2 - y1), self._size, u_sprite=0,
                       u_origin=(x, y), u_opacity=round(opacity * 256))
        finally:
            self._ctx.disable(moderngl.BLEND)

    def _end(self) -> np.ndarray:
        assert self._size is not None
        w, h = self._size
        frame = self._frame
        regions = merge_regions(self._dirty, w, h) if self.dirty_regions else (
            [(0, 0, w, h)] if self._dirty else [])
        results: list[tuple[tuple[int, int, int, int], np.ndarray]] = []
        with self._current():
            self._ensure_canvas(w, h)
            for region in regions:
                self._upload(region)
            for op in self._pending:
                if op[0] == "lips":
                    self._run_lips(*op[1:])
                else:
                    self._run_sprite(*op[1:])
            whole = regions == [(0, 0, w, h)]
            out = frame if self._inplace else np.empty_like(frame) if whole else frame.copy()
            for region in regions:
                x1, y1, x2, y2 = region
                # A whole-frame region reads straight into the output; others into a
                # buffer that is pasted once every read has succeeded (so a failure
                # leaves an in-place frame untouched for the CPU to redo).
                buf = out if whole and not self._inplace else np.empty(
                    (y2 - y1, x2 - x1, 3), np.uint8)
                self._readback(region, buf)
                results.append((region, buf))
            self._check()
        for (x1, y1, x2, y2), buf in results:
            if buf is not out:
                out[y1:y2, x1:x2] = buf
        self._pending, self._dirty = [], []
        return out

    def abort_frame(self) -> None:
        super().abort_frame()
        self._pending, self._dirty = [], []

    def _check(self) -> None:
        """Raise on a GL error (a reset context reports one here, once per frame)."""
        err = self._ctx.error
        if err != "GL_NO_ERROR":
            raise BackendError(f"OpenGL error {err} on {self._renderer}")


def merge_regions(rects: list[tuple[int, int, int, int]], width: int, height: int,
                  slack: float = 1.3, whole: float = 0.6) -> list[tuple[int, int, int, int]]:
    """Few rectangles covering ``rects``: two merge when their bounding box is at most
    ``slack`` times their joint area (or they overlap), and everything becomes the whole
    frame once that covers more than ``whole`` of it. Fewer, larger transfers are cheaper
    than many small ones; moving untouched pixels is not.
    """
    out = [r for r in rects if r[2] > r[0] and r[3] > r[1]]

    def area(r: tuple[int, int, int, int]) -> int:
        return (r[2] - r[0]) * (r[3] - r[1])

    merged = True
    while merged and len(out) > 1:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                u = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                overlap = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
                if overlap or area(u) <= slack * (area(a) + area(b)):
                    out[i] = u
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    if out and sum(area(r) for r in out) > whole * width * height:
        return [(0, 0, width, height)]
    return out


class _Current:
    """Makes the backend's context current (and locked) for one call."""

    def __init__(self, backend: GLBackend) -> None:
        self.backend = backend

    def __enter__(self) -> None:
        self.backend._lock.acquire()
        self.backend._ctx.__enter__()

    def __exit__(self, *exc: object) -> None:
        try:
            self.backend._ctx.__exit__(*exc)
        finally:
            self.backend._lock.release()
