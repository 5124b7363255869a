"""Glass to glass: camera picture to viewer's screen, through the real server and browser.

The measurement itself is the server's browser loopback harness (``bench/bench_e2e.py``):
a fake camera burns frame ids (:mod:`arengine.bench.frameid`) into a canvas, publishes it
over WHIP, the engine processes it, a WHEP viewer in the same browser reads the ids back
and the time between drawing and seeing each id is one sample. Both ends share one clock,
so no clock sync is needed. All effects on and pass-through run side by side in one run,
so the difference is what the effects cost, on the same machine load.

Without that harness (or a browser), :func:`loopback` measures the same path with aiortc
peers instead of a browser: a fake camera track burns ids into a real moving face at
30 fps and publishes it over WHIP to an in-process server; an aiortc WHEP viewer decodes
the output and reads the ids. That covers encode -> RTP -> server decode -> tracking and
effects -> encode -> RTP -> viewer decode; it leaves out the camera's capture and the
screen's display (each about a frame), which the report says.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from arengine.bench.frameid import CORNERS, burn_frame_id, read_frame_id
from arengine.bench.stats import summarize
from arengine.data import REPO_DIR

HARNESS = REPO_DIR / "bench" / "bench_e2e.py"


def _load_harness() -> Any:
    spec = importlib.util.spec_from_file_location("arengine_bench_e2e", HARNESS)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HARNESS.name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summarize_paths(samples: dict[str, list[float]]) -> dict[str, Any]:
    """Percentiles per path and the effects-minus-pass-through difference."""
    paths = {k: summarize(v).to_dict() for k, v in samples.items() if v}
    out: dict[str, Any] = {"status": "measured", "paths": paths}
    if "effects" in paths and "passthrough" in paths:
        out["difference_ms"] = {q: paths["effects"][q] - paths["passthrough"][q]
                                for q in ("median", "p95", "p99")}
    return out


def run_glass(seconds: float, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The browser harness when it is there and works, else the aiortc loopback."""
    harness_error = None
    if HARNESS.is_file():
        if progress is not None:
            progress(f"glass to glass: {seconds:g} s per path through the browser loopback")
        try:
            measure = getattr(_load_harness(), "measure", None)
            if not callable(measure):
                raise RuntimeError("bench/bench_e2e.py has no measure(seconds) function")
            out = summarize_paths(measure(seconds))
            out.update({"method": BROWSER_METHOD, "seconds": seconds})
            return out
        except Exception as e:
            harness_error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            if progress is not None:
                progress(f"glass to glass: the browser harness failed ({harness_error}); "
                         "using the aiortc loopback")
    elif progress is not None:
        progress(f"glass to glass: aiortc loopback, {seconds:g} s per path")
    try:
        out = loopback(seconds)
    except Exception as e:
        out = {"status": "not measured", "reason": f"the aiortc loopback failed: {e}"
               + (f"; the browser harness failed too: {harness_error}" if harness_error
                  else "")}
    if harness_error:
        out["browser_harness_error"] = harness_error
    return out


BROWSER_METHOD = ("browser loopback (Chromium via bench/bench_e2e.py): canvas camera with "
                  "burned frame ids at 854x480, 30 fps -> WHIP -> engine -> WHEP -> <video>, "
                  "id read per displayed frame; paths one after the other")


# -- the aiortc loopback ----------------------------------------------------------------------

class CameraClock:
    """A fake camera: a real moving face at ``fps`` with a frame id in two corners.

    ``sent[id]`` is the perf_counter time the frame was handed to WebRTC (captured).
    The id goes in all four corners so that on-screen layers (a poll card, a product
    card, the avatar column) covering some corners do not lose the frame.
    """

    def __init__(self, width: int = 854, height: int = 480, fps: int = 30,
                 pictures: list[np.ndarray] | None = None) -> None:
        """``pictures``: what to show instead of the moving face (then of any size)."""
        if pictures is None:
            from arengine.bench.stages import source_pictures

            pictures, _ = source_pictures(None, width, height, 90)
        self.pictures = pictures
        self.fps = fps
        self.sent: dict[int, float] = {}
        self._start: float | None = None
        self._index = -1

    async def tick(self) -> int:
        """Wait for the next frame's moment at ``fps`` from the first call; its index (a
        late call skips the frames it missed, as a camera would)."""
        now = time.perf_counter()
        if self._start is None:
            self._start = now
        index = max(self._index + 1, int((now - self._start) * self.fps))
        wait = self._start + index / self.fps - now
        if wait > 0:
            await asyncio.sleep(wait)
        self._index = index
        return index

    async def next(self) -> tuple[int, np.ndarray]:
        index = await self.tick()
        img = self.pictures[index % len(self.pictures)].copy()
        for corner in CORNERS:
            burn_frame_id(img, index, corner)  # type: ignore[arg-type]
        self.sent[index] = time.perf_counter()
        return index, img


