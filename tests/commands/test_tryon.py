"""``arengine tryon`` end to end: the real command on real pictures and clips.

Every run goes through ``python -m arengine.cli`` in a subprocess, as a user would call
it, so exit codes, stderr lines and the absence of tracebacks are what a user sees.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from arengine.catalog import default_catalog, hex_to_bgr
from arengine.tracking import FaceTracker, polygon_mask
from tests.test_media import make_clip

ROOT = Path(__file__).resolve().parents[2]


def tryon(*args: str | Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arengine.cli", "tryon", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, face_video: Path) -> Path:
    return make_clip(tmp_path_factory.mktemp("tryon") / "clip.mp4", face_video, crf=16)


def decode(path: Path) -> tuple[list[np.ndarray], dict]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(v)]
        info = {"fps": v.average_rate,
                "audio": c.streams.audio[0].codec_context.name if c.streams.audio else None}
    with av.open(str(path)) as c:
        info["audio_packets"] = ([bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]
                                 if c.streams.audio else [])
    return frames, info


def lip_ab(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean CIELAB (a*, b*) over the lip mask."""
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB).astype(np.float64)
    return lab[mask > 127][:, 1:].mean(axis=0) - 128


def lips_mask(image: np.ndarray) -> np.ndarray:
    with FaceTracker("image") as ft:
        faces = ft.detect(image)
    assert len(faces) >= 1
    h, w = image.shape[:2]
    outer = polygon_mask(faces.lips_outer()[0], (0, 0, w, h))
    inner = polygon_mask(faces.lips_inner()[0], (0, 0, w, h))
    # Stay off the contour, where a soft edge mixes lip and skin.
    lips = cv2.subtract(outer, inner)
    return cv2.erode(lips, np.ones((3, 3), np.uint8))


def shade_ab(shade_id: str) -> np.ndarray:
    bgr = np.array([[hex_to_bgr(default_catalog().get(shade_id).hex)]], np.uint8)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB)[0, 0, 1:].astype(np.float64) - 128


