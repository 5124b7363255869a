"""The rig on real talking heads: mouth, blinks and head pose against independent measures."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from arengine.render.character import PARAMS
from arengine.tracking import FaceTracker, HandTracker
from arengine.tracking.rig import Rig, RigSolver, vowel_weights
from arengine.types import HandLandmarks, Scene

GRID = ("brbk7n", "lbax4n", "lbbc2a", "lrwp9a", "lwbsza")
# Eye closures counted by looking at every frame of the clips (eye crops side by side):
# (first, last) frame with the lids shut or nearly so. lbbc2a and lwbsza never blink.
CLOSURES: dict[str, list[tuple[int, int]]] = {
    "brbk7n": [(21, 23)], "lbax4n": [(27, 31)], "lbbc2a": [], "lrwp9a": [(36, 39), (65, 74)],
    "lwbsza": []}


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(c.streams.video[0])]


def _track(path: Path, hands: bool = False) -> list[Scene]:
    scenes = []
    ht = HandTracker("video") if hands else None
    with FaceTracker("video", max_faces=1) as ft:
        for i, image in enumerate(_frames(path)):
            s = ft.track(image, i / 25, i)
            if ht is not None:
                s = s.with_hands(ht.detect(image))
            scenes.append(s)
    if ht is not None:
        ht.close()
    return scenes


@pytest.fixture(scope="module")
def grid(data_dir: Path) -> dict[str, list[Scene]]:
    return {name: _track(data_dir / "grid_talking" / f"{name}.mpg") for name in GRID}


@pytest.fixture(scope="module")
def host_clip(face_video: Path) -> list[Scene]:
    return _track(face_video, hands=True)


def solve(scenes: list[Scene]) -> list[Rig]:
    solver = RigSolver()
    rigs = [solver.update(s) for s in scenes]
    assert all(r is not None for r in rigs), "a face in every frame"
    return [r for r in rigs if r is not None]


def lip_gap(scenes: list[Scene]) -> np.ndarray:
    """The independent measure: inner-lip distance over mouth width, raw landmarks."""
    out = []
    for s in scenes:
        p = s.faces.raw[0]
        gap = np.linalg.norm(p[13, :2] - p[14, :2])
        out.append(gap / np.linalg.norm(p[61, :2] - p[291, :2]))
    return np.array(out)


def lagged(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    """Correlation of a[t + lag] with b[t] (positive lag: ``a`` comes later)."""
    if lag >= 0:
        x, y = a[lag:], b[:len(b) - lag]
    else:
        x, y = a[:lag], b[-lag:]
    return float(np.corrcoef(x, y)[0, 1])


@pytest.mark.parametrize("clip", GRID)
def test_mouth_open_follows_the_lip_gap(grid: dict[str, list[Scene]], clip: str) -> None:
    scenes = grid[clip]
    mouth = np.array([r.mouth_open for r in solve(scenes)])
    gap = lip_gap(scenes)
    by_lag = {lag: lagged(mouth, gap, lag) for lag in range(-3, 4)}
    best = max(by_lag, key=lambda k: by_lag[k])
    assert by_lag[best] >= 0.9, by_lag
    assert abs(best) <= 1, by_lag  # no more than a frame of lag (40 ms)
    assert by_lag[0] >= 0.9, by_lag
    assert mouth.max() > 0.5 and mouth.min() < 0.05  # it opens wide and closes


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, f in enumerate([*flags, False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            runs.append((start, i - 1))
            start = None
    return runs


@pytest.mark.parametrize("clip", GRID)
def test_blinks_are_found_where_the_eyes_close(grid: dict[str, list[Scene]],
                                               clip: str) -> None:
    rigs = solve(grid[clip])
    found = _runs([r.blink for r in rigs])
    counted = CLOSURES[clip]
    assert len(found) == len(counted), (found, counted)
    for (a, b), (c, d) in zip(found, counted, strict=True):
        assert a <= d + 1 and c <= b + 1, (found, counted)  # they overlap
    for r in rigs:  # a shut eye is drawn shut, an open one open
        if r.blink:
            assert r.eye_open_left == r.eye_open_right == 0.0


def test_head_yaw_and_pitch_follow_the_head_pose(host_clip: list[Scene]) -> None:
    rigs = solve(host_clip)
    pose = np.array([s.faces.head_pose()[0] for s in host_clip])
    for k, name in enumerate(("yaw", "pitch")):
        ours = np.array([getattr(r, name) for r in rigs])
        ref = pose[:, k]
        assert np.ptp(ref) > 5  # the clip really turns and nods
        assert np.corrcoef(ours, ref)[0, 1] >= 0.95, name
        # relative to its neutral: the same motion, to a degree or so
        diff = (ours - ours.mean()) - (ref - ref.mean())
        assert np.abs(diff).mean() <= 1.0, (name, np.abs(diff).mean())


def test_a_thumbs_up_counts_once_and_raises_a_hand(host_clip: list[Scene]) -> None:
    rigs = solve(host_clip)
    events = [e for r in rigs for e in r.events if e == "thumbs_up"]
    assert events == ["thumbs_up"]  # held for seconds, flickering: still one
    assert any("thumbs_up" in r.gestures for r in rigs)
    # She holds the thumb up beside her face (her right hand, the image's left).
    assert sum(r.hand_right for r in rigs) > 20
    assert not any(r.waving for r in rigs)


def test_calibration_gives_different_faces_the_same_range(
        grid: dict[str, list[Scene]]) -> None:
    """lbax4n's eyes are narrow (aspect 0.24), lwbsza's round (0.39): both read as open."""
    for clip in ("lbax4n", "lwbsza"):
        rigs = solve(grid[clip])
        assert rigs[20].calibrated and not rigs[0].calibrated
        rest = [r for r in rigs[15:] if not r.blink]
        assert abs(np.median([r.eye_open_left for r in rest]) - 1.0) < 0.1
        assert abs(np.median([r.brow_left for r in rest])) < 0.3
        assert abs(np.median([r.gaze_x for r in rest])) < 0.3


def test_calibrate_captures_a_new_neutral(grid: dict[str, list[Scene]]) -> None:
    scenes = grid["lbbc2a"]
    solver = RigSolver(calibration_frames=10)
    for s in scenes[:12]:
        solver.update(s)
    assert solver.calibrated
    first = solver.neutral
    solver.calibrate()
    assert not solver.calibrated
    for s in scenes[40:52]:
        solver.update(s)
    assert solver.calibrated and solver.neutral is not first
    with pytest.raises(ValueError, match="calibration_frames"):
        RigSolver(calibration_frames=0)


def test_no_face_no_rig() -> None:
    solver = RigSolver()
    assert solver.update(Scene.empty(640, 360)) is None


def _hand_at(x: float, y: float) -> np.ndarray:
    """A flat open hand (21 points) with its wrist at (x, y), fingers up."""
    pts = np.zeros((21, 3), np.float32)
    for i in range(21):
        pts[i] = (x + (i % 4 - 1.5) * 8, y - 10 - (i // 4) * 12, 0)
    pts[0] = (x, y, 0)
    return pts


def test_waving_is_a_raised_hand_swinging(grid: dict[str, list[Scene]]) -> None:
    scene = grid["lbbc2a"][0]
    face = scene.faces.points[0]
    chin_y = float(face[152, 1])
    solver = RigSolver()
    waves, raised = [], []
    for i in range(40):  # 1.6 s swinging by 1.2 eye distances at 2 Hz
        x = 60 + 90 * np.sin(2 * np.pi * 2 * i / 25)
        hands = HandLandmarks(_hand_at(x, chin_y - 20)[None], ("Left",), np.ones(1))
        r = solver.update(scene.with_hands(hands).at(i / 25, i))
        assert r is not None
        waves.append(r.waving)
        raised.append(r.hand_right)
    assert any(waves[15:]) and not any(waves[:5])
    assert all(raised)  # image left of the face: the host's right hand
    still = RigSolver()
    for i in range(40):
        hands = HandLandmarks(_hand_at(60, chin_y - 20)[None], ("Left",), np.ones(1))
        r = still.update(scene.with_hands(hands).at(i / 25, i))
        assert r is not None and not r.waving


@pytest.mark.parametrize(("opening", "width", "vowel"), [
    (0.9, 0.0, "a"), (0.3, 0.6, "i"), (0.3, -0.7, "u"), (0.5, 0.35, "e"), (0.65, -0.45, "o")])
def test_vowels_from_opening_and_width(opening: float, width: float, vowel: str) -> None:
    w = vowel_weights(opening, width)
    assert max(w, key=lambda k: w[k]) == vowel
    # the blend opens as far as the mouth does
    from arengine.tracking.rig import VOWELS

    assert sum(w[k] * VOWELS[k][0] for k in w) == pytest.approx(opening, abs=0.01)
    assert vowel_weights(0.0, width) == dict.fromkeys("aiueo", 0.0)


def test_every_rig_parameter_can_be_bound() -> None:
    params = Rig(yaw=45.0, pitch=-10.0).params()
    assert set(params) <= set(PARAMS)
    assert params["yaw"] == 1.0 and params["pitch"] == -0.5  # normalised, clipped