def _camera_track(clock: CameraClock) -> Any:
    import av
    from aiortc import MediaStreamTrack

    class CameraTrack(MediaStreamTrack):
        kind = "video"

        async def recv(self) -> av.VideoFrame:
            index, img = await clock.next()
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = round(index * 90000 / clock.fps)
            frame.time_base = Fraction(1, 90000)
            return frame

    return CameraTrack()


def read_any_corner(image: np.ndarray) -> int | None:
    """The id from the first corner that reads (layers may cover some corners)."""
    for corner in CORNERS:
        fid = read_frame_id(image, corner)  # type: ignore[arg-type]
        if fid is not None:
            return fid
    return None


async def _one_path(name: str, seconds: float, warmup: float) -> tuple[list[float], int, int]:
    """Latency samples, unreadable frames and frames sent, for one room's path."""
    import tempfile

    from arengine.app import create_app, running
    from arengine.bench.stages import stage_busy_room
    from arengine.pipeline.room import RoomConfig
    from arengine.settings import Settings
    from arengine.transport.client import WhepClient, WhipClient

    config = RoomConfig(demo=False) if name == "effects" else \
        RoomConfig(demo=False, effects=(), track_faces=False, track_hands=False)
    samples: list[float] = []
    unread = [0]
    t_measure = [float("inf")]
    camera = CameraClock()
    seen: set[int] = set()

    def on_frame(frame: Any) -> None:
        now = time.perf_counter()
        fid = read_any_corner(frame.to_ndarray(format="bgr24"))
        if fid is None:
            unread[0] += now >= t_measure[0]
            return
        sent = camera.sent.get(fid)
        if fid in seen or sent is None or sent < t_measure[0]:
            return
        seen.add(fid)
        samples.append((now - sent) * 1000.0)

    clients: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="arengine-glass-") as tmp:
        app = create_app(Settings(db=f"{tmp}/bench.db", demo=False, room=config,
                                  codec="vp8"))
        token = f"bench-host-token-{name}"
        async with running(app) as http:
            room, _ = await app.state.hub.create_room(name, name, host_token=token)
            if name == "effects":
                await stage_busy_room(room, 10)
            try:
                whip = WhipClient(http, f"/whip/{name}")
                clients.append(whip)
                await whip.publish(_camera_track(camera), token, "vp8")
                whep = WhepClient(http, f"/whep/{name}")
                clients.append(whep)
                await whep.play("vp8", data_channel=False, on_frame=on_frame)
                # Peers and models take seconds to start on a small machine: warm up from
                # the first picture the viewer sees.
                await whep.wait_frames(1, timeout=60.0)
                await asyncio.sleep(warmup)
                t_measure[0] = time.perf_counter()
                first = camera._index
                await asyncio.sleep(seconds)
                sent = camera._index - first
            finally:
                for c in reversed(clients):
                    with contextlib.suppress(Exception):
                        await c.close()
    return samples, unread[0], sent


async def _loopback(seconds: float, warmup: float) -> dict[str, Any]:
    samples: dict[str, list[float]] = {}
    unread: dict[str, int] = {}
    sent: dict[str, int] = {}
    for name in ("passthrough", "effects"):
        samples[name], unread[name], sent[name] = await _one_path(name, seconds, warmup)
    out = summarize_paths(samples)
    out.update({
        "method": "aiortc loopback in one process: fake camera (real face, 854x480 at 30 "
                  "fps, burned frame ids) -> WHIP -> engine -> WHEP -> aiortc decoder; "
                  "camera capture and display are not included; the two paths run one "
                  "after the other in the same run (together they would share 2 cores)",
        "seconds": seconds, "frames_sent": sent, "unreadable_frames": unread,
        "frames_received_share": {k: len(samples[k]) / max(1, sent[k]) for k in samples}})
    return out


def loopback(seconds: float, warmup: float = 4.0) -> dict[str, Any]:
    """Glass to glass through aiortc peers: effects and pass-through rooms side by side."""
    return asyncio.run(_loopback(seconds, warmup))
