"""One Euro smoothing: unit behaviour, and jitter versus lag on the real 720p clip."""

from __future__ import annotations

import numpy as np
import pytest

from arengine.tracking import FaceTracker, JitterMeter, OneEuroConfig, OneEuroFilter
from arengine.tracking.smoothing import (
    DEFAULT_SMOOTHING,
    MOUTH_POINTS,
    MOUTH_SMOOTHING,
    LandmarkSmoother,
)

from .conftest import VideoTrack, decode_frames


def jitter(series: np.ndarray) -> float:
    """Mean |x[t] - 2 x[t-1] + x[t-2]| over every coordinate (pixels per frame^2)."""
    return float(np.abs(np.diff(series, n=2, axis=0)).mean())


def lag_frames(raw: np.ndarray, smooth: np.ndarray, max_shift: float = 4.0) -> float:
    """The time shift s (frames, 0.05 steps) that best explains smooth(t) as raw(t - s).

    Least squares over all coordinates, with raw linearly interpolated between frames.
    A causal low-pass delays the signal; s is that delay as a viewer would see it when
    the mouth moves (still frames contribute nothing to the fit).
    """
    n = len(raw)
    first = int(np.ceil(max_shift)) + 1
    t = np.arange(first, n)
    best_s, best_err = 0.0, np.inf
    for s in np.arange(0.0, max_shift + 1e-9, 0.05):
        pos = t - s
        lo = np.floor(pos).astype(int)
        frac = (pos - lo)[:, None, None]
        shifted = raw[lo] * (1 - frac) + raw[np.minimum(lo + 1, n - 1)] * frac
        err = float(((smooth[t] - shifted) ** 2).mean())
        if err < best_err:
            best_s, best_err = float(s), err
    return best_s


def test_constant_input_passes_through() -> None:
    f = OneEuroFilter()
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    for i in range(10):
        out = f(x, i / 25)
    np.testing.assert_allclose(out, x)


def test_noise_is_damped_and_reset_restarts() -> None:
    rng = np.random.default_rng(0)
    f = OneEuroFilter(OneEuroConfig(min_cutoff=1.0, beta=0.0))
    noisy = 100 + rng.normal(0, 2, size=(200, 10))
    out = np.array([f(noisy[i], i / 30) for i in range(200)])
    assert out[50:].std() < 0.5 * noisy[50:].std()
    f.reset()
    np.testing.assert_array_equal(f(noisy[0] + 50, 10.0), noisy[0] + 50)


def test_fast_motion_follows_closely_with_beta() -> None:
    """A point moving at 300 px/s: beta > 0 cuts the trailing distance a lot."""
    t = np.arange(60) / 30
    x = (300 * t)[:, None]
    slow = OneEuroFilter(OneEuroConfig(min_cutoff=1.0, beta=0.0))
    fast = OneEuroFilter(OneEuroConfig(min_cutoff=1.0, beta=0.05))
    lag_slow = x[-1] - [slow(x[i], t[i]) for i in range(60)][-1]
    lag_fast = x[-1] - [fast(x[i], t[i]) for i in range(60)][-1]
    assert lag_fast[0] < 0.5 * lag_slow[0]


@pytest.mark.parametrize("kwargs", [{"min_cutoff": 0}, {"d_cutoff": -1}, {"beta": -0.1}])
def test_config_rejects_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        OneEuroConfig(**kwargs)


def test_smoothing_cuts_lip_jitter_without_lag(face_video_track: VideoTrack) -> None:
    """One Euro on the 720p clip's 40 lip landmarks (first face).

    Jitter is the mean absolute second difference of the landmark positions: constant-
    speed motion scores zero, frame-to-frame shake scores high. Lag is the least-squares
    time shift between the raw and the smoothed track (see :func:`lag_frames`).

    The face's settings must remove at least 40 % of the raw jitter while lagging at most
    one frame (40 ms at 25 fps). The lips the tracker returns have their own settings
    (``MOUTH_SMOOTHING``): they must lag at most 0.3 frames, since a lipstick mask that
    trailed the mouth by 0.6-1 frame showed bare lip after every closure. That costs jitter
    reduction, so the bound on it is lower here (15 % instead of 40 %, measured 23 %): the
    lipstick mask follows the picture, and tests/effects/test_lip_segmentation.py checks
    that it flickers less than a mask drawn from the raw landmarks.
    """
    raw, smooth = face_video_track.raw_lips, face_video_track.smooth_lips
    assert not np.isnan(raw).any(), "the face must be tracked in every frame"
    face = np.empty_like(raw)
    f = OneEuroFilter(DEFAULT_SMOOTHING)
    for i in range(len(raw)):
        face[i] = f(raw[i], i / face_video_track.fps)
    assert 1 - jitter(face) / jitter(raw) >= 0.40
    assert lag_frames(raw, face) <= 1.0
    # The tracker's lips: the mouth's own, faster settings.
    assert lag_frames(raw, smooth) <= 0.3
    assert 1 - jitter(smooth) / jitter(raw) >= 0.15
    # And the metric is able to fail: heavy smoothing passes jitter but lags.
    heavy = np.empty_like(raw)
    f = OneEuroFilter(OneEuroConfig(min_cutoff=0.3, beta=0.0))
    for i in range(len(raw)):
        heavy[i] = f(raw[i], i / face_video_track.fps)
    assert lag_frames(raw, heavy) > 1.0


