"""WHIP ingest (RFC 9725): a host publishes video into a room with one HTTP POST.

The offer's video becomes the room's input; its audio, when offered, is relayed to the
viewers as is (see :mod:`arengine.transport.audio`).
Decoding happens in aiortc's receiver thread; the hook below stamps each decoded frame
with its decode time so the room's observer can report a "decode" stage. The video
receiver completes frames on the RTP marker bit (:mod:`arengine.transport.jitter`) instead
of waiting for the next frame's first packet, which saves one frame interval per frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCConfiguration
from aiortc.mediastreams import MediaStreamError

from arengine.transport import hooks
from arengine.transport.bitrate import announce_bitrate
from arengine.transport.jitter import use_marker_jitter_buffer
from arengine.transport.session import PeerSession

logger = logging.getLogger(__name__)


class _TimedDecoder:
    """Wraps an aiortc decoder to stamp decoded frames with when decoding ran."""

    def __init__(self, decoder: Any) -> None:
        self._decoder = decoder

    def decode(self, encoded_frame: Any) -> list[Any]:
        start = time.perf_counter()
        frames = self._decoder.decode(encoded_frame)
        end = time.perf_counter()
        for f in frames:
            if isinstance(f, av.VideoFrame):
                f.opaque = {"decode_start": start, "decode_end": end}
        return list(frames)


def _time_video(codec: Any, decoder: Any) -> Any:
    return _TimedDecoder(decoder) if codec.mimeType.lower().startswith("video/") else decoder


def install_decode_timing() -> None:
    """Time aiortc's video decoding (idempotent; aiortc has no hook for it)."""
    hooks.wrap_decoders(_time_video)


class WhipSession(PeerSession):
    """A publishing host: its video track arrives through ``video``."""

    kind = "whip"

    def __init__(self, room: str, config: RTCConfiguration | None = None,
                 ingest_bitrate: int | None = None) -> None:
        install_decode_timing()
        self.ingest_bitrate = ingest_bitrate  # announced to the host (None: aiortc's)
        super().__init__(room, config)
        self.video: asyncio.Future[MediaStreamTrack] = \
            asyncio.get_running_loop().create_future()
        self.audio: MediaStreamTrack | None = None
        self._drains: list[asyncio.Task[None]] = []

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and not self.video.done():
                self.video.set_result(track)
            elif track.kind == "audio" and self.audio is None:
                self.audio = track  # relayed to viewers by the room's RoomAudio
            else:
                self._drains.append(asyncio.create_task(_drain(track)))

    def prepare(self) -> None:
        for t in self.pc.getTransceivers():
            if t.kind == "video":
                use_marker_jitter_buffer(t.receiver)
                if self.ingest_bitrate is not None:
                    announce_bitrate(t.receiver, self.ingest_bitrate)

    @property
    def codec(self) -> str | None:
        for t in self.pc.getTransceivers():
            if t.kind == "video" and t.receiver.track is not None:
                codecs = hooks.negotiated_codecs(t)
                if codecs:
                    return str(codecs[0].mimeType)
        return None

    async def close(self) -> None:
        for t in self._drains:
            t.cancel()
        await super().close()


async def _drain(track: MediaStreamTrack) -> None:
    """Read and discard a track nobody uses, so aiortc's receive queue stays empty."""
    with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
        while True:
            await track.recv()
