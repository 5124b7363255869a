from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arengine.bench.report import SCHEMA, Verdict, load_json, markdown, plots, write_json
from arengine.bench.stats import summarize


def _stage_point(res: str, base: float) -> dict[str, Any]:
    total = [base + (i % 7) for i in range(40)]
    return {
        "resolution": res, "frames": 40, "fps_target": 30.0,
        "stages": {"decode": summarize([1.0, 2.0]).to_dict(),
                   "effect:lipstick": summarize([0.5, 0.7]).to_dict(),
                   "encode": summarize([base - 3, base - 2]).to_dict()},
        "total": summarize(total).to_dict(),
        "realtime": {"engine_added": summarize(total).to_dict(), "processed": 40,
                     "dropped": 3, "dropped_share": 3 / 43, "achieved_fps": 28.0},
        "where": {"decode": "cpu", "lipstick": "cpu", "encode": "cpu (vp8)"},
        "checks": {"face_found_share": 1.0, "lipstick_checked": 4,
                   "lipstick_moved_toward_shade": 4},
        "samples_ms": {"total": total, "engine_added": total},
    }


@pytest.fixture
def report() -> dict[str, Any]:
    lat = summarize([30.0, 31.0, 40.0]).to_dict()
    return {
        "schema": SCHEMA, "suite": "quick", "started_at": "2026-01-01T00:00:00+00:00",
        "machine": {"cpu": "Test CPU", "cores_usable": 2, "gpus": [],
                    "load_average_at_start": [0.5, 0.5, 0.5],
                    "clock": {"function": "time.perf_counter_ns", "implementation": "x",
                              "measured_step_ns": 50}},
        "percentile_method": "type 7", "targets": {"glass_p99_ms": 300, "engine_p99_ms": 33},
        "notes": ["a note"],
        "verdicts": [Verdict("engine p99", 35.0, 33.0, "ms", "FAIL").to_dict(),
                     Verdict("face found", 100.0, 80.0, "%", "PASS", op=">=").to_dict()],
        "met": False,
        "stages": [_stage_point("480p", 20.0), _stage_point("720p", 30.0)],
        "load": {"points": [{"rooms": 1, "viewers": 1, "processed": 90, "dropped": 0,
                             "latency": lat, "ok": True},
                            {"rooms": 2, "viewers": 1, "processed": 150, "dropped": 30,
                             "latency": lat, "ok": False}],
                 "largest_ok": {"rooms": 1, "viewers": 1}},
        "glass": {"status": "measured", "method": "test", "paths": {
            "effects": summarize([120.0, 130.0]).to_dict(),
            "passthrough": summarize([100.0, 105.0]).to_dict()},
            "difference_ms": {"median": 22.5, "p95": 24.0, "p99": 24.8}},
        "soak": {"minutes": 1.0, "resolution": "720p", "processed": 3, "dropped": 0,
                 "drift_ms_per_min": 0.2, "first_p50_ms": 40.0, "last_p50_ms": 41.0,
                 "rss_start_mb": 500.0, "rss_end_mb": 501.0, "rss_growth_mb_per_min": 0.5,
                 "samples_t_s": [0.0, 1.0, 2.0], "samples_ms": [40.0, 42.0, 41.0],
                 "rss_samples": [[1.0, 500.0], [2.0, 501.0]], "latency": lat},
    }


def test_verdict_lines() -> None:
    assert Verdict("p99", 35.04, 33, "ms", "FAIL").line() == \
        "FAIL: p99 = 35.0 ms (target <= 33 ms)"
    assert Verdict("faces", 90.0, 80, "%", "PASS", op=">=").line() == \
        "PASS: faces = 90.0 % (target >= 80 %)"
    assert Verdict("glass", None, 300, "ms", "NOT MEASURED", "no browser").line() == \
        "NOT MEASURED: glass = n/a (target <= 300 ms) - no browser"


def test_markdown_says_how_the_load_rooms_ran(report: dict[str, Any]) -> None:
    assert "threads in one process" in markdown(report)
    report["load"]["processes"] = True
    assert "a process per room" in markdown(report)


def test_markdown_has_every_section(report: dict[str, Any]) -> None:
    md = markdown(report)
    for heading in ("## Targets", "## Stage latency", "## Real-time replay", "## Load",
                    "## Glass to glass", "## Soak"):
        assert heading in md
    assert "targets NOT met" in md
    assert "FAIL: engine p99 = 35.0 ms (target <= 33 ms)" in md
    assert "| 720p | 40 | encode |" in md
    assert "1 room(s) x 1 viewer(s)" in md
    assert "Effects add p50 22.5 ms" in md
    assert "+0.20 ms/min" in md


def test_plots_and_json_round_trip(report: dict[str, Any], tmp_path: Path) -> None:
    names = plots(report, tmp_path)
    assert names == ["latency_by_resolution.png", "stage_breakdown.png",
                     "latency_over_time.png"]
    for n in names:
        assert (tmp_path / n).read_bytes()[:4] == b"\x89PNG"
    write_json(report, tmp_path / "r.json")
    assert load_json(tmp_path / "r.json") == report
    (tmp_path / "other.json").write_text('{"schema": "something-else"}')
    with pytest.raises(ValueError, match="not an arengine bench report"):
        load_json(tmp_path / "other.json")


def _replay_point(p99: float, dropped: float) -> dict:
    return {"resolution": "720p", "stages": {}, "checks": {"face_found_share": 1.0},
            "realtime": {"engine_added": {"p99": p99}, "dropped_share": dropped}}


def test_engine_target_judged_on_the_server_pipeline_when_measured() -> None:
    """The one-thread replay (tracking inline) is shown as INFO once the real, threaded
    server pipeline was measured; without it, the replay is what gets judged."""
    from arengine.bench.suite import DEFAULT_TARGETS, _verdicts

    report = {"targets": dict(DEFAULT_TARGETS), "stages": [_replay_point(72.0, 0.08)],
              "load": {"points": [{"rooms": 1, "viewers": 1, "latency": {"p99": 29.0},
                                   "dropped": 0, "due": 300}]}}
    by = {v.name: v for v in _verdicts(report, [])}
    server = [v for n, v in by.items() if "server pipeline" in n]
    replay = [v for n, v in by.items() if "real-time replay" in n]
    assert [v.status for v in server] == ["PASS", "PASS"]
    assert [v.status for v in replay] == ["INFO", "INFO"]

    report["load"]["points"][0].update(latency={"p99": 40.0}, dropped=3)
    assert [v.status for v in _verdicts(report, []) if "server pipeline" in v.name] == \
        ["FAIL", "FAIL"]

    del report["load"]
    replay = [v for v in _verdicts(report, []) if "real-time replay" in v.name]
    assert [v.status for v in replay] == ["FAIL", "FAIL"]
    assert all("720p30" in v.name for v in replay)  # a report without "fps" is 30 fps

    report["fps"] = 60.0  # arengine bench --fps 60: the replay ran at 60 fps
    replay = [v for v in _verdicts(report, []) if "real-time replay" in v.name]
    assert all("720p60" in v.name for v in replay)
