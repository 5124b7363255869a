"""Viewer avatar uploads: checked by magic bytes, size and pixel count, re-encoded to a small PNG.

Re-encoding drops EXIF (location, camera) and anything hidden after the image data, and
a fixed small size keeps the event log and the on-screen layer cheap.

Decoding is where an upload costs memory (a 256 KB file can declare 16 megapixels), so it
is bounded four ways:

- the size in pixels is read from the header and checked before any pixel is decoded;
- JPEG is decoded already scaled down (libjpeg scales by 1/2..1/8 while decoding), other
  formats are shrunk right after loading, and only the small picture is converted to RGBA;
- at most :data:`DECODE_SLOTS` decodes run at once in the process; a caller who waits longer
  than :data:`DECODE_WAIT_S` for a slot gets :class:`BusyError` (503, Retry-After);
- after a large decode the C heap is trimmed: glibc keeps freed blocks in its per-thread
  arenas, and eight concurrent 4096x4096 decodes used to leave ~200 MB of RSS behind for good.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import logging
import math
import os
import struct
import threading
from collections.abc import Callable
from typing import IO

from PIL import ExifTags, Image, ImageFile, ImageOps, JpegImagePlugin, PngImagePlugin

from arengine.interaction.errors import (
    BusyError,
    InteractionError,
    InvalidInputError,
    PayloadTooLargeError,
    UnsupportedMediaError,
)

logger = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 256 * 1024
AVATAR_SIZE = 96

# 256 KB is 2.1 Mbit. Real photos saved as JPEG take 1.5-2.2 bits per pixel (the face photos
# in the test data: 1.49 at 1920x1080, 2.16 at 910x1137), so a photo that fits is about
# 1-1.4 megapixels; even squeezed to a blocky 0.5 bit/px it is 4.2 MP, i.e. 2048x2048. Phone
# screenshots (1170x2532 = 3.0 MP, 1290x2796 = 3.6 MP) fit too. A full decode at the limit
# is 16 MB (Pillow keeps 4 bytes per RGB/RGBA pixel).
MAX_SOURCE_SIDE = 2048
MAX_SOURCE_PIXELS = MAX_SOURCE_SIDE * MAX_SOURCE_SIDE
# Any shape within the pixel budget passes, but a strip longer than this has no face in it.
MAX_SOURCE_EDGE = 2 * MAX_SOURCE_SIDE


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# One decode per core: decoding is CPU-bound C code that releases the GIL, so more at once
# only adds memory, not throughput.
DECODE_SLOTS = max(1, _cpu_count())
# A 2048x2048 PNG decodes and shrinks in ~0.1 s on one core, so a caller who waited this long
# is behind a burst far larger than a room of viewers changing pictures.
DECODE_WAIT_S = 3.0
BUSY_RETRY_AFTER_S = 2.0
# Trim the heap after decodes of at least this many pixels (4 MB at 4 bytes/px); smaller
# decodes reuse heap memory that is already there. malloc_trim takes well under 1 ms.
TRIM_AFTER_PIXELS = 1024 * 1024

_DECODE_SLOTS = threading.BoundedSemaphore(DECODE_SLOTS)

_NAMES = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP"}

# EXIF orientation -> the transpose that shows the picture upright (as ImageOps.exif_transpose).
_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        fn = libc.malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS, Windows)
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


_MALLOC_TRIM = _load_malloc_trim()


def trim_heap() -> None:
    """Give freed C-heap memory back to the OS (glibc ``malloc_trim(0)``); no-op elsewhere."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def sniff(data: bytes) -> str | None:
    """``"png"``, ``"jpeg"``, ``"webp"`` from the file's first bytes, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _opener(kind: str) -> Callable[[IO[bytes]], ImageFile.ImageFile]:
    """The format's own header reader. Unlike ``Image.open`` it does not warn or raise on
    large sizes, so :func:`check_pixels` alone decides, with a message a person can read."""
    if kind == "png":
        return PngImagePlugin.PngImageFile
    if kind == "jpeg":
        return JpegImagePlugin.JpegImageFile
    from PIL import WebPImagePlugin  # imported late: only needed for WebP uploads

    return WebPImagePlugin.WebPImageFile


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """The canvas size from a WebP's first chunk (``VP8 ``, ``VP8L`` or ``VP8X``), if there.

    Read by hand because libwebp's decoder allocates two canvases of this size as soon as
    Pillow opens the file, before any size check of ours could run.
    """
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack_from("<HH", data, 26)
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


# Text chunks are dropped before Pillow parses a PNG: it inflates zTXt/iTXt while reading the
# header, up to 64 MB from a 66 KB file, and the re-encoded avatar discards them anyway.
_PNG_TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt"}


def _without_png_text(data: bytes) -> bytes:
    """``data`` with its text chunks left out; anything unparsable is kept for Pillow to judge."""
    parts, pos = [data[:8]], 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        end = pos + 12 + length
        if end > len(data):
            break
        if data[pos + 4:pos + 8] not in _PNG_TEXT_CHUNKS:
            parts.append(data[pos:end])
        pos = end
    parts.append(data[pos:])
    return b"".join(parts)


def check_pixels(width: int, height: int) -> None:
    """Refuse a picture larger than :data:`MAX_SOURCE_PIXELS` or :data:`MAX_SOURCE_EDGE`."""
    if width * height > MAX_SOURCE_PIXELS:
        raise InvalidInputError(
            f"avatar is {width}x{height} pixels; the limit is {MAX_SOURCE_SIDE}x"
            f"{MAX_SOURCE_SIDE} ({MAX_SOURCE_PIXELS / 1e6:.1f} megapixels in any shape)")
    if max(width, height) > MAX_SOURCE_EDGE:
        raise InvalidInputError(
            f"avatar is {width}x{height} pixels; no side may be longer than {MAX_SOURCE_EDGE}")


def _shrink(img: Image.Image, size: int) -> Image.Image:
    """``img`` reduced so its short side is still at least twice ``size`` (LANCZOS then has
    enough to work with), converted only as far as averaging needs."""
    if img.mode == "1":
        img = img.convert("L")  # same 1 byte per pixel; averaging gives grey edges, not jaggies
    elif img.mode.startswith("I") or img.mode == "F":
        img = img.point(lambda v: v / 256).convert("L")  # 16-bit grey: keep the top 8 bits
    factor = min(img.size) // (2 * size)
    if factor < 2:
        return img
    if img.mode in ("P", "PA"):
        # Palette indices cannot be averaged: pick pixels instead, leaving twice as many for
        # LANCZOS to smooth, rather than convert the full-size picture to RGBA.
        factor //= 2
        if factor < 2:
            return img
        w, h = img.size
        return img.resize((math.ceil(w / factor), math.ceil(h / factor)),
                          Image.Resampling.NEAREST)
    return img.reduce(factor)


def _decode(data: bytes, kind: str, size: int) -> Image.Image:
    """The upright, centre-cropped ``size``x``size`` RGBA picture."""
    name = _NAMES[kind]
    declared = 0
    out: Image.Image | None = None
    src: ImageFile.ImageFile | None = None
    try:
        if kind == "webp" and (canvas := _webp_size(data)):
            check_pixels(*canvas)
        elif kind == "png":
            data = _without_png_text(data)
        src = _opener(kind)(io.BytesIO(data))
        check_pixels(*src.size)
        declared = src.width * src.height
        if kind == "jpeg":
            src.draft("RGB", (2 * size, 2 * size))  # scaled while decoding
        src.load()  # the first frame of an animated PNG/WebP
        orientation = src.getexif().get(ExifTags.Base.Orientation, 1)
        img = _shrink(src, size)
        # Always a copy, so dropping ``src`` below frees the full-size pixels.
        img = img.convert("RGB").convert("RGBA") if img.mode == "CMYK" else \
            img.convert("RGBA")
        if orientation in _ORIENT:
            img = img.transpose(_ORIENT[orientation])
        out = ImageOps.fit(img, (size, size), Image.Resampling.LANCZOS)
    except InteractionError:
        raise  # refused from the header: nothing was decoded
    except Exception as e:  # Pillow's errors on hostile bytes vary (OSError, SyntaxError...)
        logger.info("avatar upload: cannot decode %s (%s: %s)", name, type(e).__name__, e)
    # Here no traceback holds a frame that holds ``src``: closing it frees its pixels and
    # dropping it frees the decoder's buffers (WebP keeps two full-size canvases), so the
    # trim below can hand all of that back.
    if src is not None:
        src.close()
        src = None
    if declared >= TRIM_AFTER_PIXELS:
        trim_heap()
    if out is None:
        raise InvalidInputError(
            f"avatar is not a readable {name} image: the file is damaged or truncated")
    return out


def to_avatar_png(data: bytes, size: int = AVATAR_SIZE) -> bytes:
    """A ``size``x``size`` PNG (centre-cropped) from PNG, JPEG or WebP bytes.

    Blocks for up to :data:`DECODE_WAIT_S` while :data:`DECODE_SLOTS` other decodes run;
    call it from a worker thread.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise PayloadTooLargeError(
            f"avatar is {len(data)} bytes; the limit is {MAX_UPLOAD_BYTES // 1024} KB")
    if not data:
        raise InvalidInputError("avatar upload is empty")
    kind = sniff(data)
    if kind is None:
        raise UnsupportedMediaError("avatar must be a PNG, JPEG or WebP image")
    if not _DECODE_SLOTS.acquire(timeout=DECODE_WAIT_S):
        raise BusyError("the server is busy with other avatar uploads; try again in a moment",
                        retry_after=BUSY_RETRY_AFTER_S)
    try:
        img = _decode(data, kind, size)
    finally:
        _DECODE_SLOTS.release()
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()