def test_mouth_has_its_own_settings() -> None:
    """LandmarkSmoother: the mouth points follow MOUTH_SMOOTHING, the rest the face's."""
    t = np.arange(30) / 25
    x = np.zeros((30, 478, 2))
    x[:, :, 0] = (200 * t)[:, None]  # everything moves at 200 px/s
    smoother = LandmarkSmoother(DEFAULT_SMOOTHING, MOUTH_SMOOTHING)
    out = np.array([smoother(x[i], t[i]) for i in range(30)])
    face_only = OneEuroFilter(DEFAULT_SMOOTHING)
    ref = np.array([face_only(x[i], t[i]) for i in range(30)])
    mouth = list(MOUTH_POINTS)
    rest = [i for i in range(478) if i not in set(mouth)]
    np.testing.assert_allclose(out[:, rest], ref[:, rest])
    trail_mouth = x[-1, mouth, 0] - out[-1, mouth, 0]
    trail_face = x[-1, rest, 0] - out[-1, rest, 0]
    assert trail_mouth.max() < 0.5 * trail_face.min()
    smoother.reset()
    np.testing.assert_array_equal(smoother(x[0] + 5, 9.0), x[0] + 5)
    # Without mouth settings it is the face's filter everywhere.
    plain = LandmarkSmoother(DEFAULT_SMOOTHING, None)
    face_only.reset()
    for i in range(5):
        np.testing.assert_allclose(plain(x[i], t[i]), face_only(x[i], t[i]))


def test_default_config_is_the_tuned_one() -> None:
    assert OneEuroConfig() == DEFAULT_SMOOTHING


def test_filter_restarts_after_the_face_is_lost(face_video) -> None:
    """A synthetic gap (black frames) ends the track: a new id, and unsmoothed output."""
    frames = []
    for i, image in enumerate(decode_frames(face_video)):
        frames.append(image)
        if i == 12:
            break
    blank = np.zeros_like(frames[0])
    with FaceTracker("video") as ft:
        before = [ft.detect(im, i / 25) for i, im in enumerate(frames[:8])]
        assert all(len(f) == 1 for f in before)
        assert not np.allclose(before[-1].points, before[-1].raw)  # filter is active
        gap = ft.detect(blank, 8 / 25)
        assert len(gap) == 0
        after = ft.detect(frames[9], 9 / 25)
        assert len(after) == 1
        assert after.track_id[0] != before[0].track_id[0]
        # First frame of the new track: the filter starts from the raw landmarks.
        np.testing.assert_allclose(after.points, after.raw, atol=1e-4)
        nxt = ft.detect(frames[10], 10 / 25)
        assert nxt.track_id[0] == after.track_id[0]


def test_jitter_meter_matches_the_definition() -> None:
    rng = np.random.default_rng(1)
    raw = rng.normal(0, 1, size=(20, 1, 5, 3))
    smooth = raw * 0.5
    m = JitterMeter()
    for i in range(20):
        m.update(np.array([7]), raw[i], smooth[i])
    assert m.samples == 18
    assert m.raw == pytest.approx(jitter(raw[:, 0, :, :2]))
    assert m.smoothed == pytest.approx(0.5 * m.raw)
    # A face that disappears starts a new series: no second difference across the gap.
    m.update(np.array([], np.int64), raw[0][:0], raw[0][:0])
    m.update(np.array([7]), raw[0], raw[0])
    assert m.samples == 18
