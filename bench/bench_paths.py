"""Glass to glass through each way a viewer can watch a room, side by side in one run.

One aiortc WHIP publisher (:class:`~arengine.bench.glass.CameraClock`: a real moving face
at 30 fps with the frame id burned into its corners) publishes into the demo room of an
``arengine serve`` process (every effect on, the demo crowd's layers drawing). The room is
watched at the same time through:

- ``whep``: arengine's own WHEP, an aiortc viewer;
- ``janus``: the room's Janus output, an aiortc subscriber through Janus's HTTP API;
- ``rtmp``: the room's RTMP push into nginx-rtmp, pulled back over RTMP with PyAV;
- ``hls``: nginx-rtmp's HLS of that push, read with PyAV's HLS demuxer, plus what the
  playlist says a player starting three segments back would show (seconds, not ms).

Each receiver runs in a process of its own (its decoding has its own interpreter lock) and
notes when each id is first seen; the publisher notes when each id is handed to WebRTC.
Both clocks are ``time.perf_counter`` = CLOCK_MONOTONIC, one clock for the whole machine,
so receive time minus send time is the latency of that frame through that path. Far ends
are Debian's Janus and nginx-rtmp, started with private configs by the tests' launch
helpers (``tests/transport/janus_server.py``, ``tests/transport/nginx_rtmp.py``).

    python bench/bench_paths.py [--seconds 30] [--paths whep,janus,rtmp,hls]
                                [--out bench/out/paths]

writes ``paths.json`` (every figure, the method of each path) and ``paths.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from arengine.bench.args import frame_size
from arengine.bench.glass import CameraClock, read_any_corner
from arengine.bench.machine import load_average, machine_info
from arengine.bench.stats import PERCENTILE_METHOD, summarize
from arengine.data import REPO_DIR
from arengine.transport.jitter import use_marker_jitter_buffer

if str(REPO_DIR) not in sys.path:  # the far ends' launch helpers live with the tests
    sys.path.insert(0, str(REPO_DIR))

import pytest  # the launch helpers report a missing far end as a pytest skip

from bench.bench_sfu import (
    ROOM,
    ChildProcess,
    ServeProcess,
    janus_missing,
    janus_running,
    machine_cpu,
    room_stats,
    start_output,
    stop_output,
    tree_cpu_seconds,
    wait_until,
)
from tests.transport.janus_server import JanusServer, JanusSubscriber
from tests.transport.nginx_rtmp import NginxRtmp

PATHS = ("whep", "janus", "rtmp", "hls")
JANUS_ROOM = 4243
STREAM_KEY = "bench"
LIVE_START_INDEX = -1  # the HLS reader starts at the newest segment (players start at -3)
PLAYER_SEGMENTS = 3  # hls.js and Safari start three segments back from the live edge

INCLUDES = {
    "whep": "publisher's aiortc VP8 encode, WHIP over loopback, the engine (decode, "
            "tracking, every effect, the room's one VP8 encode), WHEP packetization and "
            "SRTP, aiortc's jitter buffer and VP8 decode in the viewer",
    "janus": "as WHEP up to the room's VP8 encode, then the janus output forwarding those "
             "packets to Janus, Janus's VideoRoom forwarding to the subscriber, aiortc's "
             "jitter buffer and VP8 decode in the subscriber",
    "rtmp": "the engine as above, then the RTMP output's own H.264 encode (libx264 "
            "superfast, zerolatency) and FLV over RTMP/TCP to nginx-rtmp (live), pulled back "
            "over RTMP with PyAV (FFmpeg's flv demuxer with nobuffer, slice-threaded H.264 "
            "decode)",
    "hls": "the RTMP push as above, nginx-rtmp cutting it into segments at keyframes and "
           "writing the playlist, read from the playlist file with PyAV's HLS demuxer",
}
EXCLUDES = ("camera capture and display, a browser's jitter buffer, decode and rendering "
            "(bench_e2e.py measures Chromium over WHEP), a real network (everything is on "
            "127.0.0.1), and for RTMP/HLS a platform's transcoding, CDN and HTTP delivery")


# -- receivers (each in its own process) --------------------------------------------------------


class Seen:
    """When each frame id was first seen by one receiver, and what could not be read."""

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.frames = 0
        self.unread = 0
        self._ready = threading.Event()
        self._lock = threading.Lock()

    def add(self, frame: av.VideoFrame) -> None:
        now = time.perf_counter()  # before any conversion: that is the reader's own cost
        # The luma plane alone: the id is black and white, and a bgr24 copy of every frame
        # (read up to six times when corners are covered) would make the reader the
        # bottleneck of its own path on a small machine.
        fid = read_any_corner(frame.to_ndarray(format="gray"))
        with self._lock:
            self.frames += 1
            if fid is None:
                self.unread += 1
                return
            self.first.setdefault(fid, now)
        if not self._ready.is_set():
            self._ready.set()
            _say("ready", {"size": [frame.width, frame.height]})

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {"first": [[i, t] for i, t in self.first.items()], "frames": self.frames,
                    "unreadable": self.unread}


_say_lock = threading.Lock()


def _say(kind: str, body: dict[str, Any]) -> None:
    with _say_lock:
        print(f"{kind} {json.dumps(body)}", flush=True)


def complete_on_marker(pc: RTCPeerConnection) -> None:
    """Make a viewer's video receivers complete frames on the RTP marker bit, as browsers
    do: aiortc's own jitter buffer holds each frame until the next one starts, one frame
    interval that no browser viewer waits (see :mod:`arengine.transport.jitter`)."""

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:  # before the first packet arrives
        for t in pc.getTransceivers():
            if t.kind == "video" and t.receiver.track is track:
                use_marker_jitter_buffer(t.receiver)


class IdSubscriber(JanusSubscriber):
    """The tests' Janus subscriber, each decoded frame handed to ``on_frame``."""

    def __init__(self, http: httpx.AsyncClient, url: str, room: int, feed: int,
                 on_frame: Callable[[av.VideoFrame], None]) -> None:
        super().__init__(http, url, room, feed)
        self.on_frame = on_frame
        complete_on_marker(self.pc)

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    self.frames += 1
                    self.on_frame(frame)


