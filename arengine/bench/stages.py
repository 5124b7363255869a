"""Stage latency: the frame pipeline timed stage by stage on real video.

Each frame goes through what the server does with it: decode (an H.264 packet to BGR
pixels), face tracking, hand tracking, every effect in drawing order, and encode (VP8,
or a hardware H.264 encoder when one opens). The source video is first encoded at the
benchmarked resolution, so a 2160p point really decodes a 2160p stream.

Frames are timed back to back with ``time.perf_counter_ns``; a real-time loop is then
replayed from those service times (frames arriving at the source rate, the engine always
taking the newest one, as the server's latest-frame slots do) to count the frames that
would be dropped and the latency the engine adds including the wait for a busy engine.

Correctness is checked on the way, so a fast but broken path cannot pass: the share of
frames with a face found, and on sampled frames that lipstick moved the lip colour
toward the shade and that the encoder gave a packet for every frame.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import av
import cv2
import numpy as np

from arengine.bench.stats import summarize
from arengine.effects import Effect, create_effect, effect_names
from arengine.effects.chain import DEFAULT_EFFECTS, EffectChain
from arengine.state import (
    LikeGoalView,
    PollOptionView,
    PollView,
    ProductView,
    RoomState,
    ViewerView,
)
from arengine.types import VIDEO_TIME_BASE, Scene, StageTiming

if TYPE_CHECKING:
    from arengine.interaction.room import Room

log = logging.getLogger(__name__)

RESOLUTIONS: dict[str, tuple[int, int]] = {
    "480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080), "2160p": (3840, 2160)}

SOURCE_BITRATE_PER_PIXEL = 4.0  # bits per pixel per second: ~3.7 Mbit/s at 720p30


@dataclass
class StageRun:
    """The settings of one stage-latency point."""

    resolution: str = "720p"
    frames: int = 300
    warmup: int = 30
    fps: float = 30.0
    effects: tuple[str, ...] = DEFAULT_EFFECTS
    render: str = "auto"
    codec: str = "vp8"
    input: Path | None = None
    distinct_frames: int = 150  # source frames encoded once, then looped
    viewers: int = 1
    checks: int = 12  # frames sampled for the correctness checks

    @property
    def size(self) -> tuple[int, int]:
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"unknown resolution {self.resolution!r}; known: "
                             f"{', '.join(RESOLUTIONS)}")
        return RESOLUTIONS[self.resolution]


# -- the source ---------------------------------------------------------------------------

def source_pictures(path: Path | None, width: int, height: int, count: int
                    ) -> tuple[list[np.ndarray], str]:
    """Up to ``count`` BGR pictures at ``width`` x ``height`` and a line naming the source.

    A file is decoded and scaled (up to 2160p from 720p: the benchmark measures cost, not
    sharpness); without one the engine's demo source (a moving real face) is used.
    """
    if path is not None:
        pics = []
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or 0)
            src = f"{path.name} ({stream.width}x{stream.height} @ {rate:.0f} fps)"
            for frame in container.decode(stream):
                img = frame.to_ndarray(format="bgr24")
                if img.shape[:2] != (height, width):
                    interp = cv2.INTER_AREA if img.shape[0] > height else cv2.INTER_LINEAR
                    img = cv2.resize(img, (width, height), interpolation=interp)
                pics.append(img)
                if len(pics) >= count:
                    break
        if not pics:
            raise ValueError(f"{path}: no video frames")
        return pics, src
    try:
        from arengine.demo import DemoSource

        demo = DemoSource(width, height, 30.0)
        return [demo.frame_at(i / 30.0) for i in range(count)], \
            "arengine demo source (astronaut portrait, moving)"
    except ImportError:
        return _astronaut_pictures(width, height, count), "astronaut portrait (panned)"


def tracked_clip(path: Path, count: int, fps: float) -> tuple[list[np.ndarray], list[Scene]]:
    """The first ``count`` frames of ``path`` (BGR) and their scenes, faces and hands
    tracked in video mode as live at ``fps``: the inputs of the per-layer benchmarks."""
    from arengine.tracking import Tracker

    images: list[np.ndarray] = []
    scenes: list[Scene] = []
    with av.open(str(path)) as c, Tracker("video") as tracker:
        for i, f in enumerate(c.decode(c.streams.video[0])):
            if i >= count:
                break
            image = f.to_ndarray(format="bgr24")
            images.append(image)
            scenes.append(tracker.track(image, i / fps, i))
    return images, scenes


def _astronaut_pictures(width: int, height: int, count: int) -> list[np.ndarray]:
    from skimage import data

    face = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    pics = []
    for i in range(count):
        scale = 0.4 * height / 106.0
        m = cv2.getRotationMatrix2D((225.0, 125.0), 4 * np.sin(i / 20), scale)
        m[0, 2] += width / 2 - 225.0 + 0.05 * width * np.sin(i / 30)
        m[1, 2] += height * 0.45 - 125.0
        pics.append(cv2.warpAffine(face, m, (width, height), borderMode=cv2.BORDER_REFLECT_101))
    return pics


class EncodedSource:
    """A stream of H.264 packets at one resolution, looped forever; ``next()`` decodes one.

    Packets are made once up front (libx264 ultrafast, no B-frames, a keyframe each
    second, like a WebRTC sender), so only decoding is timed.
    """

    def __init__(self, pictures: list[np.ndarray], fps: float = 30.0) -> None:
        h, w = pictures[0].shape[:2]
        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height = w, h
        enc.pix_fmt = "yuv420p"
        enc.time_base = Fraction(1, round(fps))
        enc.framerate = Fraction(round(fps), 1)
        enc.bit_rate = int(SOURCE_BITRATE_PER_PIXEL * w * h)
        enc.options = {"preset": "ultrafast", "tune": "zerolatency",
                       "x264-params": f"bframes=0:keyint={round(fps)}:repeat-headers=1"}
        packets: list[bytes] = []
        for i, img in enumerate(pictures):
            f = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
            f.pts = i
            packets += [bytes(p) for p in enc.encode(f)]
        packets += [bytes(p) for p in enc.encode(None)]
        self.packets = packets
        self.width, self.height = w, h
        self._decoder = av.CodecContext.create("h264", "r")
        self._i = 0

    def next(self) -> np.ndarray:
        """Decode the next picture (looping at the end) to BGR."""
        while True:
            data = self.packets[self._i % len(self.packets)]
            self._i += 1
            frames = self._decoder.decode(av.Packet(data))
            if frames:
                return frames[-1].to_ndarray(format="bgr24")

    def close(self) -> None:
        self._decoder = None  # type: ignore[assignment]


# -- room state for the layers ------------------------------------------------------------

def busy_room_state(viewers: int = 50, now: float | None = None) -> RoomState:
    """A room mid-show: viewers commenting, an open poll, likes and a product on screen."""
    now = time.time() if now is None else now
    names = ["Mai", "Linh", "Ayu", "Siti", "小美", "Nong", "Putri", "Hoa", "Dewi", "阿珍"]
    vs = tuple(ViewerView(id=f"v{i}", name=f"{names[i % len(names)]}{i}",
                          last_comment="love this shade!" if i % 3 == 0 else None,
                          last_active=now - i, joined_at=now - 60 - i)
               for i in range(viewers))
    poll = PollView(id="p1", question="Which shade next?", options=(
        PollOptionView("Velvet Ruby", 40, "velvet-ruby", "#9B111E"),
        PollOptionView("Nude Rose", 25, None, "#C08081")), opened_at=now - 20,
        closes_at=now + 40)
    return RoomState(room_id="bench", taken_at=now, viewers=vs, poll=poll, likes=1234,
                     recent_likes=tuple(now - k * 0.1 for k in range(20)),
                     like_goal=LikeGoalView(2000, 1234, "2000 likes: 10% off"),
                     product=ProductView("sku-1", "Velvet Ruby Lipstick", "$19.90"),
                     shade_id="velvet-ruby", viewer_count=viewers, interaction_rate=3.0)


async def stage_busy_room(room: Room, viewers: int = 10) -> None:
    """Make ``room`` look like :func:`busy_room_state` through the room's own actions
    (joins, comments, an open shade poll with votes, likes toward a goal, a product),
    so a benchmark of the real server draws what a show would."""
    names = ["Mai", "Linh", "Ayu", "Siti", "小美", "Nong", "Putri", "Hoa", "Dewi", "阿珍"]
    await room.set_shade("velvet-ruby")
    await room.set_product("Velvet Ruby Lipstick", "$19.90", None, "sku-1")
    await room.set_like_goal(2000, "2000 likes: 10% off")
    poll = await room.open_poll("Which shade next?", [("Velvet Ruby", "velvet-ruby"),
                                                      ("Cherry Silk", "silk-cherry")], 600)
    for i in range(viewers):
        vid, _ = await room.join(f"{names[i % len(names)]}{i}")
        if i % 3 == 0:
            await room.comment(vid, "love this shade!")
        await room.vote(vid, poll.id, i % 2)
        await room.like(vid, 20)


def make_effects(names: tuple[str, ...], backend: Any, state: RoomState
                 ) -> tuple[dict[str, Effect], dict[str, str]]:
    """The effects that exist, each given the render backend when it takes one.

    Returns the effects and, per name, where it runs or why it is missing.
    """
    effects: dict[str, Effect] = {}
    where: dict[str, str] = {}
    known = effect_names()
    for name in names:
        if name not in known:
            where[name] = "not available in this build"
            continue
        effect: Effect | None = None
        if backend_is_gpu_path(backend):
            try:  # effects that composite through a render backend take it as ``backend``
                effect = create_effect(name, backend=backend)
                where[name] = f"render backend {_backend_line(backend)}"
            except TypeError:
                effect = None
        try:
            if effect is None:
                effect = create_effect(name)
                where[name] = "cpu (numpy/OpenCV in the effect)"
        except Exception as e:  # an effect that cannot start is reported, not fatal
            where[name] = f"failed to start: {type(e).__name__}: {e}"
            continue
        set_state = getattr(effect, "set_state", None)
        if callable(set_state):
            set_state(state)
        effects[name] = effect
    return effects, where


def backend_is_gpu_path(backend: Any) -> bool:
    """True for a backend other than the CPU reference (GL, even on a software driver)."""
    return backend is not None and getattr(backend, "name", "cpu") != "cpu"


# -- encoders -----------------------------------------------------------------------------

class Encoder:
    """The output encoder: the engine's VP8/H.264 encoder, or PyAV's h264_nvenc on a GPU."""

    def __init__(self, codec: str, fps: float) -> None:
        self.codec = codec
        self.fps = fps
        self.where = "cpu"
        self._engine: Any = None
        self._ctx: Any = None
        self.packets = 0
        self.frames = 0
        self.bytes = 0
        if codec == "h264_nvenc":
            self.where = "gpu (NVENC)"
        else:
            try:
                from arengine.transport.encoder import VideoEncoder

                self._engine = VideoEncoder(codec, fps=round(fps))  # type: ignore[arg-type]
            except ImportError:
                self._engine = None

    def _open_ctx(self, w: int, h: int) -> Any:
        name = {"vp8": "libvpx", "h264": "libx264"}.get(self.codec, self.codec)
        ctx = cast("av.VideoCodecContext", av.CodecContext.create(name, "w"))
        ctx.width, ctx.height = w, h
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = VIDEO_TIME_BASE
        ctx.framerate = Fraction(round(self.fps), 1)
        ctx.bit_rate = 2_000_000
        if name == "libvpx":
            ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        elif name == "libx264":
            ctx.options = {"preset": "veryfast", "tune": "zerolatency"}
        else:
            ctx.options = {"preset": "p1", "tune": "ull", "zerolatency": "1", "delay": "0"}
            ctx.max_b_frames = 0
        ctx.open()
        return ctx

    def encode(self, image: np.ndarray, index: int) -> list[bytes]:
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = round(index * 90000 / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        if self._engine is not None:
            packets = self._engine.encode(frame)
        else:
            if self._ctx is None:
                self._ctx = self._open_ctx(frame.width, frame.height)
            packets = list(self._ctx.encode(frame.reformat(format="yuv420p")))
        out = [bytes(p) for p in packets]
        self.frames += 1
        self.packets += len(out)
        self.bytes += sum(len(p) for p in out)
        return out


def nvenc_available() -> bool:
    try:
        ctx = cast("av.VideoCodecContext", av.CodecContext.create("h264_nvenc", "w"))
        ctx.width, ctx.height = 1280, 720
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = Fraction(1, 30)
        ctx.open()
        return True
    except Exception:
        return False


# -- correctness ----------------------------------------------------------------------------

def lip_shift(before: np.ndarray, after: np.ndarray, scene: Scene,
              shade_bgr: tuple[int, int, int]) -> float | None:
    """How far (CIELAB ΔE) lipstick moved the lips' mean colour toward the shade.

    Positive: closer to the shade than before. None when no face was tracked.
    """
    if len(scene.faces) == 0:
        return None
    mask = np.zeros(before.shape[:2], np.uint8)
    outer = np.round(scene.faces.lips_outer()[0]).astype(np.int32)
    inner = np.round(scene.faces.lips_inner()[0]).astype(np.int32)
    cv2.fillPoly(mask, [outer], 255)
    cv2.fillPoly(mask, [inner], 0)
    if mask.sum() < 255 * 20:
        return None
    target = cv2.cvtColor(np.array([[shade_bgr]], np.uint8), cv2.COLOR_BGR2LAB)[0, 0].astype(float)

    def mean_lab(img: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(img, cv2.COLOR_BGR2LAB).astype(float)
        return np.asarray(lab[mask > 0].mean(axis=0))

    d0 = float(np.linalg.norm(mean_lab(before) - target))
    d1 = float(np.linalg.norm(mean_lab(after) - target))
    return d0 - d1


def shade_bgr_of(effect: Effect | None) -> tuple[int, int, int] | None:
    """The default shade of a lipstick effect, when it says which one it is."""
    if effect is None:
        return None
    try:
        from arengine.catalog import default_catalog
        from arengine.effects.lipstick import DEFAULT_SHADE

        return default_catalog().get(DEFAULT_SHADE).bgr
    except Exception:
        return None


# -- the real-time replay ---------------------------------------------------------------------

@dataclass
class Replay:
    """What a real-time loop would have done with the measured service times."""

    latencies_ms: list[float]  # arrival to encoded, per processed frame
    processed: int
    dropped: int
    duration_s: float

    @property
    def fps(self) -> float:
        return self.processed / self.duration_s if self.duration_s > 0 else 0.0


def replay_realtime(service_ms: list[float], fps: float) -> Replay:
    """Frames arrive every 1/fps s; a free engine takes the newest one, older ones drop.

    This is the server's latest-frame policy on a single worker. Uses the service times in
    the order they were measured (so slow stretches stay together).
    """
    period = 1000.0 / fps
    t_free = 0.0
    last = -1
    lat: list[float] = []
    dropped = 0
    for s in service_ms:
        newest = int(t_free // period)
        if newest <= last:  # nothing new yet: wait for the next frame
            newest = last + 1
            start = newest * period
        else:
            start = t_free
        dropped += newest - last - 1
        finish = start + s
        lat.append(finish - newest * period)
        last = newest
        t_free = finish
    return Replay(lat, len(service_ms), dropped, t_free / 1000.0)


# -- the run ------------------------------------------------------------------------------------

@dataclass
class StageResult:
    """Everything measured at one point; ``to_dict`` is what goes into the JSON."""

    config: StageRun
    source: str
    stages: dict[str, list[float]] = field(default_factory=dict)  # ms per frame
    total_ms: list[float] = field(default_factory=list)
    where: dict[str, str] = field(default_factory=dict)
    faces_found: int = 0
    hands_found: int = 0
    lip_checks: list[float] = field(default_factory=list)
    encoder_frames_without_packet: int = 0
    encoded_bytes: int = 0
    wall_s: float = 0.0
    prepare_s: float = 0.0

    def replay(self) -> Replay:
        return replay_realtime(self.total_ms, self.config.fps)

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        n = len(self.total_ms)
        rep = self.replay()
        total = summarize(self.total_ms)
        lips = self.lip_checks
        return {
            "resolution": c.resolution, "width": c.size[0], "height": c.size[1],
            "frames": n, "warmup_frames": c.warmup, "fps_target": c.fps,
            "source": self.source, "codec": c.codec,
            "stages": {k: summarize(v).to_dict() for k, v in self.stages.items()},
            "total": total.to_dict(),
            "throughput_fps": 1000.0 / total.mean if total.mean > 0 else 0.0,
            "realtime": {
                "engine_added": summarize(rep.latencies_ms).to_dict(),
                "processed": rep.processed, "dropped": rep.dropped,
                "dropped_share": rep.dropped / max(1, rep.dropped + rep.processed),
                "achieved_fps": rep.fps},
            "where": self.where,
            "checks": {
                "face_found_share": self.faces_found / max(1, n),
                "hands_found_share": self.hands_found / max(1, n),
                "lipstick_checked": len(lips),
                "lipstick_moved_toward_shade": sum(1 for d in lips if d > 3.0),
                "lipstick_mean_delta_e": float(np.mean(lips)) if lips else None,
                "encoder_frames_without_packet": self.encoder_frames_without_packet,
                "encoded_kbit_per_s": self.encoded_bytes * 8 / 1000 / max(1e-9, n / c.fps),
            },
            "wall_s": self.wall_s, "prepare_s": self.prepare_s,
            "samples_ms": {"total": [round(v, 3) for v in self.total_ms],
                           "engine_added": [round(v, 3) for v in rep.latencies_ms]},
        }

    def passed_checks(self) -> list[str]:
        """Why this point cannot be trusted (empty when every check passed)."""
        problems = []
        n = max(1, len(self.total_ms))
        if self.faces_found / n < 0.8:
            problems.append(f"{self.config.resolution}: a face was found in only "
                            f"{self.faces_found}/{n} frames")
        if "lipstick" in self.stages:
            moved = sum(1 for d in self.lip_checks if d > 3.0)
            if not self.lip_checks or moved < 0.8 * len(self.lip_checks):
                problems.append(f"{self.config.resolution}: lipstick moved the lip colour "
                                f"toward the shade on {moved}/{len(self.lip_checks)} "
                                f"sampled frames")
        if self.encoder_frames_without_packet:
            problems.append(f"{self.config.resolution}: the encoder returned no packet for "
                            f"{self.encoder_frames_without_packet} frames")
        return problems


class StagePipeline:
    """One room's frame path with a timer around each stage: decode, the compositor the
    server runs (tracking every frame inline, effects, render backend), encode.

    ``step()`` processes one frame and returns the per-stage milliseconds; it is also what
    the soak suite runs. Tracking runs inline here (each frame tracked before it is drawn)
    so every stage's cost is counted; the live room runs the same compositor with its
    tracking in worker threads.
    """

    def __init__(self, run: StageRun, pictures: list[np.ndarray] | None = None,
                 backend: Any = None, state: RoomState | None = None) -> None:
        from arengine.pipeline.compositor import Compositor, InlineTracking

        self.run = run
        w, h = run.size
        t0 = time.perf_counter()
        if pictures is None:
            pictures, self.source_name = source_pictures(run.input, w, h, run.distinct_frames)
        else:
            self.source_name = "given pictures"
        self.source = EncodedSource(pictures, run.fps)
        self.state = state or busy_room_state(run.viewers)
        self.effects, self.where = make_effects(run.effects, backend, self.state)
        self._ms: dict[str, float] = {}
        chain = EffectChain(effects=self.effects,
                            backend=backend if backend_is_gpu_path(backend) else None)
        self.gpu_chain = chain.backend is not None
        if self.gpu_chain:
            shared = [n for n, e in self.effects.items() if chain.shares_frame(e)]
            self.where["composite"] = (f"render backend {_backend_line(backend)}: one upload "
                                       f"and one readback for {', '.join(shared) or 'none'}")
        self.compositor = Compositor(chain, InlineTracking("video"), on_timing=self._time)
        codec = run.codec
        self.encoder = Encoder(codec, run.fps)
        self.where.update({"decode": "cpu (libavcodec h264)", "track_face": "cpu (MediaPipe)",
                           "track_hands": "cpu (MediaPipe)",
                           "encode": self.encoder.where + f" ({codec})"})
        self.fanout: list[list[bytes]] = [[] for _ in range(run.viewers)]
        self.prepare_s = time.perf_counter() - t0
        self.index = 0
        self.shade = shade_bgr_of(self.effects.get("lipstick"))
        self.last_lip_shift: float | None = None

    def _time(self, t: StageTiming) -> None:
        self._ms[t.stage] = self._ms.get(t.stage, 0.0) + t.duration_ms

    def close(self) -> None:
        self.compositor.close()
        self.source.close()

    def step(self, check: bool = False) -> tuple[dict[str, float], Scene]:
        """Run one frame through every stage; ``check`` samples lipstick correctness."""
        clock = time.perf_counter_ns
        i = self.index
        self.index += 1
        ts = i / self.run.fps
        self._ms = ms = {}
        t = clock()
        image = self.source.next()
        ms["decode"] = (clock() - t) / 1e6
        before = image.copy() if check and "lipstick" in self.effects else None
        out = self.compositor.process(image, ts, i, self.state, host=False)
        image, scene = out.image, out.scene
        total = ms.pop("effects", 0.0)
        if self.gpu_chain:  # opening the frame, upload, GPU passes, readback
            spent = sum(v for k, v in ms.items() if k.startswith("effect:"))
            ms["effect:composite"] = max(0.0, total - spent)
        self.last_lip_shift = None
        if before is not None and self.shade is not None:
            self.last_lip_shift = lip_shift(before, image, scene, self.shade)
        te = clock()
        packets = self.encoder.encode(image, i)
        for q in self.fanout:  # one shared encode, handed to every viewer
            q[:] = packets
        ms["encode"] = (clock() - te) / 1e6
        self._last_packets = len(packets)
        return ms, scene


def run_stages(run: StageRun, backend: Any = None,
               progress: Callable[[str], None] | None = None) -> StageResult:
    """Warm up, then time ``run.frames`` frames back to back at one resolution."""
    pipe = StagePipeline(run, backend=backend)
    res = StageResult(run, pipe.source_name, where=dict(pipe.where), prepare_s=pipe.prepare_s)
    if backend is not None:
        res.where["render_backend"] = _backend_line(backend)
    check_every = max(1, run.frames // max(1, run.checks))
    try:
        for _ in range(run.warmup):
            pipe.step()
        t0 = time.perf_counter()
        for k in range(run.frames):
            check = k % check_every == check_every // 2
            ms, scene = pipe.step(check=check)
            for name, v in ms.items():
                res.stages.setdefault(name, []).append(v)
            res.total_ms.append(sum(ms.values()))
            res.faces_found += len(scene.faces) > 0
            res.hands_found += len(scene.hands) > 0
            if pipe._last_packets == 0:
                res.encoder_frames_without_packet += 1
            if check and pipe.last_lip_shift is not None:
                res.lip_checks.append(pipe.last_lip_shift)
            if progress is not None and k % 50 == 49:
                progress(f"{run.resolution}: {k + 1}/{run.frames} frames")
        res.wall_s = time.perf_counter() - t0
        res.encoded_bytes = pipe.encoder.bytes
    finally:
        pipe.close()
    return res


def _backend_line(backend: Any) -> str:
    name = getattr(backend, "name", type(backend).__name__)
    renderer = getattr(backend, "renderer", "")
    reason = getattr(backend, "fallback_reason", None)
    line = f"{name}" + (f" ({renderer})" if renderer else "")
    return line + (f"; fallback: {reason}" if reason else "")


def iter_resolutions(names: list[str]) -> Iterator[str]:
    for n in names:
        if n not in RESOLUTIONS:
            raise ValueError(f"unknown resolution {n!r}; known: {', '.join(RESOLUTIONS)}")
        yield n
