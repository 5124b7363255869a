"""Load: the server's own room pipelines, several at once, in one process.

Each room is a real :class:`~arengine.pipeline.room.RoomPipeline` playing its 720p30 demo
source (a moving real face) with threaded tracking, the effect chain and one shared VP8
encoder, and ``viewers`` subscribers pulling packets off its fan-out, as WHEP viewers'
senders do. Nothing is simulated: frames that the pipeline could not encode in time are
simply missing from the output, so dropped = frames due at the source rate minus frames
encoded.

Latency here is the server's ``server_total`` timing (frame entered the pipeline ->
packets ready for every viewer); it does not include the network or the viewer's decoder.

With ``processes`` each room runs in a process of its own (as one ``arengine serve`` per
room would), their timed windows starting at the same moment. Two 720p30 rooms with every
effect in one process share one GIL: their p99 was 27-35 ms on the 2-core VM, against
23-27 ms in two processes (both with no frame dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arengine.bench.stats import summarize
from arengine.types import StageTiming

if TYPE_CHECKING:
    from arengine.pipeline.config import CompositorWhere


@dataclass
class RoomSamples:
    """What one room produced during a run."""

    latency_ms: list[float] = field(default_factory=list)
    at_s: list[float] = field(default_factory=list)  # seconds since the run began
    drops: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    packets_received: int = 0  # by all viewers together


def _observer(samples: dict[str, RoomSamples], t0: list[float]) -> Any:
    from arengine.pipeline.observer import StatsObserver

    class RecordingObserver(StatsObserver):
        """Keeps every end-to-end server timing (StatsObserver keeps a window)."""

        def on_timing(self, room: str, timing: StageTiming) -> None:
            super().on_timing(room, timing)
            # Frames that entered the pipeline inside the window [t0[0], t0[1]); those
            # arriving while the pipelines wind down are not the window's.
            if timing.stage == "server_total" and t0[0] > 0 \
                    and t0[0] <= timing.start < t0[1]:
                s = samples[room]
                s.latency_ms.append(timing.duration_ms)
                s.at_s.append(timing.end - t0[0])

        def on_drop(self, room: str, stage: str, n: int = 1) -> None:
            super().on_drop(room, stage, n)
            if t0[0] == 0:
                return
            d = samples[room].drops
            d[stage] = d.get(stage, 0) + n

        def on_error(self, room: str, stage: str) -> None:
            super().on_error(room, stage)
            e = samples[room].errors
            e[stage] = e.get(stage, 0) + 1

    return RecordingObserver()


async def _run_rooms(rooms: int, viewers: int, seconds: float, warmup: float, fps: int,
                     on_tick: Callable[[float], None] | None, first: int = 0,
                     start_at: float | None = None, compositor: CompositorWhere = "thread"
                     ) -> tuple[dict[str, RoomSamples], float]:
    from arengine.bench.stages import busy_room_state
    from arengine.pipeline.compositor_process import CompositorProcess
    from arengine.pipeline.room import RoomConfig, RoomPipeline

    samples = {f"bench-{i}": RoomSamples() for i in range(first, first + rooms)}
    t0 = [0.0, float("inf")]
    observer = _observer(samples, t0)
    state = busy_room_state(viewers)
    config = RoomConfig(demo=True, demo_size=(1280, 720), fps=fps, compositor=compositor)
    pipes = [RoomPipeline(name, config, observer=observer, state=lambda: state)
             for name in samples]
    consumers: list[asyncio.Task[None]] = []

    async def consume(track: Any, s: RoomSamples) -> None:
        while True:
            await track.recv()
            if t0[0] > 0:
                s.packets_received += 1

    try:
        for p in pipes:
            await p.start()
            # The warm-up starts once a compositor process is up.
            if isinstance(p.compositor, CompositorProcess) and \
                    not await asyncio.to_thread(p.compositor.wait_ready, 120):
                raise RuntimeError(f"room {p.room}: the compositor process did not start")
            for _ in range(viewers):
                consumers.append(asyncio.create_task(consume(p.subscribe("vp8"),
                                                             samples[p.room])))
        await asyncio.sleep(warmup)
        if start_at is not None:  # the wall-clock moment every process's window opens
            await asyncio.sleep(max(0.0, start_at - time.time()))
        t0[0] = time.perf_counter()
        end = t0[1] = t0[0] + seconds
        while (now := time.perf_counter()) < end:
            if on_tick is not None:
                on_tick(now - t0[0])
            await asyncio.sleep(min(1.0, end - now))
        elapsed = time.perf_counter() - t0[0]
    finally:
        for c in consumers:
            c.cancel()
        for c in consumers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await c
        for p in pipes:
            await p.close()
    return samples, elapsed


def run_rooms(rooms: int, viewers: int, seconds: float, warmup: float = 3.0, fps: int = 30,
              on_tick: Callable[[float], None] | None = None, processes: bool = False,
              compositor: CompositorWhere = "thread") -> tuple[dict[str, RoomSamples], float]:
    """Run ``rooms`` room pipelines with ``viewers`` each for ``seconds`` (after a warm-up),
    at the GIL switch interval the server runs with (it was Python's default here, so the
    benchmark measured a slower engine than the one users run); with ``processes``, each
    room in a process of its own (``on_tick`` is then not called); ``compositor`` is where
    each room's compositor runs (RoomConfig.compositor)."""
    if processes:
        return _run_in_processes(rooms, viewers, seconds, warmup, fps, compositor)
    return _run_here(rooms, viewers, seconds, warmup, fps, on_tick, compositor=compositor)


