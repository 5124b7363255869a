"""bench/bench_e2e.py's report: latency trend, the tables, and argument errors."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from tests.bench.scripts import load_bench


@pytest.fixture(scope="module")
def e2e() -> ModuleType:
    return load_bench("bench_e2e")


def test_trend_tells_steady_from_growing_latency(e2e: ModuleType) -> None:
    t = np.linspace(0, 300, 3000)
    rng = np.random.default_rng(1)
    steady = 80 + rng.normal(0, 5, t.size)
    tr = e2e.trend(list(t), list(steady))
    assert abs(tr["drift_ms_per_min"]) < 1 and tr["span_s"] == pytest.approx(300)
    assert abs(tr["first_p95"] - tr["last_p95"]) < 3
    growing = steady + 0.1 * t  # a queue filling: 6 ms more every minute
    tr = e2e.trend(list(t), list(growing))
    assert tr["drift_ms_per_min"] == pytest.approx(6, abs=0.5)
    assert tr["last_p95"] > tr["first_p95"] + 20
    assert e2e.trend([0.0, 1.0], [5.0, 6.0]) == {}  # too few samples to say


def test_markdown_has_latency_trend_budget_and_viewer_rows(e2e: ModuleType) -> None:
    lat = {"summary": {"n": 300, "p50": 70.0, "p95": 90.0, "p99": 99.0, "mean": 72.0},
           "unread": 0, "stale": 0, "shown_fps": 30.0,
           "trend": {"drift_ms_per_min": 0.4, "first_p95": 89.0, "last_p95": 91.0,
                     "span_s": 300.0},
           "budget": {"encode_ms": 9.0, "send_ms": 0.0, "sent_fps": 30.0,
                      "sent_size": "1280x720", "quality_limitation": "none",
                      "assembly_ms": 1.0, "jitter_buffer_ms": 10.0, "decode_ms": 4.0,
                      "server": {"stages": {"decode": {"mean_ms": 4.0},
                                            "server_total": {"mean_ms": 21.0},
                                            "send": {"mean_ms": 0.1}},
                                 "tracked_fps": {"track_face": 15.0, "track_hands": 5.0}}},
           "cpu": {"server_percent": 85.0, "machine_percent": 160.0,
                   "machine_capacity_percent": 200.0}}
    report = {"latency": {"720p": {"effects": lat}},
              "cpu": {"rows": [{"viewers": 1, "server_cpu_percent": 80.0,
                                "server_out_fps": 30.0, "fps_per_viewer": 30.0,
                                "encoders": 1},
                               {"viewers": 50, "server_cpu_percent": 120.0,
                                "server_out_fps": 30.0, "fps_per_viewer": 29.8,
                                "encoders": 1}],
                      "cpu_percent_per_extra_viewer": 0.8}}
    md = e2e.markdown(report)
    assert "| 720p | effects | 70 | 90 | 99 | 300 | 30.0 | 0 | 0 | 89 / 91 | +0.4 |" in md
    assert "| 50 | 120 |" in md and "0.8" in md
    assert "15.0 / 5.0" in md


@pytest.mark.parametrize("argv, message", [
    (["--paths", "effects,bogus"], "--paths"),
    (["--sizes", "4k"], "--sizes"),
    (["--viewers", "0,10"], "--viewers"),
    (["--viewers", "many"], "--viewers"),
    (["--seconds", "0"], "--seconds"),
    (["--warmup", "-1"], "--warmup"),
    (["--set", "nonsense=1"], "RoomConfig field"),
    (["--set", "face_interval=fast"], "takes a float"),
])
def test_bad_arguments_exit_2(e2e: ModuleType, argv: list[str], message: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        e2e.main(argv)
    assert err.value.code == 2
    assert message in capsys.readouterr().err
