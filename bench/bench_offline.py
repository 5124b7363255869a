"""Per-stage cost of the offline try-on pipeline, beside a pass-through, in one run.

For each point (480p, 720p and 1080p stills, and the real 720p clip) two pipelines run
frame by frame, interleaved so that both see the same machine load:

* **full**: decode, track face, track hands, lipstick, encode (what ``arengine tryon`` does);
* **pass-through**: decode and encode only, the floor any video tool pays.

Stills are the same portrait at three sizes (``faces/obama-480p/720p/1080p.jpg``); each
frame decodes the JPEG again and is tracked in video mode at 25 fps, so the cost is that
of steady tracking, not of a fresh detection per frame. The clip is
``gesture_recognizer_test_video.mp4`` decoded with PyAV, looped until enough frames were
timed. Encoding is H.264 (libx264, veryfast, crf 18) into an mp4, as ``tryon`` writes.

Timing uses ``time.perf_counter_ns`` around each stage; the first ``--warmup`` frames of
every point are run but not timed. Writes ``offline.json`` and ``offline.md`` to ``--out``
(default ``bench/out``)::

    python bench/bench_offline.py                # 300 timed frames per point
    python bench/bench_offline.py --frames 60    # a quick look
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from arengine.bench.stats import PERCENTILE_METHOD, summarize
from arengine.data import shared_data_dir
from arengine.effects.lipstick import DEFAULT_SHADE, LipstickEffect
from arengine.media import VideoInput, VideoOutput
from arengine.tracking import FaceTracker, HandTracker
from arengine.types import Frame

STAGES = ("decode", "track_face", "track_hands", "lipstick", "encode")
PASS_STAGES = ("decode", "encode")
TARGET_MS = 8.0  # face tracking + lipstick, median per 720p frame
STILLS = {"480p": "faces/obama-480p.jpg", "720p": "faces/obama-720p.jpg",
          "1080p": "faces/obama-1080p.jpg"}
CLIP = "mediapipe_samples/gesture_recognizer_test_video.mp4"
FPS = 25


class StillSource:
    """The same JPEG decoded again for every frame (the decode stage of a still)."""

    def __init__(self, path: Path) -> None:
        self.data = np.fromfile(str(path), np.uint8)
        self.count = 0

    def read(self) -> tuple[Frame, bool]:
        image = cv2.imdecode(self.data, cv2.IMREAD_COLOR)
        self.count += 1
        return Frame(image, self.count - 1, Fraction(1, FPS), self.count - 1), False

    def close(self) -> None:
        pass


class ClipSource:
    """The clip decoded with PyAV, reopened at its end; pts and indices keep counting.

    ``read`` says when it had to reopen the file: that frame is not timed, since opening a
    container is a once-per-file cost, not a per-frame one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._open()

    def _open(self) -> None:
        self.input = VideoInput(self.path, audio=False)
        self.frames = self.input.frames()

    def read(self) -> tuple[Frame, bool]:
        wrapped = False
        try:
            f = next(self.frames)
        except StopIteration:
            self.input.close()
            self._open()
            f = next(self.frames)
            wrapped = True
        self.count += 1
        return Frame(f.image, self.count - 1, Fraction(1, FPS), self.count - 1), wrapped

    def close(self) -> None:
        self.input.close()


Source = StillSource | ClipSource


