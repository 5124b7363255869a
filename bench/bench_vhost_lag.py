"""The virtual host's lag, glass to glass: how long after the host's mouth opens (or
closes) in the camera the character's mouth does on a viewer's screen, in replace mode.

In replace mode the character covers the whole picture, so no frame id burned into the
camera's corners survives (the glass-to-glass benches measure the virtual host beside the
host for that reason). Here the camera itself is the signal: an aiortc WHIP publisher
alternates two real frames of one talking-head clip (``grid_talking``), mouth closed and
mouth wide open, every ``--hold`` seconds, into the demo room of an ``arengine serve``
whose virtual host stands in for the host. An aiortc WHEP viewer in this process keeps
every decoded frame (grey, 512x288) with its arrival time.

Afterwards the mouth is found in the output as the patch that differs most between the
settled "open" and "closed" pictures (the second half of each hold), and each frame is
scored by where its pixels lie between the two (0 closed, 1 open). A switch's lag runs from the
moment the first camera frame of the new mouth was handed to WebRTC to the arrival of the
first frame scored past half way to it (and the next one too). It covers the publisher's
encode, WHIP, the server (decode, face tracking, the rig and its smoothing, the character,
the encode), WHEP and the viewer's decode: the latency a virtual host's audience sees,
against the plan's 0.3 s.

    python bench/bench_vhost_lag.py [--cycles 12] [--hold 1.0] [--size 1280x720]
                                    [--compositor thread,process] [--out bench/out/vhost_lag]

writes ``vhost_lag.json`` and ``vhost_lag.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np

from arengine.bench.args import compositors, frame_size
from arengine.bench.glass import CameraClock
from arengine.bench.machine import load_average, machine_info
from arengine.bench.report import write_outputs
from arengine.bench.stats import PERCENTILE_METHOD, summarize
from arengine.data import REPO_DIR, shared_data_dir

if str(REPO_DIR) not in sys.path:  # bench_paths' publisher and bench_sfu's server helpers
    sys.path.insert(0, str(REPO_DIR))

from bench.bench_paths import camera_in_room
from bench.bench_sfu import ROOM, ServeProcess

KEPT = (512, 288)  # each received frame is kept grey at this size
# At that size the character's mouth is about 20 px across: the patch that finds it and
# the radius kept around it.
MOUTH_PATCH, MOUTH_RADIUS = 11, 14
WARMUP_S = 6.0  # closed mouth first: the rig calibrates its neutral pose on it
CLIP = "grid_talking/lbax4n.mpg"


# -- the camera ---------------------------------------------------------------------------


def mouth_gap(points: np.ndarray) -> float:
    """Inner-lip gap over mouth width (MediaPipe points 13/14 and 61/291)."""
    width = float(np.linalg.norm(points[291, :2] - points[61, :2]))
    return float(np.linalg.norm(points[14, :2] - points[13, :2])) / max(width, 1e-6)


def mouth_pictures(clip: Path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The clip's frames with the most closed and the most open mouth, each fitted into a
    black ``size`` picture (as a camera at a desk would frame the host)."""
    from arengine.tracking import FaceTracker

    cap = cv2.VideoCapture(str(clip))
    frames = []
    while len(frames) < 200:  # bounded: the clips are 3 s
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise RuntimeError(f"cannot read {clip}")
    w, h = size
    fitted = []
    for f in frames:
        scale = min(w / f.shape[1], h / f.shape[0])
        small = cv2.resize(f, (round(f.shape[1] * scale), round(f.shape[0] * scale)),
                           interpolation=cv2.INTER_CUBIC)
        canvas = np.zeros((h, w, 3), np.uint8)
        y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
        fitted.append(canvas)
    gaps = []
    with FaceTracker("image", max_faces=1) as tracker:
        for img in fitted:
            faces = tracker.detect(img)
            gaps.append(mouth_gap(faces.points[0]) if len(faces) else float("nan"))
    if np.all(np.isnan(gaps)):
        raise RuntimeError(f"no face found in {clip}")
    return fitted[int(np.nanargmin(gaps))], fitted[int(np.nanargmax(gaps))]


class MouthCamera(CameraClock):
    """A camera showing the closed mouth for ``warmup`` s, then the open and the closed
    mouth in turns, ``hold`` s each, ``cycles`` times; ``switches`` holds (time the first
    frame of a new mouth was handed to WebRTC, "open"/"closed")."""

    def __init__(self, closed: np.ndarray, opened: np.ndarray, fps: int, hold: float,
                 cycles: int, warmup: float = WARMUP_S) -> None:
        super().__init__(fps=fps, pictures=[closed, opened])
        self.hold = hold
        self.cycles = cycles
        self.warmup = warmup
        self.switches: list[tuple[float, str]] = []
        self._shown: str | None = None

    def state_at(self, t: float) -> str:
        if t < self.warmup:
            return "closed"
        step = int((t - self.warmup) / self.hold)
        return "open" if step % 2 == 0 and step < 2 * self.cycles else "closed"

    @property
    def duration(self) -> float:
        return self.warmup + 2 * self.cycles * self.hold

    async def next(self) -> tuple[int, np.ndarray]:
        index = await self.tick()
        state = self.state_at(index / self.fps)
        img = self.pictures[state == "open"].copy()
        sent = self.sent[index] = time.perf_counter()
        if state != self._shown:
            if self._shown is not None:
                self.switches.append((sent, state))
            self._shown = state
        return index, img


