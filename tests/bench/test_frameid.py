from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from arengine.bench.frameid import (
    CORNERS,
    FRAME_ID_JS,
    MAX_FRAME_ID,
    burn_frame_id,
    crc8,
    read_frame_id,
)

IDS = [0, 1, 2, 255, 256, 4095, 65535, 65536, 1_000_000, 12_345_678, MAX_FRAME_ID - 1,
       MAX_FRAME_ID]


@pytest.fixture(scope="module")
def picture(load_image) -> np.ndarray:
    """A real photo at 480p, so the codec has texture to spend bits on."""
    img = load_image("mediapipe_samples/business-person.png")
    return cv2.resize(img, (640, 480), interpolation=cv2.INTER_AREA)


def test_crc8_reference_value() -> None:
    # CRC-8/SMBUS check value for "123456789"
    assert crc8(b"123456789") == 0xF4


@pytest.mark.parametrize("corner", CORNERS)
def test_round_trip_uncompressed(picture: np.ndarray, corner: str) -> None:
    for i in IDS:
        img = burn_frame_id(picture.copy(), i, corner)  # type: ignore[arg-type]
        assert read_frame_id(img, corner) == i  # type: ignore[arg-type]


def test_only_the_corner_changes(picture: np.ndarray) -> None:
    img = burn_frame_id(picture.copy(), 42)
    changed = np.argwhere(np.any(img != picture, axis=2))
    assert changed[:, 0].max() < 480 * 3 / 32 and changed[:, 1].max() < 640 / 2


def test_no_id_reads_none(picture: np.ndarray) -> None:
    assert read_frame_id(picture) is None
    assert read_frame_id(np.zeros((480, 640, 3), np.uint8)) is None
    assert read_frame_id(np.zeros((20, 20, 3), np.uint8)) is None  # too small: None, no error


def test_checksum_rejects_a_flipped_block(picture: np.ndarray) -> None:
    img = burn_frame_id(picture.copy(), 777)
    b = 480 / 32
    x, y = round(0.5 * b + 5.5 * b), round(0.5 * b + 0.5 * b)  # a data block of row 0
    img[y - 6:y + 6, x - 6:x + 6] = 255 - img[y, x]
    assert read_frame_id(img) is None


def test_survives_downscaling(picture: np.ndarray) -> None:
    big = cv2.resize(picture, (1280, 960))
    burn_frame_id(big, 9_999)
    assert read_frame_id(cv2.resize(big, (640, 480), interpolation=cv2.INTER_AREA)) == 9_999


@pytest.mark.parametrize("bad", [-1, MAX_FRAME_ID + 1, 1.5, "3"])
def test_rejects_bad_ids(picture: np.ndarray, bad: object) -> None:
    with pytest.raises(ValueError, match="frame id"):
        burn_frame_id(picture.copy(), bad)  # type: ignore[arg-type]


def test_rejects_bad_corner(picture: np.ndarray) -> None:
    with pytest.raises(ValueError, match="corner"):
        burn_frame_id(picture.copy(), 1, "middle")  # type: ignore[arg-type]


def _codec_round_trip(frames: list[np.ndarray], codec: str, bitrate: int) -> list[np.ndarray]:
    enc = av.CodecContext.create(codec, "w")
    enc.width, enc.height = 640, 480
    enc.pix_fmt = "yuv420p"
    enc.time_base = Fraction(1, 30)
    enc.framerate = Fraction(30, 1)
    enc.bit_rate = bitrate
    if codec == "libvpx":
        enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    else:
        enc.options = {"preset": "veryfast", "tune": "zerolatency"}
    packets = []
    for i, img in enumerate(frames):
        f = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        f.pts = i
        packets += enc.encode(f)
    packets += enc.encode(None)
    dec = av.CodecContext.create("vp8" if codec == "libvpx" else "h264", "r")
    out = []
    for p in packets:
        out += [f.to_ndarray(format="bgr24") for f in dec.decode(p)]
    out += [f.to_ndarray(format="bgr24") for f in dec.decode(None)]
    return out


