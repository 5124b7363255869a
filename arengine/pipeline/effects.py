"""The room's chain of effects, run in order on each frame, each failure contained.

Effects come from the registry by name, so a layer that is not installed is skipped with
a log line instead of breaking the server. A frame on which an effect raises is sent
without that effect: every effect draws on a copy, so a half-drawn layer never shows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from arengine.effects import Effect, create_effect
from arengine.interaction.state import RoomState
from arengine.types import Scene, StageTiming

logger = logging.getLogger(__name__)

# Lipstick first (it recolours the face), then the layers drawn over the picture.
DEFAULT_EFFECTS = ("lipstick", "avatars", "vote_sticker", "likes", "product")


class EffectChain:
    """Named effects in drawing order, fed the room's :class:`RoomState` between frames."""

    def __init__(self, names: tuple[str, ...] | list[str] = DEFAULT_EFFECTS,
                 effects: dict[str, Effect] | None = None) -> None:
        self.effects: dict[str, Effect] = {}
        if effects is not None:
            self.effects.update(effects)
        else:
            for name in names:
                # Lipstick starts bare: the room's shade (if any) fades in with the state.
                settings = {"shade": None} if name == "lipstick" else {}
                try:
                    self.effects[name] = create_effect(name, **settings)
                except ValueError as e:
                    logger.warning("effect %r is not available, skipped: %s", name, e)
                except Exception:
                    logger.exception("effect %r failed to start, skipped", name)
        self.enabled: dict[str, bool] = dict.fromkeys(self.effects, True)
        self._state: RoomState | None = None
        self._shade: str | None = None
        self._shade_set = False
        self._error_logged: dict[str, float] = {}

    @property
    def names(self) -> list[str]:
        return list(self.effects)

    def set_state(self, state: RoomState | None) -> None:
        """Pass a new room snapshot to the layers (called on the effects thread)."""
        if state is None or state is self._state:
            return
        self._state = state
        for name, effect in self.effects.items():
            if name in state.effects:
                self.enabled[name] = bool(state.effects[name])
            set_state = getattr(effect, "set_state", None)
            if callable(set_state):
                try:
                    set_state(state)
                except Exception:
                    logger.exception("effect %r rejected the room state", name)
        # The room's shade is the truth: none means no lipstick (the host console shows
        # the same), a new one cross-fades in.
        lipstick = self.effects.get("lipstick")
        shade = state.shade_id
        if lipstick is not None and (shade != self._shade or not self._shade_set):
            set_shade = getattr(lipstick, "set_shade", None)
            if callable(set_shade):
                try:
                    set_shade(shade)
                    self._shade = shade
                    self._shade_set = True
                except Exception as e:
                    logger.warning("cannot set shade %r: %s", shade, e)

    def apply(self, image: np.ndarray, scene: Scene,
              on_timing: Callable[[StageTiming], None],
              on_error: Callable[[str], None]) -> np.ndarray:
        """Draw every enabled effect; a raising effect is left out of this frame only."""
        out = image
        for name, effect in self.effects.items():
            if not self.enabled.get(name, True):
                continue
            start = time.perf_counter()
            try:
                drawn = effect.apply(out.copy(), scene)
                if drawn.shape != out.shape or drawn.dtype != np.uint8:
                    raise ValueError(f"returned {drawn.shape} {drawn.dtype}, "
                                     f"expected {out.shape} uint8")
                out = drawn
            except Exception:
                on_error(f"effect:{name}")
                now = time.monotonic()
                if now - self._error_logged.get(name, -1e9) > 5.0:
                    self._error_logged[name] = now
                    logger.exception("effect %r failed on frame %d; sent without it",
                                     name, scene.frame_index)
            on_timing(StageTiming(scene.frame_index, f"effect:{name}", start,
                                  time.perf_counter()))
        return out

    def click_regions(self, width: int, height: int) -> list[dict[str, Any]]:
        """Clickable rectangles of the layers (the product sticker), as the layer gives them
        (normalized 0..1 of the frame)."""
        out: list[dict[str, Any]] = []
        for name, effect in self.effects.items():
            regions = getattr(effect, "click_regions", None)
            if not callable(regions) or not self.enabled.get(name, True):
                continue
            try:
                for r in regions(width, height) or []:
                    out.append(_region_json(name, r))
            except Exception:
                logger.exception("effect %r click_regions failed", name)
        return out


def _region_json(layer: str, region: Any) -> dict[str, Any]:
    """Normalise a region (a dict, a dataclass or an (x, y, w, h) tuple) to JSON."""
    if isinstance(region, dict):
        d = dict(region)
    elif hasattr(region, "__dataclass_fields__"):
        from dataclasses import asdict

        d = asdict(region)
    else:
        x, y, w, h = (float(v) for v in list(region)[:4])
        d = {"x": x, "y": y, "w": w, "h": h}
    d.setdefault("layer", layer)
    return {k: (float(v) if isinstance(v, np.floating | np.integer) else v)
            for k, v in d.items()}
