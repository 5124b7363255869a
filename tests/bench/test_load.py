from __future__ import annotations

import pytest

from arengine.bench.load import load_point


@pytest.mark.slow
def test_load_point_runs_real_room_pipelines_with_viewers() -> None:
    p = load_point(rooms=2, viewers=3, seconds=2.0, target_ms=100000, warmup=1.5)
    assert p["rooms"] == 2 and p["viewers"] == 3
    assert p["due"] == pytest.approx(2 * 60, abs=4)
    assert p["processed"] > 0
    # Frames already in the pipeline when the window opens (up to two per room: one being
    # composited, one being encoded) finish inside it and count as processed.
    assert p["processed"] + p["dropped"] <= p["due"] + 2 * p["rooms"]
    assert p["latency"]["count"] == p["processed"]
    assert p["latency"]["median"] > 0
    # Every viewer got packets from the shared encoder during the timed window.
    assert p["packets_per_viewer"] > 0
    assert p["ok"] == (p["dropped"] == 0)


@pytest.mark.slow
def test_load_point_runs_each_room_in_its_own_process(monkeypatch) -> None:
    import arengine.bench.load as load

    monkeypatch.setattr(load, "PROCESS_START_S", 6.0)
    p = load.load_point(rooms=2, viewers=1, seconds=2.0, target_ms=100000, warmup=1.5,
                        processes=True)
    assert p["rooms"] == 2 and p["processes"] == 2
    assert set(p["stage_drops"]) == {"bench-0", "bench-1"}  # both rooms reported back
    assert p["due"] == pytest.approx(2 * 60, abs=4)
    # Both windows were open at the same time: each room processed about its share.
    assert p["processed"] + p["dropped"] <= p["due"] + 2 * p["rooms"]
    assert p["processed"] >= 0.5 * p["due"]
    assert p["latency"]["count"] == p["processed"] and p["packets_per_viewer"] > 0
