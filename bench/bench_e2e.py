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
with every effect; aiortc WHEP viewers are added in this process and the server's CPU
time (from /proc) is sampled at each viewer count.

    python bench/bench_e2e.py [--seconds 15] [--out bench/out]

writes ``e2e.json`` and ``e2e.md``. ``measure(seconds)`` is the entry point that
``arengine bench`` uses.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
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
from arengine.interaction.state import RoomState
from arengine.pipeline import RoomConfig

CHROMIUM = "/usr/bin/chromium"
PATHS = ("passthrough", "effects")
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
  const samples = [];
  let measuring = false, unread = 0, shown = 0, stale = 0, newest = -1;
  const sizes = {};
  function onFrame(now, meta) {
    const size = `${meta.width}x${meta.height}`;
    if (measuring) sizes[size] = (sizes[size] || 0) + 1;
    if (rc.width !== meta.width || rc.height !== meta.height) {
      rc.width = meta.width; rc.height = meta.height;
    }
    rctx.drawImage(video, 0, 0, meta.width, meta.height);
    let fid = null;
    for (const c of CORNERS) {
      fid = arengineFrameId.readFrameId(rctx, meta.width, meta.height, c);
      if (fid !== null) break;
    }
    if (measuring) {
      shown += 1;
      if (fid === null) unread += 1;
      else if (fid < newest) stale += 1;  // an older id than one already shown
      else if (!seen.has(fid) && sent.has(fid)) {
        seen.add(fid);
        samples.push(meta.expectedDisplayTime - sent.get(fid));
      }
    }
    if (fid !== null && fid > newest) newest = fid;
    video.requestVideoFrameCallback(onFrame);
  }
  video.requestVideoFrameCallback(onFrame);
  await sleep(warmupMs);
  const first = id;
  measuring = true;
  await sleep(measureMs);
  measuring = false;
  const drawn = id - first;
  clearInterval(timer);
  await sub.close();
  await pub.close();
  stream.getTracks().forEach((t) => t.stop());
  return {samples, unread, stale, shown, drawn, width: w, height: h, sizes};
};
</script></body></html>"""


class _Hub:
    """The bench rooms with host tokens; the effects room shows a busy show's layers."""

    def __init__(self, tokens: dict[str, str]) -> None:
        from arengine.bench.stages import busy_room_state

        self.tokens = tokens
        self.states = {r: busy_room_state(10) if r.startswith("effects")
                       else RoomState(r) for r in tokens}

    def restart(self, room: str) -> None:
        """The room's show as it is at this moment (the poll open for 40 s more)."""
        from arengine.bench.stages import busy_room_state

        if room.startswith("effects"):
            self.states[room] = busy_room_state(10)

    def get(self, room: str) -> Any:
        if room not in self.tokens:
            return None
        state = self.states[room]

        class _Room:
            def snapshot(self) -> RoomState:
                return state

        return _Room()

    def verify_host(self, room: str, token: str) -> bool:
        return self.tokens.get(room) == token


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _face_png() -> str:
    ok, data = cv2.imencode(".png", astronaut_bgr())
    assert ok
    return base64.b64encode(data.tobytes()).decode()


def _serve_in_thread(hub: _Hub, configs: dict[str, RoomConfig]) -> tuple[str, Any, Any]:
    import uvicorn

    from arengine.server import MediaServer, build_app

    media = MediaServer(hub, RoomConfig(demo=False))  # type: ignore[arg-type]
    media.room_configs.update(configs)
    app = build_app(hub, media)  # type: ignore[arg-type]
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the bench server did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def measure_sizes(seconds: float, sizes: dict[str, tuple[int, int]] | None = None,
                  warmup: float = 5.0) -> dict[str, Any]:
    """Per size and path: latency samples (ms) and frame counts, from one browser run."""
    from playwright.sync_api import sync_playwright

    if shutil.which(CHROMIUM) is None:
        raise RuntimeError(f"{CHROMIUM} is needed for the glass-to-glass benchmark")
    sizes = sizes or SIZES
    tokens = {f"{p}-{s}": f"token-{p}-{s}" for p in PATHS for s in sizes}
    configs = {f"effects-{s}": RoomConfig(demo=False) for s in sizes}
    configs.update({f"passthrough-{s}": RoomConfig(demo=False, effects=(), track_faces=False,
                                                   track_hands=False) for s in sizes})
    hub = _Hub(tokens)
    url, server, thread = _serve_in_thread(hub, configs)
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
                    for path in PATHS:
                        room = f"{path}-{size}"
                        hub.restart(room)  # every path sees the same mid-show moment
                        page = browser.new_page()
                        page.route(f"{url}/bench", lambda route: route.fulfill(
                            body=page_html, content_type="text/html"))
                        page.goto(f"{url}/bench")
                        r = page.evaluate(
                            "([room, token, w, h, warm, ms]) => "
                            "runPath(room, token, w, h, warm, ms)",
                            [room, tokens[room], w, h, int(warmup * 1000),
                             int(seconds * 1000)])
                        page.close()
                        results.setdefault(size, {})[path] = r
            finally:
                browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=20)
    return results


