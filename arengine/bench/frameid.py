"""Frame ids burned into the picture, so a frame can be recognised after a video codec.

Glass-to-glass latency needs to know which sent frame a received picture is. Metadata
does not survive WebRTC (RTP timestamps are rewritten, SEI is dropped), pixels do: the id
is drawn as two rows of 18 large black/white blocks in a corner,

    row 0:  W B  b23 .. b8       (24-bit id, most significant bit first)
    row 1:  B W  b7 .. b0  c7 .. c0   (CRC-8 of the id)

The two marker blocks per row give the reader its own black and white levels, so a
codec's contrast and brightness shifts do not move the threshold; the CRC rejects a
picture whose blocks were smeared (a frame caught mid-update or a wrong corner). Block
size is a fraction of the frame height (1/32), so the pattern survives the sender
scaling the stream down (WebRTC does under congestion): at 480p a block is 15 px, large
against VP8's and H.264's 4-16 px transform blocks and 4:2:0 chroma.

The same layout is in :data:`FRAME_ID_JS` for a browser's fake camera (canvas) and for
reading the id back from a ``<video>`` drawn to a canvas.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right", "top-center",
                 "bottom-center"]
# The centre positions are for pictures whose corners carry on-screen cards.
CORNERS: tuple[str, ...] = ("top-left", "top-right", "bottom-left", "bottom-right",
                            "top-center", "bottom-center")
ID_BITS = 24
MAX_FRAME_ID = (1 << ID_BITS) - 1
COLUMNS = 18  # 2 marker blocks + 16 data bits per row
ROWS = 2
BLOCKS_PER_HEIGHT = 32  # block side = frame height / 32
MARGIN_BLOCKS = 0.5


def crc8(data: bytes) -> int:
    """CRC-8 with polynomial 0x07 (ATM HEC / SMBus), initial value 0."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _bits(frame_id: int) -> list[int]:
    check = crc8(frame_id.to_bytes(3, "big"))
    word = (frame_id << 8) | check
    return [(word >> (31 - i)) & 1 for i in range(32)]


def pattern_box(width: int, height: int, corner: Corner = "top-left"
                ) -> tuple[float, float, float]:
    """(x, y, block side) of the pattern in a ``width`` x ``height`` frame, in pixels."""
    if corner not in CORNERS:
        raise ValueError(f"corner must be one of {', '.join(CORNERS)}, not {corner!r}")
    block = height / BLOCKS_PER_HEIGHT
    if block < 4:
        raise ValueError(f"a {height} px high frame is too small for frame ids "
                         f"(needs at least {4 * BLOCKS_PER_HEIGHT} px)")
    if (COLUMNS + 2 * MARGIN_BLOCKS) * block > width:
        raise ValueError(f"a {width} px wide frame is too narrow for frame ids at this height")
    margin = MARGIN_BLOCKS * block
    if corner.endswith("left"):
        x = margin
    elif corner.endswith("right"):
        x = width - margin - COLUMNS * block
    else:
        x = (width - COLUMNS * block) / 2
    y = margin if corner.startswith("top") else height - margin - ROWS * block
    return x, y, block


def _round(v: float) -> int:
    """Halves round up, as JavaScript's Math.round does, so both draw the same pixels."""
    return math.floor(v + 0.5)


def _cells(width: int, height: int, corner: Corner) -> list[tuple[int, int, int, int, float]]:
    """Per block, in row order: integer x0, y0, x1, y1 and the side length."""
    x, y, b = pattern_box(width, height, corner)
    out = []
    for r in range(ROWS):
        for c in range(COLUMNS):
            out.append((_round(x + c * b), _round(y + r * b), _round(x + (c + 1) * b),
                        _round(y + (r + 1) * b), b))
    return out


def _levels(frame_id: int) -> list[int]:
    bits = _bits(frame_id)
    return [1, 0, *bits[:16], 0, 1, *bits[16:]]


def burn_frame_id(image: np.ndarray, frame_id: int, corner: Corner = "top-left") -> np.ndarray:
    """Draw ``frame_id`` (0 .. 2**24-1) into ``image`` (H, W, C uint8, in place); returns it."""
    if not isinstance(frame_id, int | np.integer) or not 0 <= int(frame_id) <= MAX_FRAME_ID:
        raise ValueError(f"frame id must be an integer in 0..{MAX_FRAME_ID}, got {frame_id!r}")
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError("image must be a uint8 (H, W) or (H, W, C) array")
    h, w = image.shape[:2]
    for (x0, y0, x1, y1, _), level in zip(_cells(w, h, corner), _levels(int(frame_id)),
                                          strict=True):
        image[y0:y1, x0:x1] = 255 if level else 0
    return image


