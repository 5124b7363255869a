from __future__ import annotations

import json
from pathlib import Path

import pytest

from arengine.cli import main


@pytest.mark.parametrize("argv, message", [
    (["bench", "--suite", "huge"], "invalid choice"),
    (["bench", "--render", "vulkan"], "invalid choice"),
    (["bench", "--soak", "-1"], "--soak"),
    (["bench", "--soak", "abc"], "invalid float"),
    (["bench", "--frames", "0"], "--frames"),
    (["bench", "--resolutions", "999p"], "unknown resolution"),
    (["bench", "--targets", "glass_p99_ms"], "KEY=VALUE"),
    (["bench", "--targets", "speed=3"], "unknown target"),
    (["bench", "--targets", "glass_p99_ms=fast"], "must be a number"),
    (["bench", "--targets", "glass_p99_ms=-5"], ">= 0"),
    (["bench", "--input", "/nonexistent/video.mp4"], "no such file"),
    (["bench", "--fps", "0"], "--fps must be between 1 and 240"),
    (["bench", "--fps", "500"], "--fps must be between 1 and 240"),
    (["bench", "--fps", "nan"], "--fps must be between 1 and 240"),
    (["bench", "--fps", "sixty"], "invalid float"),
    (["bench", "compare", "only-one.json"], "required"),
    (["bench", "compare", "/nonexistent/a.json", "/nonexistent/b.json"], "no such file"),
])
def test_bad_arguments_exit_2_with_one_line(argv: list[str], message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        code = main(argv)
        raise SystemExit(code)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert message in err
    assert "Traceback" not in err


def test_input_that_is_not_a_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    assert main(["bench", "--input", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a readable video" in err and len(err.splitlines()) == 1


def test_out_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "taken"
    f.write_text("x")
    assert main(["bench", "--out", str(f), "--no-load"]) == 2
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("argv, fps", [([], 30.0), (["--fps", "60"], 60.0),
                                        (["--fps", "59.94"], 59.94)])
def test_fps_reaches_the_suite(argv: list[str], fps: float, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    from arengine.bench import suite

    seen: list[suite.BenchOptions] = []

    def fake_run_bench(opts: suite.BenchOptions, progress: object) -> dict[str, object]:
        seen.append(opts)
        return {"verdicts": [], "met": True}

    monkeypatch.setattr(suite, "run_bench", fake_run_bench)
    assert main(["bench", *argv, "--no-load", "--no-glass", "--out", str(tmp_path)]) == 0
    assert [o.fps for o in seen] == [fps]


@pytest.mark.parametrize("argv, processes", [([], False), (["--rooms-in-processes"], True)])
def test_rooms_in_processes_reaches_the_load_sweep(argv: list[str], processes: bool,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from arengine.bench import load, suite

    seen: list[bool] = []

    def fake_sweep(*args: object, processes: bool = False, **kw: object) -> dict[str, object]:
        seen.append(processes)
        return {"points": [], "largest_ok": None, "processes": processes}

    monkeypatch.setattr(load, "load_sweep", fake_sweep)
    opts = suite.BenchOptions(out=tmp_path, resolutions=(), glass=False,
                              load_processes=processes)
    from arengine.cli import build_parser

    args = build_parser().parse_args(["bench", *argv, "--no-glass", "--out", str(tmp_path)])
    assert args.rooms_in_processes is processes
    report = suite.run_bench(opts, lambda msg: None)
    assert seen == [processes]
    assert report["load"]["processes"] is processes


def test_compare_rejects_a_negative_threshold(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "compare", "a.json", "b.json", "--threshold", "-0.5"]) == 2
    assert "--threshold" in capsys.readouterr().err


def test_compare_rejects_a_json_that_is_not_a_report(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    a = tmp_path / "a.json"
    a.write_text(json.dumps({"hello": 1}))
    b = tmp_path / "b.json"
    b.write_text("{broken")
    assert main(["bench", "compare", str(a), str(b)]) == 2
    assert "not an arengine bench report" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_suite_end_to_end(tmp_path: Path, face_video: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    # Generous targets: this checks that met targets give exit 0 and files appear; the
    # strict defaults on a small shared machine give exit 1 (checked below).
    code = main(["bench", "--suite", "quick", "--frames", "8", "--resolutions", "480p",
                 "720p", "--no-load", "--no-glass", "--out", str(out), "--input",
                 str(face_video),
                 "--render", "cpu", "--targets", "engine_p99_ms=100000", "dropped_share=1"])
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    report = json.loads((out / "report.json").read_text())
    assert report["schema"] == "arengine-bench/1" and report["met"] is True
    assert [p["resolution"] for p in report["stages"]] == ["480p", "720p"]
    p = report["stages"][1]
    assert p["frames"] == 8 and p["width"] == 1280 and p["height"] == 720
    assert {"decode", "track_face", "track_hands", "effect:lipstick", "encode"} <= set(p["stages"])
    assert p["checks"]["face_found_share"] > 0.8
    assert report["machine"]["clock"]["function"] == "time.perf_counter_ns"
    assert report["machine"]["versions"]["mediapipe"]
    assert any("< 300" in n for n in report["notes"])  # quick says it used few frames
    statuses = {v["name"]: v["status"] for v in report["verdicts"]}
    assert any(s == "NOT MEASURED" for n, s in statuses.items() if "glass" in n)
    for png in ("latency_by_resolution.png", "stage_breakdown.png", "latency_over_time.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "## Stage latency" in md and "PASS" in md
    assert "PASS: engine-added latency p99" in stdout

    # Same run against an impossible target: exit 1, and compare works on the two reports.
    out2 = tmp_path / "run2"
    code = main(["bench", "--suite", "quick", "--frames", "8", "--resolutions", "720p",
                 "--no-load", "--no-glass", "--out", str(out2), "--input", str(face_video),
                 "--render", "cpu", "--targets", "engine_p99_ms=0.001"])
    assert code == 1
    assert "FAIL: engine-added latency p99" in capsys.readouterr().out
    main(["bench", "compare", str(out / "report.json"), str(out2 / "report.json")])
    table = capsys.readouterr().out
    assert "| 720p encode | median |" in table