def measure(seconds: float) -> dict[str, list[float]]:
    """Glass-to-glass samples (ms) at 480p: {"effects": [...], "passthrough": [...]}."""
    r = measure_sizes(seconds, {"480p": SIZES["480p"]})["480p"]
    return {path: [float(x) for x in r[path]["samples"]] for path in PATHS}


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


async def _viewers_cpu(url: str, pid: int, counts: tuple[int, ...],
                       window: float) -> list[dict[str, float]]:
    import httpx
    from aiortc import rtcrtpreceiver

    from arengine.transport.client import WhepClient

    rtcrtpreceiver.get_decoder = lambda codec: _CountingDecoder()  # type: ignore[assignment]
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
                stats = (await http.get("/api/rooms/demo/stats")).json()
                out.append({"viewers": n, "server_cpu_percent": 100 * (c1 - c0) / (t1 - t0),
                            "fps_per_viewer": frames / (t1 - t0) / n,
                            "server_out_fps": float(stats["fps"].get("out:vp8", 0.0)),
                            "encoders": len(stats["encoders"])})
        finally:
            for v in viewers:
                await v.close()
    return out


def cpu_per_viewer(counts: tuple[int, ...] = (1, 2, 5, 10), window: float = 8.0
                   ) -> dict[str, Any]:
    """Server CPU (one process, 720p demo, all effects) as WHEP viewers are added."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [sys.executable, "-m", "arengine", "serve", "--port", str(port),
             "--db", str(Path(tmp) / "bench.db"), "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            line = ""
            deadline = time.monotonic() + 60
            while "serving on" not in line:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("arengine serve did not start")
                line = proc.stdout.readline() if proc.stdout else ""
            rows = asyncio.run(_viewers_cpu(f"http://127.0.0.1:{port}", proc.pid, counts,
                                            window))
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


def markdown(report: dict[str, Any]) -> str:
    lines = ["# End-to-end (glass to glass, Chromium loopback)", "",
             "| size | path | p50 ms | p95 ms | p99 ms | samples | shown fps | unreadable "
             "| stale |", "|---|---|---|---|---|---|---|---|---|"]
    for size, paths in report.get("latency", {}).items():
        for path, r in paths.items():
            s = r["summary"]
            if not s.get("n"):
                lines.append(f"| {size} | {path} | – | – | – | 0 | – | {r['unread']} | "
                             f"{r['stale']} |")
                continue
            lines.append(f"| {size} | {path} | {s['p50']:.0f} | {s['p95']:.0f} | "
                         f"{s['p99']:.0f} | {s['n']} | {r['shown_fps']:.1f} | {r['unread']} | "
                         f"{r['stale']} |")
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="measured seconds per path")
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    ap.add_argument("--sizes", default="480p,720p", help="comma list of 480p,720p")
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU-per-viewer part")
    args = ap.parse_args(argv)
    sizes = {s: SIZES[s] for s in args.sizes.split(",")}
    report: dict[str, Any] = {"seconds": args.seconds, "latency": {}}
    raw = measure_sizes(args.seconds, sizes)
    for size, paths in raw.items():
        for path, r in paths.items():
            report["latency"].setdefault(size, {})[path] = {
                "summary": _pct(r["samples"]), "unread": r["unread"], "stale": r["stale"],
                "shown_fps": r["shown"] / args.seconds, "drawn": r["drawn"],
                "received_sizes": r["sizes"]}
    if not args.no_cpu:
        report["cpu"] = cpu_per_viewer()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "e2e.json").write_text(json.dumps(report, indent=2))
    md = markdown(report)
    (args.out / "e2e.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
