"""The host's audio relayed to every viewer, with silence while no host is on.

Video goes through the AR pipeline; audio does not need to, so it is relayed as is. Each
viewer's :class:`AudioRelayTrack` keeps its own clock: it hands aiortc one frame every
frame duration, the host's newest audio when there is some (a short bounded buffer that
drops the oldest audio if the host's clock runs fast) and silence otherwise, so a viewer's
session survives the host leaving and coming back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from fractions import Fraction

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

logger = logging.getLogger(__name__)

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms, Opus's usual frame


class AudioRelayTrack(MediaStreamTrack):
    """One viewer's audio: the host's frames on this track's own clock, else silence."""

    kind = "audio"

    def __init__(self, max_frames: int = 10) -> None:
        super().__init__()
        self._frames: deque[AudioFrame] = deque(maxlen=max_frames)
        self._start: float | None = None
        self._samples = 0
        self.dropped = 0
        self.relayed = 0

    def push(self, frame: AudioFrame) -> None:
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1
        self._frames.append(frame)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            wait = self._start + self._samples / SAMPLE_RATE - now
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.2:  # fell behind (a stall): restart the clock, do not burst
                self._start = now - self._samples / SAMPLE_RATE
        if self._frames:
            src = self._frames.popleft()
            out = AudioFrame.from_ndarray(src.to_ndarray(), format=src.format.name,
                                          layout=src.layout.name)
            out.sample_rate = src.sample_rate
            self.relayed += 1
        else:
            out = AudioFrame.from_ndarray(np.zeros((1, FRAME_SAMPLES * 2), np.int16),
                                          format="s16", layout="stereo")
            out.sample_rate = SAMPLE_RATE
        samples = round(out.samples * SAMPLE_RATE / out.sample_rate)
        out.pts = round(self._samples * out.sample_rate / SAMPLE_RATE)
        out.time_base = Fraction(1, out.sample_rate)
        self._samples += samples
        return out


class RoomAudio:
    """A room's audio source (the host's track, when publishing) and its viewers' tracks."""

    def __init__(self, room: str) -> None:
        self.room = room
        self._tracks: set[AudioRelayTrack] = set()
        self._source: MediaStreamTrack | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def live(self) -> bool:
        return self._source is not None

    def attach(self, track: MediaStreamTrack) -> None:
        """Relay ``track`` (the host's audio) from now on, replacing any other."""
        if self._task is not None:
            self._task.cancel()
        self._source = track
        self._task = asyncio.create_task(self._read(track), name=f"audio-{self.room}")

    def detach(self, track: MediaStreamTrack | None = None) -> None:
        if track is not None and track is not self._source:
            return
        self._source = None
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if track is not self._source:
                    return
                if isinstance(frame, AudioFrame):
                    for t in list(self._tracks):
                        t.push(frame)
        if track is self._source:
            self._source = None
            logger.info("room %s: host audio ended", self.room)

    def subscribe(self) -> AudioRelayTrack:
        t = AudioRelayTrack()
        self._tracks.add(t)
        return t

    def unsubscribe(self, track: AudioRelayTrack) -> None:
        self._tracks.discard(track)
        track.stop()

    async def close(self) -> None:
        self.detach()
        for t in list(self._tracks):
            self.unsubscribe(t)
