"""Premultiplied-alpha sprites: the one blend every on-screen layer goes through.

A sprite is a BGRA ``uint8`` array whose colour is already multiplied by its alpha
("premultiplied"). Layers render text, panels and avatars into sprites once, cache them,
and per frame only call :func:`blend_sprite`. The blend is a single pure function with a
fixed integer formula so that a GPU backend can reproduce it (within 3/255):

    a   = sprite_alpha * opacity / 255          (0..1)
    out = src_premul * opacity + dst * (1 - a)

computed per channel as ``src' + round(dst * (255 - a') / 255)`` with
``src' = round(src * o / 256)`` and ``a' = round(alpha * o / 256)``, ``o = round(opacity *
256)``, and the sum clamped to 255. With ``opacity == 1`` the sprite is used unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import lru_cache
from typing import Generic, Protocol, TypeVar

import cv2
import numpy as np

V = TypeVar("V")


def _div255(x: np.ndarray) -> np.ndarray:
    """round(x / 255) for uint16 0..65025, exact, without a division."""
    x = x + 128
    return (x + (x >> 8)) >> 8


def blend_sprite(frame: np.ndarray, sprite: np.ndarray, x: int, y: int,
                 opacity: float = 1.0) -> np.ndarray:
    """Blend a premultiplied BGRA ``sprite`` onto BGR ``frame`` with its top-left at (x, y).

    ``out = src * opacity + dst * (1 - alpha * opacity)``; parts outside the frame are cut
    off. The frame is modified in place and returned.
    """
    if sprite.ndim != 3 or sprite.shape[2] != 4 or sprite.dtype != np.uint8:
        raise ValueError(f"sprite must be premultiplied BGRA uint8 (h, w, 4), got "
                         f"{sprite.shape} {sprite.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be BGR uint8 (h, w, 3), got {frame.shape} {frame.dtype}")
    fh, fw = frame.shape[:2]
    sh, sw = sprite.shape[:2]
    x, y = int(x), int(y)
    x1, y1 = max(x, 0), max(y, 0)
    x2, y2 = min(x + sw, fw), min(y + sh, fh)
    if x1 >= x2 or y1 >= y2 or opacity <= 0.0:
        return frame
    if frame.strides[1:] != (3, 1):  # OpenCV cannot write through such a view
        return blend_sprite_reference(frame, sprite, x, y, opacity)
    src = sprite[y1 - y:y2 - y, x1 - x:x2 - x]
    dst = frame[y1:y2, x1:x2]
    o = round(min(opacity, 1.0) * 256)
    if o < 256:
        src = ((src.astype(np.uint16) * o + 128) >> 8).astype(np.uint8)
    # OpenCV's saturating uint8 arithmetic computes exactly round(dst * inv / 255) + src,
    # clamped; working in place on the frame's view avoids every temporary but two.
    inv = cv2.cvtColor(cv2.bitwise_not(cv2.extractChannel(src, 3)), cv2.COLOR_GRAY2BGR)
    cv2.multiply(dst, inv, dst=dst, scale=1.0 / 255.0)
    cv2.add(dst, cv2.cvtColor(src, cv2.COLOR_BGRA2BGR), dst=dst)
    return frame


def blend_sprite_reference(frame: np.ndarray, sprite: np.ndarray, x: int, y: int,
                           opacity: float = 1.0) -> np.ndarray:
    """:func:`blend_sprite` written out in numpy integer arithmetic (the specification)."""
    fh, fw = frame.shape[:2]
    sh, sw = sprite.shape[:2]
    x1, y1 = max(x, 0), max(y, 0)
    x2, y2 = min(x + sw, fw), min(y + sh, fh)
    if x1 >= x2 or y1 >= y2 or opacity <= 0.0:
        return frame
    s16: np.ndarray = sprite[y1 - y:y2 - y, x1 - x:x2 - x].astype(np.uint16)
    o = round(min(opacity, 1.0) * 256)
    if o < 256:
        s16 = (s16 * o + 128) >> 8
    dst = frame[y1:y2, x1:x2]
    out = s16[:, :, :3] + _div255(dst.astype(np.uint16) * (255 - s16[:, :, 3:4]))
    dst[...] = np.minimum(out, 255)
    return frame


def premultiply(bgra: np.ndarray) -> np.ndarray:
    """Straight-alpha BGRA uint8 to premultiplied (``c * a / 255``, rounded)."""
    a = bgra[:, :, 3:4].astype(np.uint16)
    out = np.empty_like(bgra)
    out[:, :, :3] = _div255(bgra[:, :, :3].astype(np.uint16) * a)
    out[:, :, 3] = bgra[:, :, 3]
    return out


def solid(h: int, w: int, bgr: tuple[int, int, int], alpha: float = 1.0) -> np.ndarray:
    """A premultiplied sprite of one colour."""
    a = round(255 * alpha)
    out = np.empty((h, w, 4), np.uint8)
    out[:, :, :3] = [round(c * a / 255) for c in bgr]
    out[:, :, 3] = a
    return out


def from_mask(mask: np.ndarray, bgr: tuple[int, int, int], alpha: float = 1.0) -> np.ndarray:
    """Colour a coverage mask (uint8 0..255 or float 0..1) into a premultiplied sprite."""
    m = mask.astype(np.float32)
    if mask.dtype == np.uint8:
        m /= 255.0
    a = m * alpha
    out = np.empty((*mask.shape[:2], 4), np.uint8)
    for i, c in enumerate(bgr):
        out[:, :, i] = np.rint(a * c)
    out[:, :, 3] = np.rint(a * 255)
    return out


def over(dst: np.ndarray, src: np.ndarray, x: int, y: int) -> np.ndarray:
    """Composite premultiplied ``src`` over premultiplied ``dst`` (both BGRA) in place.

    Used to assemble cached sprites (a panel with its texts), not per frame.
    """
    dh, dw = dst.shape[:2]
    sh, sw = src.shape[:2]
    x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + sw, dw), min(y + sh, dh)
    if x1 >= x2 or y1 >= y2:
        return dst
    s = src[y1 - y:y2 - y, x1 - x:x2 - x].astype(np.uint16)
    d = dst[y1:y2, x1:x2]
    out = s + _div255(d.astype(np.uint16) * (255 - s[:, :, 3:4]))
    np.minimum(out, 255, out=out)
    d[...] = out
    return dst


def rounded_rect(h: int, w: int, radius: float, bgr: tuple[int, int, int],
                 alpha: float = 1.0, border: float = 0.0,
                 border_bgr: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """An anti-aliased rounded rectangle sprite (optionally with a border).

    Panels are redrawn whenever their text changes, and most of that cost was this
    shape: it is cached, and a fresh copy is returned for the caller to draw on.
    """
    return _rounded_rect(int(h), int(w), round(float(radius), 2), tuple(bgr), float(alpha),
                         round(float(border), 2), tuple(border_bgr)).copy()


@lru_cache(maxsize=128)
def _rounded_rect(h: int, w: int, radius: float, bgr: tuple[int, int, int], alpha: float,
                  border: float, border_bgr: tuple[int, int, int]) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    r = max(0.0, min(radius, h / 2, w / 2))
    # Signed distance to a rounded box: negative inside.
    qx = np.abs(xx - w / 2) - (w / 2 - r)
    qy = np.abs(yy - h / 2) - (h / 2 - r)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    sd = outside + np.minimum(np.maximum(qx, qy), 0) - r
    cover = np.clip(0.5 - sd, 0, 1)
    body = from_mask(cover, bgr, alpha)
    if border <= 0:
        return body
    ring = np.clip(sd + border + 0.5, 0, 1) * cover
    return over(body, from_mask(ring, border_bgr, 1.0), 0, 0)


def circle_mask(size: int) -> np.ndarray:
    """Anti-aliased disc coverage (float32 0..1) of diameter ``size``."""
    return _circle_mask(int(size)).copy()


@lru_cache(maxsize=64)
def _circle_mask(size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    d = np.hypot(xx - size / 2, yy - size / 2)
    return np.clip(size / 2 - d + 0.5, 0, 1)


def circle_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The centre square of a BGR image, resized to ``size`` and cut to a disc (sprite)."""
    h, w = image.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    sq = image[y0:y0 + s, x0:x0 + s]
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    sq = cv2.resize(sq, (size, size), interpolation=interp)
    a = circle_mask(size)
    out = np.empty((size, size, 4), np.uint8)
    out[:, :, :3] = np.rint(sq.astype(np.float32) * a[:, :, None])
    out[:, :, 3] = np.rint(a * 255)
    return out


