"""Compositing cost of the on-screen layers at 720p, side by side with a pass-through.

The frames are real (the 720p sample clip, faces and hands tracked once beforehand, so
tracking is not in the numbers); the room is busy: an open poll, 12 commenting viewers,
streaming likes, a like goal and a product. Every configuration runs on the same frame
in turn, so machine noise hits them alike. Each timing covers copying the frame and
applying the layers; "pass-through" is the copy alone.

Two room scenarios:

* ``static``: the room does not change (what a frame costs once every sprite is cached);
* ``live``: votes change every 0.5 s, a viewer comments every second and likes stream in
  at 5/s, so cards and rows are re-rendered as they would be on air.

    python bench/bench_layers.py --frames 400 --out bench/out/layers
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from arengine.bench.machine import machine_info
from arengine.bench.stages import tracked_clip
from arengine.bench.stats import PERCENTILE_METHOD, summarize
from arengine.data import shared_data_dir
from arengine.effects.avatars import Avatars
from arengine.effects.base import Effect
from arengine.effects.likes import Likes
from arengine.effects.product import ProductSticker
from arengine.effects.vote_sticker import VoteSticker
from arengine.state import (
    LikeGoalView,
    PollOptionView,
    PollView,
    ProductView,
    RoomState,
    ViewerView,
)
from arengine.types import Scene

T0 = 1_700_000_000.0  # room clock (unix seconds) at the first frame
FPS = 25.0
NAMES = ["Mai Anh", "王小明", "สมชาย", "Budi Santoso", "Lucy", "陈静", "Nguyễn Văn A", "Siti",
         "Tom Lee", "Ploy", "李娜", "Rina", "Dewi", "Kenji", "Ana", "Wei"]
COMMENTS = ["这个颜色好看！", "สวยมากค่ะ ราคาเท่าไหร่", "Bagus sekali!", "love it",
            "Màu này đẹp quá", "Mau beli 2", "多少钱？", "Cantik banget kak, ada warna lain?"]

CONFIGS: dict[str, tuple[str, ...]] = {
    "pass-through": (),
    "vote sticker": ("vote_sticker",),
    "12 avatars": ("avatars",),
    "likes + goal": ("likes",),
    "product": ("product",),
    "sticker + 12 avatars": ("vote_sticker", "avatars"),
    "all four layers": ("vote_sticker", "likes", "avatars", "product"),
}
MAKERS: dict[str, Callable[[], Effect]] = {
    "vote_sticker": VoteSticker, "avatars": Avatars, "likes": Likes, "product": ProductSticker,
}


def room_at(t: float, live: bool) -> RoomState:
    """The room ``t`` seconds into the run (frozen at t=0 unless ``live``)."""
    k = t if live else 0.0
    now = T0 + k
    step = int(k * 2)  # vote counts move every 0.5 s
    poll = PollView("p1", "Which shade next? 下一个试哪个颜色?", (
        PollOptionView("Velvet Ruby", 40 + step * 3, "velvet-ruby", "#9B111E"),
        PollOptionView("สีชมพู Nude Rose", 25 + step * 2, None, "#C08081"),
        PollOptionView("Đỏ cam Coral", 12 + step, None, "#FF7F50")), T0 - 20, T0 + 300)
    chatter = int(k)  # one new comment per second
    viewers = []
    for i in range(16):
        active = T0 - 30 + i
        comment: str | None = COMMENTS[i % len(COMMENTS)] if i % 3 else None
        if i == chatter % 16 and chatter:
            active, comment = now, f"{COMMENTS[chatter % len(COMMENTS)]} #{chatter}"
        viewers.append(ViewerView(f"v{i}", NAMES[i], None, comment, active, T0 - 60))
    newest = int(k / 0.2)  # one like every 0.2 s, at fixed times
    likes = tuple(T0 + (newest - j) * 0.2 for j in range(12))
    return RoomState("bench", taken_at=now, viewers=tuple(viewers), poll=poll,
                     likes=1234 + int(k * 5), recent_likes=likes,
                     like_goal=LikeGoalView(2000, 1234 + int(k * 5), "2000 likes: 10% off!"),
                     product=ProductView("sku-1", "Velvet Ruby Lipstick 丝绒口红", "¥129"))


def load_frames(count: int) -> tuple[list[np.ndarray], list[Scene]]:
    return tracked_clip(shared_data_dir() / "mediapipe_samples"
                        / "gesture_recognizer_test_video.mp4", count, FPS)


def run(frames: list[np.ndarray], scenes: list[Scene], n: int, live: bool,
        warmup: int) -> dict[str, list[float]]:
    layers = {name: {e: MAKERS[e]() for e in effects} for name, effects in CONFIGS.items()}
    samples: dict[str, list[float]] = {name: [] for name in CONFIGS}
    last_state_at = -1.0
    for i in range(n + warmup):
        t = i / FPS
        src = frames[i % len(frames)]
        # Each config sees its own scene object (layers reserve places in its extras).
        base = scenes[i % len(scenes)]
        if last_state_at < 0 or (live and t - last_state_at >= 0.1):  # pushes at 10 Hz
            state = room_at(t, live)
            for effects in layers.values():
                for e in effects.values():
                    e.set_state(state)  # type: ignore[attr-defined]
            last_state_at = t
        for name, effects in layers.items():
            scene = replace(base, timestamp=t, frame_index=i, extras={})
            start = time.perf_counter_ns()
            out = src.copy()
            for e in effects.values():
                out = e.apply(out, scene)
            elapsed = (time.perf_counter_ns() - start) / 1e6
            if i >= warmup:
                samples[name].append(elapsed)
    return samples


def report(samples: dict[str, dict[str, list[float]]], meta: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"benchmark": "layers", **meta, "scenarios": {}}
    for scenario, by_config in samples.items():
        base = summarize(by_config["pass-through"])
        rows = {}
        for name, s in by_config.items():
            sm = summarize(s)
            rows[name] = {**sm.to_dict(), "median_over_passthrough_ms":
                          sm.median - base.median, "p95_over_passthrough_ms": sm.p95 - base.p95}
        out["scenarios"][scenario] = rows
    return out


def markdown(rep: dict[str, Any]) -> str:
    lines = [f"# Layer compositing at {rep['width']}x{rep['height']}", "",
             f"{rep['frames']} timed frames per configuration (after {rep['warmup']} warm-up), "
             f"real 720p clip, {rep['machine']['cpu']} ({rep['machine']['cores_usable']} "
             f"usable cores). Times in ms per frame, including the frame copy; target: "
             f"sticker + 12 avatars <= {rep['target_ms']} ms median over pass-through.", ""]
    for scenario, rows in rep["scenarios"].items():
        lines += [f"## {scenario}", "",
                  "| layers | median | p95 | p99 | median - pass-through |",
                  "|---|---:|---:|---:|---:|"]
        for name, r in rows.items():
            lines.append(f"| {name} | {r['median']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} | "
                         f"{r['median_over_passthrough_ms']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=400, help="timed frames per configuration")
    ap.add_argument("--warmup", type=int, default=25)
    ap.add_argument("--clip-frames", type=int, default=50,
                    help="distinct clip frames to cycle through (tracked once)")
    ap.add_argument("--target-ms", type=float, default=4.0)
    ap.add_argument("--out", type=Path, default=Path("bench/out/layers"))
    args = ap.parse_args(argv)
    if args.frames < 10 or args.clip_frames < 1:
        print("error: --frames must be >= 10 and --clip-frames >= 1", file=sys.stderr)
        return 2
    frames, scenes = load_frames(args.clip_frames)
    samples = {
        "static": run(frames, scenes, args.frames, live=False, warmup=args.warmup),
        "live": run(frames, scenes, args.frames, live=True, warmup=args.warmup),
    }
    rep = report(samples, {
        "width": frames[0].shape[1], "height": frames[0].shape[0], "frames": args.frames,
        "warmup": args.warmup, "target_ms": args.target_ms,
        "percentiles": PERCENTILE_METHOD, "machine": machine_info()})
    core = rep["scenarios"]["live"]["sticker + 12 avatars"]["median_over_passthrough_ms"]
    rep["verdict"] = {"sticker_plus_12_avatars_live_median_ms": round(core, 3),
                      "target_ms": args.target_ms, "pass": core <= args.target_ms}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "layers.json").write_text(json.dumps(rep, indent=1, ensure_ascii=False))
    md = markdown(rep)
    (args.out / "layers.md").write_text(md + "\n")
    print(md)
    print(f"sticker + 12 avatars (live), median over pass-through: {core:.2f} ms "
          f"(target {args.target_ms} ms) -> {'PASS' if core <= args.target_ms else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
