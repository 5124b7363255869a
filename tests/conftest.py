"""Shared fixtures: the real data in ../shared/data (or $ARENGINE_DATA).

Missing data is an error, not a skip: a test that needs real faces must not pass quietly
without them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from arengine.data import shared_data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = shared_data_dir()
    if not (d / "SOURCES.md").is_file():
        pytest.fail(f"real test data not found at {d}; set ARENGINE_DATA", pytrace=False)
    return d


@pytest.fixture(scope="session")
def load_image(data_dir: Path):  # a factory fixture
    def load(rel: str) -> np.ndarray:
        img = cv2.imread(str(data_dir / rel), cv2.IMREAD_COLOR)
        assert img is not None, f"cannot read {rel}"
        return img

    return load


@pytest.fixture(scope="session")
def face_video(data_dir: Path) -> Path:
    return data_dir / "mediapipe_samples" / "gesture_recognizer_test_video.mp4"


@pytest.fixture
def lip_distance() -> Callable[[np.ndarray, str], tuple[float, float]]:
    """CIELAB distances between the lips of an image and a shade: (hue plane a-b, full)."""

    def distance(image: np.ndarray, shade_hex: str) -> tuple[float, float]:
        d = lip_lab(image) - hex_lab(shade_hex)
        return float(np.linalg.norm(d[1:])), float(np.linalg.norm(d))

    return distance


def lip_lab(image: np.ndarray) -> np.ndarray:
    """Mean CIELAB colour (L, a, b) inside the lips of the one face in a BGR image."""
    from arengine.tracking import FaceTracker

    with FaceTracker("image", max_faces=1) as ft:
        faces = ft.detect(image)
    assert len(faces) == 1, "no face found"
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [faces.lips_outer()[0].astype(np.int32)], 255)
    cv2.fillPoly(mask, [faces.lips_inner()[0].astype(np.int32)], 0)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2Lab).astype(np.float32)
    return lab[mask > 0].mean(axis=0)


def hex_lab(hex_colour: str) -> np.ndarray:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    px = np.array([[[b, g, r]]], np.uint8)
    return cv2.cvtColor(px, cv2.COLOR_BGR2Lab)[0, 0].astype(np.float32)


# `uvicorn --factory arengine.app:from_env` as a load-test target: no demo room (no video
# to process), rooms open to all and no per-address limits, since every synthetic client
# of a load test comes from 127.0.0.1. Per-viewer limits stay on.
LOAD_SERVER_ENV = {"ARENGINE_DEMO": "0", "ARENGINE_OPEN_ROOMS": "1",
                   "ARENGINE_LIMIT_JOINS": "off", "ARENGINE_LIMIT_ROOMS": "off",
                   "ARENGINE_LIMIT_COMMENTS": "off", "ARENGINE_LIMIT_SESSIONS": "100000"}


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``check`` every 0.25 s until it returns something true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
