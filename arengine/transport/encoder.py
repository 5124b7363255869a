"""One video encoder per room and codec, its packets fanned out to every viewer.

Encoding is the most expensive thing a server does per viewer, so arengine never does it
per viewer: a room's processed frames go through one :class:`VideoEncoder` per codec and
each viewer's :class:`EncodedTrack` hands the same ``av.Packet`` objects to aiortc, whose
sender only packetizes pre-encoded packets. Keyframe requests (PLI/FIR) from any viewer
force a keyframe on the shared encoder, rate-limited so a burst of new viewers costs one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import Literal

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from arengine.types import VIDEO_TIME_BASE

logger = logging.getLogger(__name__)

Codec = Literal["vp8", "h264"]
CODECS: tuple[Codec, ...] = ("vp8", "h264")
MIME_TYPES: dict[Codec, str] = {"vp8": "video/VP8", "h264": "video/H264"}


class VideoEncoder:
    """A realtime PyAV encoder (libvpx VP8 or libx264 baseline) that follows frame size.

    Frames are encoded with their own pts in the 90 kHz RTP clock; a change of size reopens
    the encoder (which starts with a keyframe), so the stream never needs a restart.
    """

    def __init__(self, codec: Codec = "vp8", bitrate: int = 2_000_000, fps: int = 30,
                 keyframe_interval: float = 4.0, profile: str = "baseline") -> None:
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}, not {codec!r}")
        self.codec = codec
        self.bitrate = bitrate
        self.fps = fps
        self.keyframe_interval = keyframe_interval
        self.profile = profile  # H.264: baseline (WebRTC's), main or high (platforms')
        self._context: av.VideoCodecContext | None = None
        self._size: tuple[int, int] | None = None
        self.reopened = 0

    def _open(self, width: int, height: int) -> av.VideoCodecContext:
        gop = max(1, int(self.fps * self.keyframe_interval))
        if self.codec == "vp8":
            ctx = av.CodecContext.create("libvpx", "w")
            # Measured at 720p, 2 Mbit/s, one thread: cpu-used 8 takes 14.5 ms a frame
            # (40.4 dB PSNR), 12 takes 8.4 ms (40.3 dB), 16 takes 6.1 ms (39.6 dB) and
            # its frames also decode faster. On a small server the 2 ms go to tracking.
            ctx.options = {"deadline": "realtime", "cpu-used": "16", "lag-in-frames": "0",
                           "error-resilient": "1", "auto-alt-ref": "0",
                           "max-intra-rate": "300", "undershoot-pct": "95"}
            ctx.qmin = 4
            ctx.qmax = 56
        else:
            ctx = av.CodecContext.create("libx264", "w")
            # superfast: 6.1 ms a 720p frame for 40.6 dB, where veryfast takes 10.7 ms
            # for 40.7 dB (ultrafast: 3.6 ms, 39.9 dB, no deblocking).
            ctx.options = {"preset": "superfast", "tune": "zerolatency", "level": "31",
                           "x264-params": f"bframes=0:keyint={gop}:min-keyint={gop}"
                                          ":scenecut=0:repeat-headers=1:sliced-threads=0"}
            ctx.profile = {"baseline": "Baseline", "main": "Main",
                           "high": "High"}[self.profile]
        ctx.width = width
        ctx.height = height
        ctx.pix_fmt = "yuv420p"
        ctx.framerate = Fraction(self.fps, 1)
        ctx.time_base = VIDEO_TIME_BASE
        ctx.bit_rate = self.bitrate
        ctx.gop_size = gop
        ctx.max_b_frames = 0
        ctx.thread_count = 1
        ctx.open()
        return ctx

    def encode(self, frame: av.VideoFrame, keyframe: bool = False) -> list[av.Packet]:
        """Encode one frame (pts in the 90 kHz clock); ``keyframe`` forces an I-frame."""
        size = (frame.width, frame.height)
        if self._context is None or size != self._size:
            if self._context is not None:
                self.reopened += 1
                logger.info("encoder %s: size %sx%s -> %sx%s, reopening", self.codec,
                            *(self._size or (0, 0)), *size)
            self._context = self._open(*size)
            self._size = size
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        frame.pict_type = av.video.frame.PictureType.I if keyframe else \
            av.video.frame.PictureType.NONE
        packets = list(self._context.encode(frame))
        for p in packets:
            p.time_base = VIDEO_TIME_BASE
        return packets

    def close(self) -> None:
        self._context = None


class PacketQueue:
    """A viewer's short queue of encoded packets.

    Encoded video cannot drop single frames (later ones refer to them), so instead of a
    latest-frame slot a viewer that falls more than ``maxlen`` packets behind is cut back
    to nothing and waits for the next keyframe, which it asks for.
    """

    def __init__(self, on_need_keyframe: Callable[[], None], maxlen: int = 8) -> None:
        self._packets: deque[tuple[av.Packet, float]] = deque()
        self._maxlen = maxlen
        self._event = asyncio.Event()
        self._on_need_keyframe = on_need_keyframe
        self.waiting_for_keyframe = True
        self.dropped = 0
        self.closed = False

    def put(self, packet: av.Packet, ready: float) -> None:
        if self.waiting_for_keyframe:
            if not packet.is_keyframe:
                self.dropped += 1
                return
            self.waiting_for_keyframe = False
        if len(self._packets) >= self._maxlen:
            self.dropped += len(self._packets) + 1
            self._packets.clear()
            self.waiting_for_keyframe = True
            self._on_need_keyframe()
            return
        self._packets.append((packet, ready))
        self._event.set()

    def request_keyframe(self) -> None:
        """Ask this queue's encoder for a keyframe (a far end lost the picture)."""
        self._on_need_keyframe()

    async def get(self) -> tuple[av.Packet, float]:
        while not self._packets:
            if self.closed:
                raise MediaStreamError
            self._event.clear()
            await self._event.wait()
        return self._packets.popleft()

    def close(self) -> None:
        self.closed = True
        self._event.set()


