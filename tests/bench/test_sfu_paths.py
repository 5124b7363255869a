"""bench/bench_sfu.py and bench/bench_paths.py: a tiny real run of each against the real far
ends (Janus, nginx-rtmp), and their arithmetic.

The smoke runs are a viewer and a path for a couple of seconds: they check that the JSON
has every field with sane values, not the numbers (those come from a full run on a quiet
machine). A missing Janus or nginx-rtmp skips locally and fails under CI=true, as in
tests/transport.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.bench.scripts import load_bench
from tests.transport.janus_server import janus_or_fail
from tests.transport.nginx_rtmp import nginx_or_skip

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, args: list[str], data_dir: Path, timeout: float = 300) -> None:
    r = subprocess.run([sys.executable, f"bench/{script}", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "ARENGINE_DATA": str(data_dir)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


@pytest.mark.slow
def test_sfu_smoke_run_reports_both_paths(tmp_path: Path, data_dir: Path) -> None:
    janus_or_fail()
    _run("bench_sfu.py", ["--viewers", "1", "--window", "2", "--warmup", "1", "--settle", "1",
                          "--size", "640x360", "--out", str(tmp_path)], data_dir)
    report = json.loads((tmp_path / "sfu.json").read_text())
    assert report["settings"]["viewers"] == [1] and report["machine"]["cores_logical"]
    points = {p["path"]: p for p in report["points"]}
    assert set(points) == {"janus", "whep"}
    for p in points.values():
        assert p["viewers"] == 1 and p["viewers_receiving"] == 1, p
        assert p["fps_per_viewer"]["min"] > 5, p
        assert 0 < p["arengine_cpu_percent"] < p["machine_capacity_percent"], p
        assert p["encoders_running"] == 1 and p["encoders"]["vp8"]["fps"] > 5, p
        assert p["window_s"] >= 2
        assert p["janus_cpu_percent"] >= 0 and p["viewer_process_cpu_percent"] >= 0
    (out,) = points["janus"]["outputs"]
    assert out["kind"] == "janus" and out["state"] == "live" and out["fps"] > 5
    assert points["whep"]["outputs"] == [] and points["whep"]["arengine_viewers"] == 1
    assert points["janus"]["janus_cpu_percent"] > 0
    assert set(report["summary"]) == {"janus", "whep"}  # one count: no slope, no verdict
    md = (tmp_path / "sfu.md").read_text()
    assert "| 1 | janus |" in md and "| 1 | whep |" in md


@pytest.mark.slow
def test_paths_smoke_run_measures_rtmp(tmp_path: Path, data_dir: Path) -> None:
    nginx_or_skip()
    _run("bench_paths.py", ["--paths", "rtmp", "--seconds", "2", "--warmup", "1",
                            "--out", str(tmp_path)], data_dir)
    report = json.loads((tmp_path / "paths.json").read_text())
    assert report["settings"]["paths"] == ["rtmp"]
    assert "CLOCK_MONOTONIC" in report["clock"]
    rtmp = report["paths"]["rtmp"]
    assert rtmp["unit"] == "ms" and rtmp["includes"]
    assert rtmp["frames_sent"] > 30 and rtmp["frames_seen"] > 0.5 * rtmp["frames_sent"]
    s = rtmp["summary"]
    assert 0 < s["min"] <= s["median"] <= s["p95"] <= s["p99"] <= s["max"] < 10_000, s
    assert report["received_size"]["rtmp"] == [854, 480]
    assert report["cpu_percent"]["arengine"] > 0 and report["cpu_percent"]["receiver rtmp"] > 0
    assert any(o["kind"] == "rtmp" for o in report["server"]["outputs"])
    assert "| rtmp |" in (tmp_path / "paths.md").read_text()


# -- arithmetic (fast) -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paths() -> ModuleType:
    return load_bench("bench_paths")


@pytest.fixture(scope="module")
def sfu() -> ModuleType:
    return load_bench("bench_sfu")


def test_latency_counts_the_window_and_drops_misreads(paths: ModuleType) -> None:
    sent = {i: 10.0 + i / 30 for i in range(90)}  # 3 s at 30 fps from t = 10 s
    first = [[i, sent[i] + 0.080] for i in range(30, 60) if i != 40]
    first.append([41, sent[41] - 0.5])  # read before it was sent: an overlay's misread
    r = paths.latency_of(sent, {"first": first, "unreadable": 2, "frames": 31},
                         11.0, 12.0, 1000.0)
    assert r["frames_sent"] == 30 and r["frames_seen"] == 28 and r["misread"] == 1
    assert r["summary"]["median"] == pytest.approx(80.0)
    assert r["received_share"] == pytest.approx(28 / 30)
    assert paths.latency_of(sent, {"first": []}, 11.0, 12.0, 1.0)["summary"] is None


def test_playlist_summary_estimates_a_player_three_segments_back(paths: ModuleType) -> None:
    samples = [{"durations": [2.0, 2.0, 2.0, 2.0], "newest_age_s": age,
                "target_duration_s": 2} for age in (0.5, 1.0, 1.5)]
    s = paths.playlist_summary(samples)
    assert s["player_estimate_s"]["median"] == pytest.approx(7.0)
    assert s["segment_s"]["median"] == pytest.approx(2.0) and s["samples"] == 3
    assert paths.playlist_summary([]) == {"samples": 0}


def _row(path: str, n: int, cpu: float) -> dict[str, Any]:
    return {"path": path, "viewers": n, "arengine_cpu_percent": cpu,
            "janus_cpu_percent": 0.5 * n}


def test_the_claim_is_judged_over_ten_viewers_or_more(sfu: ModuleType) -> None:
    rows = [_row("janus", 1, 80.0), _row("janus", 50, 81.0),
            _row("whep", 1, 80.0), _row("whep", 50, 129.0)]
    s = sfu.summarize_rows(rows)
    assert s["whep"]["arengine_cpu_percent_per_extra_viewer"] == pytest.approx(1.0)
    assert s["janus"]["janus_cpu_percent_per_extra_viewer"] == pytest.approx(0.5)
    assert s["claim"]["holds"] is True
    rows[1] = _row("janus", 50, 120.0)
    assert sfu.summarize_rows(rows)["claim"]["holds"] is False
    few = [_row("janus", 1, 80.0), _row("janus", 3, 80.0), _row("whep", 1, 80.0),
           _row("whep", 3, 84.0)]
    assert sfu.summarize_rows(few)["claim"]["holds"] is None  # inside the noise


@pytest.mark.parametrize("script, argv, message", [
    ("bench_sfu", ["--viewers", "many"], "--viewers"),
    ("bench_sfu", ["--viewers", "500"], "--viewers"),
    ("bench_sfu", ["--size", "big"], "--size"),
    ("bench_sfu", ["--window", "0"], "--window"),
    ("bench_paths", ["--paths", "whep,smoke-signals"], "--paths"),
    ("bench_paths", ["--seconds", "0"], "--seconds"),
    ("bench_paths", ["--keyframe-interval", "30"], "--keyframe-interval"),
])
def test_bad_arguments_exit_2(script: str, argv: list[str], message: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        load_bench(script).main(argv)
    assert err.value.code == 2
    assert message in capsys.readouterr().err