async def _receive_webrtc(path: str, url: str, room: int, feed: int, seen: Seen,
                          stop: threading.Event) -> None:
    from arengine.transport.client import WhepClient

    async with httpx.AsyncClient(timeout=40) as http:
        peer: IdSubscriber | WhepClient
        if path == "janus":
            peer = IdSubscriber(http, url, room, feed, seen.add)
        else:
            peer = WhepClient(http, f"{url}/whep/{ROOM}")
            complete_on_marker(peer.pc)
        try:
            if isinstance(peer, IdSubscriber):
                await peer.start()
            else:
                await peer.play("vp8", data_channel=False, on_frame=seen.add)
            while not stop.is_set():
                await asyncio.sleep(0.1)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(peer.close(), 10)


def _receive_pyav(source: str, options: dict[str, str], seen: Seen,
                  stop: threading.Event) -> None:
    """Decode a live stream with PyAV as fast as it comes (a player's reader, no pacing)."""
    with av.open(source, options=options, timeout=(30.0, 10.0)) as c:
        video = c.streams.video[0]
        video.thread_type = "SLICE"  # frame threads would hold frames back, one per thread
        for packet in c.demux(video):
            if stop.is_set():
                break
            for frame in packet.decode():
                seen.add(frame)


def receiver_main(argv: list[str]) -> int:
    """Entry of a receiver process: ``--receiver PATH SOURCE [ROOM FEED]``; it reports what
    it saw on ``stop`` (or EOF) on stdin."""
    path, source, *rest = argv
    seen = Seen()
    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.readline()  # "stop", or EOF when the benchmark is gone
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        if path in ("whep", "janus"):
            room, feed = (int(x) for x in rest) if rest else (0, 0)
            asyncio.run(_receive_webrtc(path, source, room, feed, seen, stop))
        elif path == "rtmp":
            _receive_pyav(source, {"fflags": "nobuffer", "rtmp_live": "live",
                                   "rtmp_buffer": "100"}, seen, stop)
        else:
            deadline = time.monotonic() + 60
            while not Path(source).exists() and not stop.is_set():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no HLS playlist at {source} within 60 s")
                time.sleep(0.2)
            _receive_pyav(source, {"live_start_index": str(LIVE_START_INDEX)}, seen, stop)
    except Exception as e:
        _say("error", {"error": f"{type(e).__name__}: {e}"})
    stop.wait(600)  # a stream that ended early still reports when asked
    _say("seen", seen.report())
    return 0


