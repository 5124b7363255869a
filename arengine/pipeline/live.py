"""The live room's compositor as one unit: the effect chain, the host's gestures, the
tracking workers and their pacing, and what the room reads back of them between frames
(:class:`Readout`).

A room runs it on its effects thread (``RoomConfig.compositor = "thread"``), or a
compositor process runs the very same object (``"process"``, see
:mod:`arengine.pipeline.compositor_process`); the room makes the same calls either way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arengine.effects.chain import EffectChain
from arengine.pipeline.compositor import Composite, Compositor, OnError, OnTiming, WorkerTracking
from arengine.pipeline.config import RoomConfig
from arengine.pipeline.pacing import TrackingPacer
from arengine.pipeline.tracking import TrackingWorker, face_worker, hand_worker
from arengine.state import RoomState
from arengine.tracking.gestures import GestureRecognizer
from arengine.types import HandLandmarks, Scene


@dataclass
class Readout:
    """What the room reads of its compositor between frames (for stats, the viewers'
    click areas and the idle source); plain data, so it crosses a process boundary."""

    enabled: dict[str, bool] = field(default_factory=dict)
    render: dict[str, Any] = field(default_factory=dict)
    colour: list[dict[str, Any]] = field(default_factory=list)
    tracking: dict[str, dict[str, Any]] = field(default_factory=dict)
    machine_busy: float | None = None
    click_regions: list[dict[str, Any]] = field(default_factory=list)
    stands_in_for_host: bool = False
    process: dict[str, Any] | None = None  # the compositor process's own figures, if any


class RoomCompositor(ABC):
    """The calls a room makes of its compositor, wherever it runs."""

    @abstractmethod
    def start(self) -> None:
        """Start the tracking workers (and whatever runs them); blocking."""

    @abstractmethod
    def process(self, image: np.ndarray, timestamp: float, index: int,
                state: RoomState | None, *, host: bool, track: bool) -> Composite:
        """One frame, as :meth:`Compositor.process`; blocking (the room's effects thread)."""

    @abstractmethod
    def pace(self, busy: float | None) -> None:
        """Set the tracking rates from the machine's CPU use (once a second)."""

    @abstractmethod
    def readout(self, size: tuple[int, int] | None) -> Readout:
        """The newest :class:`Readout`, click areas for frames of ``size``."""

    def click_regions(self, size: tuple[int, int]) -> list[dict[str, Any]]:
        """The layers' clickable rectangles on frames of ``size`` (the viewers' pages)."""
        return self.readout(size).click_regions

    def stands_in_for_host(self) -> bool:
        """Whether a layer draws the picture itself (a virtual host in replace mode)."""
        return self.readout(None).stands_in_for_host

    @abstractmethod
    def close(self) -> None:
        """Stop it all; blocking."""


class LiveCompositor(RoomCompositor):
    """:class:`Compositor` with the live room's tracking: workers that never hold a frame
    back (:class:`WorkerTracking`), paced by the machine's CPU use (pacing.py)."""

    def __init__(self, config: RoomConfig, gestures: bool, on_timing: OnTiming,
                 on_error: OnError, effects: EffectChain | None = None) -> None:
        self.config = config
        self.on_timing = on_timing
        self.on_error = on_error
        if effects is None:
            backend = None
            if config.render != "cpu":
                from arengine.render.backend import select_backend

                backend = select_backend(config.render)
            effects = EffectChain(config.effects, backend=backend)
        recognizer = GestureRecognizer() \
            if gestures and config.gestures and config.track_hands else None
        # Until start() the frames go bare of tracking.
        self.compositor = Compositor(effects, None, recognizer, on_timing, on_error)
        self.face: TrackingWorker[Scene] | None = None
        self.hands: TrackingWorker[HandLandmarks] | None = None
        self.pacers: list[TrackingPacer] = []

    @property
    def effects(self) -> EffectChain:
        return self.compositor.effects

    @effects.setter
    def effects(self, chain: EffectChain) -> None:
        self.compositor.effects = chain

    def start(self) -> None:
        config = self.config
        if config.track_faces:
            self.face = face_worker(self.on_timing, self.on_error, nice=config.tracking_nice,
                                    min_interval=config.face_interval)
            if config.pace_tracking:
                top = 1 / config.face_interval if config.face_interval > 0 \
                    else float(config.fps)
                self.pacers.append(TrackingPacer(self.face, top,
                                                 min(top, config.min_face_rate)))
        if config.track_hands:
            self.hands = hand_worker(self.on_timing, self.on_error, config.hand_interval,
                                     nice=config.tracking_nice,
                                     idle_interval=config.hand_idle_interval)
            idle = config.hand_idle_interval
            if config.pace_tracking and idle:
                self.pacers.append(TrackingPacer(
                    self.hands, 1 / idle, min(1 / idle, config.min_hand_search_rate),
                    attr="idle_interval", at_max=None))
        self.compositor.tracking = WorkerTracking(self.face, self.hands)

    def process(self, image: np.ndarray, timestamp: float, index: int,
                state: RoomState | None, *, host: bool, track: bool) -> Composite:
        return self.compositor.process(image, timestamp, index, state, host=host, track=track)

    def pace(self, busy: float | None) -> None:
        for pacer in self.pacers:
            pacer.update(busy)

    def readout(self, size: tuple[int, int] | None) -> Readout:
        chain = self.effects
        return Readout(
            enabled={n: chain.enabled.get(n, True) for n in chain.names},
            render=chain.render_stats(),
            # Per painted face, how far the lip is from its shade in the face's light.
            colour=chain.colour_readout(),
            tracking={w.name: {"processed": w.processed, "dropped": w.dropped,
                               "min_interval": w.min_interval,
                               "idle_interval": w.idle_interval}
                      for w in (self.face, self.hands) if w is not None},
            machine_busy=self.pacers[0].busy if self.pacers else None,
            click_regions=chain.click_regions(*size) if size is not None else [],
            stands_in_for_host=chain.stands_in_for_host())

    def click_regions(self, size: tuple[int, int]) -> list[dict[str, Any]]:
        return self.effects.click_regions(*size)

    def stands_in_for_host(self) -> bool:
        return self.effects.stands_in_for_host()

    def close(self) -> None:
        self.compositor.close()
