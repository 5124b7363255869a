"""Chains of effects: the room's named chain (:class:`EffectChain`, fed the room state),
and the render-backend frame they composite in (:class:`BackendChain`).

Effects come from the registry by name, so a layer that is not installed is skipped with
a log line instead of breaking the server. A frame on which an effect raises is sent
without that effect, and a half-drawn layer never shows.

A chain of effects composited in one render-backend frame: one upload, one readback.

Effects that draw through a render backend (``LipstickEffect(backend=...)``, the layers'
``Canvas``) join a frame that is already open on it. :class:`BackendChain` opens that
frame once, lets every effect add its lips and sprites, and reads the result back once,
so a GPU moves the picture across the bus twice per frame however many effects there are.

A frame is only read back at the end, so an effect that raises half way cannot be left
out after the fact the way a chain of separate frames would: the frame is dropped and
redone without that effect (from the untouched picture), so one broken effect costs that
effect, never the frame. Effects that do not use the chain's backend (plain numpy/OpenCV
effects) run between frames, each on a copy so a half-drawn layer never shows.

Effects that read the picture (lipstick) must come before the layers drawn over it: in a
shared frame they see the picture as it was when the frame was opened.

An effect that stands in for the host's picture (:meth:`Effect.replaces_host`: the virtual
host in replace mode) is drawn first, alone, whatever the configured order; the effects
after it get the scene without the host's faces and hands (the host is not in the picture
any more, so lipstick has no lips to paint), and if it fails the frame goes out black.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arengine.effects.base import Effect, create_effect
from arengine.effects.lipstick import LipstickEffect
from arengine.render.backend import RenderBackend
from arengine.state import RoomState
from arengine.types import FaceLandmarks, HandLandmarks, Scene, StageTiming

log = logging.getLogger(__name__)

COMPOSITE_STAGE = "composite"  # the backend's end_frame: upload, passes, readback
ERROR_LOG_INTERVAL_S = 5.0


@dataclass
class ChainStats:
    """Counters of one chain, for the room's stats."""

    frames: int = 0  # frames through apply()
    backend_frames: int = 0  # frames read back from the backend
    redone_frames: int = 0  # frames dropped and redone because an effect raised
    failures: dict[str, int] = field(default_factory=dict)  # per effect (and "composite")

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "backend_frames": self.backend_frames,
                "redone_frames": self.redone_frames, "failures": dict(self.failures)}