def read_frame_id(image: np.ndarray, corner: Corner = "top-left") -> int | None:
    """The id burned into ``image``, or None when there is none or it does not check out."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError("image must be a uint8 (H, W) or (H, W, C) array")
    h, w = image.shape[:2]
    try:
        cells = _cells(w, h, corner)
    except ValueError:
        return None
    gray = image.astype(np.float32).mean(axis=2) if image.ndim == 3 else \
        image.astype(np.float32)
    means = []
    for x0, y0, x1, y1, b in cells:
        inset = max(1, int(b * 0.25))  # read the middle: edges are where codecs ring
        patch = gray[y0 + inset:y1 - inset, x0 + inset:x1 - inset]
        means.append(float(patch.mean()) if patch.size else 0.0)
    row0, row1 = means[:COLUMNS], means[COLUMNS:]
    white = (row0[0] + row1[1]) / 2
    black = (row0[1] + row1[0]) / 2
    if white - black < 64:  # no pattern: markers must differ by a quarter of the range
        return None
    thr = (white + black) / 2
    bits = [int(v > thr) for v in row0[2:] + row1[2:]]
    word = 0
    for bit in bits:
        word = (word << 1) | bit
    frame_id, check = word >> 8, word & 0xFF
    return frame_id if crc8(frame_id.to_bytes(3, "big")) == check else None


FRAME_ID_JS = """\
// Frame ids as burned by arengine.bench.frameid: 2 rows x 18 blocks, side = height/32.
(function (root) {
  const COLS = 18, ROWS = 2, PER_H = 32, MARGIN = 0.5;
  function crc8(bytes) {
    let crc = 0;
    for (const b of bytes) {
      crc ^= b;
      for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
    }
    return crc;
  }
  function levels(id) {
    const check = crc8([(id >> 16) & 0xff, (id >> 8) & 0xff, id & 0xff]);
    const word = ((id * 256) + check) >>> 0, bits = [];
    for (let i = 0; i < 32; i++) bits.push((word >>> (31 - i)) & 1);
    return [1, 0, ...bits.slice(0, 16), 0, 1, ...bits.slice(16)];
  }
  function cells(w, h, corner) {
    const b = h / PER_H, m = MARGIN * b;
    const x = corner.endsWith('left') ? m : corner.endsWith('right') ? w - m - COLS * b
      : (w - COLS * b) / 2;
    const y = corner.startsWith('top') ? m : h - m - ROWS * b;
    const out = [];
    for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLS; c++)
      out.push([Math.round(x + c * b), Math.round(y + r * b), Math.round(x + (c + 1) * b),
                Math.round(y + (r + 1) * b), b]);
    return out;
  }
  function burnFrameId(ctx, w, h, id, corner = 'top-left') {
    const lv = levels(id);
    cells(w, h, corner).forEach(([x0, y0, x1, y1], i) => {
      ctx.fillStyle = lv[i] ? '#ffffff' : '#000000';
      ctx.fillRect(x0, y0, x1 - x0, y1 - y0);
    });
  }
  // The pixel box [x, y, width, height] the pattern covers: a reader needs only it.
  function patternBox(w, h, corner = 'top-left') {
    const cs = cells(w, h, corner), last = cs[cs.length - 1];
    return [cs[0][0], cs[0][1], last[2] - cs[0][0], last[3] - cs[0][1]];
  }
  function readFrameId(ctx, w, h, corner = 'top-left') {
    const cs = cells(w, h, corner), means = [];
    const [bx, by, bw, bh] = patternBox(w, h, corner);
    if (bw <= 0 || bh <= 0) return null;
    const d = ctx.getImageData(bx, by, bw, bh).data;  // one read for all the blocks
    for (const [x0, y0, x1, y1, b] of cs) {
      const inset = Math.max(1, Math.floor(b * 0.25));
      const pw = x1 - x0 - 2 * inset, ph = y1 - y0 - 2 * inset;
      if (pw <= 0 || ph <= 0) { means.push(0); continue; }
      let s = 0;
      for (let y = y0 + inset; y < y1 - inset; y++) {
        let i = ((y - by) * bw + (x0 + inset - bx)) * 4;
        for (let x = 0; x < pw; x++, i += 4) s += (d[i] + d[i + 1] + d[i + 2]) / 3;
      }
      means.push(s / (pw * ph));
    }
    const r0 = means.slice(0, COLS), r1 = means.slice(COLS);
    const white = (r0[0] + r1[1]) / 2, black = (r0[1] + r1[0]) / 2;
    if (white - black < 64) return null;
    const thr = (white + black) / 2, bits = [...r0.slice(2), ...r1.slice(2)];
    let word = 0;
    for (const v of bits) word = word * 2 + (v > thr ? 1 : 0);
    const id = Math.floor(word / 256), check = word % 256;
    return crc8([(id >> 16) & 0xff, (id >> 8) & 0xff, id & 0xff]) === check ? id : null;
  }
  root.arengineFrameId = { burnFrameId, readFrameId, patternBox, MAX_FRAME_ID: 0xffffff };
})(typeof window !== 'undefined' ? window : globalThis);
"""
