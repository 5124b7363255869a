"""Real faces for the layer tests: each picture with its scene and face boxes."""

from __future__ import annotations

import numpy as np
import pytest

from arengine.effects.layout import Rect
from arengine.tracking import FaceTracker
from arengine.types import Scene
from tests.render.conftest import cpu, gl, make_gl

__all__ = ["cpu", "face_scenes", "gl", "make_gl"]  # the chain tests draw through backends


@pytest.fixture(scope="session")
def face_scenes(load_image) -> dict[str, tuple[np.ndarray, Scene, list[Rect]]]:
    out = {}
    with FaceTracker(mode="image") as ft:
        for name in ("mediapipe_samples/business-person.png", "faces/obama-720p.jpg",
                     "faces/two_people.jpg"):
            img = load_image(name)
            scene = ft.track(img, 0.0)
            assert len(scene.faces) >= 1
            out[name] = (img, scene, [Rect.from_xyxy(b) for b in scene.faces.boxes()])
    return out
