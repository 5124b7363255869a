"""Glass-to-glass latency through a real browser, and server CPU per extra viewer.

Latency: a Chromium page draws a moving real face into a canvas at 30 fps with the frame
id burned into every corner (arengine.bench.frameid), publishes the canvas over WHIP to
the server, plays the room back over WHEP in a <video>, and for each displayed frame
(requestVideoFrameCallback) reads the id back: display time minus draw time is one
sample. Sender and viewer share the page's clock, so no clock sync is needed. It covers
the browser's encoder, RTP, the server (decode, tracking, effects, encode) and the
browser's decoder and compositor; it leaves out a physical camera and screen.

All effects on and pass-through (no tracking, no effects) run in the same run, one after
the other on the same machine, at 480p and 720p.

CPU per viewer: the server runs in its own process (``arengine serve``) on the 720p demo
with every effect; aiortc WHEP viewers (which count frames, decode none) are added in this
process, at nice 19 so they take only the CPU the server leaves, and the server's CPU
time (from /proc) is sampled at each viewer count (1, 10, 50 by default).

    python bench/bench_e2e.py [--seconds 15] [--out bench/out]

writes ``e2e.json`` and ``e2e.md``. ``measure(seconds)`` is the entry point that
``arengine bench`` uses.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from arengine.bench.frameid import FRAME_ID_JS
from arengine.demo import astronaut_bgr
from arengine.pipeline import RoomConfig

CHROMIUM = "/usr/bin/chromium"
# "virtual-host": every effect plus the virtual host beside the host (replace mode would
# cover the burned frame ids; beside costs the same rig and drawing; bench_vhost_lag.py
# measures replace mode by the character's mouth instead).
PATHS = ("passthrough", "effects", "virtual-host")
DEFAULT_PATHS = ("passthrough", "effects")
SIZES = {"480p": (854, 480), "720p": (1280, 720)}

PAGE = """<!doctype html><html><body style="margin:0;background:#000">
<video id="v" autoplay muted playsinline style="width:640px"></video>
<script src="/static/webrtc.js"></script>
<script>%(frameid)s</script>
<script>
const FACE = "data:image/png;base64,%(face)s";
const CORNERS = ["top-left", "top-right", "bottom-left", "bottom-right", "top-center",
                 "bottom-center"];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

window.runPath = async function (room, token, w, h, warmupMs, measureMs) {
  const img = new Image();
  img.src = FACE;
  await img.decode();
  const cam = document.createElement("canvas");
  cam.width = w; cam.height = h;
  const ctx = cam.getContext("2d");
  const sent = new Map();
  let id = 0;
  const t0 = performance.now();
  function draw() {
    const t = (performance.now() - t0) / 1000;
    const s = 1.9 * h / 512 * (1 + 0.05 * Math.sin(t / 1.5));
    const x = w / 2 - 225 * s + 0.05 * w * Math.sin(t / 1.8);
    const y = h * 0.45 - 125 * s;
    ctx.fillStyle = "#202020"; ctx.fillRect(0, 0, w, h);
    ctx.drawImage(img, x, y, 512 * s, 512 * s);
    for (const c of CORNERS) arengineFrameId.burnFrameId(ctx, w, h, id, c);
    sent.set(id, performance.now());
    id += 1;
  }
  draw();
  const timer = setInterval(draw, 1000 / 30);
  const stream = cam.captureStream(30);
  // Keep the published size: under CPU load Chrome would otherwise scale the camera down
  // (to 180p on a busy 2-core machine), and the benchmark would measure a smaller video.
  stream.getVideoTracks()[0].contentHint = "detail";
  const pub = await whipPublish(`/whip/${room}`, stream, token);
  for (const sender of pub.pc.getSenders()) {
    try {
      const params = sender.getParameters();
      params.degradationPreference = "maintain-resolution";
      await sender.setParameters(params);
    } catch (e) { /* older browsers: contentHint alone */ }
  }
  const video = document.getElementById("v");
  const sub = await whepPlay(`/whep/${room}`, video, null);
  const rc = document.createElement("canvas");
  const rctx = rc.getContext("2d", {willReadFrequently: true});
  const seen = new Set();
  const samples = [], times = [];
  let measuring = false, measureStart = 0, unread = 0, shown = 0, stale = 0, newest = -1;
  const sizes = {};
  function onFrame(now, meta) {
    const size = `${meta.width}x${meta.height}`;
    if (measuring) sizes[size] = (sizes[size] || 0) + 1;
    if (rc.width !== meta.width || rc.height !== meta.height) {
      rc.width = meta.width; rc.height = meta.height;
    }
    // Copy only the pattern's pixels out of the video: converting whole 720p frames
    // would charge the harness's CPU to the machine the server runs on.
    let fid = null;
    for (const c of CORNERS) {
      const [bx, by, bw, bh] = arengineFrameId.patternBox(meta.width, meta.height, c);
      rctx.drawImage(video, bx, by, bw, bh, bx, by, bw, bh);
      fid = arengineFrameId.readFrameId(rctx, meta.width, meta.height, c);
      // An id not drawn yet is a misread (an overlay over this corner that happened to
      // pass the CRC, about 1 in 256): one such "future" id made every later frame look
      // stale. Try the next corner instead.
      if (fid !== null && sent.has(fid)) break;
      fid = null;
    }
    if (measuring) {
      shown += 1;
      if (fid === null) unread += 1;
      else if (fid < newest) stale += 1;  // an older id than one already shown
      else if (!seen.has(fid) && sent.has(fid)) {
        seen.add(fid);
        samples.push(meta.expectedDisplayTime - sent.get(fid));
        times.push((meta.expectedDisplayTime - measureStart) / 1000);
      }
    }
    if (fid !== null && fid > newest) newest = fid;
    video.requestVideoFrameCallback(onFrame);
  }
  video.requestVideoFrameCallback(onFrame);
  await sleep(warmupMs);
  const before = await rtpCounters(pub.pc, sub.pc);
  before.server = await roomStats(room, token);
  const first = id;
  measureStart = performance.now();
  measuring = true;
  await sleep(measureMs);
  measuring = false;
  const drawn = id - first;
  const budget = await latencyBudget(pub.pc, sub.pc, room, token, before);
  clearInterval(timer);
  await sub.close();
  await pub.close();
  stream.getTracks().forEach((t) => t.stop());
  return {samples, times, unread, stale, shown, drawn, width: w, height: h, sizes, budget};
};

