"""Shared fixtures: the real data in ../shared/data (or $ARENGINE_DATA).

Missing data is an error, not a skip: a test that needs real faces must not pass quietly
without them.
"""

from __future__ import annotations

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
