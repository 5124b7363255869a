"""One room's media: the input (host, demo or slate), AR processing and shared encoders.

Data flow, every hand-off a one-item slot so the newest frame always wins::

    host track / demo / slate -> [slot] -> convert + compositor (thread)
        -> [slot per codec] -> encode once (thread) -> packets -> every viewer

The compositor (:class:`~arengine.pipeline.live.LiveCompositor`: tracking, gestures,
effects) runs on the effects thread, or in a process of its own with
``RoomConfig.compositor = "process"`` (:mod:`arengine.pipeline.compositor_process`).
Tracking runs in its own worker threads and never holds a frame back: each frame is
composited with the newest landmarks, re-stamped for that frame. The input can change at
any time (host publishes, leaves, comes back, changes resolution) without touching the
viewers' sessions: output timestamps are rebased so they keep rising across switches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import cv2
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from arengine.demo import DemoClock, DemoSource
from arengine.effects.chain import EffectChain
from arengine.pipeline.compositor_process import CompositorProcess
from arengine.pipeline.config import RoomConfig
from arengine.pipeline.live import LiveCompositor, RoomCompositor
from arengine.pipeline.observer import ENCODERS, PUBLISHING, VIEWERS, Observer, StatsObserver
from arengine.pipeline.pacing import CpuLoad
from arengine.pipeline.slot import LatestSlot
from arengine.state import RoomState
from arengine.tracking.gestures import GestureEvent
from arengine.transport.encoder import (
    Codec,
    EncodedTrack,
    PacketFanout,
    PacketQueue,
    VideoEncoder,
)
from arengine.transport.output import EncoderSpec
from arengine.types import VIDEO_TIME_BASE, StageTiming

logger = logging.getLogger(__name__)


@dataclass
class SourceFrame:
    """A frame entering the pipeline: decoded host video or a generated picture."""

    source: str  # "host", "demo" or "slate"
    segment: int  # changes whenever the input switches
    index: int
    arrived: float  # perf_counter when it entered the pipeline
    pts: int | None
    time_base: Fraction | None
    video: av.VideoFrame | None = None
    image: np.ndarray | None = None


@dataclass
class OutputFrame:
    image: np.ndarray
    pts: int  # 90 kHz, rising across input switches
    index: int
    arrived: float
    gestures: list[GestureEvent] = field(default_factory=list)


class Timeline:
    """Maps each input segment's own pts onto one rising 90 kHz output clock."""

    def __init__(self, fps: int, max_gap: float = 2.0) -> None:
        self.max_gap = max_gap
        self._last_seconds: float | None = None
        self._step = VIDEO_TIME_BASE.denominator // fps
        self._segment: int | None = None
        self._origin = 0.0
        self._base = 0
        self._last = -1
        self._wall_origin = 0.0

    def map(self, segment: int, seconds: float | None) -> int:
        now = time.monotonic()
        jumped = seconds is not None and self._last_seconds is not None and \
            not 0.0 <= seconds - self._last_seconds <= self.max_gap
        if segment != self._segment or jumped:
            # A new input, or a source clock that went back or leapt ahead: continue from
            # the last output time instead of following it.
            self._base = self._last + self._step
            self._origin = seconds if seconds is not None else 0.0
            self._wall_origin = now
            self._segment = segment
        self._last_seconds = seconds
        t = (seconds - self._origin) if seconds is not None else now - self._wall_origin
        pts = self._base + round(t * VIDEO_TIME_BASE.denominator)
        if pts <= self._last:
            pts = self._last + 1
        self._last = pts
        return pts