class Pipeline:
    """One pipeline's stages; ``full=False`` is the pass-through."""

    def __init__(self, full: bool, out: Path, width: int, height: int) -> None:
        self.full = full
        self.output = VideoOutput(out, width=width, height=height, fps=FPS)
        self.faces = FaceTracker("video") if full else None
        self.hands = HandTracker("video") if full else None
        self.effect = LipstickEffect(shade=DEFAULT_SHADE) if full else None
        self.times: dict[str, list[float]] = {s: [] for s in STAGES}
        self.faces_seen = 0

    def step(self, source: Source, record: bool) -> bool:
        """Run one frame through every stage; returns whether it was timed."""
        clock = time.perf_counter_ns
        t0 = clock()
        frame, wrapped = source.read()
        t1 = clock()
        record = record and not wrapped
        t2 = t3 = t4 = t1
        image = frame.image
        if self.full:
            assert self.faces is not None and self.hands is not None
            assert self.effect is not None
            scene = self.faces.track(image, frame.index / FPS, frame.index)
            t2 = clock()
            scene = scene.with_hands(self.hands.detect(image))
            t3 = clock()
            if len(scene.faces):
                image = self.effect.apply(image, scene)
                self.faces_seen += record
            t4 = clock()
        self.output.write(frame.replace(image))
        t5 = clock()
        if record:
            self.times["decode"].append((t1 - t0) / 1e6)
            self.times["encode"].append((t5 - t4) / 1e6)
            if self.full:
                self.times["track_face"].append((t2 - t1) / 1e6)
                self.times["track_hands"].append((t3 - t2) / 1e6)
                self.times["lipstick"].append((t4 - t3) / 1e6)
        return record

    def close(self) -> None:
        self.output.close()
        if self.faces is not None:
            self.faces.close()
        if self.hands is not None:
            self.hands.close()


def run_point(name: str, make_source: Callable[[], Source], size: tuple[int, int],
              frames: int, warmup: int, tmp: Path) -> dict[str, Any]:
    full = Pipeline(True, tmp / f"{name}-full.mp4", *size)
    passthrough = Pipeline(False, tmp / f"{name}-pass.mp4", *size)
    src_full, src_pass = make_source(), make_source()
    t_start = time.perf_counter_ns()
    for _ in range(warmup):
        full.step(src_full, False)
        passthrough.step(src_pass, False)
    timed_full = timed_pass = 0
    while timed_full < frames or timed_pass < frames:
        # Interleaved, so both pipelines see the same load on a shared machine.
        if timed_full < frames:
            timed_full += full.step(src_full, True)
        if timed_pass < frames:
            timed_pass += passthrough.step(src_pass, True)
    wall_s = (time.perf_counter_ns() - t_start) / 1e9
    for closing in (full, passthrough, src_full, src_pass):
        closing.close()

    def stats(values: list[float]) -> dict[str, float]:
        s = summarize(values)
        return {"median_ms": round(s.median, 3), "p95_ms": round(s.p95, 3),
                "p99_ms": round(s.p99, 3), "mean_ms": round(s.mean, 3)}

    per_frame = {s: full.times[s] for s in STAGES}
    face_lip = [a + b for a, b in zip(per_frame["track_face"], per_frame["lipstick"],
                                      strict=True)]
    total = [sum(v) for v in zip(*per_frame.values(), strict=True)]
    pass_total = [a + b for a, b in zip(passthrough.times["decode"],
                                        passthrough.times["encode"], strict=True)]
    return {
        "point": name, "width": size[0], "height": size[1], "frames_timed": frames,
        "warmup_frames": warmup, "frames_with_face": full.faces_seen, "wall_s": round(wall_s, 2),
        "full": {**{s: stats(per_frame[s]) for s in STAGES},
                 "face_plus_lipstick": stats(face_lip), "total": stats(total)},
        "passthrough": {**{s: stats(passthrough.times[s]) for s in PASS_STAGES},
                        "total": stats(pass_total)},
    }


