"""Reading and writing pictures and videos as :class:`~arengine.types.Frame` objects.

The nouns follow PyAV: :func:`open_input` gives an input (:class:`ImageInput` or
:class:`VideoInput`) whose :meth:`~VideoInput.frames` yields decoded frames with the
source's ``pts`` and ``time_base``; :func:`open_output` gives an output
(:class:`ImageOutput` or :class:`VideoOutput`) that encodes them again.

A video output keeps the input's clock: the same frame rate, the same timestamps, and the
input's audio stream copied packet for packet (no re-encoding, so no generation loss and
no drift) when the output container can hold that codec, else transcoded to one it can.

Damaged input is expected, not exceptional: packets the decoder rejects and frames it
flags as corrupt are skipped and counted (:attr:`VideoInput.corrupt_frames`), so a clip
with a few broken frames still produces an output. A file cut short (a download or a
recording that stopped) decodes fine up to where it ends, so the reader also compares what
it decoded with what the container promised (:attr:`VideoInput.frames_missing`,
:attr:`VideoInput.ends_early`): a damaged file is reported for what it lacks, not only for
the few packets that happened to be broken.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from arengine.errors import UserError
from arengine.types import Frame

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# cv2.rotate code that turns a frame with this display rotation upright (as ffmpeg does).
_ROTATE = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180,
           270: cv2.ROTATE_90_CLOCKWISE}
# Output container per extension: (FFmpeg muxer, video encoder, pixel format).
VIDEO_FORMATS: dict[str, tuple[str, str, str]] = {
    ".mp4": ("mp4", "libx264", "yuv420p"),
    ".mov": ("mov", "libx264", "yuv420p"),
    ".mkv": ("matroska", "libx264", "yuv420p"),
    ".webm": ("webm", "libvpx-vp9", "yuv420p"),
    ".mpg": ("mpeg", "mpeg2video", "yuv420p"),
    ".mpeg": ("mpeg", "mpeg2video", "yuv420p"),
    ".y4m": ("yuv4mpegpipe", "rawvideo", "yuv420p"),
}
VIDEO_EXTENSIONS = (*VIDEO_FORMATS, ".avi", ".m4v", ".ts")
# Audio codecs each container takes as they are (copied); others are transcoded to the
# first one. ``None`` means the container has no audio at all.
AUDIO_COPY: dict[str, tuple[str, ...] | None] = {
    "mp4": ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"),
    "mov": ("aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le"),
    "matroska": ("aac", "opus", "vorbis", "mp3", "mp2", "flac", "ac3", "eac3", "alac",
                 "pcm_s16le", "pcm_s24le", "pcm_f32le"),
    "webm": ("opus", "vorbis"),
    "mpeg": ("mp2", "mp3", "ac3"),
    "yuv4mpegpipe": None,
}
AUDIO_TRANSCODE = {"mp4": "aac", "mov": "aac", "matroska": "aac", "webm": "libopus",
                   "mpeg": "mp2"}


@dataclass(frozen=True)
class MediaInfo:
    """What a file holds, as reported in try-on reports and error messages."""

    path: str
    kind: str  # "image" or "video"
    width: int
    height: int
    container: str | None = None
    video_codec: str | None = None
    fps: Fraction | None = None
    frames: int | None = None  # as the container states it; may be missing or estimated
    duration: float | None = None  # seconds
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    rotation: int = 0  # degrees the pictures were turned to stand upright (display matrix)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fps"] = None if self.fps is None else float(self.fps)
        return d


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise UserError(f"no such file: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a picture or video file")
    try:
        with path.open("rb") as f:
            head = f.read(1)
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    if not head:
        raise UserError(f"{path} is empty")


# --------------------------------------------------------------------------- images


def _to_bgr8(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Any OpenCV-decoded picture as 8-bit BGR, plus its alpha channel if it had one."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), None
    if image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3]), np.ascontiguousarray(image[:, :, 3])
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR), None
    return np.ascontiguousarray(image), None


def read_image(path: str | Path) -> np.ndarray:
    """A picture file as 8-bit BGR (alpha, if any, dropped); raises :class:`UserError`."""
    return ImageInput(path).image


def write_image(path: str | Path, image: np.ndarray, alpha: np.ndarray | None = None) -> None:
    """Write BGR ``image`` (with ``alpha`` where the format has one); raises UserError."""
    out = ImageOutput(path, alpha)
    out.write(Frame.from_ndarray(image))
    out.close()


class ImageInput:
    """One picture, read with OpenCV, as a one-frame input.

    PNG transparency is kept aside in :attr:`alpha` so an output PNG can get it back; the
    frame itself is always BGR, as every stage expects.
    """

    kind = "image"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        _check_readable(self.path)
        data = np.fromfile(str(self.path), np.uint8)
        raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if raw is None or raw.size == 0:
            raise UserError(f"cannot read {self.path}: not a picture OpenCV can decode")
        image, alpha = _to_bgr8(raw)
        if alpha is None and raw.ndim == 3 and raw.shape[2] == 3:
            # IMREAD_COLOR applies the EXIF orientation that IMREAD_UNCHANGED ignores.
            oriented = cv2.imdecode(data, cv2.IMREAD_COLOR)
            if oriented is not None:
                image = oriented
        self.image = image
        self.alpha = alpha
        self.corrupt_frames = 0
        self.frames_expected: int | None = 1
        self.frames_missing: int | None = 0
        self.ends_early = False
        self.ends_at: float | None = None
        h, w = image.shape[:2]
        self.info = MediaInfo(str(self.path), "image", w, h,
                              container=self.path.suffix.lower().lstrip(".") or None, frames=1)

    def frames(self) -> Iterator[Frame]:
        yield Frame.from_ndarray(self.image)

    def close(self) -> None:
        pass

    def __enter__(self) -> ImageInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ImageOutput:
    """Writes one picture; the format follows the file extension."""

    kind = "image"

    def __init__(self, path: str | Path, alpha: np.ndarray | None = None,
                 jpeg_quality: int = 95) -> None:
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in IMAGE_EXTENSIONS:
            raise UserError(f"unsupported picture format {ext or '(none)'!r} for {self.path}; "
                            f"use one of {', '.join(IMAGE_EXTENSIONS)}")
        _check_output_dir(self.path)
        self.alpha = alpha
        self.jpeg_quality = jpeg_quality
        self.frames_written = 0

    def write(self, frame: Frame) -> None:
        if self.frames_written:
            raise ValueError("a picture output takes exactly one frame")
        image = frame.image
        ext = self.path.suffix.lower()
        if (self.alpha is not None and ext in (".png", ".webp", ".tif", ".tiff")
                and self.alpha.shape == image.shape[:2]):
            image = np.dstack([image, self.alpha])
        params: list[int] = []
        if ext in (".jpg", ".jpeg"):
            params = [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]
        ok, data = cv2.imencode(ext, image, params)
        if not ok:
            raise UserError(f"cannot encode a {ext} picture for {self.path}")
        try:
            data.tofile(str(self.path))
        except OSError as e:
            raise UserError(f"cannot write {self.path}: {e.strerror or e}") from None
        self.frames_written += 1

    def close(self) -> None:
        pass

    def __enter__(self) -> ImageOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_output_dir(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"output folder does not exist: {parent}")
    if path.is_dir():
        raise UserError(f"{path} is a folder; give an output file name")


# --------------------------------------------------------------------------- videos


class VideoInput:
    """A video file, decoded frame by frame with PyAV.

    The first video stream is decoded (threaded); with ``audio=True`` the first audio
    stream's packets are kept, in demux order, for a :class:`VideoOutput` to copy, so the
    audio never goes through a decoder. Corrupt packets and frames are skipped and
    counted in :attr:`corrupt_frames`.

    :attr:`frames_expected` is the frame count the container promises (its own count, else
    the video's duration times its rate; ``None`` when it states neither). Once
    :meth:`frames` has run to the end, :attr:`frames_missing`, :attr:`ends_at` and
    :attr:`ends_early` say how much of that promise was not delivered and where the file
    stops, so a truncated file is not mistaken for one with a single bad frame.
    """

    kind = "video"

    def __init__(self, path: str | Path, audio: bool = True) -> None:
        import av

        self.path = Path(path)
        _check_readable(self.path)
        try:
            self.container = av.open(str(self.path), "r")
        except (av.error.FFmpegError, UnicodeDecodeError) as e:
            ext = self.path.suffix.lower()
            if ext not in VIDEO_EXTENSIONS:
                raise UserError(f"unsupported input format {ext or '(no extension)'!r}: "
                                f"{self.path} is neither a picture ({', '.join(IMAGE_EXTENSIONS)}"
                                f") nor a video FFmpeg can read") from None
            raise UserError(f"cannot read {self.path}: not a video file FFmpeg can open "
                            f"({_reason(e)})") from None
        if not self.container.streams.video:
            self.container.close()
            raise UserError(f"{self.path} has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        cc = self.stream.codec_context
        if not cc.width or not cc.height:
            self.container.close()
            raise UserError(f"cannot read {self.path}: the video stream has no picture size")
        self.audio_stream = self.container.streams.audio[0] if (
            audio and self.container.streams.audio) else None
        self.corrupt_frames = 0
        self.frames_decoded = 0
        self._audio: deque[Any] = deque()
        fps = self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
        self._fps = float(fps) if fps else None
        self._start = self._stream_start()
        duration = self._promised_duration()
        frames = self.stream.frames or None
        # A count derived from a duration can be a frame off (rounding, a last frame's
        # length); the container's own count is exact.
        self._frames_exact = frames is not None
        if frames is None and duration and fps:
            frames = round(duration * float(fps))
        self.frames_expected: int | None = frames
        self._finished = False
        self._first_time: float | None = None
        self._last_time: float | None = None
        a = self.container.streams.audio[0] if self.container.streams.audio else None
        self.rotation = self._probe_rotation()
        self._upright = _ROTATE.get(self.rotation)
        width, height = (cc.height, cc.width) if self.rotation in (90, 270) else (
            cc.width, cc.height)
        self.info = MediaInfo(
            str(self.path), "video", width, height, rotation=self.rotation,
            container=self.container.format.name, video_codec=cc.name,
            fps=Fraction(fps) if fps else None, frames=frames, duration=duration,
            audio_codec=a.codec_context.name if a is not None else None,
            audio_sample_rate=a.codec_context.sample_rate if a is not None else None)

    def _stream_start(self) -> float | None:
        """When the video stream starts, in seconds on the file's clock (None: unstated)."""
        tb = self.stream.time_base
        if self.stream.start_time is None or tb is None:
            return None
        return float(self.stream.start_time * tb)

    def _promised_duration(self) -> float | None:
        """How long the video stream says it lasts, in seconds, from its first frame.

        The stream's own duration first (mp4, mpg, y4m); else the per-track DURATION tag
        Matroska and WebM muxers write (the stream's end time); else the container's
        duration, which may include a longer audio track. Each is measured from the
        video's own start, so a stream starting late is not counted short.
        """
        stream, start = self.stream, self._start or 0.0
        if stream.duration is not None and stream.time_base is not None:
            span = float(stream.duration * stream.time_base)
        elif (tag := _parse_clock(stream.metadata.get("DURATION"))) is not None:
            span = tag - start
        elif self.container.duration is not None:
            c_start = (self.container.start_time or 0) / 1_000_000
            span = self.container.duration / 1_000_000 - max(0.0, start - c_start)
        else:
            return None
        return round(span, 6) if span > 0 else None

    @property
    def frames_missing(self) -> int | None:
        """Promised frames that were not decoded; None until read to the end or unknown.

        Counts every frame the output lacks: corrupt ones skipped and, in a truncated file,
        all those after the point where it stops.
        """
        if not self._finished or self.frames_expected is None:
            return None
        missing = max(0, self.frames_expected - self.frames_decoded)
        if not self._frames_exact and missing <= 1:
            return 0  # within the rounding of a duration-based count
        return missing

    @property
    def ends_at(self) -> float | None:
        """Seconds from the stream's start to the end of the last decoded frame."""
        if not self.frames_decoded or self._fps is None:
            return None
        origin = self._start if self._start is not None else self._first_time
        if self._last_time is None or origin is None:
            return self.frames_decoded / self._fps
        return self._last_time - origin + 1 / self._fps

    @property
    def ends_early(self) -> bool:
        """True when frames are missing and decoding stopped before the promised end."""
        duration, ends_at = self.info.duration, self.ends_at
        if not self.frames_missing or duration is None or self._fps is None:
            return False
        # Nothing decoded at all counts as stopping at 0 s.
        return (ends_at or 0.0) < duration - 1.5 / self._fps

    def _probe_rotation(self) -> int:
        """The display rotation of the first frame, as 0, 90, 180 or 270 degrees.

        Phone clips are stored sideways with a display matrix that players apply; the
        trackers need upright faces, so frames are turned upright on decode (the output is
        then upright pixels, no matrix). A second short-lived demuxer finds the angle
        without disturbing this one's position.
        """
        import av

        try:
            with av.open(str(self.path), "r") as probe:
                stream = probe.streams.video[0]
                for frame in probe.decode(stream):
                    angle = getattr(frame, "rotation", 0) or 0
                    return round(float(angle) / 90.0) * 90 % 360
        except (av.error.FFmpegError, StopIteration, ValueError):
            pass
        return 0

    @property
    def time_base(self) -> Fraction | None:
        tb = self.stream.time_base
        return Fraction(tb) if tb is not None else None

    def frames(self) -> Iterator[Frame]:
        """Decoded frames in presentation order, ``pts``/``time_base`` as in the file."""
        import av

        streams = [self.stream] + ([self.audio_stream] if self.audio_stream else [])
        demux = self.container.demux(streams)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.error.FFmpegError as e:
                # The container itself is unreadable from here on: keep what we have.
                log.warning("%s: stopped reading at a broken packet (%s)", self.path,
                            _reason(e))
                self.corrupt_frames += 1
                break
            if packet.stream is self.audio_stream:
                if packet.size:
                    self._audio.append(packet)
                continue
            if packet.is_corrupt:
                self.corrupt_frames += 1
                continue
            try:
                decoded: list[Any] = packet.decode()
            except av.error.FFmpegError:
                self.corrupt_frames += 1
                continue
            for f in decoded:
                if f.is_corrupt:
                    self.corrupt_frames += 1
                    continue
                frame = Frame.from_av(f, self.frames_decoded)
                if self._upright is not None:
                    frame = frame.replace(cv2.rotate(frame.image, self._upright))
                if frame.time_base is None:
                    frame.time_base = self.time_base
                self.frames_decoded += 1
                if frame.time is not None:
                    if self._first_time is None:
                        self._first_time = frame.time
                    self._last_time = frame.time
                yield frame
        self._finished = True

    def take_audio(self) -> list[Any]:
        """Audio packets demuxed so far and not yet taken (for :class:`VideoOutput`)."""
        out = list(self._audio)
        self._audio.clear()
        return out

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> VideoInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse_clock(text: str | None) -> float | None:
    """Seconds in an ``HH:MM:SS.fraction`` tag (Matroska's DURATION), else None."""
    if not text:
        return None
    try:
        h, m, sec = text.strip().split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return str(text).split(":")[0].strip() or type(e).__name__


class VideoOutput:
    """Encodes frames into a video file, keeping the source's frame rate, pts and audio.

    The codec follows the extension (H.264 for mp4/mov/mkv, VP9 for webm, MPEG-2 for
    mpg, raw YUV for y4m). ``source`` is the :class:`VideoInput` whose clock and audio
    are kept; frames must carry that input's ``pts``. Without a source (frames made up
    by the caller), give ``width``, ``height`` and ``fps``; there is then no audio.
    """

    kind = "video"

    def __init__(self, path: str | Path, source: VideoInput | None = None, crf: int = 18,
                 *, width: int | None = None, height: int | None = None,
                 fps: Fraction | int | None = None) -> None:
        import av

        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in VIDEO_FORMATS:
            raise UserError(f"unsupported video format {ext or '(none)'!r} for {self.path}; "
                            f"use one of {', '.join(VIDEO_FORMATS)}")
        _check_output_dir(self.path)
        fmt, codec, pix_fmt = VIDEO_FORMATS[ext]
        self.source = source
        if source is not None:
            info = source.info
        elif width and height and fps:
            info = MediaInfo(str(self.path), "video", width, height, fps=Fraction(fps))
        else:
            raise ValueError("a video output without a source needs width, height and fps")
        fps = info.fps or Fraction(25)
        in_tb = (source.time_base if source is not None else None) or 1 / fps
        if codec == "mpeg2video":
            rates = {Fraction(r.numerator, r.denominator)
                     for r in av.codec.Codec(codec, "w").frame_rates or []}
            if fps not in rates:
                raise UserError(f"MPEG-2 (.mpg) needs a standard frame rate, and this video "
                                f"has {float(fps):g} fps; write .mp4 or .mkv instead")
        # MPEG-2 and raw YUV count time in frames; the others keep the input's time base.
        self.time_base = 1 / fps if codec in ("mpeg2video", "rawvideo") else in_tb
        self.in_time_base = in_tb
        self._frame_step = max(1, round(1 / (fps * self.time_base)))
        try:
            self.container: Any = av.open(str(self.path), "w", format=fmt)
        except (av.error.FFmpegError, OSError) as e:
            raise UserError(f"cannot write {self.path}: {_reason(e)}") from None
        try:
            self.stream: Any = self.container.add_stream(codec, rate=fps)
        except (av.error.FFmpegError, ValueError) as e:
            self.container.close()
            raise UserError(f"this FFmpeg cannot encode {codec} for {ext}: {e}") from None
        # yuv420p needs even sizes: drop one pixel row/column rather than fail.
        self.width = info.width - info.width % 2
        self.height = info.height - info.height % 2
        cc: Any = self.stream.codec_context
        cc.width, cc.height, cc.pix_fmt = self.width, self.height, pix_fmt
        cc.time_base = self.time_base
        self.stream.time_base = self.time_base
        cc.thread_count = 0
        if codec == "libx264":
            cc.options = {"crf": str(crf), "preset": "veryfast"}
        elif codec == "libvpx-vp9":
            cc.options = {"crf": "32", "b": "0", "deadline": "realtime", "cpu-used": "8",
                          "row-mt": "1"}
        elif codec == "mpeg2video":
            cc.bit_rate = max(2_000_000, int(self.width * self.height * float(fps) * 0.4))
            cc.options = {"qmin": "2", "qmax": "8"}
        self.audio_mode, self.audio_stream, self._audio_decoder = self._add_audio(fmt)
        self.frames_written = 0
        self._last_pts: int | None = None
        self._closed = False

    def _add_audio(self, fmt: str) -> tuple[str, Any, Any]:
        """Copy the input's audio stream when ``fmt`` takes its codec, else transcode it."""
        src = self.source.audio_stream if self.source is not None else None
        if src is None:
            return "none", None, None
        allowed = AUDIO_COPY.get(fmt)
        if allowed is None:
            log.warning("%s holds no audio; the input's audio track is left out", self.path)
            return "dropped", None, None
        if src.codec_context.name in allowed:
            stream = self.container.add_stream_from_template(src)
            return "copy", stream, None
        codec = AUDIO_TRANSCODE[fmt]
        rates = getattr(__import__("av").codec.Codec(codec, "w"), "audio_rates", None) or []
        rate = src.codec_context.sample_rate or 48000
        if rates and rate not in rates:
            rate = min(rates, key=lambda r: abs(r - rate))
        stream = self.container.add_stream(codec, rate=rate)
        layout = src.codec_context.layout.name if src.codec_context.layout else "stereo"
        stream.codec_context.layout = layout if src.codec_context.channels <= 2 else "stereo"
        stream.time_base = Fraction(1, rate)
        return "transcode", stream, src.codec_context

    @property
    def audio(self) -> str:
        """What happened to the input's audio: copy, transcode, dropped or none."""
        return self.audio_mode

    def write(self, frame: Frame) -> None:
        import av

        image = frame.image
        if image.shape[1] != self.width or image.shape[0] != self.height:
            image = image[: self.height, : self.width]
        out = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        pts = self._pts(frame)
        out.pts = pts
        out.time_base = self.time_base
        self._mux(self.stream.encode(out))
        self.frames_written += 1
        if self.source is not None:
            self._write_audio(self.source.take_audio())

    def _pts(self, frame: Frame) -> int:
        if frame.pts is None:  # a made-up frame: one frame period after the last one
            pts = 0 if self._last_pts is None else self._last_pts + self._frame_step
        else:
            tb = frame.time_base or self.in_time_base
            pts = round(frame.pts * tb / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # encoders refuse repeated or backward timestamps
        self._last_pts = pts
        return pts

    def _mux(self, packets: Any) -> None:
        import av

        try:
            self.container.mux(packets)
        except av.error.FFmpegError as e:
            raise UserError(f"cannot write {self.path}: {_reason(e)}") from None

    def _write_audio(self, packets: list[Any]) -> None:
        import av

        if self.audio_stream is None:
            return
        for packet in packets:
            if self.audio_mode == "copy":
                packet.stream = self.audio_stream
                self._mux(packet)
                continue
            try:
                frames = self._audio_decoder.decode(packet)
            except av.error.FFmpegError:
                continue  # a damaged audio packet: a short silence, not a failed run
            for f in frames:
                # pts stay as decoded: the encoder's resampler carries them over, so audio
                # that starts after the video still does after transcoding.
                self._mux(self.audio_stream.encode(f))

    def close(self) -> None:
        """Flush the encoders and finish the file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._mux(self.stream.encode(None))
            if self.source is not None:
                self._write_audio(self.source.take_audio())
            if self.audio_mode == "transcode":
                self._mux(self.audio_stream.encode(None))
        finally:
            self.container.close()

    def __enter__(self) -> VideoOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- opening


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def open_input(path: str | Path, audio: bool = True) -> ImageInput | VideoInput:
    """An input for a picture (by extension) or a video (anything FFmpeg opens)."""
    p = Path(path)
    if is_image_path(p):
        return ImageInput(p)
    return VideoInput(p, audio=audio)


def open_output(path: str | Path, source: ImageInput | VideoInput
                ) -> ImageOutput | VideoOutput:
    """An output of the same kind as ``source``: a picture for a picture, a video for a video."""
    p = Path(path)
    ext = p.suffix.lower()
    if isinstance(source, ImageInput):
        if ext not in IMAGE_EXTENSIONS:
            raise UserError(f"unsupported output format {ext or '(no extension)'!r} for {p}: "
                            f"the input is a picture, so the output must be one too "
                            f"({', '.join(IMAGE_EXTENSIONS)})")
        return ImageOutput(p, source.alpha)
    if ext in IMAGE_EXTENSIONS:
        raise UserError(f"unsupported output format {ext!r} for {p}: the input is a video, "
                        f"so the output must be one too ({', '.join(VIDEO_FORMATS)})")
    return VideoOutput(p, source)