class ReceiverProcess(ChildProcess):
    def __init__(self, path: str, source: str, *extra: str) -> None:
        super().__init__([str(Path(__file__).resolve()), "--receiver", path, source, *extra])


# -- the publisher ------------------------------------------------------------------------------


class CameraTrack(MediaStreamTrack):
    """:class:`CameraClock`'s pictures as a WebRTC video track (pts from the frame id)."""

    kind = "video"

    def __init__(self, clock: CameraClock) -> None:
        super().__init__()
        self.clock = clock

    async def recv(self) -> av.VideoFrame:
        index, img = await self.clock.next()
        frame = av.VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts = round(index * 90000 / self.clock.fps)
        frame.time_base = Fraction(1, 90000)
        return frame


@contextlib.asynccontextmanager
async def camera_in_room(server: ServeProcess, camera: CameraClock,
                         sync_http: httpx.Client) -> AsyncIterator[None]:
    """``server`` started and ``camera`` published into its demo room over WHIP (VP8) until
    the room shows it connected; on the way out the WHIP session ends, then the server."""
    from arengine.transport.client import WhipClient

    try:
        await asyncio.to_thread(server.start)
        async with httpx.AsyncClient(timeout=30) as http:
            whip = WhipClient(http, f"{server.url}/whip/{ROOM}")
            try:
                await whip.publish(CameraTrack(camera), server.token, "vp8")
                await asyncio.to_thread(
                    wait_until, lambda: (room_stats(sync_http, server).get("publisher")
                                         or {}).get("state") == "connected",
                    60, "the WHIP publisher to connect")
                yield
            finally:
                await whip.close()
    finally:
        await asyncio.to_thread(server.stop)


# -- HLS playlist -------------------------------------------------------------------------------


def read_playlist(playlist: Path) -> dict[str, Any] | None:
    """Segment durations and the newest segment's age (s) from nginx's live playlist."""
    try:
        text = playlist.read_text()
        names = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
        durations = [float(d) for d in re.findall(r"#EXTINF:([0-9.]+)", text)]
        if not names or len(durations) != len(names):
            return None
        age = time.time() - (playlist.parent / names[-1]).stat().st_mtime
    except (OSError, ValueError):
        return None
    target = re.search(r"#EXT-X-TARGETDURATION:(\d+)", text)
    return {"durations": durations, "newest_age_s": age,
            "target_duration_s": int(target.group(1)) if target else None}


def playlist_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    if not samples:
        return {"samples": 0}
    player = [sum(s["durations"][-PLAYER_SEGMENTS:]) + s["newest_age_s"] for s in samples]
    durations = [d for s in samples for d in s["durations"]]
    return {
        "method": f"nginx's playlist read once a second during the window: a player that "
                  f"starts {PLAYER_SEGMENTS} segments back from the live edge (hls.js, Safari) "
                  f"and plays in real time is behind by the last {PLAYER_SEGMENTS} segments' "
                  f"durations plus the newest segment's age (now minus its file's mtime); "
                  f"the RTMP leg before nginx (see the rtmp path) and the player's own "
                  f"decoding come on top",
        "samples": len(samples),
        "player_estimate_s": summarize(player).to_dict(),
        "segment_s": summarize(durations).to_dict(),
        "newest_age_s": summarize([s["newest_age_s"] for s in samples]).to_dict(),
        "segments_in_playlist": float(np.mean([len(s["durations"]) for s in samples])),
        "target_duration_s": samples[-1]["target_duration_s"],
    }


# -- the run ------------------------------------------------------------------------------------


@contextlib.contextmanager
def maybe_janus(folder: Path, wanted: bool) -> Iterator[JanusServer | None]:
    if not wanted:
        yield None
        return
    with janus_running(folder) as janus:
        yield janus


@contextlib.contextmanager
def maybe_nginx(folder: Path, wanted: bool) -> Iterator[NginxRtmp | None]:
    """nginx-rtmp (with HLS) from the tests' helper, killed at the end."""
    if not wanted:
        yield None
        return
    server = NginxRtmp(folder)
    try:
        server.start()
        yield server
    finally:
        server.kill()


