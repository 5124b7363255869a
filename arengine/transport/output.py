"""Outputs: where a room's processed stream goes besides its own WHEP viewers.

An :class:`Output` is one destination: a platform's RTMP(S) ingest, an SFU, a recording.
It takes what it needs from an :class:`OutputSource` (the room): encoded video from a
shared encoder chosen by an :class:`EncoderSpec` (one encoder per distinct codec, bitrate,
keyframe interval and profile, shared by every output and viewer that asks for the same),
and the room's audio as 20 ms PCM frames or shared Opus packets. Every output keeps its
own bounded queue: a slow or dead far end drops (counted) and never delays the compositor,
the encoder or another output. Encoded video cannot lose single frames, so a queue that
overflows is emptied and waits for the next keyframe, which it asks the encoder for.

Each output reports the same stats (state, fps, bitrate, drops, reconnects, last error)
for the room stats, the host console and Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import av

from arengine.transport.audio import EncodedAudioTrack
from arengine.transport.encoder import Codec, PacketQueue

OutputState = Literal["starting", "connecting", "live", "reconnecting", "stopped", "failed"]
H264_PROFILES = ("baseline", "main", "high")


@dataclass(frozen=True)
class EncoderSpec:
    """The settings that make two encoders different; equal specs share one encoder.

    ``keyframe_interval`` is in seconds (platforms ask for 2 s; WHEP viewers get a
    keyframe whenever one joins, so their encoder can go 4 s between). ``profile`` is
    H.264's (baseline, main, high); VP8 has none.
    """

    codec: Codec
    bitrate: int
    fps: int
    keyframe_interval: float = 4.0
    profile: str = "baseline"

    def __post_init__(self) -> None:
        if self.codec not in ("vp8", "h264"):
            raise ValueError(f"codec must be vp8 or h264, not {self.codec!r}")
        if self.codec == "h264" and self.profile not in H264_PROFILES:
            raise ValueError(f"profile must be one of {', '.join(H264_PROFILES)}")
        if not 0.1 <= self.keyframe_interval <= 20:
            raise ValueError("keyframe interval must be 0.1 to 20 s")

    @property
    def name(self) -> str:
        """A short label for stats: the codec, then what differs from a viewer's."""
        extra = f"-{self.bitrate // 1000}k-{self.keyframe_interval:g}s"
        if self.codec == "h264":
            extra += f"-{self.profile}"
        return self.codec + extra


class PcmQueue:  # a PcmSink (transport/audio.py)
    """An output's bounded queue of the room's 20 ms audio frames (s16 stereo 48 kHz);
    when full the oldest goes, counted, so audio never piles up behind a slow output."""

    def __init__(self, maxlen: int = 50) -> None:
        self._frames: deque[av.AudioFrame] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.dropped = 0

    def push(self, frame: av.AudioFrame) -> None:
        with self._lock:
            if len(self._frames) == self._frames.maxlen:
                self.dropped += 1
            self._frames.append(frame)

    def drain(self) -> list[av.AudioFrame]:
        with self._lock:
            frames = list(self._frames)
            self._frames.clear()
        return frames


class OutputSource(Protocol):
    """What an output may ask of its room."""

    room: str

    def video(self, spec: EncoderSpec) -> PacketQueue:
        """A queue of the shared encoder's packets for ``spec`` (started if needed)."""
        ...

    def release_video(self, packets: PacketQueue) -> None: ...

    def audio_pcm(self) -> PcmQueue:
        """The room's audio clock as 20 ms PCM frames (host audio, or silence)."""
        ...

    def release_audio_pcm(self, frames: PcmQueue) -> None: ...

    def audio_opus(self) -> EncodedAudioTrack: ...

    def release_audio_opus(self, track: EncodedAudioTrack) -> None: ...

    @property
    def size(self) -> tuple[int, int] | None:
        """Width and height of the room's composited frames (None before the first)."""
        ...

    def viewer_spec(self, codec: Codec) -> EncoderSpec:
        """The spec of the encoder the room's WHEP viewers share: an output that can send
        the same packets (an SFU) asks for it, so no second encode starts."""
        ...

    @property
    def fps(self) -> int:
        """The room's frame rate (its compositor's): what an encoder spec should say."""
        ...