// The browser's own per-frame times over the measured window, from getStats() counters
// read before and after it: encode and send on the publishing side; assembly, jitter
// buffer, decode and processing on the viewing side. The server's stage timings come from
// its stats endpoint. Together they say where the glass-to-glass time goes.
async function rtpCounters(pubPc, subPc) {
  const out = {};
  for (const [side, pc, type] of [["pub", pubPc, "outbound-rtp"], ["sub", subPc, "inbound-rtp"]]) {
    (await pc.getStats()).forEach((r) => {
      if (r.type === type && r.kind === "video") out[side] = Object.assign({}, r);
      if (side === "pub" && r.type === "media-source" && r.kind === "video") {
        out.source = Object.assign({}, r);
      }
    });
  }
  return out;
}

async function roomStats(room, token) {
  const r = await fetch(`/api/rooms/${room}/stats`, {headers: {Authorization: `Bearer ${token}`}});
  return r.json();
}

async function latencyBudget(pubPc, subPc, room, token, before) {
  const after = await rtpCounters(pubPc, subPc);
  const d = (side, key) => ((after[side] || {})[key] || 0) - ((before[side] || {})[key] || 0);
  const per = (side, key, count) => {
    const n = d(side, count);
    return n > 0 ? 1000 * d(side, key) / n : null;
  };
  const server = await roomStats(room, token);
  const seconds = (after.pub.timestamp - before.pub.timestamp) / 1000;
  const trackedFps = {};
  for (const [name, t] of Object.entries(server.tracking || {})) {
    const t0 = (before.server.tracking || {})[name] || {processed: 0};
    trackedFps[name] = (t.processed - t0.processed) / seconds;
  }
  return {
    encode_ms: per("pub", "totalEncodeTime", "framesEncoded"),
    send_ms: per("pub", "totalPacketSendDelay", "packetsSent"),
    sent_fps: d("pub", "framesEncoded") / ((after.pub.timestamp - before.pub.timestamp) / 1000),
    quality_limitation: (after.pub || {}).qualityLimitationReason || null,
    captured_fps: d("source", "frames") / seconds,
    sent_kbps: 8 * d("pub", "bytesSent") / seconds / 1000,
    target_kbps: ((after.pub || {}).targetBitrate || 0) / 1000,
    sent_size: `${(after.pub || {}).frameWidth}x${(after.pub || {}).frameHeight}`,
    assembly_ms: per("sub", "totalAssemblyTime", "framesAssembledFromMultiplePackets"),
    jitter_buffer_ms: per("sub", "jitterBufferDelay", "jitterBufferEmittedCount"),
    decode_ms: per("sub", "totalDecodeTime", "framesDecoded"),
    processing_ms: per("sub", "totalProcessingDelay", "framesDecoded"),
    received_dropped: d("sub", "framesDropped"),
    received_fps: d("sub", "framesDecoded") / ((after.sub.timestamp - before.sub.timestamp) / 1000),
    nacks: d("sub", "nackCount"), plis: d("sub", "pliCount"),
    server: {stages: server.stages, fps: server.fps, dropped: server.dropped,
             tracked_fps: trackedFps},
  };
}
</script></body></html>"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _face_png() -> str:
    ok, data = cv2.imencode(".png", astronaut_bgr())
    assert ok
    return base64.b64encode(data.tobytes()).decode()