def assert_lips_moved_toward(before: np.ndarray, after: np.ndarray, shade_id: str) -> None:
    mask = lips_mask(before)
    target = shade_ab(shade_id)
    d_before = np.linalg.norm(lip_ab(before, mask) - target)
    d_after = np.linalg.norm(lip_ab(after, mask) - target)
    assert d_after < 0.6 * d_before, (d_before, d_after)
    # Away from the face nothing changes (beyond codec noise).
    corner = (slice(0, before.shape[0] // 6), slice(0, before.shape[1] // 6))
    assert np.abs(before[corner].astype(int) - after[corner]).mean() < 2.0


# --------------------------------------------------------------------------- success


def test_list_shades_prints_the_catalog() -> None:
    r = tryon("--list-shades")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "LINE", "FINISH", "HEX"]
    catalog = default_catalog()
    assert len(lines) == len(catalog) + 1
    for shade, line in zip(catalog, lines[1:], strict=True):
        assert line.startswith(shade.id) and shade.hex in line and shade.finish in line


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_picture(data_dir: Path, tmp_path: Path, ext: str) -> None:
    src = data_dir / "mediapipe_samples" / "business-person.png"
    out, report = tmp_path / f"out{ext}", tmp_path / "r.json"
    r = tryon(src, "-o", out, "--shade", "velvet-plum", "--report", report)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    before, after = cv2.imread(str(src)), cv2.imread(str(out))
    assert after is not None and after.shape == before.shape
    assert_lips_moved_toward(before, after, "velvet-plum")
    rep = json.loads(report.read_text())
    assert rep["mode"] == "image" and rep["frames"] == 1 and rep["frames_with_face"] == 1
    assert rep["shade"] == "velvet-plum"
    for stage in ("decode", "track", "effect", "encode"):
        assert rep["summary"][stage]["median_ms"] >= 0


@pytest.mark.parametrize(("ext", "audio"), [(".mp4", "copy"), (".mkv", "copy"),
                                            (".webm", "transcode"), (".mpg", "transcode"),
                                            (".y4m", "dropped")])
def test_video(clip: Path, tmp_path: Path, ext: str, audio: str) -> None:
    out, report = tmp_path / f"out{ext}", tmp_path / "r.json"
    r = tryon(clip, "-o", out, "--shade", "velvet-plum", "--report", report)
    assert r.returncode == 0, r.stderr
    frames_in, info_in = decode(clip)
    frames_out, info_out = decode(out)
    assert len(frames_out) == len(frames_in) == 30
    assert info_out["fps"] == info_in["fps"] == 25
    rep = json.loads(report.read_text())
    assert rep["output"]["audio"] == audio
    if audio == "copy":
        assert info_out["audio_packets"] == info_in["audio_packets"]
    elif audio == "transcode":
        assert info_out["audio"] in ("opus", "mp2") and info_out["audio_packets"]
    else:
        assert info_out["audio"] is None
        assert r.stderr.strip().startswith("arengine tryon: warning:")
        assert "holds no audio" in r.stderr
    assert_lips_moved_toward(frames_in[15], frames_out[15], "velvet-plum")


def test_video_report(clip: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "out.mp4", tmp_path / "r.json"
    r = tryon(clip, "-o", out, "--report", report)
    assert r.returncode == 0, r.stderr
    rep = json.loads(report.read_text())
    assert rep["mode"] == "video" and rep["frames"] == 30
    assert rep["frames_with_face"] == 30 and rep["face_share"] == 1.0
    assert rep["skipped_corrupt_frames"] == 0
    assert rep["frames_expected"] == 30 and rep["frames_missing"] == 0
    assert rep["ends_early"] is False and rep["ends_at_s"] == pytest.approx(1.2)
    assert rep["clock"]["name"] == "time.perf_counter_ns"
    assert rep["input"]["fps"] == 25 and rep["input"]["audio_codec"] == "aac"
    assert rep["output"]["frames"] == 30
    rows = rep["per_frame"]
    assert len(rows) == 30 and [row["index"] for row in rows] == list(range(30))
    for stage in ("decode", "track", "effect", "encode"):
        s = rep["summary"][stage]
        assert 0 <= s["median_ms"] <= s["p95_ms"] <= s["p99_ms"]
        assert all(row[f"{stage}_ms"] >= 0 for row in rows)
    j = rep["jitter_px"]
    assert j["samples"] == 28
    assert 0 < j["smoothed"] < j["raw"]
    # A clean run says nothing on stderr: no native MediaPipe/TFLite start-up logs either.
    assert r.stderr.strip() == "", r.stderr


def test_progress_bar_only_when_asked_or_on_a_terminal(clip: Path, tmp_path: Path) -> None:
    quiet = tryon(clip, "-o", tmp_path / "a.mp4")
    assert quiet.returncode == 0 and "frame/s" not in quiet.stderr
    shown = tryon(clip, "-o", tmp_path / "b.mp4", "--progress", "always", "--no-hands")
    assert shown.returncode == 0 and "frame/s" in shown.stderr and "30/30" in shown.stderr


# --------------------------------------------------------------------------- bad input


def one_line_error(r: subprocess.CompletedProcess[str], *words: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("arengine tryon: error: ")
    for w in words:
        assert w in lines[0], lines[0]


def test_missing_input(tmp_path: Path) -> None:
    one_line_error(tryon(tmp_path / "nope.mp4", "-o", tmp_path / "o.mp4"), "no such file")


@pytest.mark.parametrize("name", ["garbage.mp4", "garbage.png", "garbage.jpg", "garbage.webm"])
def test_garbage_input(tmp_path: Path, name: str) -> None:
    src = tmp_path / name
    src.write_bytes(np.random.default_rng(1).bytes(5000))
    out = tmp_path / ("o" + src.suffix)
    one_line_error(tryon(src, "-o", out), "cannot read", name)
    assert not out.exists()


def test_empty_input(tmp_path: Path) -> None:
    (tmp_path / "e.mp4").write_bytes(b"")
    one_line_error(tryon(tmp_path / "e.mp4", "-o", tmp_path / "o.mp4"), "empty")


def test_unknown_shade_lists_valid_ids(data_dir: Path, tmp_path: Path) -> None:
    r = tryon(data_dir / "faces" / "obama.jpg", "-o", tmp_path / "o.png", "--shade", "blue")
    one_line_error(r, "unknown shade 'blue'", "velvet-ruby", "gradient-nude-liner")


@pytest.mark.parametrize("out", ["o.gif", "o.mp4", "o"])
def test_unsupported_output_for_a_picture(data_dir: Path, tmp_path: Path, out: str) -> None:
    one_line_error(tryon(data_dir / "faces" / "obama.jpg", "-o", tmp_path / out), out)


@pytest.mark.parametrize("out", ["o.gif", "o.png", "o.avi"])
def test_unsupported_output_for_a_video(clip: Path, tmp_path: Path, out: str) -> None:
    one_line_error(tryon(clip, "-o", tmp_path / out), Path(out).suffix)


def test_unsupported_input_format(tmp_path: Path) -> None:
    src = tmp_path / "notes.txt"
    src.write_text("lipstick\n")
    one_line_error(tryon(src, "-o", tmp_path / "o.mp4"), "unsupported input format")


def test_output_folder_missing(data_dir: Path, tmp_path: Path) -> None:
    one_line_error(tryon(data_dir / "faces" / "obama.jpg", "-o", tmp_path / "no" / "o.png"),
                   "output folder does not exist")


def test_same_input_and_output(data_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "me.jpg"
    src.write_bytes((data_dir / "faces" / "obama.jpg").read_bytes())
    before = src.read_bytes()
    one_line_error(tryon(src, "-o", tmp_path / "." / "me.jpg"), "is the input")
    assert src.read_bytes() == before


def test_no_arguments() -> None:
    one_line_error(tryon(), "INPUT")


def test_video_corrupt_part_way(clip: Path, tmp_path: Path) -> None:
    """Bytes damaged in the middle of the clip: bad frames skipped, output made, exit 0."""
    data = bytearray(clip.read_bytes())
    middle = len(data) // 2
    for k in range(12):
        for j in range(48):
            data[middle + k * 1499 + j] ^= 0xFF
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    out, report = tmp_path / "o.mp4", tmp_path / "r.json"
    r = tryon(bad, "-o", out, "--report", report)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "corrupt" in r.stderr
    rep = json.loads(report.read_text())
    skipped = rep["skipped_corrupt_frames"]
    assert skipped > 0
    assert rep["frames_missing"] == 30 - rep["frames"] and not rep["ends_early"]
    assert "ends early" not in r.stderr  # damaged in the middle, not cut short
    frames_out, info_out = decode(out)
    assert len(frames_out) == rep["frames"] == rep["output"]["frames"]
    assert 15 <= len(frames_out) <= 30 - 1
    assert info_out["audio_packets"] == decode(clip)[1]["audio_packets"]


def test_picture_without_a_face(data_dir: Path, tmp_path: Path) -> None:
    """A hand, no face: output equals input (byte for byte in the same format), a warning."""
    src = data_dir / "mediapipe_samples" / "test_image.jpg"
    same, png = tmp_path / "o.jpg", tmp_path / "o.png"
    r = tryon(src, "-o", same)
    assert r.returncode == 0, r.stderr
    assert "warning: no face found" in r.stderr and "Traceback" not in r.stderr
    assert same.read_bytes() == src.read_bytes()
    r = tryon(src, "-o", png)
    assert r.returncode == 0
    np.testing.assert_array_equal(cv2.imread(str(png)), cv2.imread(str(src)))


def test_bad_intensity_and_report_folder(data_dir: Path, tmp_path: Path) -> None:
    src = data_dir / "faces" / "obama.jpg"
    one_line_error(tryon(src, "-o", tmp_path / "o.png", "--intensity", "1.5"), "--intensity")
    one_line_error(tryon(src, "-o", tmp_path / "o.png", "--report", tmp_path / "no" / "r.json"),
                   "report folder does not exist")
    assert not (tmp_path / "o.png").exists()


def test_render_gl_matches_cpu(data_dir: Path, tmp_path: Path) -> None:
    """``--render gl`` (Mesa's llvmpipe without a GPU) draws what ``--render cpu`` draws."""
    import os

    src = data_dir / "faces" / "obama-720p.jpg"
    outs = {}
    for name in ("cpu", "gl"):
        out, rep = tmp_path / f"{name}.png", tmp_path / f"{name}.json"
        r = tryon(src, "-o", out, "--render", name, "--report", rep)
        assert r.returncode == 0, r.stderr
        render = json.loads(rep.read_text())["render"]
        if name == "gl" and render["backend"] != "gl":
            msg = f"no GL context: {render.get('fallback_reason')}"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(msg, pytrace=False)
            pytest.skip(msg)
        outs[name] = cv2.imread(str(out)).astype(np.int16)
    diff = np.abs(outs["cpu"] - outs["gl"])
    assert diff.max() <= 3
    original = cv2.imread(str(src)).astype(np.int16)
    assert np.abs(outs["gl"] - original).max() > 20  # lipstick really drawn


def test_render_unknown_backend_is_a_usage_error(data_dir: Path, tmp_path: Path) -> None:
    r = tryon(data_dir / "faces" / "obama-720p.jpg", "-o", tmp_path / "o.png",
              "--render", "vulkan")
    one_line_error(r, "--render")


def cut_short(src: Path, dst: Path, share: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * share)])
    return dst


def one_warning(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("arengine tryon: warning: ")
    return lines[0]


def test_real_video_cut_in_half(face_video: Path, tmp_path: Path) -> None:
    """Half the sample's bytes: the warning says most frames are gone and where it stops."""
    half = cut_short(face_video, tmp_path / "half.mp4")
    out, report = tmp_path / "o.mp4", tmp_path / "r.json"
    warning = one_warning(tryon(half, "-o", out, "--report", report, "--no-hands"))
    rep = json.loads(report.read_text())
    frames, missing = rep["frames"], rep["frames_missing"]
    assert rep["frames_expected"] == 195 and rep["ends_early"] is True
    assert 50 < frames < 150 and missing == 195 - frames and missing > 100
    stops = rep["ends_at_s"]
    assert 2.5 < stops < 4.5
    assert (f"ends early: {missing} of 195 frames missing (stops at {stops:.1f} s of 7.8 s)"
            in warning)
    corrupt = rep["skipped_corrupt_frames"]
    if corrupt:
        assert warning.endswith(f"; {corrupt} corrupt frame{'s' if corrupt > 1 else ''} skipped")
    frames_out, _ = decode(out)  # finished with what could be decoded
    assert len(frames_out) == frames == rep["output"]["frames"]


def test_clip_cut_short(face_video: Path, tmp_path: Path) -> None:
    """A Matroska clip (no frame count, a duration) cut short: the same kind of warning."""
    full = make_clip(tmp_path / "full.mkv", face_video, frames=40)
    r = tryon(full, "-o", tmp_path / "full_o.mkv", "--report", tmp_path / "full.json",
              "--no-hands")
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    rep = json.loads((tmp_path / "full.json").read_text())
    assert (rep["frames"], rep["frames_expected"], rep["frames_missing"]) == (40, 40, 0)
    short = cut_short(full, tmp_path / "short.mkv", 0.4)
    out, report = tmp_path / "o.mkv", tmp_path / "r.json"
    warning = one_warning(tryon(short, "-o", out, "--report", report, "--no-hands"))
    rep = json.loads(report.read_text())
    missing = rep["frames_missing"]
    assert 0 < rep["frames"] < 40 and missing == 40 - rep["frames"]
    assert f"ends early: {missing} of 40 frames missing" in warning
    assert "of 1.6 s)" in warning
    assert len(decode(out)[0]) == rep["frames"]


# -- the virtual host --------------------------------------------------------------------

def test_a_character_replaces_the_person_and_reports_its_rig(tmp_path: Path,
                                                             data_dir: Path) -> None:
    src = data_dir / "grid_talking" / "lbax4n.mpg"
    out, report = tmp_path / "host.mp4", tmp_path / "host.json"
    r = tryon(src, "-o", out, "--character", "momo", "--report", report)
    assert r.returncode == 0, r.stderr
    assert "virtual host momo (replace)" in r.stdout
    rep = json.loads(report.read_text())
    assert rep["virtual_host"]["character"] == "momo" and rep["virtual_host"]["calibrated"]
    rows = rep["per_frame"]
    assert all(row["rig"] is not None and row["virtual_host_ms"] > 0 for row in rows)
    assert max(row["rig"]["mouth_open"] for row in rows) > 0.5  # he talks
    assert any(row["rig"]["blink"] for row in rows)  # and blinks once (frames 27-31)
    assert rep["summary"]["virtual_host"]["median_ms"] > 0
    frames, _ = decode(out)
    with av.open(str(src)) as c:
        source = [f.to_ndarray(format="bgr24") for f in c.decode(c.streams.video[0])]
    # the speaker is gone: every frame differs from his picture almost everywhere
    for a, b in zip(frames[::15], source[::15], strict=False):
        assert (np.abs(a.astype(int) - b).max(axis=2) > 30).mean() > 0.9


def test_a_character_beside_a_picture(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "beside.png"
    r = tryon(data_dir / "faces" / "obama-720p.jpg", "-o", out, "--character", "mei",
              "--mode", "beside")
    assert r.returncode == 0, r.stderr
    image = cv2.imread(str(out))
    src = cv2.imread(str(data_dir / "faces" / "obama-720p.jpg"))
    changed = np.abs(image.astype(int) - src).max(axis=2) > 30
    assert 0.03 < changed.mean() < 0.5  # a co-host at the side (and lipstick), not a new picture


@pytest.mark.parametrize("name", ["nobody", "../mei", "MEI"])
def test_an_unknown_character_is_one_line_listing_the_characters(tmp_path: Path,
                                                                 data_dir: Path,
                                                                 name: str) -> None:
    r = tryon(data_dir / "faces" / "obama-720p.jpg", "-o", tmp_path / "x.png",
              "--character", name)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "known: mei, momo" in lines[0], r.stderr
    assert not (tmp_path / "x.png").exists()