def machine() -> dict[str, Any]:
    try:
        from arengine.bench.machine import machine_info

        return machine_info()
    except Exception:  # the report is still useful without the machine block
        return {"platform": platform.platform(), "python": sys.version.split()[0]}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Offline try-on: per-stage cost (ms per frame)", "",
             f"Clock: `{report['clock']['name']}` (resolution "
             f"{report['clock']['resolution_ns']} ns). {report['frames']} timed frames per point "
             f"after {report['warmup']} warm-up frames; percentiles: "
             f"{report['percentiles']}.", "",
             "| point | " + " | ".join(f"{s} med / p99" for s in STAGES)
             + " | full total med / p99 | pass-through med / p99 | face+lipstick med |",
             "|---|" + "---|" * (len(STAGES) + 3)]
    for p in report["points"]:
        f, q = p["full"], p["passthrough"]
        cells = [f"{f[s]['median_ms']:.2f} / {f[s]['p99_ms']:.2f}" for s in STAGES]
        lines.append(f"| {p['point']} | " + " | ".join(cells)
                     + f" | {f['total']['median_ms']:.2f} / {f['total']['p99_ms']:.2f}"
                     + f" | {q['total']['median_ms']:.2f} / {q['total']['p99_ms']:.2f}"
                     + f" | {f['face_plus_lipstick']['median_ms']:.2f} |")
    v = report["target"]
    lines += ["", f"Target: face tracking + lipstick <= {v['limit_ms']:g} ms median per 720p "
              f"frame. Measured: still {v['still_720p_ms']:.2f} ms, clip "
              f"{v['clip_720p_ms']:.2f} ms -> **{'met' if v['met'] else 'missed'}**.", "",
              f"Load average before/after: {report['load_before']} / {report['load_after']}. "
              "The machine may be shared with other work while this runs; compare the full "
              "pipeline with the pass-through measured beside it, not across runs.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300, help="timed frames per point")
    ap.add_argument("--warmup", type=int, default=10, help="untimed frames per point first")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    ap.add_argument("--data", type=Path, default=None, help="real data folder")
    ap.add_argument("--points", default="480p,720p,1080p,clip-720p",
                    help="comma-separated subset of 480p,720p,1080p,clip-720p")
    args = ap.parse_args(argv)
    if args.frames < 1 or args.warmup < 0:
        ap.error("--frames must be >= 1 and --warmup >= 0")
    data = args.data or shared_data_dir()
    wanted = [p.strip() for p in args.points.split(",") if p.strip()]
    for p in wanted:
        if p not in (*STILLS, "clip-720p"):
            ap.error(f"unknown point {p!r}")
    for rel in [*(STILLS[p] for p in wanted if p in STILLS), CLIP]:
        if not (data / rel).is_file():
            ap.error(f"missing real data {data / rel}; pass --data")
    args.out.mkdir(parents=True, exist_ok=True)

    report: dict[str, Any] = {
        "benchmark": "offline try-on pipeline vs pass-through",
        "clock": {"name": "time.perf_counter_ns",
                  "resolution_ns": int(time.get_clock_info("perf_counter").resolution * 1e9)},
        "percentiles": PERCENTILE_METHOD, "frames": args.frames, "warmup": args.warmup,
        "encoder": "libx264 veryfast crf 18, yuv420p, mp4",
        "machine": machine(), "load_before": load_average(), "points": []}
    with tempfile.TemporaryDirectory(prefix="arengine-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for name in wanted:
            if name in STILLS:
                path = data / STILLS[name]
                img = cv2.imread(str(path))
                size = (img.shape[1], img.shape[0])
                result = run_point(name, functools.partial(StillSource, path), size,
                                   args.frames, args.warmup, tmp)
                result["source"] = STILLS[name] + " (still, repeated)"
            else:
                with VideoInput(data / CLIP, audio=False) as inp:
                    size = (inp.info.width, inp.info.height)
                result = run_point(name, functools.partial(ClipSource, data / CLIP), size,
                                   args.frames, args.warmup, tmp)
                result["source"] = CLIP + " (looped)"
            report["points"].append(result)
            f = result["full"]
            print(f"{name:>9}: face {f['track_face']['median_ms']:.2f} ms, hands "
                  f"{f['track_hands']['median_ms']:.2f}, lipstick {f['lipstick']['median_ms']:.2f},"
                  f" encode {f['encode']['median_ms']:.2f}, decode {f['decode']['median_ms']:.2f}"
                  f" | pass-through {result['passthrough']['total']['median_ms']:.2f} ms",
                  file=sys.stderr)
    report["load_after"] = load_average()
    by = {p["point"]: p for p in report["points"]}
    still = by.get("720p", {}).get("full", {}).get("face_plus_lipstick", {}).get("median_ms")
    clip = by.get("clip-720p", {}).get("full", {}).get("face_plus_lipstick", {}).get("median_ms")
    measured = [v for v in (still, clip) if v is not None]
    report["target"] = {"limit_ms": TARGET_MS, "still_720p_ms": still or float("nan"),
                        "clip_720p_ms": clip or float("nan"),
                        "met": bool(measured) and max(measured) <= TARGET_MS}
    (args.out / "offline.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "offline.md").write_text(markdown(report))
    print(f"wrote {args.out / 'offline.json'} and {args.out / 'offline.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
