"""Where the real test data and bundled assets live."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
ASSETS_DIR = Path(os.environ.get("ARENGINE_ASSETS", REPO_DIR / "assets"))
SHADERS_DIR = Path(os.environ.get("ARENGINE_SHADERS", REPO_DIR / "shaders"))


def shared_data_dir() -> Path:
    """The real-data folder: ``$ARENGINE_DATA`` or ``../shared/data`` beside the checkout."""
    return Path(os.environ.get("ARENGINE_DATA", REPO_DIR.parent / "shared" / "data"))


def sample_video() -> Path | None:
    """The 720p face video from the shared data, when it is there."""
    p = shared_data_dir() / "mediapipe_samples" / "gesture_recognizer_test_video.mp4"
    return p if p.is_file() else None
