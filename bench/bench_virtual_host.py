"""The virtual host's cost per 720p frame on the CPU: rig, character, whole effect.

The frames are real (the 720p sample clip; faces and hands tracked once beforehand, so
tracking is not in the numbers). Every configuration runs on the same frame in turn, so
machine noise hits them alike. Timed per frame:

* ``rig``: :class:`RigSolver` from the tracked landmarks;
* ``draw <character>``: the character alone drawn into a 720p frame (replace size);
* ``replace <character>`` / ``beside <character>``: the whole effect (rig, idle blend,
  backdrop, character), including the frame copy the chain makes;
* ``pass-through``: the frame copy alone (the baseline in the same run).

The goal is rig + drawing within 3 ms a frame.

    python bench/bench_virtual_host.py --frames 300 --out bench/out/virtual_host
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from arengine.bench.machine import machine_info
from arengine.bench.stages import tracked_clip
from arengine.bench.stats import PERCENTILE_METHOD, summarize
from arengine.data import shared_data_dir
from arengine.effects.virtual_host import VirtualHost
from arengine.render.character import CharacterRenderer, character_names, load_character
from arengine.state import RoomState
from arengine.tracking.rig import RigSolver
from arengine.types import Scene

FPS = 25.0
TARGET_MS = 3.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=300, help="timed frames per configuration")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--clip-frames", type=int, default=100,
                    help="distinct frames of the clip, looped")
    ap.add_argument("--out", type=Path, default=Path("bench/out/virtual_host"))
    args = ap.parse_args(argv)
    clip = shared_data_dir() / "mediapipe_samples" / "gesture_recognizer_test_video.mp4"
    if not clip.is_file():
        print(f"no sample clip at {clip}; set ARENGINE_DATA", file=sys.stderr)
        return 2
    images, scenes = tracked_clip(clip, args.clip_frames, FPS)
    state = RoomState("bench", shade_id="velvet-ruby", shade_hex="#9B111E")

    configs: dict[str, Callable[[int], Any]] = {}
    configs["pass-through"] = lambda i: images[i % len(images)].copy()
    solver = RigSolver()
    configs["rig"] = lambda i: solver.update(_at(scenes, i))
    for name in character_names():
        r = CharacterRenderer(load_character(name))
        frame = np.zeros((720, 1280, 3), np.uint8)
        rect = (369.0, 43.0, 541.0, 677.0)
        params = {"mouth_open": 0.5, "vowel_a": 0.4, "vowel_e": 0.1, "yaw": 0.3,
                  "breath": 0.5, "smile": 0.3}
        configs[f"draw {name}"] = lambda i, r=r, frame=frame, rect=rect, params=params: \
            r.composite(frame, rect, params, {"lips": "#9B111E"})
        for mode in ("replace", "beside"):
            effect = VirtualHost(character=name, mode=mode)
            effect.set_state(state)
            configs[f"{mode} {name}"] = lambda i, e=effect: e.apply(
                images[i % len(images)].copy(), _at(scenes, i))

    times: dict[str, list[float]] = {k: [] for k in configs}
    for i in range(args.warmup + args.frames):
        for name, run in configs.items():
            t0 = time.perf_counter()
            run(i)
            dt = (time.perf_counter() - t0) * 1000
            if i >= args.warmup:
                times[name].append(dt)
    rows = {}
    for name, values in times.items():
        s = summarize(values)
        rows[name] = {"median_ms": round(s.median, 3), "p95_ms": round(s.p95, 3),
                      "p99_ms": round(s.p99, 3), "mean_ms": round(s.mean, 3), "n": len(values)}
    base = rows["pass-through"]["median_ms"]
    rep = {"bench": "virtual_host", "resolution": "1280x720", "target_ms": TARGET_MS,
           "percentiles": PERCENTILE_METHOD, "machine": machine_info(), "clip": clip.name,
           "frames": args.frames, "results": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "virtual_host.json").write_text(json.dumps(rep, indent=1))
    lines = ["| configuration | median ms | p95 ms | p99 ms | over pass-through (median) |",
             "|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        extra = "" if name in ("pass-through", "rig") or name.startswith("draw") \
            else f"{r['median_ms'] - base:+.2f}"
        lines.append(f"| {name} | {r['median_ms']:.2f} | {r['p95_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {extra} |")
    rig = rows["rig"]["median_ms"]
    for name in character_names():
        total = rig + rows[f"draw {name}"]["median_ms"]
        lines.append(f"\nrig + draw {name}: {total:.2f} ms median "
                     f"({'within' if total <= TARGET_MS else 'over'} the {TARGET_MS:g} ms goal)")
    md = "\n".join(lines)
    (args.out / "virtual_host.md").write_text(md + "\n")
    print(md)
    return 0


def _at(scenes: list[Scene], i: int) -> Scene:
    """Frame ``i`` of the looped clip, on a clock that keeps rising."""
    return scenes[i % len(scenes)].at(i / FPS, i)


if __name__ == "__main__":
    sys.exit(main())
