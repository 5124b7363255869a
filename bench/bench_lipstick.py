"""How much the lipstick effect costs per face, per finish, at 480p, 720p and 1080p.

Decodes the first frames of the 720p face video, scales them to each size, tracks the face
once per frame (FaceMesh video mode, as live) and then times ``LipstickEffect.apply`` for
one shade of each finish on the same frames and scenes, side by side with a pass-through
(tracking only, no effect). The clip has one face per frame, so the effect's time is its
time per face. Each point is timed ``--repeat`` times, the shades in a different order
each round, and the median of the rounds' medians is reported with their range: on a
shared machine one round can be slowed by another job.

At 720p the effect's time is also split into its stages, timed one after another on the
same frames with the functions the effect calls: ``mask`` (the lips segmented from the
picture, with the geometry and the box's colour conversion), ``light`` (the skin ring
measured and turned into a light), ``fields`` (blurred lightness, the lip surface's
normals, flakes, liner and ombre coordinates) and ``composite`` (the per-pixel formula
and the colour readout). Writes ``lipstick.json`` and ``lipstick.md`` to ``--out``.

    python bench/bench_lipstick.py --frames 120 --repeat 3 --out bench/out
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from arengine.bench.stats import summarize
from arengine.catalog import default_catalog
from arengine.data import sample_video
from arengine.effects.lipstick import (
    LipParams,
    LipstickEffect,
    lip_fields,
    lip_geometry,
    lip_roi_mask,
    measure_light,
)
from arengine.render.lips import composite_and_read, roi_to_lab
from arengine.tracking import FaceTracker
from arengine.types import Scene

SIZES = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}
SHADES = {"matte": "velvet-ruby", "satin": "silk-cherry", "sheer": "dew-strawberry",
          "gloss": "dew-glass-red", "shimmer": "star-galaxy", "metallic": "star-rose-gold",
          "liner+ombre": "gradient-nude-liner"}
STAGES = ("mask", "light", "fields", "composite")
WARMUP = 5


def read_frames(path: Path, count: int) -> list[np.ndarray]:
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="bgr24"))
            if len(frames) >= count:
                break
    return frames


def track_all(frames: list[np.ndarray], fps: float) -> tuple[list[Scene], list[float]]:
    scenes, ms = [], []
    with FaceTracker(mode="video") as tracker:
        for i, img in enumerate(frames):
            t = time.perf_counter()
            scenes.append(tracker.track(img, i / fps, i))
            ms.append((time.perf_counter() - t) * 1000)
    return scenes, ms[WARMUP:]


def time_effect(effect: LipstickEffect, frames: list[np.ndarray],
                scenes: list[Scene]) -> list[float]:
    ms = []
    for img, scene in zip(frames, scenes, strict=True):
        work = img.copy()  # apply paints in place; the copy is not the effect's cost
        t = time.perf_counter()
        effect.apply(work, scene)
        ms.append((time.perf_counter() - t) * 1000)
    return ms[WARMUP:]


def time_stages(shade_id: str, frames: list[np.ndarray],
                scenes: list[Scene]) -> dict[str, list[float]]:
    """The effect's stages for one shade, each timed on its own (see the module doc)."""
    params = LipParams.from_shade(default_catalog().get(shade_id))
    out: dict[str, list[float]] = {s: [] for s in STAGES}

    def timed(stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        t = time.perf_counter()
        value = fn(*args)
        out[stage].append((time.perf_counter() - t) * 1000)
        return value

    def mask(points: np.ndarray, img: np.ndarray) -> Any:
        geom = lip_geometry(points, img.shape[1], img.shape[0])
        if geom is None:
            return None
        x1, y1, x2, y2 = geom.box
        lab = roi_to_lab(img[y1:y2, x1:x2])
        return geom, lab, lip_roi_mask(geom, None, img, lab)

    for img, scene in zip(frames, scenes, strict=True):
        if not len(scene.faces):
            continue
        points = scene.faces.points[0]
        got = timed("mask", mask, points, img)
        if got is None:
            continue
        geom, lab, m8 = got
        light = timed("light", measure_light, img, geom)
        fields = timed("fields", lip_fields, lab, m8, geom, params, points, light)
        x1, y1, x2, y2 = geom.box
        roi = np.ascontiguousarray(img[y1:y2, x1:x2])
        m = m8.astype(np.float32) * np.float32(1 / 255)
        timed("composite", composite_and_read, roi, m, params, fields, lab)
    return {k: v[WARMUP:] for k, v in out.items()}


def _rounds(values: list[float]) -> dict[str, float]:
    """Median of the rounds' medians, and their range."""
    return {"median": round(float(np.median(values)), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def run(video: Path, count: int, repeat: int) -> dict[str, Any]:
    source = read_frames(video, count + WARMUP)
    results: dict[str, Any] = {}
    for size_name, (w, h) in SIZES.items():
        frames = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA if w < f.shape[1]
                             else cv2.INTER_LINEAR) for f in source]
        scenes, track_ms = track_all(frames, 25.0)
        faces = sum(len(s.faces) for s in scenes)
        track = summarize(track_ms)
        medians: dict[str, list[float]] = {f: [] for f in SHADES}
        p95s: dict[str, list[float]] = {f: [] for f in SHADES}
        order = list(SHADES)
        for r in range(repeat):
            for finish in order[r % len(order):] + order[:r % len(order)]:
                eff = summarize(time_effect(LipstickEffect(SHADES[finish]), frames, scenes))
                medians[finish].append(eff.median)
                p95s[finish].append(eff.p95)
        rows: dict[str, Any] = {"pass-through": {"effect": _rounds([0.0]),
                                                 "tracking": track.to_dict(),
                                                 "total_median": track.median}}
        for finish, shade in SHADES.items():
            e = _rounds(medians[finish])
            rows[finish] = {"shade": shade, "effect": e, "effect_p95": _rounds(p95s[finish]),
                            "tracking": track.to_dict(),
                            "total_median": round(track.median + e["median"], 3)}
        entry: dict[str, Any] = {"width": w, "height": h, "frames": len(track_ms),
                                 "faces_tracked": faces, "rounds": repeat, "rows": rows}
        if size_name == "720p":
            stages: dict[str, Any] = {}
            for finish, shade in SHADES.items():
                runs = [time_stages(shade, frames, scenes) for _ in range(repeat)]
                stages[finish] = {s: _rounds([float(np.median(run[s])) for run in runs])
                                  for s in STAGES}
            entry["stages"] = stages
        results[size_name] = entry
    return results


def to_markdown(res: dict[str, Any]) -> str:
    sizes = list(res["sizes"])
    out = ["# Lipstick effect cost per face (ms)", "",
           f"{res['frames']} frames of {res['video']} per size after {WARMUP} warm-up frames, "
           f"one face per frame, {res['repeat']} rounds, {res['machine']}. Effect = "
           "`LipstickEffect.apply` alone, the median of the rounds' medians (their range in "
           "brackets); total = median face tracking (FaceMesh video mode) + effect.", "",
           "| finish | " + " | ".join(f"{s} effect | {s} total" for s in sizes) + " |",
           "|---|" + "---:|---:|" * len(sizes)]
    for finish in res["sizes"][sizes[0]]["rows"]:
        cells = []
        for s in sizes:
            row = res["sizes"][s]["rows"][finish]
            e = row["effect"]
            cells += [f"{e['median']:.2f} ({e['min']:.2f}-{e['max']:.2f})",
                      f"{row['total_median']:.2f}"]
        out.append(f"| {finish} | " + " | ".join(cells) + " |")
    stages = res["sizes"].get("720p", {}).get("stages")
    if stages:
        out += ["", "Stages at 720p, each timed on its own (median of the rounds' medians):",
                "", "| finish | " + " | ".join(STAGES) + " | sum |",
                "|---|" + "---:|" * (len(STAGES) + 1)]
        for finish, row in stages.items():
            vals = [row[s]["median"] for s in STAGES]
            out.append(f"| {finish} | " + " | ".join(f"{v:.3f}" for v in vals)
                       + f" | {sum(vals):.3f} |")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--video", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    args = ap.parse_args()
    video = args.video or sample_video()
    if video is None or not video.is_file():
        raise SystemExit("no face video: pass --video or set ARENGINE_DATA")
    if args.repeat < 1 or args.frames < 1:
        raise SystemExit("--frames and --repeat must be at least 1")
    res = {"video": video.name, "frames": args.frames, "repeat": args.repeat,
           "machine": f"{platform.processor() or platform.machine()}, "
                      f"{len(os.sched_getaffinity(0))} CPU cores",
           "load_average": [round(x, 2) for x in os.getloadavg()],
           "sizes": run(video, args.frames, args.repeat)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lipstick.json").write_text(json.dumps(res, indent=1))
    md = to_markdown(res)
    (args.out / "lipstick.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