def hex_to_bgr(value: str) -> tuple[int, int, int]:
    """``"#RRGGBB"`` to a BGR tuple; a clear error on anything else."""
    v = value.strip().lstrip("#")
    if len(v) != 6:
        raise ValueError(f"colour must be '#RRGGBB', got {value!r}")
    try:
        r, g, b = int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)
    except ValueError:
        raise ValueError(f"colour must be '#RRGGBB', got {value!r}") from None
    return b, g, r


class SpriteCache(Generic[V]):
    """A small LRU cache: rendered sprites are reused until their inputs change."""

    def __init__(self, max_items: int = 256) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.max_items = max_items
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        try:
            value = self._items[key]
        except KeyError:
            self.misses += 1
            value = make()
            self._items[key] = value
            if len(self._items) > self.max_items:
                self._items.popitem(last=False)
            return value
        self.hits += 1
        self._items.move_to_end(key)
        return value

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def clear(self) -> None:
        self._items.clear()


class SpriteBackend(Protocol):
    """The part of :class:`arengine.render.backend.RenderBackend` a layer draws through."""

    @property
    def frame_open(self) -> bool: ...

    def begin_frame(self, frame: np.ndarray, inplace: bool = False) -> None: ...

    def blend_sprite(self, sprite: np.ndarray, x: int, y: int, key: Hashable | None = None,
                     version: int = 0, opacity: float = 1.0) -> None: ...

    def end_frame(self) -> np.ndarray: ...

    def abort_frame(self) -> None: ...


