"""bench/bench_vhost_lag.py: the virtual host's mouth lag, found in the output's pixels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.bench.scripts import load_bench

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def vl() -> ModuleType:
    return load_bench("bench_vhost_lag")


def synthetic(lag_s: float, hold: float = 1.0, cycles: int = 3, fps: int = 30,
              ) -> tuple[list[tuple[float, np.ndarray]], list[tuple[float, str]]]:
    """A character whose mouth (a dark disc) follows a square wave ``lag_s`` late, while
    its head outline drifts slowly between the two states (as a smoothed head pose does)."""
    switches = [(1.0 + k * hold, "open" if k % 2 == 0 else "closed") for k in range(2 * cycles)]
    frames = []
    yy, xx = np.mgrid[:288, :512]
    head = 0.0
    for i in range(int((1.0 + 2 * cycles * hold + 0.5) * fps)):
        t = i / fps
        seen = t - lag_s
        opened = any(a <= seen < a + hold for a, s in switches if s == "open")
        head += ((1.0 if opened else 0.0) - head) * 0.1  # slow: a 1.5 Hz filter
        img = np.full((288, 512), 200, np.uint8)
        ring = np.abs(np.hypot(yy - 140, xx - 256 - 6 * head) - 70) < 2
        img[ring] = 40
        if opened:
            img[(yy - 170) ** 2 + (xx - 256) ** 2 <= 8 ** 2] = 20
        frames.append((t, img))
    return frames, switches


@pytest.mark.parametrize("lag_s", [0.05, 0.12, 0.3])
def test_the_lag_of_a_mouth_that_follows_late_is_found(vl: ModuleType, lag_s: float) -> None:
    frames, switches = synthetic(lag_s)
    r = vl.mouth_lags(frames, switches, hold=1.0)
    lags = [x["lag_ms"] for x in r["lags"]]
    assert len(lags) == 6 and None not in lags
    for lag in lags:  # the first frame at or past the change: late by under a frame
        assert lag_s * 1000 - 1 <= lag < lag_s * 1000 + 1000 / 30 + 1, (lag_s, lags)
    assert r["score_settled"]["open"] > 0.9 and r["score_settled"]["closed"] < 0.1
    assert 50 < r["mask_pixels"] < 400  # the mouth, not the outline


def test_a_mouth_that_never_moves_is_an_error(vl: ModuleType) -> None:
    frames, switches = synthetic(0.05)
    still = [(t, frames[0][1]) for t, _ in frames]
    with pytest.raises(RuntimeError, match="did not follow"):
        vl.mouth_lags(still, switches, hold=1.0)


def test_the_camera_holds_closed_then_alternates(vl: ModuleType) -> None:
    a, b = np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 3), np.uint8)
    cam = vl.MouthCamera(a, b, fps=30, hold=0.5, cycles=2, warmup=1.0)
    assert [cam.state_at(t) for t in (0.0, 0.99, 1.0, 1.49, 1.5, 2.0, 2.5, 3.5)] == \
        ["closed", "closed", "open", "open", "closed", "open", "closed", "closed"]
    assert cam.duration == 3.0


@pytest.mark.slow
def test_a_short_run_measures_the_mouth_lag(tmp_path: Path, data_dir: Path) -> None:
    r = subprocess.run([sys.executable, "bench/bench_vhost_lag.py", "--cycles", "3",
                        "--size", "640x360", "--compositor", "process", "--out",
                        str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "ARENGINE_DATA": str(data_dir)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (report,) = json.loads((tmp_path / "vhost_lag.json").read_text())["runs"]
    assert report["compositor"] == "process"
    assert report["switches"] == 6 and report["missed"] == 0, report["lags"]
    # Loopback, the tracker and the rig: a tenth of a second, well inside the plan's 0.3 s.
    assert 30 < report["lag_ms"]["median"] < 300, report["lag_ms"]
    md = (tmp_path / "vhost_lag.md").read_text()
    assert "| process | opens | 3 |" in md and "| process | closes | 3 |" in md


@pytest.mark.parametrize("argv, message", [
    (["--cycles", "1"], "--cycles"),
    (["--hold", "0.1"], "--hold"),
    (["--size", "big"], "--size"),
    (["--compositor", "gpu"], "--compositor"),
])
def test_bad_arguments_exit_2(vl: ModuleType, argv: list[str], message: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        vl.main(argv)
    assert err.value.code == 2
    assert message in capsys.readouterr().err
