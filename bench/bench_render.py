"""Compositing cost per frame, CPU vs GL backend, at 720p, 1080p and 2160p.

One frame's work is what a live-commerce stream composites: lipstick on the host's lips,
one sticker-sized sprite (a vote sticker, 30 % of the frame height) and 12 avatar-sized
sprites (viewer avatars, 9 % of the height), all through the render backend, timed from
``begin_frame`` to ``end_frame`` inclusive, so every upload and readback is in the time.
Frames are composited in place (``inplace=True``, as the pipeline does with freshly
decoded frames). Sprites are cached by key as a stream caches them. The lip mask and
fields (CPU work both backends share) are prepared before the clock starts and reported
on their own. ``gl`` moves only the touched regions; ``gl-whole-frame`` uploads and reads
back every pixel, for comparison. The GL backend runs on the first EGL device with a
hardware driver (a GPU) when there is one, else on device 0 (Mesa's llvmpipe).

A second pass per GL series splits the frame into upload (the regions' pixels to the
canvas), draw (the lip pass with its mask and field textures, and the sprite passes) and
readback (the regions back to host memory), with ``glFinish`` after each so the GPU's
work is charged to the phase that queued it; what remains of the frame (region merging,
pasting the read-back regions into the frame) is ``other``. The finishes stall the
pipeline, so the split's total is a little above the frame time of the first pass.

Frames are the real 720p face video, scaled to each size; landmarks come from FaceMesh
once at 720p and are scaled with the frame. Writes ``render.json`` and ``render.md`` to
``--out`` and prints the GL renderer used. One command, from anywhere:

    python bench/bench_render.py --out /tmp/render-bench
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from arengine.bench.machine import machine_info
from arengine.bench.stats import summarize
from arengine.catalog import default_catalog
from arengine.data import sample_video
from arengine.effects.lipstick import (
    LipParams,
    lip_fields,
    lip_geometry,
    lip_roi_mask,
    roi_to_lab,
)
from arengine.render.backend import RenderBackend, select_backend
from arengine.render.sprites import circle_crop, premultiply
from arengine.tracking import FaceTracker

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "2160p": (3840, 2160)}
STICKER_FRACTION = 0.30
AVATAR_FRACTION = 0.09
AVATARS = 12
DEFAULT_SHADE = "star-galaxy"  # shimmer: the finish with the most inputs per pixel
TARGET_2160P_MS = 3.0


def read_frames(path: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames as BGR (OpenCV's FFmpeg reader: no PyAV needed)."""
    frames: list[np.ndarray] = []
    cap = cv2.VideoCapture(str(path))
    try:
        while len(frames) < count:
            ok, img = cap.read()
            if not ok:
                break
            frames.append(np.ascontiguousarray(img))
    finally:
        cap.release()
    if not frames:
        raise SystemExit(f"no frames decoded from {path}")
    return frames


def landmarks(frames: list[np.ndarray]) -> list[np.ndarray | None]:
    """First face's points per frame (pixels of the given frames), None when no face."""
    out: list[np.ndarray | None] = []
    with FaceTracker(mode="video", max_faces=1) as tracker:
        for i, img in enumerate(frames):
            faces = tracker.track(img, i / 25.0, i).faces
            out.append(faces.points[0].copy() if len(faces) else None)
    return out