class _BenchServer:
    """The app users run (``create_app``), in a uvicorn thread, with the bench rooms.

    Effects rooms show a busy show's layers (viewers, comments, an open shade poll, likes
    toward a goal, a product), staged through the rooms' own actions.
    """

    def __init__(self, tokens: dict[str, str], configs: dict[str, RoomConfig],
                 db: str) -> None:
        import uvicorn

        from arengine.app import create_app
        from arengine.settings import Settings

        self.tokens = tokens
        self.app = create_app(Settings(db=db, demo=False, room=RoomConfig(demo=False)))
        self.app.state.media.room_configs.update(configs)
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the bench server did not start")
            time.sleep(0.05)
        hub = self.app.state.hub
        for room, token in tokens.items():
            hub.run_threadsafe(hub.create_room(room, room, host_token=token)).result(30)

    def restart(self, room: str) -> None:
        """The room's show as it is at this moment (a fresh poll open for 10 minutes)."""
        from arengine.bench.stages import stage_busy_room

        if not room.startswith(("effects", "virtual-host")):
            return
        hub = self.app.state.hub
        r = hub.get(room)

        async def restage() -> None:
            if r.active_poll is not None:
                await r.close_poll()
            await stage_busy_room(r, 10)
            if room.startswith("virtual-host"):
                await r.set_effects({"virtual_host": {"enabled": True,
                                                      "settings": {"mode": "beside"}}})

        hub.run_threadsafe(restage()).result(60)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def measure_sizes(seconds: float, sizes: dict[str, tuple[int, int]] | None = None,
                  warmup: float = 10.0, settings: dict[str, Any] | None = None,
                  paths: tuple[str, ...] = DEFAULT_PATHS) -> dict[str, Any]:
    """Per size and path: latency samples (ms) and frame counts, from one browser run.

    ``settings`` are RoomConfig fields for the effects rooms (to compare settings).
    """
    from playwright.sync_api import sync_playwright

    if shutil.which(CHROMIUM) is None:
        raise RuntimeError(f"{CHROMIUM} is needed for the glass-to-glass benchmark")
    sizes = sizes or SIZES
    tokens = {f"{p}-{s}": f"token-{p}-{s}" for p in PATHS for s in sizes}
    configs = {f"{p}-{s}": RoomConfig(demo=False, **(settings or {}))
               for p in ("effects", "virtual-host") for s in sizes}
    configs.update({f"passthrough-{s}": RoomConfig(demo=False, effects=(), track_faces=False,
                                                   track_hands=False) for s in sizes})
    tmp = tempfile.TemporaryDirectory(prefix="arengine-e2e-")
    bench_server = _BenchServer(tokens, configs, str(Path(tmp.name) / "bench.db"))
    url = bench_server.url
    page_html = PAGE % {"frameid": FRAME_ID_JS, "face": _face_png()}
    results: dict[str, Any] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--autoplay-policy=no-user-gesture-required",
                "--disable-features=WebRtcHideLocalIpsWithMdns",
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding"])
            try:
                for size, (w, h) in sizes.items():
                    for path in paths:
                        room = f"{path}-{size}"
                        bench_server.restart(room)  # every path sees the same show
                        page = browser.new_page()
                        page.route(f"{url}/bench", lambda route: route.fulfill(
                            body=page_html, content_type="text/html"))
                        page.goto(f"{url}/bench")
                        cpu0 = _cpu_sample()
                        r = page.evaluate(
                            "([room, token, w, h, warm, ms]) => "
                            "runPath(room, token, w, h, warm, ms)",
                            [room, tokens[room], w, h, int(warmup * 1000),
                             int(seconds * 1000)])
                        r["cpu"] = _cpu_use(cpu0, _cpu_sample())
                        page.close()
                        results.setdefault(size, {})[path] = r
            finally:
                browser.close()
    finally:
        bench_server.stop()
        tmp.cleanup()
    return results