def _run_here(rooms: int, viewers: int, seconds: float, warmup: float, fps: int,
              on_tick: Callable[[float], None] | None, first: int = 0,
              start_at: float | None = None, compositor: CompositorWhere = "thread"
              ) -> tuple[dict[str, RoomSamples], float]:
    import sys

    from arengine.server import SWITCH_INTERVAL

    saved = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        return asyncio.run(_run_rooms(rooms, viewers, seconds, warmup, fps, on_tick, first,
                                      start_at, compositor))
    finally:
        sys.setswitchinterval(saved)


# A process takes 2-4 s to start and import the engine on the 2-core VM; every window
# opens this long after the processes were asked for, once all of them have warmed up.
PROCESS_START_S = 10.0


def _room_process(index: int, viewers: int, seconds: float, warmup: float, fps: int,
                  start_at: float, compositor: CompositorWhere
                  ) -> tuple[dict[str, RoomSamples], float]:
    return _run_here(1, viewers, seconds, warmup, fps, None, index, start_at, compositor)


def _run_in_processes(rooms: int, viewers: int, seconds: float, warmup: float, fps: int,
                      compositor: CompositorWhere = "thread"
                      ) -> tuple[dict[str, RoomSamples], float]:
    import multiprocessing as mp

    start_at = time.time() + PROCESS_START_S + warmup
    # spawn: a fork of a process with MediaPipe graphs or a running loop is not safe.
    with mp.get_context("spawn").Pool(rooms) as pool:
        parts = pool.starmap(_room_process, [(i, viewers, seconds, warmup, fps, start_at,
                                              compositor) for i in range(rooms)])
    samples: dict[str, RoomSamples] = {}
    for part, _ in parts:
        samples.update(part)
    return samples, min(elapsed for _, elapsed in parts)


def load_point(rooms: int, viewers: int, seconds: float, target_ms: float, fps: int = 30,
               warmup: float = 3.0, processes: bool = False,
               compositor: CompositorWhere = "thread") -> dict[str, Any]:
    """One point of the load sweep, judged: p99 within ``target_ms`` and nothing dropped;
    with ``processes``, one process per room; ``compositor`` as RoomConfig's."""
    samples, elapsed = run_rooms(rooms, viewers, seconds, warmup, fps, processes=processes,
                                 compositor=compositor)
    lat = [v for s in samples.values() for v in s.latency_ms]
    due = int(elapsed * fps) * rooms
    processed = sum(len(s.latency_ms) for s in samples.values())
    # One frame of slack per room for the edges of the window.
    dropped = max(0, due - processed - rooms)
    summary = summarize(lat).to_dict() if lat else None
    ok = summary is not None and summary["p99"] <= target_ms and dropped == 0
    return {"rooms": rooms, "viewers": viewers, "processes": rooms if processes else 1,
            "compositor": compositor,
            "seconds": elapsed, "due": due,
            "processed": processed, "dropped": dropped,
            "stage_drops": {r: s.drops for r, s in samples.items()},
            "errors": {r: s.errors for r, s in samples.items() if s.errors},
            "packets_per_viewer": (sum(s.packets_received for s in samples.values())
                                   / max(1, rooms * viewers)),
            "latency": summary, "ok": ok}


def load_sweep(target_ms: float, seconds: float, viewer_counts: tuple[int, ...] = (1, 10, 50),
               max_rooms: int = 16, progress: Callable[[str], None] | None = None,
               warmup: float = 3.0, processes: bool = False) -> dict[str, Any]:
    """Rooms 1, 2, 4, ... with each viewer count, until a room count has no passing point;
    with ``processes``, each room in a process of its own.

    One and two rooms are always measured with every viewer count, so even a machine that
    cannot hold one room shows how latency scales.
    """
    points = []
    best: dict[str, int] | None = None
    rooms = 1
    while rooms <= max_rooms:
        any_ok = False
        for v in viewer_counts:
            p = load_point(rooms, v, seconds, target_ms, warmup=warmup, processes=processes)
            points.append(p)
            if progress is not None:
                lat = p["latency"]
                progress(f"load: {rooms} room(s) x {v} viewer(s): p99 "
                         f"{lat['p99'] if lat else float('nan'):.1f} ms, dropped {p['dropped']}")
            if p["ok"]:
                any_ok = True
                if best is None or (rooms, v) > (best["rooms"], best["viewers"]):
                    best = {"rooms": rooms, "viewers": v}
            elif rooms > 2:
                break
        if not any_ok and rooms >= 2:
            break
        rooms *= 2
    return {"target_ms": target_ms, "seconds_per_point": seconds,
            "method": "RoomPipeline x rooms " + ("in a process each" if processes
                                                  else "in one process")
                      + ", demo source 720p30, VP8, viewers pull packets from the shared "
                        "encoder",
            "processes": processes,
            "points": points, "largest_ok": best}
