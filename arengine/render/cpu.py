"""The CPU render backend: the numpy/OpenCV reference functions, one frame copy per frame.

This is the definition of what a frame should look like; the GL backend is tested
against it.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from arengine.render.backend import RenderBackend
from arengine.render.sprites import blend_sprite


class CPUBackend(RenderBackend):
    """Composites with :func:`arengine.render.lips.composite_lips` and
    :func:`arengine.render.sprites.blend_sprite`."""

    name = "cpu"

    def __init__(self) -> None:
        super().__init__()
        self._canvas: np.ndarray | None = None

    def _begin(self, frame: np.ndarray, inplace: bool) -> None:
        self._canvas = frame if inplace else frame.copy()

    def _lips(self, box: tuple[int, int, int, int], mask: np.ndarray, params: Any,
              options: dict[str, Any]) -> None:
        from arengine.render.lips import composite_lips

        assert self._canvas is not None
        x1, y1, x2, y2 = box
        roi = self._canvas[y1:y2, x1:x2]
        self._canvas[y1:y2, x1:x2] = composite_lips(roi, mask, params, **options)

    def _sprite(self, sprite: np.ndarray, x: int, y: int, key: Hashable | None,
                version: int, opacity: float) -> None:
        assert self._canvas is not None
        blend_sprite(self._canvas, sprite, x, y, opacity)

    def _end(self) -> np.ndarray:
        assert self._canvas is not None
        out, self._canvas = self._canvas, None
        return out

    def abort_frame(self) -> None:
        super().abort_frame()
        self._canvas = None