def _cpu_sample() -> tuple[float, float, float]:
    """(this process's CPU seconds, the machine's busy and total CPU seconds)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return _cpu_seconds(os.getpid()), (sum(fields) - idle) / tick, sum(fields) / tick


def _cpu_use(a: tuple[float, float, float], b: tuple[float, float, float]
             ) -> dict[str, float]:
    """CPU use between two samples, in % of one core (the machine's cores are N x 100)."""
    total = max(1e-9, b[2] - a[2]) / (os.cpu_count() or 1)  # wall seconds, from the ticks
    return {"server_percent": 100 * (b[0] - a[0]) / total,
            "machine_percent": 100 * (b[1] - a[1]) / total,
            "machine_capacity_percent": 100.0 * (os.cpu_count() or 1)}


def measure(seconds: float) -> dict[str, list[float]]:
    """Glass-to-glass samples (ms) at 480p: {"effects": [...], "passthrough": [...]}."""
    r = measure_sizes(seconds, {"480p": SIZES["480p"]})["480p"]
    return {path: [float(x) for x in r[path]["samples"]] for path in DEFAULT_PATHS}


# -- CPU per viewer -----------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _CountingDecoder:
    """Stands in for aiortc's decoder in the bench viewers: counts frames, decodes nothing.

    The viewers run on the same machine as the server; decoding ten 720p streams in Python
    would starve the server being measured.
    """

    frames = 0

    def decode(self, encoded_frame: Any) -> list[Any]:
        _CountingDecoder.frames += 1
        return []


async def _viewers_cpu(url: str, token: str, pid: int, counts: tuple[int, ...],
                       window: float) -> list[dict[str, float]]:
    import httpx
    from aiortc import rtcrtpreceiver

    from arengine.transport.client import WhepClient

    rtcrtpreceiver.get_decoder = lambda codec: _CountingDecoder()  # type: ignore[assignment,return-value]
    out = []
    viewers: list[WhepClient] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        try:
            for n in counts:
                while len(viewers) < n:
                    v = WhepClient(http, f"{url}/whep/demo")
                    await v.play("vp8", data_channel=False)
                    viewers.append(v)
                await asyncio.sleep(4.0)  # connect, first keyframe
                c0, t0 = _cpu_seconds(pid), time.monotonic()
                f0 = _CountingDecoder.frames
                await asyncio.sleep(window)
                c1, t1 = _cpu_seconds(pid), time.monotonic()
                frames = _CountingDecoder.frames - f0
                stats = (await http.get("/api/rooms/demo/stats",
                                        headers={"Authorization": f"Bearer {token}"})).json()
                out.append({"viewers": n, "server_cpu_percent": 100 * (c1 - c0) / (t1 - t0),
                            "fps_per_viewer": frames / (t1 - t0) / n,
                            "server_out_fps": float(stats["fps"].get("out:vp8", 0.0)),
                            "encoders": len(stats["encoders"])})
        finally:
            for v in viewers:
                await v.close()
    return out


def cpu_per_viewer(counts: tuple[int, ...] = (1, 10, 50), window: float = 8.0
                   ) -> dict[str, Any]:
    """Server CPU (one process, 720p demo, all effects) as WHEP viewers are added."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [sys.executable, "-m", "arengine", "serve", "--port", str(port),
             "--db", str(Path(tmp) / "bench.db"), "--log-level", "warning",
             "--limit-sessions", str(max(counts) + 10)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            line, token = "", ""
            deadline = time.monotonic() + 60
            while "viewer:" not in line:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("arengine serve did not start")
                line = proc.stdout.readline() if proc.stdout else ""
                if "#token=" in line:
                    token = line.split("#token=", 1)[1].split()[0]
            # The viewers share the machine with the server: at nice 19 they take only
            # the CPU it leaves, so the figure is what the server needs, not what it got.
            # (Linux sets priority per thread; threads the viewers start inherit it.)
            base_nice = os.getpriority(os.PRIO_PROCESS, 0)
            os.setpriority(os.PRIO_PROCESS, 0, 19)
            try:
                rows = asyncio.run(_viewers_cpu(f"http://127.0.0.1:{port}", token, proc.pid,
                                                counts, window))
            finally:
                with contextlib.suppress(PermissionError):  # not root: it stays at 19
                    os.setpriority(os.PRIO_PROCESS, 0, base_nice)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    base = rows[0]["server_cpu_percent"]
    last = rows[-1]
    extra = (last["server_cpu_percent"] - base) / max(1, last["viewers"] - rows[0]["viewers"])
    return {"rows": rows, "cpu_percent_per_extra_viewer": extra}


# -- report ----------------------------------------------------------------------------------


def _pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    a = np.asarray(values, float)
    return {"n": len(values), "p50": float(np.percentile(a, 50)),
            "p95": float(np.percentile(a, 95)), "p99": float(np.percentile(a, 99)),
            "mean": float(a.mean())}


def trend(times: list[float], samples: list[float]) -> dict[str, float]:
    """Whether latency grows over the window: the least-squares slope (ms per minute) and
    the p95 of the first and last fifth of the window."""
    if len(samples) < 10:
        return {}
    t, y = np.asarray(times, float), np.asarray(samples, float)
    slope = float(np.polyfit(t, y, 1)[0]) if np.ptp(t) > 0 else 0.0
    fifth = max(2, len(y) // 5)
    order = np.argsort(t, kind="stable")
    first, last = y[order[:fifth]], y[order[-fifth:]]
    bins = []  # p50/p95 per 10 s of the window, to see the shape of any drift
    for start in np.arange(0.0, float(t.max()) + 1e-9, 10.0):
        inside = y[(t >= start) & (t < start + 10.0)]
        if inside.size:
            bins.append([float(start), float(np.percentile(inside, 50)),
                         float(np.percentile(inside, 95))])
    return {"drift_ms_per_min": 60 * slope, "first_p95": float(np.percentile(first, 95)),
            "last_p95": float(np.percentile(last, 95)), "span_s": float(np.ptp(t)),
            "per_10s": bins}


def markdown(report: dict[str, Any]) -> str:
    lines = ["# End-to-end (glass to glass, Chromium loopback)", "",
             "| size | path | p50 ms | p95 ms | p99 ms | samples | shown fps | unreadable "
             "| stale | p95 first / last fifth | drift ms/min |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for size, paths in report.get("latency", {}).items():
        for path, r in paths.items():
            s = r["summary"]
            if not s.get("n"):
                lines.append(f"| {size} | {path} | – | – | – | 0 | – | {r['unread']} | "
                             f"{r['stale']} | – | – |")
                continue
            tr = r.get("trend") or {}
            drift = (f"{tr['first_p95']:.0f} / {tr['last_p95']:.0f} | "
                     f"{tr['drift_ms_per_min']:+.1f}") if tr else "– | –"
            lines.append(f"| {size} | {path} | {s['p50']:.0f} | {s['p95']:.0f} | "
                         f"{s['p99']:.0f} | {s['n']} | {r['shown_fps']:.1f} | {r['unread']} | "
                         f"{r['stale']} | {drift} |")
    budget_rows = [(size, path, r["budget"]) for size, paths in report.get("latency", {}).items()
                   for path, r in paths.items() if r.get("budget")]
    if budget_rows:
        lines += ["", "# Where the time goes (means per frame, ms)", "",
                  "Browser encode/send from the publisher's getStats(), server stages from "
                  "the room's stats endpoint (decode; arrival to encoded, which holds "
                  "tracking hand-off, effects and encode; queue to the sender), viewer "
                  "assembly/jitter buffer/decode from the viewer's getStats(); the rest of "
                  "glass to glass is capture, the network stacks and display.", "",
                  "| size | path | encode | send | server decode | server total | server send "
                  "| assembly | jitter buffer | decode | sent fps | sent size | limited by "
                  "| server CPU % | machine CPU % | face / hands tracked fps |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        cpus = {(size, path): r.get("cpu") or {}
                for size, paths in report.get("latency", {}).items()
                for path, r in paths.items()}
        for size, path, b in budget_rows:
            cpu = cpus.get((size, path), {})
            stages = b.get("server", {}).get("stages", {})

            def stage(name: str, stages: dict[str, Any] = stages) -> str:
                v = stages.get(name, {}).get("mean_ms")
                return "–" if v is None else f"{v:.1f}"

            def tracked(name: str, b: dict[str, Any] = b) -> str:
                v = b.get("server", {}).get("tracked_fps", {}).get(name)
                return "–" if v is None else f"{v:.1f}"

            def ms(key: str, b: dict[str, Any] = b) -> str:
                v = b.get(key)
                return "–" if v is None else f"{v:.1f}"

            lines.append(f"| {size} | {path} | {ms('encode_ms')} | {ms('send_ms')} | "
                         f"{stage('decode')} | {stage('server_total')} | {stage('send')} | "
                         f"{ms('assembly_ms')} | {ms('jitter_buffer_ms')} | {ms('decode_ms')} "
                         f"| {b.get('sent_fps', 0):.1f} | {b.get('sent_size')} | "
                         f"{b.get('quality_limitation')} | "
                         f"{cpu.get('server_percent', float('nan')):.0f} | "
                         f"{cpu.get('machine_percent', float('nan')):.0f} of "
                         f"{cpu.get('machine_capacity_percent', float('nan')):.0f} | "
                         f"{tracked('track_face')} / {tracked('track_hands')} |")
    cpu = report.get("cpu")
    if cpu:
        lines += ["", "# Server CPU per viewer (720p demo, all effects, VP8 encoded once)", "",
                  "| viewers | server CPU % | encoded fps | fps per viewer | encoders |",
                  "|---|---|---|---|---|"]
        for row in cpu["rows"]:
            lines.append(f"| {row['viewers']} | {row['server_cpu_percent']:.0f} | "
                         f"{row['server_out_fps']:.1f} | {row['fps_per_viewer']:.1f} | "
                         f"{row['encoders']} |")
        lines += ["", f"CPU per extra viewer: {cpu['cpu_percent_per_extra_viewer']:.1f} % "
                      "of one core"]
    return "\n".join(lines) + "\n"


def _settings(ap: argparse.ArgumentParser, items: list[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` strings as RoomConfig fields, typed like the field's default."""
    defaults = RoomConfig()
    out: dict[str, Any] = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep or not hasattr(defaults, field) or field.startswith("_"):
            ap.error(f"--set {item}: expected FIELD=VALUE with a RoomConfig field")
        kind = type(getattr(defaults, field))
        try:
            out[field] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
        except (TypeError, ValueError):
            ap.error(f"--set {item}: {field} takes a {kind.__name__}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="measured seconds per path")
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    ap.add_argument("--sizes", default="480p,720p", help="comma list of 480p,720p")
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU-per-viewer part")
    ap.add_argument("--warmup", type=float, default=10.0,
                    help="seconds each path runs before measuring (default 10: the browser's "
                         "bandwidth estimate ramps up from 300 kbit/s for the first seconds)")
    ap.add_argument("--paths", default=",".join(DEFAULT_PATHS),
                    help="comma list of passthrough,effects,virtual-host (default the first two)")
    ap.add_argument("--viewers", default="1,10,50",
                    help="viewer counts for the CPU-per-viewer part (default 1,10,50)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a RoomConfig field for the effects rooms, e.g. tracking_nice=5 "
                         "(repeatable)")
    args = ap.parse_args(argv)
    sizes = {s: SIZES[s] for s in args.sizes.split(",") if s in SIZES}
    paths = tuple(p for p in args.paths.split(",") if p)
    if not sizes or any(p not in PATHS for p in paths) or not paths:
        ap.error(f"--sizes takes {','.join(SIZES)} and --paths {','.join(PATHS)}")
    try:
        viewers = tuple(sorted({int(v) for v in args.viewers.split(",")}))
    except ValueError:
        viewers = ()
    if not viewers or viewers[0] < 1:
        ap.error("--viewers takes a comma list of counts >= 1, e.g. 1,10,50")
    if not 1 <= args.seconds <= 3600:
        ap.error("--seconds must be between 1 and 3600")
    if not 0 <= args.warmup <= 600:
        ap.error("--warmup must be between 0 and 600")
    settings = _settings(ap, args.set)
    report: dict[str, Any] = {"seconds": args.seconds, "settings": settings, "latency": {}}
    report["warmup"] = args.warmup
    raw = measure_sizes(args.seconds, sizes, args.warmup, settings=settings, paths=paths)
    for size, paths in raw.items():
        for path, r in paths.items():
            report["latency"].setdefault(size, {})[path] = {
                "summary": _pct(r["samples"]), "unread": r["unread"], "stale": r["stale"],
                "shown_fps": r["shown"] / args.seconds, "drawn": r["drawn"],
                "received_sizes": r["sizes"], "budget": r.get("budget"), "cpu": r.get("cpu"),
                "trend": trend(r.get("times", []), r["samples"])}
    if not args.no_cpu:
        report["cpu"] = cpu_per_viewer(viewers)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "e2e.json").write_text(json.dumps(report, indent=2))
    md = markdown(report)
    (args.out / "e2e.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