@lru_cache(maxsize=256)
def _solid_cached(h: int, w: int, bgr: tuple[int, int, int]) -> np.ndarray:
    s = solid(h, w, bgr)
    s.flags.writeable = False
    return s


class Canvas:
    """Where a layer draws one frame: onto the pixels directly, or through a render backend.

    Without a backend every call is :func:`blend_sprite` on the frame. With one, the frame
    is opened on it, sprites go to :meth:`RenderBackend.blend_sprite` (a GPU keeps keyed
    sprites as textures until their version changes) and :meth:`finish` reads the result
    back. Use it as a context manager so a failing layer never leaves a frame open.

    When the backend already has a frame open (a chain of effects sharing one upload and
    one readback, see :mod:`arengine.effects.chain`), the canvas joins it: it draws into that
    frame, and :meth:`finish` returns ``frame`` as given; ending or dropping the frame is
    left to whoever opened it.
    """

    def __init__(self, frame: np.ndarray, backend: SpriteBackend | None = None) -> None:
        self.frame = frame
        self.backend = backend
        self.joined = backend is not None and backend.frame_open
        if backend is not None and not self.joined:
            backend.begin_frame(frame, inplace=bool(frame.flags.c_contiguous
                                                    and frame.flags.writeable))
        self._open = True

    def sprite(self, sprite: np.ndarray, x: int, y: int, opacity: float = 1.0,
               key: Hashable | None = None, version: int = 0) -> None:
        if self.backend is None:
            blend_sprite(self.frame, sprite, x, y, opacity)
        else:
            self.backend.blend_sprite(sprite, int(x), int(y), key, version, opacity)

    def rect(self, x: int, y: int, w: int, h: int, bgr: tuple[int, int, int],
             opacity: float = 1.0) -> None:
        """A filled rectangle (bars): a solid sprite, so both paths draw it the same way."""
        if w <= 0 or h <= 0:
            return
        bgr = (int(bgr[0]), int(bgr[1]), int(bgr[2]))
        self.sprite(_solid_cached(int(h), int(w), bgr), x, y, opacity,
                    key=("solid", int(h), int(w), bgr))

    def finish(self) -> np.ndarray:
        """The composited frame (the same array when drawn in place)."""
        self._open = False
        if self.backend is None or self.joined:
            return self.frame
        return self.backend.end_frame()

    def __enter__(self) -> Canvas:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self._open and self.backend is not None and not self.joined:
            if exc_type is not None:
                self.backend.abort_frame()
            else:
                self.frame = self.backend.end_frame()
        self._open = False


class SpriteVersions:
    """Stable texture keys for a layer's changing sprites.

    A slot (say, one viewer's row) keeps its key; its version changes whenever the slot is
    given a different sprite object, so a GPU re-uploads exactly when a picture changed.
    Versions are never reused, so a forgotten slot cannot bring back a stale texture.
    """

    def __init__(self, owner: str, max_slots: int = 256) -> None:
        self.owner = f"{owner}@{id(self):x}"
        self.max_slots = max_slots
        self._last: OrderedDict[Hashable, tuple[np.ndarray, int]] = OrderedDict()
        self._next = 0

    def key(self, slot: Hashable, sprite: np.ndarray) -> tuple[tuple[str, Hashable], int]:
        last = self._last.get(slot)
        if last is not None and last[0] is sprite:
            self._last.move_to_end(slot)
            return (self.owner, slot), last[1]
        self._next += 1
        self._last[slot] = (sprite, self._next)
        self._last.move_to_end(slot)
        if len(self._last) > self.max_slots:
            self._last.popitem(last=False)
        return (self.owner, slot), self._next
