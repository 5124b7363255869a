"""Picture and video input/output: clocks, audio and damaged files, on real footage."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from arengine.errors import UserError
from arengine.media import (
    ImageInput,
    ImageOutput,
    VideoInput,
    VideoOutput,
    open_input,
    open_output,
    read_image,
    write_image,
)
from arengine.types import Frame


def make_clip(path: Path, source: Path, frames: int = 30, size: tuple[int, int] = (640, 360),
              fps: int = 25, audio: str | None = "aac", crf: int | None = None) -> Path:
    """A short H.264 clip of real footage with a 440 Hz tone track, written with PyAV."""
    with av.open(str(source)) as src, av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        v.options = {"preset": "ultrafast", **({"crf": str(crf)} if crf is not None else {})}
        a = out.add_stream(audio, rate=48000) if audio else None
        if a is not None:
            a.layout = "mono"
        for i, f in enumerate(src.decode(video=0)):
            if i >= frames:
                break
            img = cv2.resize(f.to_ndarray(format="bgr24"), size, interpolation=cv2.INTER_AREA)
            vf = av.VideoFrame.from_ndarray(img, format="bgr24")
            vf.pts = i
            out.mux(v.encode(vf))
        out.mux(v.encode(None))
        if a is not None:
            total = int(48000 * frames / fps)
            t = np.arange(total) / 48000
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, total, 1024):
                chunk = tone[start:start + 1024][None, :]
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                af.sample_rate, af.pts = 48000, start
                out.mux(a.encode(af))
            out.mux(a.encode(None))
    return path


def audio_payloads(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))
        return {"frames": len(frames), "fps": v.average_rate, "codec": v.codec_context.name,
                "times": [float(f.pts * f.time_base) for f in frames],
                "audio": c.streams.audio[0].codec_context.name if c.streams.audio else None,
                "size": (v.codec_context.width, v.codec_context.height)}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, face_video: Path) -> Path:
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4", face_video)


def copy_through(src: Path, dst: Path) -> tuple[VideoInput, VideoOutput]:
    inp = open_input(src)
    assert isinstance(inp, VideoInput)
    out = open_output(dst, inp)
    assert isinstance(out, VideoOutput)
    for frame in inp.frames():
        out.write(frame)
    out.close()
    inp.close()
    return inp, out


# --------------------------------------------------------------------------- pictures


def test_rgba_png_reads_as_bgr_and_keeps_alpha(data_dir: Path, tmp_path: Path) -> None:
    src = data_dir / "mediapipe_samples" / "thumbs-up.png"
    inp = ImageInput(src)
    assert inp.image.shape == (1280, 1920, 3) and inp.image.dtype == np.uint8
    assert inp.alpha is not None and inp.alpha.shape == (1280, 1920)
    raw = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(inp.image, raw[:, :, :3])
    out = tmp_path / "out.png"
    o = open_output(out, inp)
    o.write(next(inp.frames()))
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back, raw)  # alpha restored, pixels lossless


def test_grey_and_16_bit_pictures_become_bgr8(tmp_path: Path) -> None:
    grey = np.tile(np.arange(64, dtype=np.uint8), (32, 1))
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    img = read_image(tmp_path / "g.png")
    assert img.shape == (32, 64, 3) and (img[:, :, 0] == grey).all()
    deep = (grey.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    np.testing.assert_array_equal(read_image(tmp_path / "d.png")[:, :, 1], grey)


def test_jpeg_round_trip(load_image, tmp_path: Path) -> None:
    img = load_image("faces/obama-480p.jpg")
    write_image(tmp_path / "o.jpg", img)
    back = read_image(tmp_path / "o.jpg")
    assert back.shape == img.shape
    assert np.abs(back.astype(int) - img).mean() < 3


@pytest.mark.parametrize("content", [b"", b"not a picture at all" * 10])
def test_bad_pictures_are_user_errors(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "bad.png"
    p.write_bytes(content)
    with pytest.raises(UserError, match=r"bad\.png"):
        open_input(p)


def test_picture_output_checks(tmp_path: Path) -> None:
    inp = ImageInput(_obama(tmp_path))
    with pytest.raises(UserError, match="output folder does not exist"):
        open_output(tmp_path / "missing" / "o.png", inp)
    with pytest.raises(UserError, match="must be one too"):
        open_output(tmp_path / "o.mp4", inp)
    with pytest.raises(UserError, match="unsupported picture format"):
        ImageOutput(tmp_path / "o.gif")


def _obama(tmp_path: Path) -> Path:
    p = tmp_path / "obama.png"
    cv2.imwrite(str(p), np.full((40, 60, 3), 128, np.uint8))
    return p


# --------------------------------------------------------------------------- videos


def test_video_input_keeps_the_clock(clip: Path) -> None:
    with VideoInput(clip) as inp:
        assert inp.info.fps == 25 and inp.info.frames == 30
        assert (inp.info.width, inp.info.height) == (640, 360)
        assert inp.info.audio_codec == "aac"
        frames = list(inp.frames())
    assert len(frames) == 30
    assert [f.index for f in frames] == list(range(30))
    times = [f.time for f in frames]
    assert all(t is not None for t in times)
    np.testing.assert_allclose(np.diff(times), 0.04, atol=1e-6)
    assert all(isinstance(f.time_base, Fraction) for f in frames)


@pytest.mark.parametrize(("ext", "codec", "audio", "audio_codec"), [
    (".mp4", "h264", "copy", "aac"),
    (".mov", "h264", "copy", "aac"),
    (".mkv", "h264", "copy", "aac"),
    (".webm", "vp9", "transcode", "opus"),
    (".mpg", "mpeg2video", "transcode", "mp2"),
    (".y4m", "rawvideo", "dropped", None),
])
def test_video_output_formats(clip: Path, tmp_path: Path, ext: str, codec: str, audio: str,
                              audio_codec: str | None) -> None:
    dst = tmp_path / f"out{ext}"
    _, out = copy_through(clip, dst)
    assert out.audio == audio
    src, got = probe(clip), probe(dst)
    assert got["codec"] == codec
    assert got["frames"] == 30
    assert got["fps"] == 25
    assert got["size"] == (640, 360)
    assert got["audio"] == audio_codec
    # Same frame times, up to a constant start offset some containers add (MPEG-PS).
    np.testing.assert_allclose(np.diff(got["times"]), np.diff(src["times"]), atol=1e-3)
    if audio == "copy":
        assert audio_payloads(dst) == audio_payloads(clip)  # the very same packets


def test_pixels_survive_an_h264_round_trip(clip: Path, tmp_path: Path) -> None:
    copy_through(clip, tmp_path / "o.mkv")
    with av.open(str(clip)) as a, av.open(str(tmp_path / "o.mkv")) as b:
        fa = next(a.decode(video=0)).to_ndarray(format="bgr24").astype(int)
        fb = next(b.decode(video=0)).to_ndarray(format="bgr24").astype(int)
    assert np.abs(fa - fb).mean() < 2.5


def test_video_without_audio(face_video: Path, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "mute.mp4", face_video, frames=5, audio=None)
    _, out = copy_through(src, tmp_path / "o.webm")
    assert out.audio == "none"
    assert probe(tmp_path / "o.webm")["frames"] == 5


def test_corrupt_frames_are_skipped_and_counted(face_video: Path, tmp_path: Path) -> None:
    data = bytearray(face_video.read_bytes())
    middle = len(data) // 2
    for k in range(40):
        for j in range(64):
            data[middle + k * 997 + j] ^= 0xFF
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    inp, out = copy_through(bad, tmp_path / "o.mp4")
    assert inp.corrupt_frames > 0
    assert out.frames_written == inp.frames_decoded
    assert 150 <= inp.frames_decoded < 195
    assert inp.frames_decoded + inp.corrupt_frames >= 195 - 2
    assert probe(tmp_path / "o.mp4")["frames"] == out.frames_written


def test_unreadable_videos_are_user_errors(tmp_path: Path) -> None:
    (tmp_path / "g.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(UserError, match="cannot read"):
        open_input(tmp_path / "g.mp4")
    (tmp_path / "t.txt").write_text("hello\n")
    with pytest.raises(UserError, match=r"unsupported input format '\.txt'"):
        open_input(tmp_path / "t.txt")
    with pytest.raises(UserError, match="no such file"):
        open_input(tmp_path / "missing.mp4")
    with pytest.raises(UserError, match="folder"):
        open_input(tmp_path)


def test_audio_only_file_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "a.m4a"
    with av.open(str(p), "w") as out:
        a = out.add_stream("aac", rate=48000)
        a.layout = "mono"
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                        layout="mono")
        af.sample_rate, af.pts = 48000, 0
        out.mux(a.encode(af))
        out.mux(a.encode(None))
    with pytest.raises(UserError, match="no video stream"):
        open_input(p)


def test_video_output_checks(clip: Path, tmp_path: Path) -> None:
    with VideoInput(clip) as inp:
        with pytest.raises(UserError, match="unsupported video format"):
            VideoOutput(tmp_path / "o.gif", inp)
        with pytest.raises(UserError, match="must be one too"):
            open_output(tmp_path / "o.png", inp)
        with pytest.raises(UserError, match="output folder"):
            open_output(tmp_path / "nope" / "o.mp4", inp)


def test_mpeg2_needs_a_standard_frame_rate(face_video: Path, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "odd.mp4", face_video, frames=3, fps=7, audio=None)
    with VideoInput(src) as inp, pytest.raises(UserError, match="standard frame rate"):
        VideoOutput(tmp_path / "o.mpg", inp)


def test_frames_without_pts_get_consecutive_ones(clip: Path, tmp_path: Path) -> None:
    with VideoInput(clip, audio=False) as inp:
        out = VideoOutput(tmp_path / "o.mp4", inp)
        image = np.zeros((360, 640, 3), np.uint8)
        for _ in range(4):
            out.write(Frame.from_ndarray(image))
        out.close()
    got = probe(tmp_path / "o.mp4")
    assert got["frames"] == 4
    np.testing.assert_allclose(np.diff(got["times"]), 0.04, atol=1e-6)


def test_video_output_without_a_source(tmp_path: Path) -> None:
    out = VideoOutput(tmp_path / "made.mkv", width=64, height=48, fps=30)
    for i in range(6):
        out.write(Frame.from_ndarray(np.full((48, 64, 3), i * 40, np.uint8)))
    out.close()
    assert out.audio == "none"
    got = probe(tmp_path / "made.mkv")
    assert got["frames"] == 6 and got["fps"] == 30 and got["size"] == (64, 48)
    with pytest.raises(ValueError):
        VideoOutput(tmp_path / "x.mp4")


def test_transcoded_audio_keeps_its_start_offset(tmp_path: Path) -> None:
    """Audio that starts 0.5 s after the video still does after AAC -> Opus / MP2."""
    src = tmp_path / "late.mkv"
    with av.open(str(src), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width = v.height = 64
        v.pix_fmt = "yuv420p"
        a = out.add_stream("aac", rate=44100)
        a.layout = "mono"
        for i in range(50):
            vf = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="bgr24")
            vf.pts = i
            out.mux(v.encode(vf))
        out.mux(v.encode(None))
        for k in range(0, 44100 * 3 // 2, 1024):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                            layout="mono")
            af.sample_rate, af.pts, af.time_base = 44100, 22050 + k, Fraction(1, 44100)
            out.mux(a.encode(af))
        out.mux(a.encode(None))

    def audio_start(path: Path) -> float:
        starts = []
        for kind in ("audio", "video"):
            with av.open(str(path)) as c:
                stream = c.streams.audio[0] if kind == "audio" else c.streams.video[0]
                first = next(p for p in c.demux(stream) if p.pts is not None)
                starts.append(float(first.pts * first.time_base))
        return starts[0] - starts[1]

    expected = audio_start(src)
    assert expected == pytest.approx(0.5, abs=0.05)
    for ext in (".webm", ".mpg"):
        _, out = copy_through(src, tmp_path / f"o{ext}")
        assert out.audio == "transcode"
        assert audio_start(tmp_path / f"o{ext}") == pytest.approx(expected, abs=0.05), ext


@pytest.mark.parametrize("angle", [90, 180, 270])
def test_rotated_phone_clip_is_turned_upright(tmp_path: Path, angle: int) -> None:
    """A display-matrix rotation is applied on decode, the way ffmpeg's autorotate does."""
    import subprocess

    img = np.zeros((48, 64, 3), np.uint8)
    img[:8, :16] = 255  # a marker in the stored top-left corner
    src = tmp_path / "rot.mp4"
    with av.open(str(src), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.set_display_rotation(angle)
        for i in range(3):
            vf = av.VideoFrame.from_ndarray(img, format="bgr24")
            vf.pts = i
            out.mux(v.encode(vf))
        out.mux(v.encode(None))
    ref = tmp_path / "ref.png"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-frames:v", "1", str(ref)],
                   check=True)
    upright = cv2.imread(str(ref))
    with VideoInput(src) as inp:
        assert inp.info.rotation == angle
        assert (inp.info.width, inp.info.height) == (upright.shape[1], upright.shape[0])
        first = next(inp.frames()).image
    assert first.shape == upright.shape
    assert np.abs(first.astype(int) - upright).mean() < 8
    copy_through(src, tmp_path / "o.mp4")
    got = probe(tmp_path / "o.mp4")
    assert got["size"] == (upright.shape[1], upright.shape[0])