@pytest.mark.parametrize("codec", ["libvpx", "libx264"])
@pytest.mark.parametrize("bitrate", [300_000, 1_000_000])
def test_survives_vp8_and_h264_at_480p(picture: np.ndarray, codec: str, bitrate: int) -> None:
    # A panning real picture (so motion competes for bits) with a new id every frame.
    frames = []
    for k, i in enumerate(IDS * 3):
        shifted = np.roll(picture, 4 * k, axis=1)
        frames.append(burn_frame_id(shifted.copy(), i))
    decoded = _codec_round_trip(frames, codec, bitrate)
    assert len(decoded) == len(frames)
    read = [read_frame_id(img) for img in decoded]
    assert read == IDS * 3


def _js_eval(script: str) -> str:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed")
    res = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_js_burner_draws_the_same_pixels_and_reads_them() -> None:
    # A tiny canvas stand-in (fillRect/getImageData over an RGBA buffer) runs the page code.
    w, h = 640, 480
    shim = f"""
{FRAME_ID_JS}
const W = {w}, H = {h}, buf = new Uint8ClampedArray(W * H * 4).fill(128);
const ctx = {{ fillStyle: '#000000',
  fillRect(x, y, fw, fh) {{ const v = this.fillStyle === '#ffffff' ? 255 : 0;
    for (let j = y; j < y + fh; j++) for (let i = x; i < x + fw; i++)
      for (let c = 0; c < 3; c++) buf[(j * W + i) * 4 + c] = v; }},
  getImageData(x, y, gw, gh) {{ const d = new Uint8ClampedArray(gw * gh * 4);
    for (let j = 0; j < gh; j++) for (let i = 0; i < gw; i++)
      for (let c = 0; c < 4; c++) d[(j * gw + i) * 4 + c] = buf[((y + j) * W + x + i) * 4 + c];
    return {{ data: d }}; }} }};
const ids = {IDS};
const back = ids.map(id => {{ arengineFrameId.burnFrameId(ctx, W, H, id);
  return arengineFrameId.readFrameId(ctx, W, H); }});
arengineFrameId.burnFrameId(ctx, W, H, 4242, 'bottom-right');
arengineFrameId.burnFrameId(ctx, W, H, 99, 'top-center');
const corners = [arengineFrameId.readFrameId(ctx, W, H, 'bottom-right'),
                 arengineFrameId.readFrameId(ctx, W, H, 'top-center')];
const box = arengineFrameId.patternBox(W, H, 'bottom-right');
const g = []; for (let i = 0; i < W * H; i++) g.push(buf[i * 4]);
console.log(JSON.stringify({{ back, corners, box, gray: Buffer.from(g).toString('base64') }}));
"""
    import base64
    import json

    out = json.loads(_js_eval(shim))
    assert out["back"] == IDS
    assert out["corners"] == [4242, 99]
    gray = np.frombuffer(base64.b64decode(out["gray"]), np.uint8).reshape(h, w)
    expected = np.full((h, w, 3), 128, np.uint8)
    burn_frame_id(expected, IDS[-1])
    burn_frame_id(expected, 4242, "bottom-right")
    burn_frame_id(expected, 99, "top-center")
    assert np.array_equal(gray, expected[:, :, 0])
    assert read_frame_id(np.dstack([gray] * 3), "bottom-right") == 4242
    assert read_frame_id(np.dstack([gray] * 3), "top-center") == 99
    # patternBox is exactly the pixels the bottom-right pattern painted
    x, y, bw, bh = out["box"]
    only = np.full((h, w, 3), 128, np.uint8)
    burn_frame_id(only, 4242, "bottom-right")
    ys, xs = np.nonzero(only[:, :, 0] != 128)
    assert (x, y, x + bw - 1, y + bh - 1) == (xs.min(), ys.min(), xs.max(), ys.max())
