"""The host's audio, encoded once per room and sent to every viewer, silence while no host is on.

Video goes through the AR pipeline; audio does not need to, so it is relayed as is. Like
video, it is encoded once per room, not once per viewer: a room's :class:`RoomAudio`
keeps one clock and one Opus encoder, and every 20 ms encodes the host's newest audio (a
short bounded buffer that drops the oldest audio if the host's clock runs fast) or
silence, and hands the same packet to each viewer's :class:`EncodedAudioTrack`. aiortc
then only packetizes it. (Left to aiortc, each viewer's sender would run its own Opus
encoder and a pure-Python audio-level loop over every sample, 50 times a second.) The
clock runs while anyone listens, so a viewer's session survives the host leaving and
coming back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from fractions import Fraction
from typing import Protocol

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

logger = logging.getLogger(__name__)

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms, Opus's usual frame
TIME_BASE = Fraction(1, SAMPLE_RATE)
_FRAME_S = FRAME_SAMPLES / SAMPLE_RATE


class PcmSink(Protocol):
    """Anything that takes the room's 20 ms audio frames (see RoomAudio.subscribe_pcm)."""

    def push(self, frame: AudioFrame) -> None: ...


class EncodedAudioTrack(MediaStreamTrack):
    """One viewer's audio: the room's Opus packets, newest ``max_packets`` kept."""

    kind = "audio"

    def __init__(self, max_packets: int = 10) -> None:
        super().__init__()
        self._packets: deque[av.Packet] = deque(maxlen=max_packets)
        self._ready = asyncio.Event()
        self.dropped = 0
        self.sent = 0

    def push(self, packet: av.Packet) -> None:
        if len(self._packets) == self._packets.maxlen:
            self.dropped += 1  # a stalled sender: the oldest audio goes
        self._packets.append(packet)
        self._ready.set()

    async def recv(self) -> av.Packet:
        while not self._packets:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        if self.readyState != "live":
            raise MediaStreamError
        self.sent += 1
        return self._packets.popleft()

    def stop(self) -> None:
        super().stop()
        self._ready.set()  # wake a waiting recv() so it can end


class OpusStream:
    """One Opus encoder fed 20 ms frames of 48 kHz stereo, with its own sample clock."""

    def __init__(self, bitrate: int = 64_000) -> None:
        self._codec = av.CodecContext.create("libopus", "w")
        self._codec.sample_rate = SAMPLE_RATE
        self._codec.layout = "stereo"
        self._codec.format = "s16"
        self._codec.time_base = TIME_BASE
        self._codec.bit_rate = bitrate
        self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=SAMPLE_RATE)
        self._fifo = av.AudioFifo()
        self._pts = 0
        self._silence = np.zeros((1, FRAME_SAMPLES * 2), np.int16)

    def feed(self, frame: AudioFrame) -> None:
        """Queue host audio (any rate or layout) for :meth:`encode_next`."""
        for f in self._resampler.resample(frame):
            f.pts = None
            self._fifo.write(f)
        excess = self._fifo.samples - 10 * FRAME_SAMPLES  # keep at most 200 ms
        if excess > 0:
            self._fifo.read(excess)

    @property
    def buffered(self) -> int:
        return self._fifo.samples

    def next_frame(self) -> AudioFrame:
        """The next 20 ms (s16 stereo 48 kHz, pts in samples): buffered host audio, or
        silence when there is not enough."""
        frame = self._fifo.read(FRAME_SAMPLES) if self._fifo.samples >= FRAME_SAMPLES \
            else None
        if frame is None:
            frame = AudioFrame.from_ndarray(self._silence, format="s16", layout="stereo")
            frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self._pts += FRAME_SAMPLES
        return frame

    def encode(self, frame: AudioFrame) -> list[av.Packet]:
        packets = list(self._codec.encode(frame))
        for p in packets:
            p.time_base = TIME_BASE
        return packets

    def encode_next(self) -> list[av.Packet]:
        """Encode the next 20 ms (see :meth:`next_frame`)."""
        return self.encode(self.next_frame())


class RoomAudio:
    """A room's audio source (the host's track, when publishing) and its viewers' tracks."""

    def __init__(self, room: str, bitrate: int = 64_000) -> None:
        self.room = room
        self.bitrate = bitrate
        self._tracks: set[EncodedAudioTrack] = set()
        self._pcm: set[PcmSink] = set()  # outputs that encode audio themselves (AAC)
        self._source: MediaStreamTrack | None = None
        self._reader: asyncio.Task[None] | None = None
        self._clock: asyncio.Task[None] | None = None
        self._stream = OpusStream(bitrate)
        self.encoded = 0  # 20 ms frames encoded (once per room, whatever the viewers)
        self.relayed = 0  # of which carried host audio

    @property
    def live(self) -> bool:
        return self._source is not None

    @property
    def listeners(self) -> int:
        return len(self._tracks) + len(self._pcm)

    def attach(self, track: MediaStreamTrack) -> None:
        """Relay ``track`` (the host's audio) from now on, replacing any other."""
        if self._reader is not None:
            self._reader.cancel()
        self._source = track
        self._reader = asyncio.create_task(self._read(track), name=f"audio-{self.room}")

    def detach(self, track: MediaStreamTrack | None = None) -> None:
        if track is not None and track is not self._source:
            return
        self._source = None
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None

    async def _read(self, track: MediaStreamTrack) -> None:
        # Read the host's audio whether or not anyone listens, so none piles up in aiortc.
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if track is not self._source:
                    return
                if isinstance(frame, AudioFrame) and self.listeners:
                    self._stream.feed(frame)
        if track is self._source:
            self._source = None
            logger.info("room %s: host audio ended", self.room)

    async def _run_clock(self) -> None:
        start = time.monotonic()
        n = 0
        while self.listeners:
            wait = start + n * _FRAME_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.2:  # fell behind (a stall): restart the clock, do not burst
                start = time.monotonic() - n * _FRAME_S
            n += 1
            host = self._stream.buffered >= FRAME_SAMPLES
            frame = self._stream.next_frame()
            for sink in list(self._pcm):
                sink.push(frame)
            if not self._tracks:
                continue
            try:
                packets = self._stream.encode(frame)
            except (av.FFmpegError, ValueError):
                logger.exception("room %s: audio frame not encoded", self.room)
                continue
            self.encoded += 1
            self.relayed += host
            for p in packets:
                for t in list(self._tracks):
                    t.push(p)

    def subscribe(self) -> EncodedAudioTrack:
        """A track of the room's shared Opus packets (a WHEP viewer, an SFU output)."""
        t = EncodedAudioTrack()
        self._tracks.add(t)
        self._start_clock()
        return t

    def unsubscribe(self, track: EncodedAudioTrack) -> None:
        self._tracks.discard(track)
        track.stop()

    def subscribe_pcm(self, sink: PcmSink) -> None:
        """Hand ``sink`` every 20 ms frame of the clock (an output with its own encoder)."""
        self._pcm.add(sink)
        self._start_clock()

    def unsubscribe_pcm(self, sink: PcmSink) -> None:
        self._pcm.discard(sink)

    def _start_clock(self) -> None:
        if self._clock is None or self._clock.done():
            self._clock = asyncio.create_task(self._run_clock(),
                                              name=f"audio-clock-{self.room}")

    async def close(self) -> None:
        self.detach()
        for t in list(self._tracks):
            self.unsubscribe(t)
        self._pcm.clear()
        if self._clock is not None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock
            self._clock = None