class BackendChain:
    """Named effects in drawing order, composited through one render backend per frame.

    ``effects`` is a mapping name -> effect, or effects (named by their registered
    ``name``). With ``backend`` None every effect draws on its own, in order. An effect
    shares the backend frame when its ``backend`` attribute is this chain's backend.
    """

    def __init__(self, effects: Mapping[str, Effect] | Iterable[Effect],
                 backend: RenderBackend | None = None) -> None:
        if isinstance(effects, Mapping):
            self.effects: dict[str, Effect] = dict(effects)
        else:
            self.effects = {}
            for e in effects:
                name = e.name or type(e).__name__
                if name in self.effects:
                    raise ValueError(f"two effects named {name!r}; pass a mapping of names")
                self.effects[name] = e
        self.backend = backend
        self.stats = ChainStats()
        self._error_logged: dict[str, float] = {}

    @property
    def names(self) -> list[str]:
        return list(self.effects)

    def shares_frame(self, effect: Effect) -> bool:
        """Whether ``effect`` draws into this chain's backend frame."""
        return self.backend is not None and effect.backend is self.backend

    def apply(self, frame: np.ndarray, scene: Scene, *, skip: Collection[str] = (),
              on_timing: Callable[[StageTiming], None] | None = None,
              on_error: Callable[[str], None] | None = None) -> np.ndarray:
        """Draw every effect not named in ``skip``; return the composited frame.

        ``frame`` may be modified in place (and returned). ``on_timing`` gets one
        ``effect:<name>`` timing per effect run and a ``composite`` timing per backend
        readback; ``on_error`` gets ``effect:<name>`` (or ``composite``) when one failed.
        """
        self.stats.frames += 1
        run = _Run(scene, on_timing, on_error)
        segment: list[tuple[str, Effect]] = []
        out = frame
        for name, effect, replaces in self._order(skip):
            if replaces:  # alone, first, and nothing of the host's picture after it
                if segment:
                    out = self._shared(out, segment, run)
                    segment = []
                out = self._alone(out, name, effect, run, blank_on_failure=True)
                run.scene = run.scene.with_faces(FaceLandmarks.empty()).with_hands(
                    HandLandmarks.empty())
                continue
            if self.shares_frame(effect):
                segment.append((name, effect))
                continue
            if segment:
                out = self._shared(out, segment, run)
                segment = []
            out = self._alone(out, name, effect, run)
        if segment:
            out = self._shared(out, segment, run)
        return out

    def _order(self, skip: Collection[str]) -> list[tuple[str, Effect, bool]]:
        """The effects to draw, in order: those that stand in for the host's picture
        (:meth:`Effect.replaces_host`) first, then the others as configured."""
        items = []
        for name, effect in self.effects.items():
            if name in skip:
                continue
            try:
                replaces = effect.replaces_host()
            except Exception:
                log.exception("effect %r: replaces_host() failed; drawn in place", name)
                replaces = False
            items.append((name, effect, replaces))
        return sorted(items, key=lambda item: not item[2])  # stable: keeps the order

    # -- one effect on its own -----------------------------------------------------------
    def _alone(self, frame: np.ndarray, name: str, effect: Effect, run: _Run,
               blank_on_failure: bool = False) -> np.ndarray:
        """``blank_on_failure``: a failed effect leaves a black picture instead of the
        frame (an effect standing in for the host must never let the host through)."""
        start = time.perf_counter()
        try:
            drawn = effect.apply(frame.copy(), run.scene)
            if drawn.shape != frame.shape or drawn.dtype != np.uint8:
                raise ValueError(f"returned {drawn.shape} {drawn.dtype}, expected "
                                 f"{frame.shape} uint8")
            return drawn
        except Exception as e:
            self._failed(f"effect:{name}", name, run, e)
            return np.zeros_like(frame) if blank_on_failure else frame
        finally:
            run.timing(f"effect:{name}", start)

    # -- effects sharing one backend frame -----------------------------------------------
    def _shared(self, frame: np.ndarray, segment: list[tuple[str, Effect]],
                run: _Run) -> np.ndarray:
        backend = self.backend
        assert backend is not None
        if backend.frame_open:  # left open by someone else: it can never be read back now
            log.warning("render backend had a frame open before the chain; dropping it")
            backend.abort_frame()
        live = list(segment)
        while live:
            inplace = bool(frame.flags.c_contiguous and frame.flags.writeable)
            # A backend that writes at once (the CPU) needs the picture kept to redo from.
            backup = frame.copy() if inplace and not backend.defers_writes else None
            # Layers note where they drew in scene.extras (so later ones go elsewhere): a
            # redo starts from the notes as they were, not from the dropped attempt's.
            notes = _snapshot(run.scene.extras)
            try:
                backend.begin_frame(frame, inplace=inplace)
            except Exception as e:  # a backend that cannot start a frame: send it as is
                self._failed(COMPOSITE_STAGE, COMPOSITE_STAGE, run, e)
                return frame
            failed: str | None = None
            error: Exception | None = None
            for name, effect in live:
                start = time.perf_counter()
                try:
                    effect.apply(frame, run.scene)  # joined: it returns frame untouched
                except Exception as e:
                    failed, error = name, e
                    break
                finally:
                    run.timing(f"effect:{name}", start)
            if failed is None:
                start = time.perf_counter()
                try:
                    out = backend.end_frame()
                except Exception as e:
                    backend.abort_frame()
                    if backup is not None:
                        np.copyto(frame, backup)
                    self._failed(COMPOSITE_STAGE, COMPOSITE_STAGE, run, e)
                    return frame
                finally:
                    run.timing(COMPOSITE_STAGE, start)
                self.stats.backend_frames += 1
                return out
            backend.abort_frame()
            if backup is not None:
                np.copyto(frame, backup)
            run.scene.extras.clear()
            run.scene.extras.update(notes)
            self.stats.redone_frames += 1
            self._failed(f"effect:{failed}", failed, run, error)
            live = [(n, e) for n, e in live if n != failed]
        return frame

    def _failed(self, stage: str, name: str, run: _Run, error: Exception | None) -> None:
        self.stats.failures[name] = self.stats.failures.get(name, 0) + 1
        if run.on_error is not None:
            run.on_error(stage)
        now = time.monotonic()
        if now - self._error_logged.get(name, -1e9) > ERROR_LOG_INTERVAL_S:
            self._error_logged[name] = now
            log.error("%s failed on frame %d; sent without it", stage,
                      run.scene.frame_index, exc_info=error)


def _snapshot(extras: dict[str, Any]) -> dict[str, Any]:
    """A copy of a scene's notes that the effects' later writes cannot reach."""
    if not extras:
        return {}
    try:
        return copy.deepcopy(extras)
    except Exception:  # something that cannot be copied: keep what can be kept
        return dict(extras)


@dataclass
class _Run:
    """One frame's callbacks."""

    scene: Scene
    on_timing: Callable[[StageTiming], None] | None
    on_error: Callable[[str], None] | None

    def timing(self, stage: str, start: float) -> None:
        if self.on_timing is not None:
            self.on_timing(StageTiming(self.scene.frame_index, stage, start,
                                       time.perf_counter()))


