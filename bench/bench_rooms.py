"""Rooms per machine: 720p30 rooms with every effect, in one process (its compositors on
threads, or each in a compositor process) and in one process each.

Each point runs real room pipelines (:func:`arengine.bench.load.load_point`: the demo
source, threaded tracking, every effect, the shared VP8 encoder, ``--viewers`` packet
subscribers per room) for ``--seconds`` and is judged as the plan asks: no dropped frame
and an engine-added p99 (frame in -> packets ready for every viewer) within
``--target-ms``. Points run one after another, the layouts interleaved in each of
``--repeat`` rounds, so a slow moment of the machine does not fall on one layout only.
Writes ``rooms.json`` and ``rooms.md`` to ``--out``.

    python bench/bench_rooms.py --rooms 1,2 --repeat 3 --seconds 15 --out bench/out
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

from arengine.bench.load import load_point


def run(room_counts: list[int], repeat: int, seconds: float, viewers: int,
        target_ms: float) -> list[dict[str, Any]]:
    """Each count of rooms in one process; then, for more than one room, in one process
    with a compositor process per room (``--compositor process``), and in one process
    per room."""
    layouts = [(n, False, "thread") for n in room_counts] + \
        [(n, False, "process") for n in room_counts if n > 1] + \
        [(n, True, "thread") for n in room_counts if n > 1]
    points = []
    for r in range(repeat):
        for rooms, processes, compositor in layouts:
            p = load_point(rooms, viewers, seconds, target_ms, processes=processes,
                           compositor=compositor)  # type: ignore[arg-type]
            p["round"] = r + 1
            lat = p["latency"]
            print(f"round {r + 1}: {rooms} room(s) in {p['processes']} process(es), "
                  f"compositor {compositor}: p99 "
                  f"{lat['p99'] if lat else float('nan'):.1f} ms, dropped {p['dropped']}",
                  flush=True)
            points.append(p)
    return points


def to_markdown(res: dict[str, Any]) -> str:
    out = ["# Rooms per machine", "",
           f"720p30 rooms with every effect, {res['viewers']} viewer(s) each, "
           f"{res['seconds']:.0f} s per point, {res['machine']}; ok = no dropped frame and "
           f"engine-added p99 <= {res['target_ms']:.0f} ms.", "",
           "| rooms | processes | compositor | round | dropped of due | p50 ms | p95 ms "
           "| p99 ms | ok |",
           "|---:|---:|---|---:|---|---:|---:|---:|---|"]
    for p in sorted(res["points"], key=lambda p: (p["rooms"], p["processes"],
                                                  p.get("compositor", "thread"), p["round"])):
        lat = p["latency"] or {"median": float("nan"), "p95": float("nan"),
                               "p99": float("nan")}
        out.append(f"| {p['rooms']} | {p['processes']} | {p.get('compositor', 'thread')} | "
                   f"{p['round']} | "
                   f"{p['dropped']} / {p['due']} | {lat['median']:.1f} | {lat['p95']:.1f} | "
                   f"{lat['p99']:.1f} | {'yes' if p['ok'] else 'no'} |")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rooms", default="1,2", help="room counts, comma-separated")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--viewers", type=int, default=1)
    ap.add_argument("--target-ms", type=float, default=33.0)
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    a = ap.parse_args()
    try:
        counts = [int(x) for x in a.rooms.split(",")]
    except ValueError:
        ap.error(f"--rooms takes whole numbers separated by commas, got {a.rooms!r}")
    if not counts or min(counts) < 1 or a.repeat < 1 or a.seconds <= 0 or a.viewers < 0:
        ap.error("--rooms and --repeat need at least 1, --seconds more than 0")
    res = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
           "viewers": a.viewers, "seconds": a.seconds, "target_ms": a.target_ms,
           "points": run(counts, a.repeat, a.seconds, a.viewers, a.target_ms)}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "rooms.json").write_text(json.dumps(res, indent=1))
    (a.out / "rooms.md").write_text(to_markdown(res))
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