class EncoderStage:
    """One shared encoder (one :class:`EncoderSpec`): newest processed frame in, packets
    out to every viewer and output subscribed to it. ``name`` labels its stages
    (``encode:<name>``, ``out:<name>``): the codec alone for the viewers' encoder."""

    def __init__(self, room: str, spec: EncoderSpec, name: str, observer: Observer) -> None:
        self.room = room
        self.spec = spec
        self.codec = spec.codec
        self.name = name
        self.observer = observer
        self.encoder = VideoEncoder(spec.codec, spec.bitrate, spec.fps, spec.keyframe_interval,
                                    spec.profile)
        self.fanout = PacketFanout(spec.codec)
        self.slot: LatestSlot[OutputFrame] = LatestSlot()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"arengine-encode-{name}")
        self._task = asyncio.create_task(self._run(), name=f"encode-{room}-{name}")
        self.frames = 0

    def submit(self, frame: OutputFrame) -> None:
        dropped = self.slot.dropped
        self.slot.put(frame)
        if self.slot.dropped > dropped:
            self.observer.on_drop(self.room, f"encode:{self.name}")

    def _encode(self, frame: OutputFrame, keyframe: bool) -> list[av.Packet]:
        video = av.VideoFrame.from_ndarray(frame.image, format="bgr24")
        video.pts = frame.pts
        video.time_base = VIDEO_TIME_BASE
        return self.encoder.encode(video, keyframe)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            frame = await self.slot.get()
            keyframe = self.fanout.take_keyframe_request()
            start = time.perf_counter()
            try:
                packets = await loop.run_in_executor(self._pool, self._encode, frame, keyframe)
            except Exception:
                logger.exception("room %s: %s encoder failed; reopening", self.room,
                                 self.name)
                self.observer.on_error(self.room, f"encode:{self.name}")
                self.encoder.close()
                self.fanout.request_keyframe()
                continue
            end = time.perf_counter()
            self.fanout.publish(packets)
            self.frames += 1
            self.observer.on_timing(self.room, StageTiming(frame.index, f"encode:{self.name}",
                                                           start, end))
            self.observer.on_timing(self.room, StageTiming(frame.index, "server_total",
                                                           frame.arrived, end))
            self.observer.on_count(self.room, f"out:{self.name}")

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.fanout.close()
        self._pool.shutdown(wait=False)