def render_chain(effects: Mapping[str, Effect] | Iterable[Effect], frame: np.ndarray,
                 scene: Scene, backend: RenderBackend | None = None) -> np.ndarray:
    """Run ``effects`` once on ``frame`` (a one-off :class:`BackendChain`)."""
    return BackendChain(effects, backend).apply(frame, scene)


# The virtual host (off until a host turns it on; drawn first in replace mode), lipstick (it
# recolours the face), then the layers drawn over the picture.
DEFAULT_EFFECTS = ("virtual_host", "lipstick", "avatars", "vote_sticker", "likes", "product")


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
                    log.warning("effect %r is not available, skipped: %s", name, e)
                except Exception:
                    log.exception("effect %r failed to start, skipped", name)
        self.enabled: dict[str, bool] = {n: e.enabled_by_default
                                         for n, e in self.effects.items()}
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
                log.warning("effect %r: settings %s not applied: %s", name, wanted, e)
                self._settings[name] = dict(wanted)
                continue
            old = self.effects.get(name)
            if old is not None:
                try:
                    effect.adopt(old)
                except Exception:
                    log.exception("effect %r: could not take over the previous one's state",
                                  name)
            self.effects[name] = effect
            self._render.effects[name] = effect
            self._settings[name] = dict(wanted)
            log.info("effect %r now runs with %s", name, wanted or "its defaults")

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
            try:
                effect.set_state(state)
            except Exception:
                log.exception("effect %r rejected the room state", name)
        # The room's shade is the truth: none means no lipstick (the host console shows
        # the same), a new one cross-fades in.
        lipstick = self.effects.get("lipstick")
        shade = state.shade_id
        if isinstance(lipstick, LipstickEffect) and (shade != self._shade
                                                     or not self._shade_set):
            try:
                lipstick.set_shade(shade)
                self._shade = shade
                self._shade_set = True
            except Exception as e:
                log.warning("cannot set shade %r: %s", shade, e)

    def apply(self, image: np.ndarray, scene: Scene,
              on_timing: Callable[[StageTiming], None],
              on_error: Callable[[str], None]) -> np.ndarray:
        """Draw every enabled effect; a raising effect is left out of this frame only."""
        skip = {n for n, on in self.enabled.items() if not on}
        return self._render.apply(image, scene, skip=skip, on_timing=on_timing,
                                  on_error=on_error)

    def needs(self) -> frozenset[str]:
        """What the enabled effects need tracked besides faces and hands
        (:meth:`Effect.needs`), for the compositor."""
        out: set[str] = set()
        for name, effect in self.effects.items():
            if self.enabled.get(name, True):
                try:
                    out |= effect.needs()
                except Exception:
                    log.exception("effect %r: needs() failed", name)
        return frozenset(out)

    def stands_in_for_host(self) -> bool:
        """Whether an enabled effect draws the whole picture itself (a virtual host in
        replace mode): then a picture with no host (a slate) is still composited, so the
        character keeps moving while the host reconnects."""
        for name, effect in self.effects.items():
            if self.enabled.get(name, True):
                try:
                    if effect.replaces_host():
                        return True
                except Exception:
                    log.exception("effect %r: replaces_host() failed", name)
        return False

    def shares_frame(self, effect: Effect) -> bool:
        """Whether ``effect`` draws into the chain's backend frame (one upload, one
        readback for all of them)."""
        return self._render.shares_frame(effect)

    def render_stats(self) -> dict[str, Any]:
        """Which backend composites (and any fallback), and the chain's counters."""
        status: dict[str, Any] = (dict(self.backend.status) if self.backend is not None
                                  else {"backend": "cpu"})
        status["chain"] = self._render.stats.to_dict()
        return status

    def colour_readout(self) -> list[dict[str, Any]]:
        """Per painted face on the last frame, how far the lip is from its shade in the
        face's light (empty without a lipstick layer)."""
        lipstick = self.effects.get("lipstick")
        if not isinstance(lipstick, LipstickEffect):
            return []
        return [r.to_dict() for r in lipstick.last_readout]

    def click_regions(self, width: int, height: int) -> list[dict[str, Any]]:
        """Clickable rectangles of the layers (the product sticker), as the layer gives them
        (normalized 0..1 of the frame)."""
        out: list[dict[str, Any]] = []
        for name, effect in self.effects.items():
            if not self.enabled.get(name, True):
                continue
            try:
                for r in effect.click_regions(width, height):
                    out.append({**r.to_dict(), "layer": name})
            except Exception:
                log.exception("effect %r click_regions failed", name)
        return out