class Rate:
    """Events per second and bytes per second over the last ``window`` seconds."""

    def __init__(self, window: float = 2.0) -> None:
        self.window = window
        self._events: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def add(self, nbytes: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._events.append((now, nbytes))
            while self._events and self._events[0][0] < now - self.window:
                self._events.popleft()

    def read(self) -> tuple[float, float]:
        """(per second, bits per second)."""
        now = time.monotonic()
        with self._lock:
            while self._events and self._events[0][0] < now - self.window:
                self._events.popleft()
            n = len(self._events)
            total = sum(b for _, b in self._events)
        return n / self.window, 8 * total / self.window


class Output(ABC):
    """One destination of a room's stream. Subclasses set ``kind`` and implement
    :meth:`run` (connect, send until stopped, reconnect as they see fit) and
    :meth:`describe` (what the host sees of the target, secrets masked)."""

    kind: ClassVar[str] = ""

    def __init__(self) -> None:
        self.id = secrets.token_hex(4)
        self.state: OutputState = "starting"
        self.since = time.time()
        self.frames = 0  # video frames sent
        self.dropped = 0  # video frames dropped here (slow far end)
        self.reconnects = 0
        self.last_error: str | None = None
        self.video_rate = Rate()
        self._task: asyncio.Task[None] | None = None
        self._source: OutputSource | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, source: OutputSource) -> None:
        """Begin sending ``source``'s stream; returns at once (the work is a task)."""
        self._source = source
        self._task = asyncio.create_task(self._guard(source),
                                         name=f"output-{self.kind}-{self.id}")

    async def _guard(self, source: OutputSource) -> None:
        try:
            await self.run(source)
            if self.state not in ("failed",):
                self.set_state("stopped")
        except asyncio.CancelledError:
            self.set_state("stopped")
            raise
        except Exception as e:  # a bug: say so in the stats, keep the room running
            self.fail(f"{type(e).__name__}: {e}")

    @abstractmethod
    async def run(self, source: OutputSource) -> None:
        """Send until cancelled (or until the output gives up, after :meth:`fail`)."""

    async def stop(self) -> None:
        """Stop sending and release what it took from the room."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.set_state("stopped")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- state ---------------------------------------------------------------------------

    def set_state(self, state: OutputState) -> None:
        if state != self.state:
            self.state = state
            self.since = time.time()

    def fail(self, error: str) -> None:
        self.last_error = error
        self.set_state("failed")

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Where this output sends, as the host may see it (no stream keys)."""

    def stats(self) -> dict[str, Any]:
        fps, bps = self.video_rate.read()
        return {"id": self.id, "kind": self.kind, **self.describe(), "state": self.state,
                "since": self.since, "fps": round(fps, 1),
                "bitrate_kbps": round(bps / 1000, 1), "frames": self.frames,
                "dropped": self.dropped, "reconnects": self.reconnects,
                "last_error": self.last_error}


class WriterThread:
    """A blocking writer (a muxer writing to a socket or a file) on its own thread,
    behind a bounded queue: the event loop hands it items and never waits on it.

    ``write(item)`` runs on the thread; ``max_items`` bounds the backlog (about two
    seconds of video and audio at 30 fps). When the queue is full the item is refused and
    :meth:`put` returns False; the caller decides what to drop.
    """

    def __init__(self, name: str, write: Callable[[Any], None],
                 on_error: Callable[[BaseException], None], max_items: int = 150) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(max_items)
        self.max_items = max_items
        self._write = write
        self._on_error = on_error
        self._stop = object()
        self.failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Any) -> bool:
        if self.failed is not None:
            return False
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            return False

    @property
    def backlog(self) -> int:
        """Items queued and not yet written (a caller waits for room before it asks the
        encoder for a keyframe)."""
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._stop:
                return
            try:
                self._write(item)
            except BaseException as e:  # the far end went away: tell the owner, stop
                self.failed = e
                self._on_error(e)
                return

    def close(self, timeout: float = 5.0) -> None:
        """Finish what is queued (up to ``timeout``) and end the thread."""
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:
                self._queue.put(self._stop, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join(max(0.0, deadline - time.monotonic()))


@dataclass(frozen=True)
class OutputPolicy:
    """What the operator lets hosts send where (from the server's settings).

    A host token lets its holder point the server at any address, so push targets that
    resolve to loopback, private, link-local or other non-public addresses are refused
    unless ``allow_private`` (a LAN set-up, or tests): otherwise a host could make the
    server probe its own network. Recordings go only into ``record_dir`` (None: off),
    under plain file names. The SFU is the operator's (``janus_url``), never the host's.
    """

    allow_private: bool = False
    record_dir: str | None = None
    janus_url: str | None = None
    janus_room: int = 1234
    janus_public_url: str | None = None  # as browsers reach it (None: janus_url)
    janus_secret: str | None = None  # guards the Janus rooms (from the server's key file)
    rtmps_ca_file: str | None = None  # extra CAs for RTMPS, besides the system's


def check_target(host: str, port: int, policy: OutputPolicy) -> None:
    """ValueError unless ``host`` resolves, and only to public addresses (see
    :class:`OutputPolicy`)."""
    import ipaddress
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise ValueError(f"cannot resolve {host[:80]!r}: {e}") from None
    if policy.allow_private:
        return
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if not ip.is_global:
            raise ValueError(f"{host[:80]!r} is a private or local address ({ip}); this "
                             "server only pushes to public addresses")
