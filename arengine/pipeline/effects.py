"""The room's chain of effects, run in order on each frame, each failure contained.

Effects come from the registry by name, so a layer that is not installed is skipped with
a log line instead of breaking the server. A frame on which an effect raises is sent
without that effect, and a half-drawn layer never shows. With a GPU render backend the
whole chain composites into one backend frame: one upload and one readback per frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from arengine.effects import Effect, create_effect
from arengine.effects.chain import BackendChain
from arengine.render.backend import RenderBackend
from arengine.state import RoomState
from arengine.types import Scene, StageTiming

logger = logging.getLogger(__name__)

# Lipstick first (it recolours the face), then the layers drawn over the picture.
DEFAULT_EFFECTS = ("lipstick", "avatars", "vote_sticker", "likes", "product")


class EffectChain:
    """Named effects in drawing order, fed the room's :class:`RoomState` between frames."""

    def __init__(self, names: tuple[str, ...] | list[str] = DEFAULT_EFFECTS,
                 effects: dict[str, Effect] | None = None,
                 backend: RenderBackend | None = None) -> None:
        # The CPU backend adds nothing over drawing directly; only GL shares a frame.
        self.backend = backend if backend is not None and backend.name != "cpu" else None
        self.effects: dict[str, Effect] = {}
        if effects is not None:
            self.effects.update(effects)
        self._built: set[str] = set()  # effects this chain made, so it can remake them
        self._shade: str | None = None
        self._shade_set = False
        if effects is None:
            for name in names:
                try:
                    self.effects[name] = self._make(name, {})
                    self._built.add(name)
                except ValueError as e:
                    logger.warning("effect %r is not available, skipped: %s", name, e)
                except Exception:
                    logger.exception("effect %r failed to start, skipped", name)
        self.enabled: dict[str, bool] = dict.fromkeys(self.effects, True)
        self._settings: dict[str, dict[str, Any]] = {n: {} for n in self.effects}
        self._render = BackendChain(self.effects, self.backend)
        self._state: RoomState | None = None

    def _make(self, name: str, settings: dict[str, Any]) -> Effect:
        """A new effect with the host's ``settings`` plus the chain's wiring."""
        wiring: dict[str, Any] = {}
        if name == "lipstick":
            # The room's shade is the truth; a remade lipstick keeps it without a fade
            # (a first one starts bare and fades the room's shade in with the state).
            wiring["shade"] = self._shade
        if self.backend is not None:
            wiring["backend"] = self.backend
        return create_effect(name, **settings, **wiring)

    def _apply_settings(self, state: RoomState) -> None:
        """Remake each effect whose settings changed in the room (settings go to
        ``__init__``, as for every effect): the new one draws from the next frame."""
        for name in self._built:
            wanted = state.effect_settings.get(name, {})
            if wanted == self._settings.get(name, {}):
                continue
            try:
                effect = self._make(name, wanted)
            except Exception as e:  # the API checked them; a bad one keeps the old effect
                logger.warning("effect %r: settings %s not applied: %s", name, wanted, e)
                self._settings[name] = dict(wanted)
                continue
            self.effects[name] = effect
            self._render.effects[name] = effect
            self._settings[name] = dict(wanted)
            logger.info("effect %r now runs with %s", name, wanted or "its defaults")

    @property
    def names(self) -> list[str]:
        return list(self.effects)

    def set_state(self, state: RoomState | None) -> None:
        """Pass a new room snapshot to the layers (called on the effects thread)."""
        if state is None or state is self._state:
            return
        self._state = state
        self._apply_settings(state)
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
        skip = {n for n, on in self.enabled.items() if not on}
        return self._render.apply(image, scene, skip=skip, on_timing=on_timing,
                                  on_error=on_error)

    def render_stats(self) -> dict[str, Any]:
        """Which backend composites (and any fallback), and the chain's counters."""
        status: dict[str, Any] = (dict(self.backend.status) if self.backend is not None
                                  else {"backend": "cpu"})
        status["chain"] = self._render.stats.to_dict()
        return status

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