# --------------------------------------------------------------------------- truncation


def read_all(path: Path) -> VideoInput:
    with VideoInput(path) as inp:
        assert inp.frames_missing is None  # not known before the end is reached
        for _ in inp.frames():
            pass
    return inp


def cut(src: Path, dst: Path, share: float) -> Path:
    """The first ``share`` of a file's bytes: a download or a recording that stopped."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * share)])
    return dst


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv", ".webm", ".mpg", ".y4m"])
def test_complete_files_miss_nothing(clip: Path, tmp_path: Path, ext: str) -> None:
    """Each container's stated length (a count, a duration, a track tag) fits its frames."""
    src = clip if ext == ".mp4" else copy_through(clip, tmp_path / f"o{ext}")[1].path
    inp = read_all(src)
    assert inp.frames_decoded == inp.frames_expected == 30
    assert inp.frames_missing == 0 and not inp.ends_early
    assert inp.ends_at == pytest.approx(1.2, abs=1e-3)


def test_real_files_miss_nothing(face_video: Path, data_dir: Path) -> None:
    inp = read_all(face_video)
    assert (inp.frames_expected, inp.frames_decoded, inp.frames_missing) == (195, 195, 0)
    assert not inp.ends_early and inp.ends_at == pytest.approx(7.8)
    grid = read_all(next((data_dir / "grid_talking").glob("*.mpg")))  # 2.98 s, 75 frames
    assert grid.frames_decoded == 75 and grid.frames_missing == 0 and not grid.ends_early