# -- the analysis -------------------------------------------------------------------------


def mouth_lags(frames: list[tuple[float, np.ndarray]], switches: list[tuple[float, str]],
               hold: float, min_pixels: int = 20) -> dict[str, Any]:
    """Per switch, the lag (ms) until the output's mouth shows the new state (see the
    module docstring); also the mouth mask's size and how clearly frames separate."""
    times = np.array([t for t, _ in frames])
    stack = np.stack([f for _, f in frames]).astype(np.float32)
    settled: dict[str, list[int]] = {"open": [], "closed": []}
    for t, state in switches:
        settled[state] += list(np.flatnonzero((times >= t + hold / 2) & (times < t + hold)))
    if not settled["open"] or not settled["closed"]:
        raise RuntimeError("no settled frames of both mouths: is --hold too short?")
    opened = stack[settled["open"]].mean(axis=0)
    closed = stack[settled["closed"]].mean(axis=0)
    diff = np.abs(opened - closed)
    # The mouth: the changed pixels around the most changed patch. The two camera frames
    # also differ a little in head pose and eyes, which the rig smooths more (its head
    # filter's cutoff is 1.5 Hz against the mouth's 6 Hz): thin outlines in the
    # difference, not a patch, and kept out.
    y, x = np.unravel_index(int(np.argmax(cv2.blur(diff, (MOUTH_PATCH, MOUTH_PATCH)))),
                            diff.shape)
    yy, xx = np.mgrid[:diff.shape[0], :diff.shape[1]]
    mask = ((yy - y) ** 2 + (xx - x) ** 2 <= MOUTH_RADIUS ** 2) & (diff > 25.0)
    if int(mask.sum()) < min_pixels:
        raise RuntimeError(f"the character's mouth did not follow the host's: {int(mask.sum())} "
                           f"pixels differ between the settled pictures")
    # Each frame's place between the two settled mouths: 0 closed, 1 open (its mouth
    # pixels projected on the difference between them).
    axis = opened[mask] - closed[mask]
    score = (stack[:, mask] - closed[mask]) @ axis / float(axis @ axis)
    lags: list[dict[str, Any]] = []
    for t, state in switches:
        after = np.flatnonzero((times > t) & (times < t + hold))
        past = (score[after] > 0.5) if state == "open" else (score[after] < 0.5)
        hit = next((i for k, i in enumerate(after[:-1]) if past[k] and past[k + 1]), None)
        lags.append({"to": state, "lag_ms": None if hit is None
                     else 1000 * (times[hit] - t)})
    t0 = switches[0][0]
    return {"mask_pixels": int(mask.sum()), "lags": lags,
            "trace": {"switches_s": [round(t - t0, 4) for t, _ in switches],
                      "frames_s": [round(float(t) - t0, 4) for t in times],
                      "score": [round(float(x), 3) for x in score]},
            "score_settled": {"open": float(score[settled["open"]].mean()),
                              "closed": float(score[settled["closed"]].mean())}}


# -- the run ------------------------------------------------------------------------------


async def run(args: argparse.Namespace, compositor: str) -> dict[str, Any]:
    from arengine.transport.client import WhepClient

    w, h = args.size
    closed, opened = await asyncio.to_thread(mouth_pictures, args.clip, (w, h))
    camera = MouthCamera(closed, opened, args.fps, args.hold, args.cycles)
    frames: list[tuple[float, np.ndarray]] = []

    def on_frame(frame: Any) -> None:
        if len(frames) < 60 * 60:  # bounded: an hour's frames at most
            grey = frame.to_ndarray(format="gray")
            frames.append((time.perf_counter(), cv2.resize(grey, KEPT,
                                                           interpolation=cv2.INTER_AREA)))

    with tempfile.TemporaryDirectory(prefix="arengine-vhost-lag-") as tmp, \
            httpx.Client(timeout=30) as sync_http:
        flags = ["--size", f"{w}x{h}", "--fps", str(args.fps), "--no-demo-crowd",
                 "--effects", "virtual_host", "--output-kinds", "none",
                 "--compositor", compositor]
        server = ServeProcess(Path(tmp) / "arengine", flags)
        async with camera_in_room(server, camera, sync_http):
            r = sync_http.put(f"{server.url}/api/rooms/{ROOM}/effects", headers=server.auth,
                              json={"effects": {"virtual_host": {
                                  "enabled": True, "settings": {"mode": "replace",
                                                                "background": "studio"}}}})
            r.raise_for_status()
            async with httpx.AsyncClient(timeout=30) as http:
                viewer = WhepClient(http, f"{server.url}/whep/{ROOM}")
                await viewer.play(on_frame=on_frame)
                try:
                    assert camera._start is not None
                    await asyncio.sleep(max(0.0, camera._start + camera.duration + 1.0
                                            - time.perf_counter()))
                finally:
                    await viewer.close()
            stats = sync_http.get(f"{server.url}/api/rooms/{ROOM}/stats",
                                  headers=server.auth).json()
    measured = mouth_lags([f for f in frames if f[0] >= camera.switches[0][0] - 1.0],
                          camera.switches, args.hold)
    lags = [x["lag_ms"] for x in measured["lags"] if x["lag_ms"] is not None]
    return {"compositor": compositor, "frames_received": len(frames),
            "switches": len(camera.switches),
            "missed": sum(x["lag_ms"] is None for x in measured["lags"]),
            "lag_ms": summarize(lags).to_dict() if lags else None,
            "lag_ms_to_open": _summary(measured, "open"),
            "lag_ms_to_closed": _summary(measured, "closed"),
            "tracking": stats.get("tracking"), **measured}


