"""``arengine bench``: latency against the 0.3 s target, and ``bench compare`` of two runs.

Exit codes: 0 every measured target met, 1 a target or a correctness check failed,
2 bad arguments.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from arengine.errors import UserError

MAX_FPS = 240.0
TARGET_KEYS = ("glass_p99_ms", "engine_p99_ms", "dropped_share", "soak_drift_ms_per_min",
               "soak_rss_mb_per_min")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="measure latency per stage, under load, glass to glass",
        description="Benchmark the engine against its latency targets (0.3 s glass to "
                    "glass, 33 ms engine-added p99 at 720p30). Writes report.json, "
                    "report.md and PNG plots. Exit 0: targets met, 1: not met, 2: bad "
                    "arguments. 'arengine bench compare A.json B.json' compares two runs.")
    p.add_argument("--suite", choices=("quick", "full"), default="quick",
                   help="quick: < 3 min on 2 cores, fewer frames (said in the report); full: "
                        ">= 300 frames per point, load sweep up to 16 rooms x 1/10/50 viewers, "
                        "30 s glass to glass per path (default: quick)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: bench/out/<UTC time>)")
    p.add_argument("--input", type=Path, default=None,
                   help="video to run the pipeline on (default: the shared sample face video,"
                        " else the built-in demo source)")
    p.add_argument("--render", choices=("auto", "cpu", "gl"), default="auto",
                   help="render backend for the effects (default: auto)")
    p.add_argument("--soak", type=float, default=0.0, metavar="MINUTES",
                   help="also stream one room for MINUTES and report drift and RSS growth")
    p.add_argument("--targets", nargs="+", default=[], metavar="KEY=VALUE",
                   help=f"override targets; keys: {', '.join(TARGET_KEYS)}")
    p.add_argument("--resolutions", nargs="+", default=None, metavar="RES",
                   help="subset of 480p 720p 1080p 2160p (default: all)")
    p.add_argument("--frames", type=int, default=None,
                   help="timed frames per resolution, overriding the suite's counts")
    p.add_argument("--fps", type=float, default=30.0,
                   help="source frame rate of the stage points and their real-time replay "
                        "(frames arrive every 1/FPS s; default 30). The load sweep and the "
                        "soak stay at the demo's 720p30")
    p.add_argument("--no-load", action="store_true", help="skip the rooms/viewers load sweep")
    p.add_argument("--rooms-in-processes", action="store_true",
                   help="run each room of the load sweep in a process of its own, as one "
                        "'arengine serve' per room would (the rooms of one process share "
                        "its interpreter lock)")
    p.add_argument("--glass", action=argparse.BooleanOptionalAction, default=None,
                   help="run (or skip) glass to glass: the Chromium harness bench/bench_e2e.py, "
                        "else an aiortc loopback (default: on)")
    p.set_defaults(run=run, compare_args=None)
    sub = p.add_subparsers(dest="bench_command", metavar="compare", parser_class=type(p))
    c = sub.add_parser("compare", help="compare two report.json files",
                       description="Table of B/A ratios for every figure two runs share; "
                                   "regressions beyond noise are flagged (exit 1 if any).")
    c.add_argument("a", type=Path, metavar="A.json")
    c.add_argument("b", type=Path, metavar="B.json")
    c.add_argument("--threshold", type=float, default=0.10,
                   help="relative change that counts, beyond the runs' noise (default 0.10)")
    c.set_defaults(run=run_compare)


def parse_targets(items: list[str]) -> dict[str, float]:
    from arengine.bench.suite import DEFAULT_TARGETS

    targets = dict(DEFAULT_TARGETS)
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--targets takes KEY=VALUE, got {item!r}")
        if key not in TARGET_KEYS:
            raise UserError(f"unknown target {key!r}; known: {', '.join(TARGET_KEYS)}")
        try:
            v = float(value)
        except ValueError:
            raise UserError(f"target {key} must be a number, got {value!r}") from None
        if not v >= 0 or v == float("inf"):
            raise UserError(f"target {key} must be a finite number >= 0, got {value}")
        targets[key] = v
    return targets


def _check_input(path: Path) -> None:
    if not path.is_file():
        raise UserError(f"--input {path}: no such file")
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise UserError(f"--input {path}: no video stream")
            next(c.decode(c.streams.video[0]))
    except UserError:
        raise
    except (av.error.FFmpegError, StopIteration, OSError) as e:
        raise UserError(f"--input {path}: not a readable video ({e})") from None


def run(args: argparse.Namespace) -> int:
    from arengine.bench.stages import RESOLUTIONS
    from arengine.bench.suite import BenchOptions, run_bench

    if args.soak < 0 or args.soak != args.soak or args.soak > 24 * 60:
        raise UserError(f"--soak must be between 0 and 1440 minutes, got {args.soak}")
    if not 1.0 <= args.fps <= MAX_FPS:  # also rejects NaN and infinity
        raise UserError(f"--fps must be between 1 and {MAX_FPS:g} frames per second, "
                        f"got {args.fps:g}")
    if args.frames is not None and not 1 <= args.frames <= 100_000:
        raise UserError(f"--frames must be between 1 and 100000, got {args.frames}")
    resolutions = tuple(args.resolutions or RESOLUTIONS)
    for r in resolutions:
        if r not in RESOLUTIONS:
            raise UserError(f"unknown resolution {r!r}; choose from {', '.join(RESOLUTIONS)}")
    targets = parse_targets(args.targets)
    if args.input is not None:
        _check_input(args.input)
    out = args.out or Path("bench/out") / dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    opts = BenchOptions(suite=args.suite, out=out, input=args.input, render=args.render,
                        soak_minutes=args.soak, targets=targets, resolutions=resolutions,
                        frames=args.frames, load=not args.no_load,
                        load_processes=args.rooms_in_processes, glass=args.glass,
                        fps=args.fps)

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    report = run_bench(opts, progress)
    for v in report["verdicts"]:
        from arengine.bench.report import Verdict

        print(Verdict(**v).line())
    print(f"report: {out / 'report.md'} ({'targets met' if report['met'] else 'targets NOT met'})")
    return 0 if report["met"] else 1


def run_compare(args: argparse.Namespace) -> int:
    from arengine.bench.compare import compare, table
    from arengine.bench.report import load_json

    if not args.threshold >= 0:
        raise UserError(f"--threshold must be >= 0, got {args.threshold}")
    reports = []
    for path in (args.a, args.b):
        if not path.is_file():
            raise UserError(f"{path}: no such file")
        try:
            reports.append(load_json(path))
        except ValueError as e:  # JSONDecodeError is a ValueError
            raise UserError(f"{path}: not an arengine bench report ({str(e).splitlines()[0]})") \
                from None
    rows = compare(reports[0], reports[1], args.threshold)
    print(table(reports[0], reports[1], rows, str(args.a), str(args.b), args.threshold))
    return 1 if any(r.flag == "regression" for r in rows) else 0