class PacketFanout:
    """The packets of one shared encoder, handed to each subscribed viewer's queue."""

    def __init__(self, codec: Codec, min_keyframe_gap: float = 0.5) -> None:
        self.codec = codec
        self.min_keyframe_gap = min_keyframe_gap
        self._queues: set[PacketQueue] = set()
        self._keyframe_wanted = False
        self._last_keyframe = -1e9
        self.keyframe_requests = 0
        self.keyframes_forced = 0

    def __len__(self) -> int:
        return len(self._queues)

    def subscribe(self) -> PacketQueue:
        q = PacketQueue(self.request_keyframe)
        self._queues.add(q)
        self.request_keyframe()
        return q

    def unsubscribe(self, q: PacketQueue) -> None:
        q.close()
        self._queues.discard(q)

    def request_keyframe(self) -> None:
        """Ask for a keyframe soon (many requests inside ``min_keyframe_gap`` make one)."""
        self.keyframe_requests += 1
        self._keyframe_wanted = True

    def take_keyframe_request(self) -> bool:
        """Whether the next frame should be a keyframe; called once per encoded frame."""
        now = time.monotonic()
        if self._keyframe_wanted and now - self._last_keyframe >= self.min_keyframe_gap:
            self._keyframe_wanted = False
            self._last_keyframe = now
            self.keyframes_forced += 1
            return True
        return False

    def publish(self, packets: list[av.Packet]) -> None:
        now = time.perf_counter()
        for p in packets:
            if p.is_keyframe:
                self._last_keyframe = max(self._last_keyframe, time.monotonic())
            for q in list(self._queues):
                q.put(p, now)

    def close(self) -> None:
        for q in list(self._queues):
            q.close()
        self._queues.clear()


class EncodedTrack(MediaStreamTrack):
    """A viewer's video track whose ``recv()`` returns the room's shared encoded packets.

    ``on_sent`` is told how long each packet waited between the encoder and the sender
    (the "send" stage), so an observer can time it without the track timing itself.
    """

    kind = "video"

    def __init__(self, fanout: PacketFanout,
                 on_sent: Callable[[float, float], None] | None = None) -> None:
        super().__init__()
        self.fanout = fanout
        self.queue = fanout.subscribe()
        self._on_sent = on_sent

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        try:
            packet, ready = await self.queue.get()
        except MediaStreamError:
            self.stop()
            raise
        if self._on_sent is not None:
            self._on_sent(ready, time.perf_counter())
        return packet

    def stop(self) -> None:
        self.fanout.unsubscribe(self.queue)
        super().stop()