def latency_of(sent: dict[int, float], seen: dict[str, Any], t0: float, t1: float,
               scale: float) -> dict[str, Any]:
    """Per frame sent in [t0, t1): receive minus send time, in ms (scale 1000) or s (1)."""
    first = {int(i): float(t) for i, t in seen.get("first", [])}
    window = [i for i, t in sent.items() if t0 <= t < t1]
    samples, misread = [], 0
    for i in window:
        if i in first:
            d = first[i] - sent[i]
            if d < 0:  # seen before it was sent: an overlay read as a valid id
                misread += 1
            else:
                samples.append(d * scale)
    out: dict[str, Any] = {"frames_sent": len(window), "frames_seen": len(samples),
                           "received_share": len(samples) / max(1, len(window)),
                           "misread": misread, "unreadable": seen.get("unreadable"),
                           "frames_decoded": seen.get("frames")}
    out["summary"] = summarize(samples).to_dict() if samples else None
    return out


async def run(args: argparse.Namespace, paths: tuple[str, ...]) -> dict[str, Any]:
    # SIGTERM cancels the run, so the finally blocks below close and kill every child.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    w, h = args.size
    sfu = "janus" in paths
    push = "rtmp" in paths or "hls" in paths
    report: dict[str, Any] = {"paths": {}}
    receivers: dict[str, ReceiverProcess] = {}
    outputs: list[str] = []
    hls_samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="arengine-paths-") as tmp, \
            maybe_janus(Path(tmp) / "janus", sfu) as janus, \
            maybe_nginx(Path(tmp) / "nginx", push) as nginx, \
            httpx.Client(timeout=30) as sync_http:
        flags = ["--size", f"{w}x{h}", "--fps", str(args.fps), "--allow-private-outputs",
                 "--output-kinds", "rtmp,janus", "--limit-sessions", "20",
                 "--demo-crowd" if args.demo_crowd else "--no-demo-crowd"]
        if janus is not None:
            flags += ["--janus", janus.url, "--janus-room", str(JANUS_ROOM)]
        server = ServeProcess(Path(tmp) / "arengine", flags)
        camera = CameraClock(w, h, args.fps)
        # Outputs start once the room shows the publisher (same size as the
        # demo, but a new stream), so no path opens on the demo picture.
        async with camera_in_room(server, camera, sync_http):
            try:
                if sfu:
                    outputs.append(await asyncio.to_thread(
                        start_output, sync_http, server, {"kind": "janus"}))
                if push:
                    assert nginx is not None
                    outputs.append(await asyncio.to_thread(start_output, sync_http, server, {
                        "kind": "rtmp", "url": f"rtmp://127.0.0.1:{nginx.port}/live",
                        "stream_key": STREAM_KEY,
                        "keyframe_interval_s": args.keyframe_interval}))
                for path in paths:
                    if path == "whep":
                        receivers[path] = ReceiverProcess(path, server.url)
                    elif path == "janus":
                        assert janus is not None
                        info = sync_http.get(f"{server.url}/api/rooms/{ROOM}/sfu").json()
                        receivers[path] = ReceiverProcess(path, janus.url,
                                                          str(info["room"]),
                                                          str(info["feed"]))
                    elif path == "rtmp":
                        assert nginx is not None
                        receivers[path] = ReceiverProcess(path, nginx.url(STREAM_KEY))
                    else:
                        assert nginx is not None
                        receivers[path] = ReceiverProcess(
                            path, str(nginx.hls / f"{STREAM_KEY}.m3u8"))
                ready = {}
                for path, r in receivers.items():
                    ready[path] = await asyncio.to_thread(r.expect, "ready", 120.0)
                report["received_size"] = {p: r["size"] for p, r in ready.items()}
                await asyncio.sleep(args.warmup)
                pids = {"arengine": server.proc.pid if server.proc else 0,
                        **{f"receiver {p}": r.pid() for p, r in receivers.items()}}
                if janus is not None and janus.proc is not None:
                    pids["janus"] = janus.proc.pid
                if nginx is not None and nginx.proc is not None:
                    pids["nginx"] = nginx.proc.pid
                t0 = time.perf_counter()
                cpu0 = ({k: tree_cpu_seconds(v) for k, v in pids.items()},
                        time.process_time(), machine_cpu())
                stats0 = await asyncio.to_thread(room_stats, sync_http, server)
                load0 = load_average()
                tail = 2.0 + (3 * args.keyframe_interval + 4.0 if "hls" in paths else 0)
                end = t0 + args.seconds
                while time.perf_counter() < end + tail:  # bounded: seconds + tail
                    if "hls" in paths and nginx is not None and time.perf_counter() < end:
                        got = read_playlist(nginx.hls / f"{STREAM_KEY}.m3u8")
                        if got is not None:
                            hls_samples.append(got)
                    await asyncio.sleep(1.0)
                wall = time.perf_counter() - t0
                cpu1 = ({k: tree_cpu_seconds(v) for k, v in pids.items()},
                        time.process_time(), machine_cpu())
                stats1 = await asyncio.to_thread(room_stats, sync_http, server)
                for r in receivers.values():
                    r.send("stop")
                seen = {p: await asyncio.to_thread(r.expect, "seen", 60.0)
                        for p, r in receivers.items()}
            finally:
                for r in receivers.values():
                    r.close()
                for oid in outputs:
                    await asyncio.to_thread(stop_output, sync_http, server, oid)
    sent = dict(camera.sent)
    for path in paths:
        unit_ms = path != "hls"
        lat = latency_of(sent, seen[path], t0, end, 1000.0 if unit_ms else 1.0)
        lat.update({"unit": "ms" if unit_ms else "s", "includes": INCLUDES[path]})
        if path == "hls":
            lat["method"] = (f"ids read from the HLS stream with PyAV's HLS demuxer on nginx's "
                           f"playlist file, from the newest segment (live_start_index "
                           f"{LIVE_START_INDEX}), as fast as segments appear: the earliest "
                           f"an HLS client could show each frame; a player shows it later, "
                           f"see playlist")
            lat["playlist"] = playlist_summary(hls_samples)
        report["paths"][path] = lat
    report["server"] = {k: stats1.get(k) for k in ("fps", "stages", "encoders", "outputs",
                                                    "effects", "size", "dropped")}
    report["server"]["encoded_fps"] = {
        c: (e["frames"] - stats0.get("encoders", {}).get(c, {}).get("frames", 0))
        / (args.seconds + tail) for c, e in (stats1.get("encoders") or {}).items()}
    report["load_average"] = {"window_start": load0, "after": load_average()}
    cores = os.cpu_count() or 1
    busy = 100 * (cpu1[2][0] - cpu0[2][0]) / max(1e-9, cpu1[2][1] - cpu0[2][1]) * cores
    report["cpu_percent"] = {
        "method": "CPU time over the window and tail from /proc (a process and its "
                  "children), in % of one core; publisher = this process",
        **{k: 100 * (cpu1[0][k] - cpu0[0][k]) / wall for k in pids},
        "publisher": 100 * (cpu1[1] - cpu0[1]) / wall,
        "machine": busy, "machine_capacity": 100.0 * cores,
        "saturated": busy > 0.9 * 100 * cores}
    return report