def test_real_sample_cut_in_half(face_video: Path, tmp_path: Path) -> None:
    """Half the bytes of the 195-frame sample: most frames missing, not "1 corrupt frame"."""
    half = cut(face_video, tmp_path / "half.mp4", 0.5)
    inp = VideoInput(half)
    assert inp.frames_expected == 195  # the sample table in the moov, which survives
    times = [f.time for f in inp.frames()]
    inp.close()
    assert 50 < inp.frames_decoded < 150
    assert inp.frames_missing == 195 - inp.frames_decoded
    assert inp.frames_missing > 100  # far more than the corrupt-frame count shows
    assert inp.corrupt_frames < 5
    assert inp.ends_early
    last, ends_at = times[-1], inp.ends_at
    assert last is not None and ends_at is not None
    assert ends_at == pytest.approx(last + 0.04)
    assert 2.5 < ends_at < 4.5 and inp.info.duration == pytest.approx(7.8)


def test_truncated_clip_counts_missing_frames(face_video: Path, tmp_path: Path) -> None:
    """A Matroska clip cut short: its length comes from the duration, not a frame count."""
    full = make_clip(tmp_path / "full.mkv", face_video, frames=50)
    assert read_all(full).frames_missing == 0
    short = read_all(cut(full, tmp_path / "short.mkv", 0.5))
    assert short.frames_expected == 50
    assert 5 < short.frames_decoded < 45
    assert short.frames_missing == 50 - short.frames_decoded
    assert short.ends_early
    assert short.ends_at == pytest.approx(short.frames_decoded * 0.04, abs=0.05)


def test_no_stated_length_says_nothing(face_video: Path, tmp_path: Path) -> None:
    """A raw H.264 stream states no length: no missing count is guessed, cut or not."""
    raw = make_clip(tmp_path / "raw.h264", face_video, frames=20, audio=None)
    for path in (raw, cut(raw, tmp_path / "cut.h264", 0.5)):
        inp = read_all(path)
        assert inp.frames_decoded > 0
        assert inp.frames_expected is None and inp.frames_missing is None
        assert not inp.ends_early


def test_a_picture_misses_nothing(load_image: Callable[[str], np.ndarray],
                                  tmp_path: Path) -> None:
    write_image(tmp_path / "p.png", load_image("faces/obama-480p.jpg"))
    inp = ImageInput(tmp_path / "p.png")
    assert (inp.frames_expected, inp.frames_missing, inp.ends_early) == (1, 0, False)
