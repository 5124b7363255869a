"""Face tracking paced by machine load: the controller, /proc/stat, and a room using it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from arengine.pipeline import RoomConfig, RoomPipeline
from arengine.pipeline.live import LiveCompositor
from arengine.pipeline.pacing import CpuLoad, TrackingPacer


class Worker:
    name = "track_face"
    min_interval = 0.0
    idle_interval = 0.2


def test_rate_falls_under_load_and_comes_back_when_the_machine_is_free() -> None:
    loads = iter([0.95, 0.95, 0.95, 0.95, 0.95, 0.80, 0.80, None, 0.5, 0.5, 0.5, 0.5, 0.5,
                  0.5, 0.5])
    w = Worker()
    pacer = TrackingPacer(w, max_rate=30, min_rate=15, load=lambda: next(loads))
    assert w.min_interval == 0.0  # every frame to start with
    rates = [pacer.update() for _ in range(15)]
    assert rates[:5] == pytest.approx([22.5, 16.875, 15, 15, 15])  # never below min_rate
    assert rates[5:8] == [15, 15, 15]  # between low and high, or no reading: hold
    up = rates[7:]
    climb = [r for r in up if r < 30]
    assert climb == sorted(set(climb)) and len(climb) >= 4 and up[-1] == 30
    assert up[1] < 20  # back to the full rate step by step, not at once
    assert w.min_interval == 0.0
    pacer.rate = 20
    pacer._apply()
    assert w.min_interval == pytest.approx(0.05)


def test_hand_search_is_paced_between_5_and_2_per_second() -> None:
    w = Worker()
    pacer = TrackingPacer(w, max_rate=5, min_rate=2, attr="idle_interval", at_max=None,
                          load=lambda: None)
    assert w.idle_interval == pytest.approx(0.2) and w.min_interval == 0.0
    for _ in range(6):
        pacer.update(0.95)  # a reading given by the room, shared by its pacers
    assert w.idle_interval == pytest.approx(0.5) and pacer.interval == pytest.approx(0.5)
    for _ in range(12):
        pacer.update(0.3)
    assert w.idle_interval == pytest.approx(0.2)
    assert w.min_interval == 0.0  # the tracking rate of a hand in view is not touched


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        TrackingPacer(Worker(), max_rate=10, min_rate=15)
    with pytest.raises(ValueError):
        TrackingPacer(Worker(), max_rate=30, high=0.5, low=0.7)
    with pytest.raises(ValueError, match="no search_interval"):
        TrackingPacer(Worker(), max_rate=30, attr="search_interval")


def test_cpu_load_reads_proc_stat(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal
    stat.write_text("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3\n")
    load = CpuLoad(str(stat))
    stat.write_text("cpu  160 0 120 820 0 0 0 0 0 0\n")  # 80 busy of 100
    assert load.read() == pytest.approx(0.8)
    assert load.read() is None  # no time passed
    assert CpuLoad(str(tmp_path / "missing")).read() is None
    real = CpuLoad()
    sum(i * i for i in range(200_000))
    busy = real.read()
    assert busy is None or 0.0 <= busy <= 1.0


def test_a_room_paces_its_face_worker_and_reports_it() -> None:
    async def main() -> None:
        config = RoomConfig(demo_size=(320, 180), fps=15, track_hands=False,
                            effects=("lipstick",))
        pipeline = RoomPipeline("r", config)
        await pipeline.start()
        try:
            live = pipeline.compositor
            assert isinstance(live, LiveCompositor)
            assert len(live.pacers) == 1  # no hand worker, so only the face's
            pacer = live.pacers[0]
            assert pacer.max_rate == 15 and pacer.min_rate == 15
            pacer._load = lambda: 0.99
            pacer.max_rate, pacer.min_rate, pacer.rate = 30, 10, 30
            pacer.update()
            stats = pipeline.stats()
            assert stats["tracking"]["track_face"]["min_interval"] == pytest.approx(1 / 22.5)
            assert stats["machine_busy"] == 0.99
        finally:
            await pipeline.close()
        both = RoomPipeline("r", RoomConfig(demo_size=(320, 180), fps=15, demo=False))
        await both.start()
        try:
            assert isinstance(both.compositor, LiveCompositor)
            face, hands = both.compositor.pacers
            assert (face.attr, hands.attr) == ("min_interval", "idle_interval")
            assert (hands.max_rate, hands.min_rate) == (5, 2)
            assert both.stats()["tracking"]["track_hands"]["idle_interval"] == \
                pytest.approx(0.2)
        finally:
            await both.close()
        off = RoomPipeline("r", RoomConfig(demo_size=(320, 180), track_hands=False,
                                           pace_tracking=False, face_interval=0.1))
        await off.start()
        try:
            live = off.compositor
            assert isinstance(live, LiveCompositor)
            assert live.pacers == [] and live.face is not None
            assert live.face.min_interval == 0.1
        finally:
            await off.close()

    asyncio.run(main())