def sprites(h: int, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """A sticker (translucent card with noise, so no compression shortcut) and 12 round
    avatars, premultiplied, sized for a frame ``h`` pixels high."""
    s = max(8, round(STICKER_FRACTION * h))
    card = rng.integers(0, 256, (s, round(s * 1.4), 4), np.uint8)
    card[:, :, 3] = np.clip(card[:, :, 3], 160, 255)
    a = max(8, round(AVATAR_FRACTION * h))
    avatars = [circle_crop(rng.integers(0, 256, (a, a, 3), np.uint8), a) for _ in range(AVATARS)]
    return premultiply(card), avatars


class Workload:
    """Everything one size needs, prepared before timing."""

    def __init__(self, frames: list[np.ndarray], points: list[np.ndarray | None],
                 params: LipParams, seed: int = 0) -> None:
        self.frames = frames
        self.params = params
        h, w = frames[0].shape[:2]
        self.sticker, self.avatars = sprites(h, np.random.default_rng(seed))
        sw = self.sticker.shape[1]
        self.sticker_xy = (w - sw - h // 20, h // 20)
        a = self.avatars[0].shape[0]
        self.avatar_xy = [(h // 40 + (i % 6) * (a + a // 4), h - (2 - i // 6) * (a + a // 4))
                          for i in range(AVATARS)]
        self.lips: list[tuple[tuple[int, int, int, int], np.ndarray, Any] | None] = []
        prep_ms = []
        for img, pts in zip(frames, points, strict=True):
            t = time.perf_counter()
            geom = lip_geometry(pts, w, h) if pts is not None else None
            if geom is None:
                self.lips.append(None)
                continue
            x1, y1, x2, y2 = geom.box
            mask8 = lip_roi_mask(geom)
            fields = lip_fields(roi_to_lab(img[y1:y2, x1:x2]), mask8, geom, params)
            self.lips.append((geom.box, mask8.astype(np.float32) * np.float32(1 / 255),
                              fields))
            prep_ms.append((time.perf_counter() - t) * 1000)
        self.prep_ms = prep_ms
        self.scratch = [f.copy() for f in frames]

    def frame(self, backend: RenderBackend, i: int, inplace: bool = True) -> np.ndarray:
        """Composite frame ``i``; timed runs draw in place into a scratch frame (its
        content drifts as layers pile up, the cost does not)."""
        backend.begin_frame(self.scratch[i] if inplace else self.frames[i], inplace=inplace)
        lip = self.lips[i]
        if lip is not None:
            box, mask, fields = lip
            backend.composite_lips(box, mask, self.params, fields=fields)
        backend.blend_sprite(self.sticker, *self.sticker_xy, key="sticker")
        for k, (av_, xy) in enumerate(zip(self.avatars, self.avatar_xy, strict=True)):
            backend.blend_sprite(av_, *xy, key=f"avatar-{k}")
        return backend.end_frame()


def time_frames(fn: Callable[[int], np.ndarray], n: int, rounds: int,
                warmup: int) -> list[float]:
    for i in range(warmup):
        fn(i % n)
    ms = []
    for r in range(rounds):
        for i in range(n):
            t = time.perf_counter()
            fn(i)
            ms.append((time.perf_counter() - t) * 1000)
        del r
    return ms


PHASES = ("upload", "draw", "readback")
_PHASE_OF = {"_upload": "upload", "_run_lips": "draw", "_run_sprite": "draw",
             "_readback": "readback"}


def time_phases(gl: Any, fn: Callable[[int], np.ndarray], n: int, rounds: int,
                warmup: int) -> dict[str, list[float]]:
    """Per-frame milliseconds of upload, draw, readback and the rest of the frame on a
    ``GLBackend``, each GL phase closed by ``glFinish`` (see the module docstring)."""
    acc = dict.fromkeys(PHASES, 0.0)
    ctx = gl._ctx

    def wrap(method: str) -> None:
        orig = getattr(gl, method)
        phase = _PHASE_OF[method]

        def timed(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            r = orig(*a, **k)
            ctx.finish()
            acc[phase] += (time.perf_counter() - t) * 1000
            return r

        setattr(gl, method, timed)

    for method in _PHASE_OF:
        wrap(method)
    try:
        for i in range(warmup):
            fn(i % n)
        out: dict[str, list[float]] = {k: [] for k in (*PHASES, "other", "total")}
        for _ in range(rounds):
            for i in range(n):
                for k in acc:
                    acc[k] = 0.0
                t = time.perf_counter()
                fn(i)
                total = (time.perf_counter() - t) * 1000
                for k in PHASES:
                    out[k].append(acc[k])
                out["other"].append(max(0.0, total - sum(acc.values())))
                out["total"].append(total)
    finally:
        for method in _PHASE_OF:
            delattr(gl, method)  # back to the class's methods
    return out


def _counters(backend: RenderBackend) -> tuple[int, int, int]:
    s = backend.status
    return int(s["frames"]), int(s.get("upload_bytes", 0)), int(s.get("readback_bytes", 0))


def run(args: argparse.Namespace) -> dict[str, Any]:
    video = args.video or sample_video()
    if video is None or not Path(video).is_file():
        raise SystemExit("no face video found: pass --video or set ARENGINE_DATA")
    source = read_frames(Path(video), args.frames)
    base = [cv2.resize(f, SIZES["720p"], interpolation=cv2.INTER_AREA) if f.shape[:2] !=
            (720, 1280) else f for f in source]
    points720 = landmarks(base)
    params = LipParams.from_shade(default_catalog().get(args.shade))

    backends: dict[str, RenderBackend] = {}
    if "cpu" in args.backends:
        backends["cpu"] = select_backend("cpu")
    gl_error = None
    renderer = None
    devices: list[tuple[int, str]] = []
    if "gl" in args.backends:
        from arengine.render.gl import (
            GLBackend,
            GLUnavailable,
            egl_devices,
            is_software_renderer,
        )

        devices = egl_devices()
        # A GPU when there is one, else device 0 (a software rasteriser, or an error).
        device = next((i for i, r in devices if not is_software_renderer(r)), None)
        print("EGL devices: " + (", ".join(f"{i}: {r}" for i, r in devices) or "none"),
              flush=True)
        for mode in args.transfers:
            try:
                gl = GLBackend(device_index=device, transfer=mode)
            except GLUnavailable as e:
                gl_error = str(e)
                print(f"GL backend unavailable: {gl_error}", file=sys.stderr)
                break
            renderer = gl.renderer
            name = "gl" if mode == "auto" else f"gl-{mode}"
            if mode == "auto":
                print(f"GL auto transfer on this renderer: {gl.transfer}", flush=True)
            backends[name] = gl
            if mode == "auto":
                backends["gl-whole-frame"] = GLBackend(device_index=device, transfer=mode,
                                                       dirty_regions=False)
    print(f"GL renderer: {renderer or 'none'}", flush=True)

    sizes: dict[str, Any] = {}
    for name in args.sizes:
        w, h = SIZES[name]
        s = w / 1280
        frames = [f if f.shape[1] == w else cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR)
                  for f in base]
        points = [None if p is None else p * np.float32(s) for p in points720]
        work = Workload(frames, points, params)
        row: dict[str, Any] = {"width": w, "height": h, "frames": len(frames),
                               "faces": sum(p is not None for p in points),
                               "sticker_px": list(work.sticker.shape[1::-1]),
                               "avatar_px": list(work.avatars[0].shape[1::-1]),
                               "lip_prep_ms": summarize(work.prep_ms or [0.0]).to_dict()}
        n = len(frames)
        for bname, b in backends.items():
            def one(i: int, b: RenderBackend = b, work: Workload = work) -> np.ndarray:
                return work.frame(b, i)

            before = _counters(b)
            ms = time_frames(one, n, args.rounds, args.warmup)
            row[bname] = summarize(ms).to_dict()
            if bname.startswith("gl"):
                after = _counters(b)
                nframes = max(1, after[0] - before[0])
                row[f"{bname} transfer bytes per frame"] = {
                    "upload": (after[1] - before[1]) / nframes,
                    "readback": (after[2] - before[2]) / nframes}
                if args.split:
                    split = time_phases(b, one, n, args.rounds, args.warmup)
                    row[f"{bname} phases"] = {k: summarize(v).to_dict()
                                              for k, v in split.items()}
                if "cpu" in backends:
                    a = work.frame(backends["cpu"], 0, inplace=False)
                    b_ = work.frame(b, 0, inplace=False)
                    row[f"{bname} max diff vs cpu"] = int(np.abs(a.astype(np.int16) - b_).max())
        sizes[name] = row
        print(f"{name}: " + ", ".join(f"{k} median {row[k]['median']:.2f} ms"
                                      for k in backends), flush=True)
    for b in backends.values():
        b.close()
    return {"benchmark": "render", "started_at": datetime.now(UTC).isoformat(),
            "machine": machine_info(), "gl_renderer": renderer, "gl_error": gl_error,
            "egl_devices": [{"index": i, "renderer": r} for i, r in devices],
            "gl_status": {name: {k: v for k, v in b.status.items()
                                 if k in ("vendor", "gl_version", "software", "device_index",
                                          "transfer")}
                          for name, b in backends.items() if name.startswith("gl")},
            "series": list(backends),
            "video": Path(video).name, "shade": args.shade, "rounds": args.rounds,
            "warmup": args.warmup, "avatars": AVATARS, "target_2160p_ms": TARGET_2160P_MS,
            "sizes": sizes}


def mb(row: dict[str, Any], series: str) -> str:
    t = row.get(f"{series} transfer bytes per frame")
    return f"{t['upload'] / 1e6:.2f} / {t['readback'] / 1e6:.2f}" if t else "-"


def to_markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    gpu = ", ".join(g.get("name", "?") for g in m.get("gpus", [])) or "no NVIDIA GPU"
    series = res["series"]
    gls = [s for s in series if s.startswith("gl")]
    head = ["size", *(f"{s} median / p95" for s in series),
            *(f"{s} MB up / down per frame" for s in gls),
            *(f"CPU/{s}" for s in gls if "cpu" in series), "lip prep (CPU, both)",
            *(f"{s} max diff vs CPU" for s in gls if "cpu" in series)]
    lines = [
        "# Render backend: compositing per frame (ms), CPU vs GL", "",
        f"Lipstick ({res['shade']}) + 1 sticker + {res['avatars']} avatars per frame, from "
        "`begin_frame` (upload) to `end_frame` (readback) inclusive; "
        f"{res['rounds']} rounds over the frames of {res['video']} after {res['warmup']} "
        f"warm-up frames. CPU: {m['cpu']}, {m['cores_usable']} usable cores; GPU: {gpu}; "
        f"GL_RENDERER: {res['gl_renderer'] or 'none'}"
        + "".join(f" ({v['gl_version']})" for v in list(res["gl_status"].values())[:1])
        + "; GL transfers: "
        + (", ".join(f"{k}={v['transfer']}" for k, v in res["gl_status"].items()) or "-")
        + ".", "",
        "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, r in res["sizes"].items():
        def cell(key: str, r: dict[str, Any] = r) -> str:
            s = r.get(key)
            return f"{s['median']:.2f} / {s['p95']:.2f}" if s else "-"
        cells = [name, *(cell(s) for s in series),
                 *(mb(r, s) for s in gls)]
        if "cpu" in series:
            cells += [f"{r['cpu']['median'] / r[s]['median']:.1f}x" for s in gls]
        cells.append(f"{r['lip_prep_ms']['median']:.2f}")
        if "cpu" in series:
            cells += [f"{r[f'{s} max diff vs cpu']}/255" for s in gls]
        lines.append("| " + " | ".join(cells) + " |")
    split = [(name, s, r[f"{s} phases"]) for name, r in res["sizes"].items() for s in gls
             if f"{s} phases" in r]
    if split:
        lines += ["", "Where a GL frame's time goes (ms, median per frame; second pass with "
                  "`glFinish` after each phase, so the total is a little above the first "
                  "pass):", "",
                  "| size | series | upload | draw | readback | other (CPU) | total |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for name, s, ph in split:
            lines.append(f"| {name} | {s} | " + " | ".join(
                f"{ph[k]['median']:.2f}" for k in (*PHASES, "other", "total")) + " |")
    for s in gls:
        r4 = res["sizes"].get("2160p", {}).get(s)
        if r4:
            ok = r4["median"] <= res["target_2160p_ms"]
            lines += ["", f"Target: 2160p {s} <= {res['target_2160p_ms']:.0f} ms per frame: "
                      f"median {r4['median']:.2f} ms (p95 {r4['p95']:.2f} ms), "
                      f"{'met' if ok else 'NOT met'} on this machine."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    ap.add_argument("--backends", nargs="+", choices=["cpu", "gl"], default=["cpu", "gl"])
    ap.add_argument("--transfers", nargs="+", choices=["auto", "packed", "direct"],
                    default=["auto"], help="GL upload/readback paths to time (auto: packed "
                    "on a GPU, direct on a software rasteriser)")
    ap.add_argument("--frames", type=int, default=20, help="distinct video frames per size")
    ap.add_argument("--rounds", type=int, default=3, help="timed passes over the frames")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--shade", default=DEFAULT_SHADE)
    ap.add_argument("--video", type=Path, default=None,
                    help="a face video (default: the shared 720p sample)")
    ap.add_argument("--out", type=Path, default=Path("."), help="folder for render.json/.md")
    ap.add_argument("--no-split", dest="split", action="store_false",
                    help="skip the second GL pass that splits upload / draw / readback")
    args = ap.parse_args(argv)
    if args.frames < 1 or args.rounds < 1 or args.warmup < 0:
        ap.error("--frames and --rounds must be >= 1, --warmup >= 0")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    res = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "render.json").write_text(json.dumps(res, indent=1))
    md = to_markdown(res)
    (args.out / "render.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
