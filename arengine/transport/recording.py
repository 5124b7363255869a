"""Recording a room to an mp4 or mkv file, and the muxing an RTMP push shares with it.

A recording and a platform push need the same three things, so they live here once:

- :class:`MediaClock` (event loop side): one clock for a session's video and audio, from its
  first keyframe, so both streams start together and rise strictly.
- :class:`Feed` (event loop side): takes the room's shared H.264 packets and 20 ms PCM
  frames from the :class:`~arengine.transport.output.OutputSource` and hands them to a
  :class:`~arengine.transport.output.WriterThread`. When the writer's queue is full the
  packet is dropped (counted) and so is every packet after it up to the next keyframe,
  which is asked for once the writer has room again: a decoder never sees a frame whose
  reference was dropped.
- :class:`AvMuxer` (writer thread side): a PyAV container of those packets as they are (no
  re-encoding; PyAV reads the H.264 parameter sets for the header from the first keyframe,
  where the encoder repeats them in-band) and AAC encoded here from the PCM.

:class:`RecordingOutput` (kind "record") writes into the operator's ``record_dir`` under a
plain file name and closes the file properly when stopped, so an mp4 gets its index (the
moov atom) and plays. A change of picture size mid-recording keeps the first size's header;
the new parameter sets travel in-band, which FFmpeg-based players follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
import unicodedata
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Protocol

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from arengine.transport.audio import FRAME_SAMPLES, SAMPLE_RATE
from arengine.transport.encoder import PacketQueue
from arengine.transport.output import (
    EncoderSpec,
    Output,
    OutputPolicy,
    OutputSource,
    WriterThread,
)
from arengine.types import VIDEO_TIME_BASE

logger = logging.getLogger(__name__)

AUDIO_TIME_BASE = Fraction(1, SAMPLE_RATE)
AAC_FRAME = 1024  # samples per AAC-LC frame
VIDEO_TICKS = VIDEO_TIME_BASE.denominator
# Video times follow the packets' own pts (smooth), re-anchored to the wall clock when the
# two part by more than this (a stall, or the room switching sources). Encode and hand-off
# jitter measured here stays under 60 ms, so 0.3 s only catches real jumps.
REANCHOR_S = 0.3
# Audio follows its sample count; it is moved to the wall clock when frames were lost
# (a stall restarts the room's audio clock) and the two part by more than 200 ms.
AUDIO_DRIFT = SAMPLE_RATE // 5
STEP_S = 0.1  # how long a feed waits for a packet before it looks at the writer again
MAX_NAME = 100
RECORD_SUFFIXES = {".mp4": "mp4", ".mkv": "matroska"}
_OPEN, _CLOSE = "open", "close"


class WriteOnlyFile(Protocol):
    """What a muxer can write into besides a path (RTMP's tag splitter)."""

    def write(self, data: bytes) -> int: ...


class MediaClock:
    """Times of one session (a connection, a file): video in 90 kHz ticks and audio in
    samples, both from the moment its first keyframe was handed on."""

    def __init__(self) -> None:
        self.origin: float | None = None
        self._first = 0.0  # pts (seconds) of the first video packet
        self._offset = 0.0  # seconds added to pts-based times by re-anchoring
        self._last_video = -VIDEO_TICKS
        self._next_audio: int | None = None

    def video(self, seconds: float | None, now: float) -> int:
        """The tick of a video packet with pts ``seconds`` read at ``now`` (monotonic);
        at least 1 ms after the one before, so times rise strictly in any container."""
        if self.origin is None:
            self.origin = now
            self._first = seconds or 0.0
        wall = now - self.origin
        t = wall if seconds is None else seconds - self._first + self._offset
        if abs(t - wall) > REANCHOR_S:
            self._offset += wall - t
            t = wall
        tick = max(round(t * VIDEO_TICKS), self._last_video + VIDEO_TICKS // 1000)
        self._last_video = tick
        return tick

    def audio(self, samples: int, now: float) -> tuple[int, int] | None:
        """For a batch of ``samples`` that ends ``now``: (its first sample's index, how many
        20 ms frames to skip at its front), or None to drop it (no video yet, or audio
        running ahead of the wall clock)."""
        if self.origin is None:
            return None
        start = round((now - self.origin) * SAMPLE_RATE) - samples
        nxt = self._next_audio
        if nxt is None or start - nxt > AUDIO_DRIFT:
            nxt = start if nxt is None else max(start, nxt)
        elif nxt - start > AUDIO_DRIFT:
            return None
        skip = math.ceil(-nxt / FRAME_SAMPLES) if nxt < 0 else 0
        nxt += skip * FRAME_SAMPLES
        if skip * FRAME_SAMPLES >= samples:
            return None
        self._next_audio = nxt + samples - skip * FRAME_SAMPLES
        return nxt, skip


class Feed:
    """One session's reader of the room: video packets and audio frames to a writer.

    Items put on the writer: ``("v", data, tick, keyframe)`` and ``("a", first_sample,
    pcm)`` (s16 interleaved stereo, shape (1, 2n)). ``dropped`` counts the video frames the
    writer did not get once the session was under way (not the wait for its first
    keyframe).
    """

    def __init__(self, source: OutputSource, spec: EncoderSpec) -> None:
        self.source = source
        self.spec = spec
        self.clock = MediaClock()
        self.video: PacketQueue = source.video(spec)
        self.audio = source.audio_pcm()
        self.skipping = True  # until a keyframe reaches the writer
        self.asked = True  # a keyframe was asked for (subscribing asks)
        self.started = False
        self.keyframes = 0
        self.dropped_here = 0
        self._retired = 0  # drops counted by queues already given up
        self._skipped_at_start: int | None = None

    @property
    def dropped(self) -> int:
        queued = 0
        if self._skipped_at_start is not None:
            queued = self.video.dropped - self._skipped_at_start
        return self.dropped_here + self._retired + queued

    def close(self) -> None:
        self.source.release_video(self.video)
        self.source.release_audio_pcm(self.audio)

    def _ask_keyframe(self) -> None:
        """A fresh subscription: it waits for a keyframe and asks the encoder for one."""
        if self._skipped_at_start is not None:
            self._retired += self.video.dropped - self._skipped_at_start
        self.source.release_video(self.video)
        self.video = self.source.video(self.spec)
        self._skipped_at_start = 0  # what it skips now is this session's loss
        self.asked = True

    async def step(self, writer: WriterThread) -> None:
        """Hand the writer the next video packet (waiting at most ``STEP_S``) and the
        audio since the last step."""
        # asyncio.timeout, not wait_for: in Python 3.11 wait_for can swallow a cancel that
        # lands as the packet arrives, and the output would then never stop.
        try:
            async with asyncio.timeout(STEP_S):
                packet, _ = await self.video.get()
        except TimeoutError:
            packet = None
        except MediaStreamError:  # the encoder was closed under us: subscribe again
            await asyncio.sleep(STEP_S)
            self._ask_keyframe()
            packet = None
        now = time.monotonic()
        if packet is not None:
            self._video(packet, now, writer)
        frames = self.audio.drain()
        if frames:
            self._audio(frames, now, writer)

    def _video(self, packet: av.Packet, now: float, writer: WriterThread) -> None:
        if self._skipped_at_start is None:
            self._skipped_at_start = self.video.dropped
        key = bool(packet.is_keyframe)
        if self.skipping and not key:
            if self.started:
                self.dropped_here += 1
                if not self.asked and writer.backlog < writer.max_items // 2:
                    self._ask_keyframe()
            return
        seconds = None if packet.pts is None or packet.time_base is None else \
            float(packet.pts * packet.time_base)
        tick = self.clock.video(seconds, now)
        if writer.put(("v", bytes(packet), tick, key)):
            self.skipping = False
            self.started = True
            self.keyframes += key
            return
        if writer.failed is None:  # the writer is behind: drop back to the next keyframe
            self.dropped_here += 1
        self.skipping = True
        self.asked = False

    def _audio(self, frames: list[av.AudioFrame], now: float, writer: WriterThread) -> None:
        at = self.clock.audio(len(frames) * FRAME_SAMPLES, now)
        if at is None or not self.started:
            return
        first, skip = at
        pcm = np.concatenate([f.to_ndarray().reshape(1, -1) for f in frames[skip:]], axis=1)
        writer.put(("a", first, pcm))  # refused when full: the writer sees the gap


class AvMuxer:
    """A PyAV container of the room's H.264 packets (as they are) and AAC made here from
    its PCM. Runs on a writer thread; ``target`` is a path or a write-only file object.

    The video stream has no encoder: PyAV takes its parameter sets (SPS/PPS) from the first
    packet, which must be a keyframe (the shared encoder repeats them in every keyframe).
    """

    def __init__(self, target: str | WriteOnlyFile, format: str, size: tuple[int, int], fps: int,
                 audio_bitrate: int, options: dict[str, str] | None = None) -> None:
        self.container = av.open(target, "w", format=format, options=options or {})
        try:
            self.video = self.container.add_mux_stream("h264", rate=fps, width=size[0],
                                                       height=size[1])
            self.video.time_base = VIDEO_TIME_BASE
            self.audio = self.container.add_stream("aac", rate=SAMPLE_RATE)
            self.audio.codec_context.bit_rate = audio_bitrate
            self.audio.codec_context.time_base = AUDIO_TIME_BASE
        except BaseException:
            self.container.close()
            raise
        self._resampler = av.AudioResampler(format="fltp", layout="stereo", rate=SAMPLE_RATE)
        self._fifo = av.AudioFifo()
        self._next_pts = 0  # of the next AAC frame, in samples
        self._fed: int | None = None  # the sample after the last one written to the fifo
        self.video_frames = 0
        self.video_bytes = 0

    def write_video(self, data: bytes, tick: int, keyframe: bool) -> None:
        packet = av.Packet(data)
        packet.stream = self.video
        packet.time_base = VIDEO_TIME_BASE
        packet.pts = packet.dts = tick
        packet.is_keyframe = keyframe
        self.container.mux(packet)
        self.video_frames += 1
        self.video_bytes += len(data)

    def write_audio(self, first: int, pcm: np.ndarray) -> None:
        if self._fed is None or first != self._fed:  # a gap (dropped audio): start anew
            self._fifo = av.AudioFifo()
            self._next_pts = max(first, self._next_pts)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
        frame.sample_rate = SAMPLE_RATE
        for f in self._resampler.resample(frame):
            f.pts = None
            self._fifo.write(f)
        self._fed = first + pcm.shape[1] // 2
        while self._fifo.samples >= AAC_FRAME:
            chunk = self._fifo.read(AAC_FRAME)
            if chunk is None:
                break
            chunk.pts = self._next_pts
            chunk.time_base = AUDIO_TIME_BASE
            self._next_pts += AAC_FRAME
            self.container.mux(self.audio.encode(chunk))

    def close(self) -> None:
        """Flush the AAC encoder and finish the container (an mp4's index is written)."""
        try:
            if self.video_frames:
                self.container.mux(self.audio.encode(None))
        finally:
            self.container.close()


def video_size(keyframe: bytes) -> tuple[int, int]:
    """Width and height of an H.264 keyframe (decoded once per session: exact, whatever
    the room's size was when it was encoded)."""
    codec = av.CodecContext.create("h264", "r")
    frames = [*codec.decode(av.Packet(keyframe)), *codec.decode(None)]
    if not frames:
        raise ValueError("the first keyframe did not decode")
    return frames[0].width, frames[0].height


# -- recording -----------------------------------------------------------------------------

# The same rules as check_file_name, for the OpenAPI document: no folder, no "..", no
# leading dot or space, no control character, a .mp4 or .mkv suffix.
FILE_PATTERN = r"^(?![. ])(?!.*\.\.)[^/\\\x00-\x1f\x7f-\x9f]+\.([mM][pP]4|[mM][kK][vV])$"


class RecordIn(BaseModel):
    """Record the room's stream to a file in the server's recording folder."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["record"]
    # The length is checked by the validator, in words (see check_file_name).
    file: str = Field(description="a plain file name ending in .mp4 or .mkv",
                      json_schema_extra={"minLength": 5, "maxLength": MAX_NAME,
                                         "pattern": FILE_PATTERN})
    bitrate_kbps: int = Field(4000, ge=300, le=20000)
    keyframe_interval_s: float = Field(2.0, ge=0.5, le=10.0)
    profile: Literal["baseline", "main", "high"] = "main"
    audio_bitrate_kbps: int = Field(128, ge=32, le=320)

    @field_validator("file")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        return check_file_name(value)


def check_file_name(name: str) -> str:
    """``name`` if it is a plain .mp4/.mkv file name that stays in the folder, else
    ValueError saying why."""
    if not name or len(name) > MAX_NAME:
        raise ValueError(f"a file name has 1 to {MAX_NAME} characters, not {len(name)}")
    if "/" in name or "\\" in name or ".." in name:
        raise ValueError("a plain file name: no folders, no '/', '\\' or '..'")
    if name.startswith(".") or name != name.strip():
        raise ValueError("a file name may not start with a dot or a space")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise ValueError("a file name may not hold control characters")
    stem, suffix = os.path.splitext(name)
    if suffix.lower() not in RECORD_SUFFIXES or not stem:
        raise ValueError("a recording is a .mp4 or .mkv file")
    return name


class RecordingOutput(Output):
    """The room's stream (H.264 from the shared encoder, AAC from the room audio) into an
    mp4 or mkv file, written on its own thread."""

    kind = "record"

    def __init__(self, path: Path, spec_bitrate: int, keyframe_interval: float, profile: str,
                 audio_bitrate: int) -> None:
        super().__init__()
        self.path = path
        self.bitrate = spec_bitrate
        self.keyframe_interval = keyframe_interval
        self.profile = profile
        self.audio_bitrate = audio_bitrate
        self._fps = 30  # the room's, when it runs
        self._muxer: AvMuxer | None = None
        self._error: BaseException | None = None

    def describe(self) -> dict[str, Any]:
        try:
            size = self.path.stat().st_size
        except OSError:
            size = 0
        return {"file": self.path.name, "bytes": size}

    def _write(self, item: tuple[Any, ...]) -> None:
        if item[0] == "v":
            if self._muxer is None:
                if not item[3]:
                    return
                self._muxer = AvMuxer(str(self.path), RECORD_SUFFIXES[self.path.suffix.lower()],
                                      video_size(item[1]), self._fps, self.audio_bitrate)
            self._muxer.write_video(item[1], item[2], item[3])
            self.frames = self._muxer.video_frames
            self.video_rate.add(len(item[1]))
        elif item[0] == "a":
            if self._muxer is not None:
                self._muxer.write_audio(item[1], item[2])
        elif item[0] == _CLOSE and self._muxer is not None:
            muxer, self._muxer = self._muxer, None
            muxer.close()

    def _on_error(self, error: BaseException) -> None:
        self._error = error

    async def run(self, source: OutputSource) -> None:
        self._fps = source.fps
        spec = EncoderSpec("h264", self.bitrate, source.fps, self.keyframe_interval,
                           self.profile)
        writer = WriterThread(f"record-{self.id}", self._write, self._on_error)
        feed = Feed(source, spec)
        self.set_state("connecting")
        try:
            while writer.failed is None:
                await feed.step(writer)
                self.dropped = feed.dropped
                if self.frames and self.state != "live":
                    self.set_state("live")
            error = writer.failed
            self.fail(f"the recording stopped: {_error_words(error)}")
        finally:
            feed.close()
            await asyncio.to_thread(self._finish, writer)

    def _finish(self, writer: WriterThread) -> None:
        """Write what is queued, then close the file (on the writer's thread when it is
        alive, so the muxer is only ever touched by one thread)."""
        if writer.failed is None:
            deadline = time.monotonic() + 10.0
            while not writer.put((_CLOSE,)) and time.monotonic() < deadline \
                    and writer.failed is None:
                time.sleep(0.05)
            writer.close(timeout=max(1.0, deadline - time.monotonic()))
        if self._muxer is not None:  # the thread failed or timed out: close here
            with contextlib.suppress(Exception):
                self._muxer.close()
            self._muxer = None
        with contextlib.suppress(OSError):
            if self.path.stat().st_size == 0:  # nothing came: leave no empty file
                self.path.unlink()


def _error_words(error: BaseException | None) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return f"{type(error).__name__}: {error}"


RECORDING_OFF = "recording is off on this server; start it with --record-dir"


def recording_unavailable(policy: OutputPolicy) -> str | None:
    """Why this server cannot record (no ``record_dir``), or None."""
    return None if policy.record_dir else RECORDING_OFF


def make_recording(body: RecordIn, policy: OutputPolicy) -> RecordingOutput:
    """A recording into ``policy.record_dir`` (ValueError when off, or the name is taken).

    The name is taken at once (created empty, exclusively), so two requests for one name
    cannot both write it and an existing file is never overwritten.
    """
    if not policy.record_dir:
        raise ValueError(RECORDING_OFF)
    folder = Path(policy.record_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / check_file_name(body.file)
    if path.resolve().parent != folder.resolve():
        raise ValueError("a plain file name in the recording folder")
    try:
        with open(path, "xb"):
            pass
    except FileExistsError:
        raise ValueError(f"{body.file!r} exists already; choose another name") from None
    except OSError as e:
        raise ValueError(f"cannot create {body.file!r}: {_error_words(e)}") from None
    return RecordingOutput(path, body.bitrate_kbps * 1000, body.keyframe_interval_s,
                           body.profile, body.audio_bitrate_kbps * 1000)