def _summary(measured: dict[str, Any], state: str) -> dict[str, float] | None:
    lags = [x["lag_ms"] for x in measured["lags"] if x["to"] == state and x["lag_ms"]]
    return summarize(lags).to_dict() if lags else None


def markdown(report: dict[str, Any]) -> str:
    """The runs side by side (one per compositor), then what the lag covers."""
    s = report["settings"]
    lines = [f"# The virtual host's lag, glass to glass ({s['size']} at {s['fps']} fps, "
             f"replace mode, {s['cycles']} open/close cycles of {s['hold_s']:g} s each)", "",
             "| compositor | mouth | switches | lag p50 ms | p95 | max |",
             "|---|---|---:|---:|---:|---:|"]
    for run in report["runs"]:
        for name, state in (("opens", "open"), ("closes", "closed"), ("both", None)):
            g = run[f"lag_ms_to_{state}" if state else "lag_ms"]
            n = sum(1 for x in run["lags"] if state is None or x["to"] == state)
            cells = f"{g['median']:.0f} | {g['p95']:.0f} | {g['max']:.0f}" if g \
                else "– | – | –"
            lines.append(f"| {run['compositor']} | {name} | {n} | {cells} |")
    lines.append("")
    for run in report["runs"]:
        lines.append(f"Compositor {run['compositor']}: {run['missed']} of {run['switches']} "
                     f"switches never showed within the hold; {run['frames_received']} "
                     f"frames received; the mouth found as {run['mask_pixels']} pixels of the "
                     f"{KEPT[0]}x{KEPT[1]} picture (settled scores: open "
                     f"{run['score_settled']['open']:.2f}, closed "
                     f"{run['score_settled']['closed']:.2f}).")
    lines += ["", "The lag runs from the publisher handing the first frame of the new mouth "
                  "to WebRTC to the arrival of the first decoded frame whose character shows "
                  "it: aiortc VP8 encode, WHIP over loopback, the server (decode, face "
                  "tracking, the rig and its smoothing, the character, the VP8 encode), WHEP "
                  "and the viewer's decode. Frames arrive every 33 ms, so each lag is late by "
                  "up to one frame.", "", f"Load average after: {report['load_average_after']}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=12, help="open/close cycles (default 12)")
    ap.add_argument("--hold", type=float, default=1.0,
                    help="seconds each mouth is held (default 1.0)")
    ap.add_argument("--size", default="1280x720", help="camera size (default 1280x720)")
    ap.add_argument("--fps", type=int, default=30, help="camera frame rate (default 30)")
    ap.add_argument("--compositor", default="thread,process",
                    help="where the room's compositor runs, one run each in this order: "
                         "thread, process or both (default thread,process)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/vhost_lag"))
    args = ap.parse_args(argv)
    if not 2 <= args.cycles <= 100:
        ap.error("--cycles takes 2..100")
    if not 0.4 <= args.hold <= 10:
        ap.error("--hold takes 0.4..10 s")
    if not 5 <= args.fps <= 60:
        ap.error("--fps takes 5..60")
    args.size = frame_size(ap, args.size)
    args.compositor = compositors(ap, args.compositor)
    args.clip = shared_data_dir() / CLIP
    if not args.clip.is_file():
        ap.error(f"the talking-head clip {args.clip} is missing (set ARENGINE_DATA)")
    runs = []
    try:
        for compositor in args.compositor:  # bounded: at most two
            runs.append(asyncio.run(run(args, compositor)))
    except (RuntimeError, TimeoutError, httpx.HTTPError) as e:
        print(f"bench_vhost_lag: {e}", file=sys.stderr)
        return 1
    report = {"benchmark": "vhost_lag", "machine": machine_info(),
              "settings": {"cycles": args.cycles, "hold_s": args.hold,
                           "size": "{}x{}".format(*args.size), "fps": args.fps,
                           "compositors": args.compositor, "clip": CLIP},
              "clock": "time.perf_counter (CLOCK_MONOTONIC), publisher and viewer in one "
                       "process", "percentiles": PERCENTILE_METHOD,
              "load_average_after": load_average(), "runs": runs}
    print(write_outputs(args.out, "vhost_lag", report, markdown(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
