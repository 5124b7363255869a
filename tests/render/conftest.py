"""Render fixtures: a GL backend (Mesa llvmpipe in CI), and real faces with their lips.

Without a GL context the GL tests skip on a developer machine but fail in CI
(``CI=true``): CI installs Mesa's EGL and llvmpipe precisely so that the shaders run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from arengine.effects.lipstick import (
    LipFields,
    LipGeometry,
    LipParams,
    lip_fields,
    lip_geometry,
    lip_roi_mask,
    roi_to_lab,
)
from arengine.render.cpu import CPUBackend

LIP_IMAGES = ("mediapipe_samples/business-person.png", "faces/obama-720p.jpg")


def _no_gl(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"no OpenGL context in CI ({reason}); install the EGL/Mesa packages in "
                    ".ci/apt-packages", pytrace=False)
    pytest.skip(f"no OpenGL context: {reason}")


@pytest.fixture
def make_gl() -> Iterator[Callable[..., object]]:
    """Factory for GL backends (closed after the test); skips/fails without a context."""
    from arengine.render.gl import GLBackend, GLUnavailable

    made: list[GLBackend] = []

    def make(**kwargs: object) -> GLBackend:
        try:
            b = GLBackend(**kwargs)  # type: ignore[arg-type]
        except GLUnavailable as e:
            _no_gl(str(e))
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


@pytest.fixture
def gl(make_gl: Callable[..., object]) -> object:
    return make_gl()


@pytest.fixture
def cpu() -> CPUBackend:
    return CPUBackend()


@dataclass
class LipCase:
    """A real image with the lips of its first face, ready for ``composite_lips``."""

    name: str
    image: np.ndarray
    geom: LipGeometry
    mask8: np.ndarray  # uint8 0..255, box-sized, as the effect makes it

    @property
    def mask(self) -> np.ndarray:
        """float32 0..1, what ``composite_lips`` takes."""
        return self.mask8.astype(np.float32) * np.float32(1 / 255)

    def fields(self, params: LipParams) -> LipFields:
        x1, y1, x2, y2 = self.geom.box
        lab = roi_to_lab(self.image[y1:y2, x1:x2])
        return lip_fields(lab, self.mask8, self.geom, params)

    def full_mask(self) -> np.ndarray:
        """The lip coverage in frame coordinates (0 outside the box)."""
        out = np.zeros(self.image.shape[:2], np.float32)
        x1, y1, x2, y2 = self.geom.box
        out[y1:y2, x1:x2] = self.mask
        return out


@pytest.fixture(scope="session")
def lip_cases(load_image: Callable[[str], np.ndarray]) -> dict[str, LipCase]:
    """Real landmarks (FaceTracker in image mode) on the real test pictures."""
    from arengine.tracking import FaceTracker

    cases: dict[str, LipCase] = {}
    with FaceTracker(mode="image", max_faces=1) as tracker:
        for name in LIP_IMAGES:
            image = load_image(name)
            faces = tracker.detect(image)
            assert len(faces) == 1, f"expected one face in {name}, found {len(faces)}"
            h, w = image.shape[:2]
            geom = lip_geometry(faces.points[0], w, h)
            assert geom is not None, f"lips not found in {name}"
            cases[name] = LipCase(name, image, geom, lip_roi_mask(geom))
    return cases
