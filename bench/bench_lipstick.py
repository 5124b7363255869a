"""How much the lipstick effect costs per frame, per finish, at 480p, 720p and 1080p.

Decodes the first frames of the 720p face video, scales them to each size, tracks the face
once per frame (FaceMesh video mode, as live) and then times ``LipstickEffect.apply`` for
one shade of each finish on the same frames and scenes, side by side with a pass-through
(tracking only, no effect). Writes ``lipstick.json`` and ``lipstick.md`` to ``--out``.

    python bench/bench_lipstick.py --frames 120 --out bench/out
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from arengine.bench.stats import summarize
from arengine.data import sample_video
from arengine.effects.lipstick import LipstickEffect
from arengine.tracking import FaceTracker
from arengine.types import Scene

SIZES = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}
SHADES = {"matte": "velvet-ruby", "satin": "silk-cherry", "sheer": "dew-strawberry",
          "gloss": "dew-glass-red", "shimmer": "star-galaxy", "metallic": "star-rose-gold",
          "liner+ombre": "gradient-nude-liner"}
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


def run(video: Path, count: int) -> dict[str, Any]:
    source = read_frames(video, count + WARMUP)
    results: dict[str, Any] = {}
    for size_name, (w, h) in SIZES.items():
        frames = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA if w < f.shape[1]
                             else cv2.INTER_LINEAR) for f in source]
        scenes, track_ms = track_all(frames, 25.0)
        faces = sum(len(s.faces) for s in scenes)
        track = summarize(track_ms)
        rows: dict[str, Any] = {"pass-through": {"effect": summarize([0.0]).to_dict(),
                                                 "tracking": track.to_dict(),
                                                 "total_median": track.median}}
        for finish, shade in SHADES.items():
            eff = summarize(time_effect(LipstickEffect(shade), frames, scenes))
            rows[finish] = {"shade": shade, "effect": eff.to_dict(), "tracking": track.to_dict(),
                            "total_median": track.median + eff.median}
        results[size_name] = {"width": w, "height": h, "frames": len(track_ms),
                              "faces_tracked": faces, "rows": rows}
    return results


def to_markdown(res: dict[str, Any]) -> str:
    sizes = list(res["sizes"])
    out = ["# Lipstick effect cost per frame (ms)", "",
           f"{res['frames']} frames of {res['video']} per size after {WARMUP} warm-up frames, "
           f"{res['machine']}. Effect = `LipstickEffect.apply` alone; total = median "
           "face tracking (FaceMesh video mode) + median effect.", "",
           "| finish | " + " | ".join(f"{s} effect median / p95 | {s} total" for s in sizes)
           + " |",
           "|---|" + "---:|---:|" * len(sizes)]
    for finish in res["sizes"][sizes[0]]["rows"]:
        cells = []
        for s in sizes:
            row = res["sizes"][s]["rows"][finish]
            e = row["effect"]
            cells += [f"{e['median']:.2f} / {e['p95']:.2f}", f"{row['total_median']:.2f}"]
        out.append(f"| {finish} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--video", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    args = ap.parse_args()
    video = args.video or sample_video()
    if video is None or not video.is_file():
        raise SystemExit("no face video: pass --video or set ARENGINE_DATA")
    res = {"video": video.name, "frames": args.frames,
           "machine": f"{platform.processor() or platform.machine()}, "
                      f"{len(os.sched_getaffinity(0))} CPU cores",
           "sizes": run(video, args.frames)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lipstick.json").write_text(json.dumps(res, indent=1))
    md = to_markdown(res)
    (args.out / "lipstick.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