class RoomPipeline:
    """The media side of one room (see the module docstring)."""

    def __init__(self, room: str, config: RoomConfig | None = None,
                 observer: StatsObserver | None = None,
                 state: Callable[[], RoomState | None] | None = None,
                 effects: EffectChain | None = None,
                 on_gesture: Callable[[GestureEvent], Awaitable[None]] | None = None) -> None:
        self.room = room
        self.config = config or RoomConfig()
        self.observer = observer or StatsObserver()
        self._state = state
        self._on_gesture = on_gesture

        def on_timing(t: StageTiming) -> None:
            self.observer.on_timing(room, t)

        def on_error(stage: str) -> None:
            self.observer.on_error(room, stage)

        # Tracking workers start with the pipeline (start()); until then frames go bare.
        self.compositor: RoomCompositor
        if self.config.compositor == "process":
            if effects is not None:
                raise ValueError("a compositor process builds its own effect chain: pass "
                                 "effects only with compositor='thread'")
            self.compositor = CompositorProcess(self.config, on_gesture is not None,
                                                on_timing, on_error, room)
        else:
            self.compositor = LiveCompositor(self.config, on_gesture is not None, on_timing,
                                             on_error, effects)
        self.demo = DemoSource(*self.config.demo_size, fps=self.config.fps) \
            if self.config.demo else None
        self.encoders: dict[str, EncoderStage] = {}  # by name: the codec for viewers
        self._slot: LatestSlot[SourceFrame] = LatestSlot()
        self._fx_pool = ThreadPoolExecutor(1, thread_name_prefix="arengine-effects")
        self._load = CpuLoad()
        self._tasks: list[asyncio.Task[None]] = []
        self._host: MediaStreamTrack | None = None
        self._host_task: asyncio.Task[None] | None = None
        self._host_seen = False
        self._host_lost_at: float | None = None
        self._last_host_frame = 0.0
        self._segment = 0
        self._source = "none"
        self._index = 0
        self._timeline = Timeline(self.config.fps)
        self._last_output: np.ndarray | None = None
        self._slate: np.ndarray | None = None
        self._size: tuple[int, int] | None = None
        self._cached_state: RoomState | None = None
        self._state_at = 0.0
        self._viewers: set[EncodedTrack] = set()
        self._closed = False
        self._gesture_tasks: set[asyncio.Task[None]] = set()

    def _live(self) -> LiveCompositor:
        if not isinstance(self.compositor, LiveCompositor):
            raise RuntimeError("this room's effect chain runs in its compositor process")
        return self.compositor

    @property
    def effects(self) -> EffectChain:
        """The room's effect chain, where the compositor runs on the room's own thread."""
        return self._live().effects

    @effects.setter
    def effects(self, chain: EffectChain) -> None:
        self._live().effects = chain

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.compositor.start)
        self._tasks = [asyncio.create_task(self._process(), name=f"process-{self.room}"),
                       asyncio.create_task(self._idle_source(), name=f"idle-{self.room}")]
        if self.config.pace_tracking:
            self._tasks.append(asyncio.create_task(self._pace(), name=f"pace-{self.room}"))

    async def _pace(self, period: float = 1.0) -> None:
        while True:
            await asyncio.sleep(period)
            self.compositor.pace(self._load.read())  # one reading for every paced worker

    async def close(self) -> None:
        self._closed = True
        await self.detach_host()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for enc in list(self.encoders.values()):
            await enc.close()
        self.encoders.clear()
        ENCODERS.labels(self.room).set(0)
        VIEWERS.labels(self.room).set(0)
        await asyncio.to_thread(self.compositor.close)
        self._fx_pool.shutdown(wait=False)

    # -- input -------------------------------------------------------------------------

    @property
    def host_live(self) -> bool:
        """A host is attached and its frames are fresh."""
        return self._host is not None and \
            time.monotonic() - self._last_host_frame < self.config.stale_after

    @property
    def host_attached(self) -> bool:
        return self._host is not None

    @property
    def status(self) -> str:
        """"live", "reconnecting", "demo" or "offline": what viewers see now."""
        return self._source_mode()

    def attach_host(self, track: MediaStreamTrack) -> None:
        """Make ``track`` (a WHIP session's video) the room's input, replacing any other."""
        if self._host_task is not None:
            self._host_task.cancel()
        self._host = track
        self._source = "none"  # its first frame starts a new segment of the output clock
        self._host_seen = True
        self._last_host_frame = time.monotonic()  # counts as live while it connects
        self._host_task = asyncio.create_task(self._read_host(track), name=f"host-{self.room}")
        PUBLISHING.labels(self.room).set(1)

    async def detach_host(self, track: MediaStreamTrack | None = None) -> None:
        """Stop reading the host (all hosts, or only ``track`` if it is still the input)."""
        if track is not None and track is not self._host:
            return
        task, self._host_task = self._host_task, None
        if self._host is not None:
            self._host_lost_at = time.monotonic()
        self._host = None
        PUBLISHING.labels(self.room).set(0)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _read_host(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if track is not self._host:
                    return
                if not isinstance(frame, av.VideoFrame):
                    continue
                now = time.perf_counter()
                self._last_host_frame = time.monotonic()
                if self._source != "host":
                    self._switch("host")
                self._index += 1
                info = frame.opaque if isinstance(frame.opaque, dict) else None
                if info and "decode_start" in info:
                    self.observer.on_timing(self.room, StageTiming(
                        self._index, "decode", info["decode_start"], info["decode_end"]))
                self.observer.on_count(self.room, "in")
                tb = Fraction(frame.time_base) if frame.time_base is not None else None
                self._put(SourceFrame("host", self._segment, self._index, now, frame.pts, tb,
                                      video=frame))
        except MediaStreamError:
            logger.info("room %s: host track ended", self.room)
        finally:
            if track is self._host:
                await self.detach_host(track)

    def _put(self, frame: SourceFrame) -> None:
        dropped = self._slot.dropped
        self._slot.put(frame)
        if self._slot.dropped > dropped:
            self.observer.on_drop(self.room, "receive")

    def _switch(self, source: str) -> None:
        self._source = source
        self._segment += 1
        self._slate = None
        logger.info("room %s: input is now %s", self.room, source)

    def _source_mode(self) -> str:
        if self.host_live:
            return "live"
        now = time.monotonic()
        if self._host is not None or (self._host_lost_at is not None and self._host_seen and
                                      now - self._host_lost_at < self.config.reconnect_grace):
            return "reconnecting"
        return "demo" if self.demo is not None else "offline"

    async def _idle_source(self) -> None:
        """Feeds the demo or a slate whenever no fresh host frames arrive."""
        clock = DemoClock(self.demo) if self.demo is not None else None
        while True:
            mode = self._source_mode()
            if mode == "live" or not self.encoders:
                await asyncio.sleep(0.05)
                continue
            if mode == "demo" and clock is not None:
                if self._source != "demo":
                    self._switch("demo")
                f = await clock.next()
                if self._source_mode() != "demo":
                    continue
                self._index += 1
                self.observer.on_count(self.room, "in")
                self._put(SourceFrame("demo", self._segment, self._index, time.perf_counter(),
                                      f.pts, f.time_base, image=f.image))
            else:
                if self._source != "slate":
                    self._switch("slate")
                text = "Host reconnecting..." if mode == "reconnecting" else "Host offline"
                if self._slate is None:
                    self._slate = await asyncio.to_thread(self._make_slate, text)
                self._index += 1
                self._put(SourceFrame("slate", self._segment, self._index, time.perf_counter(),
                                      None, None, image=self._slate.copy()))
                # A still slate needs 10 frames a second; a moving virtual host all of them.
                await asyncio.sleep(1 / self.config.fps if self.compositor.stands_in_for_host()
                                    else 0.1)

    def _make_slate(self, text: str) -> np.ndarray:
        """The last picture, blurred and dimmed, with a message (or black with one)."""
        if self._last_output is not None:
            base = cv2.GaussianBlur(self._last_output, (0, 0), 12)
            base = (base * 0.35).astype(np.uint8)
        else:
            w, h = self.config.demo_size
            base = np.zeros((h, w, 3), np.uint8)
        h, w = base.shape[:2]
        scale = max(0.6, w / 900)
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
        cv2.putText(base, text, ((w - tw) // 2, (h + th) // 2), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (255, 255, 255), 2, cv2.LINE_AA)
        return base

    # -- processing ----------------------------------------------------------------

    def room_state(self) -> RoomState | None:
        now = time.monotonic()
        if self._state is not None and now - self._state_at > 0.1:
            try:
                self._cached_state = self._state()
            except Exception:
                logger.exception("room %s: cannot read room state", self.room)
            self._state_at = now
        return self._cached_state

    async def _process(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            sf = await self._slot.get()
            if not self.encoders:
                continue
            state = self.room_state()
            try:
                out = await loop.run_in_executor(self._fx_pool, self._process_frame, sf, state)
            except Exception:
                logger.exception("room %s: frame %d could not be processed", self.room,
                                 sf.index)
                self.observer.on_error(self.room, "process")
                continue
            for enc in list(self.encoders.values()):
                enc.submit(out)
            for event in out.gestures:
                self._dispatch_gesture(event)

    def _dispatch_gesture(self, event: GestureEvent) -> None:
        """Run the room action of a confirmed host gesture without holding frames back."""
        if self._on_gesture is None:
            return
        logger.info("room %s: host gesture %s -> %s", self.room, event.gesture, event.action)
        self.observer.on_count(self.room, f"gesture:{event.gesture}")

        async def run(callback: Callable[[GestureEvent], Awaitable[None]]) -> None:
            try:
                await callback(event)
            except Exception as e:
                logger.warning("room %s: gesture action %s failed: %s", self.room,
                               event.action, e)

        task = asyncio.create_task(run(self._on_gesture))
        self._gesture_tasks.add(task)
        task.add_done_callback(self._gesture_tasks.discard)

    def _timing(self, index: int, stage: str, start: float) -> None:
        self.observer.on_timing(self.room, StageTiming(index, stage, start, time.perf_counter()))

    def _error(self, stage: str) -> None:
        self.observer.on_error(self.room, stage)

    def _process_frame(self, sf: SourceFrame, state: RoomState | None) -> OutputFrame:
        """Convert, then the compositor (effects thread); a slate goes out as it is."""
        self._timing(sf.index, "receive", sf.arrived)
        if sf.video is not None:
            start = time.perf_counter()
            image = sf.video.to_ndarray(format="bgr24")
            self._timing(sf.index, "convert", start)
        else:
            assert sf.image is not None
            image = sf.image
        h, w = image.shape[:2]
        if self._size != (w, h):
            if self._size is not None:
                logger.info("room %s: frame size %sx%s -> %sx%s", self.room, *self._size, w, h)
            self._size = (w, h)
        seconds = float(sf.pts * sf.time_base) if sf.pts is not None and sf.time_base else None
        # The output clock keeps the source's spacing and keeps rising across input
        # switches, so animations driven by scene.timestamp never jump back.
        pts = self._timeline.map(sf.segment, seconds)
        gestures: list[GestureEvent] = []
        slate = sf.source == "slate"
        if not slate or self.compositor.stands_in_for_host():
            # A slate goes out as it is, unless a virtual host stands in for the host:
            # then it keeps idling on screen while the host reconnects.
            out = self.compositor.process(image, pts / VIDEO_TIME_BASE.denominator, sf.index,
                                          state, host=sf.source == "host", track=not slate)
            image, gestures = out.image, out.events
            if not slate:
                self._last_output = image
        self._timing(sf.index, "process", sf.arrived)
        self.observer.on_count(self.room, "processed")
        return OutputFrame(image, pts, sf.index, sf.arrived, gestures)

    # -- output --------------------------------------------------------------------

    def viewer_spec(self, codec: Codec) -> EncoderSpec:
        """The encoder WHEP viewers of ``codec`` share (keyframes on demand, 4 s GOP)."""
        return EncoderSpec(codec, self.config.bitrate, self.config.fps)

    def encoder(self, spec: EncoderSpec) -> EncoderStage:
        """The shared encoder for ``spec``, started on first use."""
        name = spec.codec if spec == self.viewer_spec(spec.codec) else spec.name
        enc = self.encoders.get(name)
        if enc is None:
            enc = self.encoders[name] = EncoderStage(self.room, spec, name, self.observer)
            ENCODERS.labels(self.room).set(len(self.encoders))
        return enc

    def subscribe(self, codec: Codec) -> EncodedTrack:
        """A viewer's track of this room's shared ``codec`` stream (one encoder per codec)."""
        enc = self.encoder(self.viewer_spec(codec))

        def on_sent(ready: float, sent: float) -> None:
            self.observer.on_timing(self.room, StageTiming(0, "send", ready, sent))

        track = EncodedTrack(enc.fanout, on_sent)
        self._viewers.add(track)
        VIEWERS.labels(self.room).set(len(self._viewers))
        return track

    async def unsubscribe(self, track: EncodedTrack) -> None:
        """End a viewer's track; an encoder stops with its last subscriber."""
        track.stop()
        self._viewers.discard(track)
        VIEWERS.labels(self.room).set(len(self._viewers))
        await self.prune_encoders()

    def subscribe_packets(self, spec: EncoderSpec) -> PacketQueue:
        """An output's queue of the shared encoder's packets for ``spec``."""
        return self.encoder(spec).fanout.subscribe()

    async def unsubscribe_packets(self, packets: PacketQueue) -> None:
        for enc in self.encoders.values():
            enc.fanout.unsubscribe(packets)
        await self.prune_encoders()

    async def prune_encoders(self) -> None:
        """Stop every encoder nobody is subscribed to any more."""
        for name, enc in list(self.encoders.items()):
            if len(enc.fanout) == 0:
                del self.encoders[name]
                await enc.close()
        ENCODERS.labels(self.room).set(len(self.encoders))

    @property
    def size(self) -> tuple[int, int] | None:
        """Width and height of the latest processed frame."""
        return self._size

    @property
    def viewer_count(self) -> int:
        return len(self._viewers)

    def click_regions(self) -> list[dict[str, Any]]:
        if self._size is None:
            return []
        return self.compositor.click_regions(self._size)

    def stats(self) -> dict[str, Any]:
        """The room's media stats (JSON-ready) for the stats endpoint and the host page."""
        s = self.observer.snapshot(self.room)
        r = self.compositor.readout(self._size)
        s.update({
            "room": self.room,
            "status": self.status,
            "source": self._source,
            "size": list(self._size) if self._size else None,
            "viewers": self.viewer_count,
            "encoders": {c: {"subscribers": len(e.fanout), "frames": e.frames,
                             "bitrate_kbps": e.spec.bitrate // 1000,
                             "keyframe_interval_s": e.spec.keyframe_interval,
                             "keyframe_requests": e.fanout.keyframe_requests,
                             "keyframes_forced": e.fanout.keyframes_forced,
                             "reopened": e.encoder.reopened}
                         for c, e in self.encoders.items()},
            "effects": r.enabled,
            "render": r.render,
            "tracking": r.tracking,
            "machine_busy": r.machine_busy,
            # Per painted face, how far the lip is from its shade in the face's light.
            "colour": r.colour,
            "compositor": {"where": self.config.compositor, **(r.process or {})},
        })
        return s
