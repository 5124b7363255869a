"""Viewer avatar uploads: checked by magic bytes and size, re-encoded to a small PNG.

Re-encoding drops EXIF (location, camera) and anything hidden after the image data, and
a fixed small size keeps the event log and the on-screen layer cheap.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from arengine.interaction.errors import (
    InvalidInputError,
    PayloadTooLargeError,
    UnsupportedMediaError,
)

MAX_UPLOAD_BYTES = 256 * 1024
MAX_SOURCE_PIXELS = 4096 * 4096  # refuse decompression bombs before decoding
AVATAR_SIZE = 96


def sniff(data: bytes) -> str | None:
    """``"png"``, ``"jpeg"``, ``"webp"`` from the file's first bytes, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def to_avatar_png(data: bytes, size: int = AVATAR_SIZE) -> bytes:
    """A ``size``x``size`` PNG (centre-cropped) from PNG, JPEG or WebP bytes."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise PayloadTooLargeError(
            f"avatar is {len(data)} bytes; the limit is {MAX_UPLOAD_BYTES // 1024} KB")
    if not data:
        raise InvalidInputError("avatar upload is empty")
    kind = sniff(data)
    if kind is None:
        raise UnsupportedMediaError("avatar must be a PNG, JPEG or WebP image")
    try:
        with Image.open(io.BytesIO(data), formats=[kind.upper()]) as src:
            w, h = src.size
            if w * h > MAX_SOURCE_PIXELS:
                raise InvalidInputError(
                    f"avatar is {w}x{h} pixels; at most {MAX_SOURCE_PIXELS} pixels")
            img: Image.Image = ImageOps.exif_transpose(src).convert("RGBA")
            img = ImageOps.fit(img, (size, size), Image.Resampling.LANCZOS)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise InvalidInputError(f"avatar is not a readable {kind.upper()} image ({e})") from None
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()