# -- report -------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [f"# Glass to glass per path ({s['size']} at {s['fps']} fps, every effect, "
             f"{s['seconds']:g} s, all paths at once)", "",
             "| path | p50 | p95 | p99 | max | unit | frames seen / sent | unreadable |",
             "|---|---:|---:|---:|---:|---|---:|---:|"]
    for path, r in report["paths"].items():
        m = r["summary"]
        fmt = ".0f" if r["unit"] == "ms" else ".2f"
        cells = (" | ".join(format(m[k], fmt) for k in ("median", "p95", "p99", "max"))
                 if m else "– | – | – | –")
        lines.append(f"| {path} | {cells} | {r['unit']} | {r['frames_seen']} / "
                     f"{r['frames_sent']} | {r['unreadable']} |")
    hls = report["paths"].get("hls", {}).get("playlist")
    if hls and hls.get("samples"):
        p, seg = hls["player_estimate_s"], hls["segment_s"]
        lines.append(f"| hls, player {PLAYER_SEGMENTS} segments back (playlist) | "
                     f"{p['median']:.2f} | {p['p95']:.2f} | {p['p99']:.2f} | {p['max']:.2f} | "
                     f"s | {hls['samples']} playlist reads | – |")
        lines += ["", f"HLS segments: {seg['median']:.2f} s median ({seg['min']:.2f}-"
                      f"{seg['max']:.2f}), {hls['segments_in_playlist']:.1f} in the playlist."]
    cpu = report.get("cpu_percent", {})
    if cpu:
        parts = ", ".join(f"{k} {v:.0f}" for k, v in cpu.items()
                          if isinstance(v, float) and not k.startswith("machine"))
        lines += ["", f"CPU, % of one core: {parts}; machine {cpu['machine']:.0f} of "
                      f"{cpu['machine_capacity']:.0f}"
                  + (" (**saturated**: every path's latency carries queueing for CPU)"
                     if cpu["saturated"] else "") + "."]
    lines += ["", "What each path includes:", ""]
    lines += [f"- **{p}**: {INCLUDES[p]}." for p in report["paths"]]
    lines += ["", f"Not included anywhere: {EXCLUDES}.", "",
              f"Load average at the window's start / after: "
              f"{report['load_average']['window_start']} / {report['load_average']['after']}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--receiver"]:
        return receiver_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0,
                    help="measured seconds, all paths at once (default 30)")
    ap.add_argument("--paths", default=",".join(PATHS),
                    help=f"comma list of {','.join(PATHS)} (default all)")
    ap.add_argument("--size", default="854x480", help="camera size (default 854x480)")
    ap.add_argument("--fps", type=int, default=30, help="camera frame rate (default 30)")
    ap.add_argument("--warmup", type=float, default=5.0,
                    help="seconds after every receiver's first frame before the window "
                         "(default 5)")
    ap.add_argument("--keyframe-interval", type=float, default=2.0,
                    help="the RTMP output's keyframe interval, s; nginx cuts HLS segments "
                         "at keyframes (default 2, what platforms ask for)")
    ap.add_argument("--demo-crowd", action=argparse.BooleanOptionalAction, default=True,
                    help="the demo room's product card, polls and viewers, so every layer "
                         "draws (default on)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/paths"))
    args = ap.parse_args(argv)
    paths = tuple(dict.fromkeys(p.strip() for p in args.paths.split(",") if p.strip()))
    if not paths or any(p not in PATHS for p in paths):
        ap.error(f"--paths takes a comma list of {','.join(PATHS)}")
    if not 1 <= args.seconds <= 3600:
        ap.error("--seconds must be between 1 and 3600")
    if not 0 <= args.warmup <= 600:
        ap.error("--warmup takes 0..600 s")
    if not 0.5 <= args.keyframe_interval <= 10:
        ap.error("--keyframe-interval takes 0.5..10 s")
    if not 5 <= args.fps <= 60:
        ap.error("--fps takes 5..60")
    args.size = frame_size(ap, args.size, example="854x480")
    clock = time.get_clock_info("perf_counter")
    if "CLOCK_MONOTONIC" not in clock.implementation:
        print(f"bench_paths: perf_counter is {clock.implementation}, not CLOCK_MONOTONIC: "
              "receive and send times of different processes would not compare",
              file=sys.stderr)
        return 2
    if "janus" in paths and (missing := janus_missing()):
        print(f"bench_paths: {missing}", file=sys.stderr)
        return 2
    try:
        measured = asyncio.run(run(args, paths))
    except (pytest.skip.Exception, pytest.fail.Exception) as e:  # nginx-rtmp missing
        print(f"bench_paths: {e.msg}", file=sys.stderr)
        return 2
    except asyncio.CancelledError:
        print("bench_paths: stopped by SIGTERM (every child closed)", file=sys.stderr)
        return 128 + signal.SIGTERM
    report: dict[str, Any] = {
        "benchmark": "paths", "machine": machine_info(),
        "settings": {"seconds": args.seconds, "paths": list(paths), "warmup_s": args.warmup,
                     "size": "{}x{}".format(*args.size), "fps": args.fps,
                     "keyframe_interval_s": args.keyframe_interval,
                     "demo_crowd": args.demo_crowd,
                     "nginx_hls": {"hls_fragment": "1s", "hls_playlist_length": "6s"}},
        "clock": f"time.perf_counter ({clock.implementation}) in every process",
        "percentiles": PERCENTILE_METHOD,
        "latency": "per frame id sent in the window: first time a receiver read it minus "
                   "the time the publisher handed it to WebRTC; ids never read count as "
                   "not seen (frames_seen < frames_sent)",
        "excludes": EXCLUDES, **measured}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "paths.json").write_text(json.dumps(report, indent=2))
    md = markdown(report)
    (args.out / "paths.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
