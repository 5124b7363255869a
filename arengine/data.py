"""Where the real test data and bundled assets live."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def _data_folder(name: str, env: str) -> Path:
    """``assets/`` or ``shaders/``: beside the package in a checkout (editable install), else
    where a regular install puts them (``<prefix>/share/arengine/<name>``)."""
    if env in os.environ:
        return Path(os.environ[env])
    in_checkout = REPO_DIR / name
    if in_checkout.is_dir():
        return in_checkout
    return Path(sys.prefix) / "share" / "arengine" / name


ASSETS_DIR = _data_folder("assets", "ARENGINE_ASSETS")
SHADERS_DIR = _data_folder("shaders", "ARENGINE_SHADERS")


def shared_data_dir() -> Path:
    """The real-data folder: ``$ARENGINE_DATA`` or ``../shared/data`` beside the checkout."""
    return Path(os.environ.get("ARENGINE_DATA", REPO_DIR.parent / "shared" / "data"))


def sample_video() -> Path | None:
    """The 720p face video from the shared data, when it is there."""
    p = shared_data_dir() / "mediapipe_samples" / "gesture_recognizer_test_video.mp4"
    return p if p.is_file() else None
