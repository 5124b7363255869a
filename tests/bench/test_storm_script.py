"""bench/bench_storm.py: a short real storm against ``arengine serve`` (quiet and storm
phases side by side, every acknowledged vote and like in the room's tally), its schedule,
its op mix, its pooling of phases and its argument checks.

The smoke run checks fields, sane values and durability, not the latency numbers (those come
from a full run on a quiet machine).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.bench.scripts import load_bench

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def storm() -> ModuleType:
    return load_bench("bench_storm")


@pytest.mark.slow
@pytest.mark.parametrize("relays", [["--relays", "8"],
                                    ["--relays", "2", "--batch-ms", "20", "--compositor",
                                     "process"]],
                         ids=["a-message-per-action", "batched-compositor-process"])
def test_a_storm_run_reports_quiet_and_storm_and_loses_no_vote(
        tmp_path: Path, data_dir: Path, relays: list[str]) -> None:
    r = subprocess.run([sys.executable, "bench/bench_storm.py", "--rates", "300", "--phase",
                        "3", "--rounds", "1", "--viewers", "100", "--watchers", "3",
                        "--size", "640x360", "--warmup", "1", *relays,
                        "--out", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "ARENGINE_DATA": str(data_dir)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    whole = json.loads((tmp_path / "storm.json").read_text())
    (report,) = whole["runs"]
    assert report["compositor"] == ("process" if "process" in relays else "thread")
    quiet, stormy = report["rows"]
    assert quiet["offered_per_s"] == 0 and quiet["storm"] is None
    assert stormy["offered_per_s"] == 300
    for row in (quiet, stormy):
        assert row["frames_sent"] > 30 and row["frames_seen"] > 0.5 * row["frames_sent"], row
        g = row["glass_to_glass_ms"]
        assert 0 < g["min"] <= g["median"] <= g["p99"] <= g["max"] < 10_000, g
        assert row["encoded_fps"] > 5 and row["arengine_cpu_percent"] > 0, row
    st = stormy["storm"]
    # 300/s for 3 s, paced: most of the 900 planned went out, every one was answered
    assert 600 <= st["sent"] <= 900 and st["acked"] + sum(st["errors"].values()) == st["sent"]
    assert st["errors"] == {}, st  # each viewer stays under its own limits
    assert 0 < st["ack_ms_p50"] <= st["ack_ms_p99"]
    assert quiet["watchers"]["snapshots_per_s_per_page"] == 0
    pages = stormy["watchers"]
    assert pages["pages"] == 3 and 2 <= pages["snapshots_per_s_per_page"] <= 5.5, pages
    assert 0 <= pages["age_ms_p50"] <= pages["age_ms_p99"] < 1000, pages
    assert report["clients_cpu_percent"]["storm_watchers_viewer"] > 0
    d = report["durability"]
    assert d["durable"] is True, d
    assert sum(d["poll_votes_per_option"]) > 50 and d["likes_acked"] > 50
    assert report["comments_acked"] > 10
    assert report["received_size"] == [640, 360]
    md = (tmp_path / "storm.md").read_text()
    assert "| quiet |" in md and "| 300 |" in md and "Durable: **yes**" in md
    assert "Viewer pages (3" in md
    assert f"The room's compositor: {'in a process' if 'process' in relays else 'on the'}" in md


def test_the_schedule_alternates_quiet_and_each_rate(storm: ModuleType) -> None:
    phases = storm.schedule(100.0, [10.0, 40.0], 2, 5.0)
    assert [r for _, _, r in phases] == [0, 10, 0, 40, 0, 10, 0, 40]
    assert phases[0][:2] == (100.0, 105.0) and phases[-1][1] == 140.0
    assert all(b == a2 for (_, b, _), (a2, _, _) in itertools.pairwise(phases))


def test_the_mix_is_mostly_votes(storm: ModuleType) -> None:
    ops = [storm.op_of(n) for n in range(2000)]
    assert ops.count("vote") == 1600 and ops.count("like") == 300 and ops.count("comment") == 100


@pytest.mark.parametrize("viewers", [100, 97, 2000])
def test_every_viewer_has_the_whole_mix(storm: ModuleType, viewers: int) -> None:
    """A viewer that only commented would hit its comment limit (1/s): refused actions."""
    ops: dict[int, list[str]] = {}
    for n in range(viewers * 40):
        who, op = storm.action_of(n, viewers)
        ops.setdefault(who, []).append(op)
    assert len(ops) == viewers
    for mine in ops.values():
        assert mine.count("comment") == 2 and mine.count("like") == 6 and len(mine) == 40


def test_phases_of_a_kind_are_pooled(storm: ModuleType) -> None:
    phases = [(0.0, 2.0, 0.0), (2.0, 4.0, 50.0), (4.0, 6.0, 0.0), (6.0, 8.0, 50.0)]
    sent = {i: i / 10 for i in range(80)}  # 10 fps for 8 s
    seen = {"first": [[i, t + (0.1 if (2 <= t < 4 or 6 <= t < 8) else 0.02)]
                      for i, t in sent.items()], "frames": 80, "unreadable": 0}

    def stats(frames: int) -> dict[str, object]:
        return {"encoders": {"vp8": {"frames": frames}}}

    samples = [(float(2 * k), float(k), stats(20 * k), (float(k), 2.0 * k)) for k in range(5)]
    one = {"sent": 100, "acked": 98, "errors": {"vote 429": 2},
           "ack_ms": {"median": 3.0, "p99": 9.0}}
    stormed = {"phases": [None, one, None, {**one, "ack_ms": {"median": 4.0, "p99": 7.0}}],
               "comments_acked": 5}
    out = storm.summarize_phases(sent, seen, phases, samples, stormed, settle=0.5)
    quiet, busy = out["rows"]
    assert quiet["frames_sent"] == 30 and busy["frames_sent"] == 30  # 1.5 s x 2 phases each
    assert quiet["glass_to_glass_ms"]["median"] == pytest.approx(20.0)
    assert busy["glass_to_glass_ms"]["median"] == pytest.approx(100.0)
    assert busy["encoded_fps"] == pytest.approx(10.0) and busy["seconds"] == 4.0
    assert busy["arengine_cpu_percent"] == pytest.approx(50.0)
    s = busy["storm"]
    assert s["acked"] == 196 and s["errors"] == {"vote 429": 4} and s["acked_per_s"] == 49.0
    assert s["ack_ms_p50"] == 4.0 and s["ack_ms_p99"] == 9.0  # the worst phase of the kind


@pytest.mark.parametrize("argv, message", [
    (["--rates", "fast"], "--rates"),
    (["--rates", "0"], "--rates"),
    (["--phase", "1"], "--phase"),
    (["--rounds", "0"], "--rounds"),
    (["--settle", "9"], "--settle"),
    (["--viewers", "5"], "--viewers"),
    (["--size", "huge"], "--size"),
    (["--watchers", "-1"], "--watchers"),
    (["--relays", "0"], "--relays"),
    (["--batch-ms", "5000"], "--batch-ms"),
    (["--compositor", "gpu"], "--compositor"),
    (["--compositor", "thread,thread"], "--compositor"),
    (["--rates", "20000", "--viewers", "100"], "--viewers"),
])
def test_bad_arguments_exit_2(storm: ModuleType, argv: list[str], message: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        storm.main(argv)
    assert err.value.code == 2
    assert message in capsys.readouterr().err


def _run(compositor: str, fps: tuple[float, float]) -> dict[str, object]:
    g = {"min": 20.0, "median": 40.0, "p95": 80.0, "p99": 100.0, "max": 120.0}
    rows = [{"offered_per_s": rate, "glass_to_glass_ms": g, "encoded_fps": f,
             "arengine_cpu_percent": 90.0, "frames_seen": 200, "frames_sent": 240,
             "saturated": False, "watchers": None,
             "storm": None if not rate else {"acked_per_s": rate, "ack_ms_p50": 5.0,
                                             "ack_ms_p99": 9.0, "errors": {}}}
            for rate, f in zip((0, 1000), fps, strict=True)]
    return {"compositor": compositor, "rows": rows, "comments_acked": 10,
            "durability": {"durable": True, "poll_votes_per_option": [1],
                           "acked_voters_per_option": [1], "likes_counted": 2,
                           "likes_acked": 2}}


def test_two_compositors_are_compared_side_by_side(storm: ModuleType) -> None:
    settings = {"size": "1280x720", "fps": 30, "viewers": 2000, "relays": 8, "batch_ms": 0,
                "rounds": 2, "phase_s": 8, "watchers": 0}
    md = storm.markdown({"settings": settings, "load_average_after": [1.0, 1.0, 1.0],
                         "runs": [_run("thread", (29.9, 24.3)), _run("process", (30.0, 29.5))]})
    assert "| compositor | quiet | 1000 |" in md
    assert "| thread | 29.9; 40 / 100; 90 | 24.3; 40 / 100; 90 |" in md
    assert "| process | 30.0; 40 / 100; 90 | 29.5; 40 / 100; 90 |" in md
    assert md.count("## Compositor: ") == 2 and md.count("Load average after") == 1
