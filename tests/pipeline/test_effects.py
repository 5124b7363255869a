"""The effect chain: the room's shade drives lipstick; missing effects are skipped."""

from __future__ import annotations

import logging

import numpy as np

from arengine.demo import DemoSource
from arengine.interaction.state import RoomState
from arengine.pipeline import EffectChain
from arengine.tracking import FaceTracker


def _apply(chain: EffectChain, image: np.ndarray, scene, t: float) -> np.ndarray:
    return chain.apply(image.copy(), scene.at(t), lambda _: None, lambda _: None)


def test_room_shade_turns_lipstick_on_and_off() -> None:
    image = DemoSource(640, 360).frame_at(0.0)
    with FaceTracker("image") as ft:
        scene = ft.track(image)
    chain = EffectChain(("lipstick",))
    chain.set_state(RoomState("r"))  # no shade chosen: no lipstick (after a fade-out)
    _apply(chain, image, scene, 1.0)
    assert np.array_equal(_apply(chain, image, scene, 2.0), image)
    chain.set_state(RoomState("r", shade_id="velvet-plum"))
    _apply(chain, image, scene, 3.0)  # the cross-fade starts here
    on = _apply(chain, image, scene, 5.0)
    assert np.abs(on.astype(int) - image).max() > 40
    chain.set_state(RoomState("r", shade_id=None))
    _apply(chain, image, scene, 6.0)
    assert np.array_equal(_apply(chain, image, scene, 8.0), image)


def test_room_effect_toggles_and_unknown_effects(caplog) -> None:
    caplog.set_level(logging.WARNING)
    chain = EffectChain(("lipstick", "no_such_layer"))
    assert chain.names == ["lipstick"]
    assert "no_such_layer" in caplog.text
    chain.set_state(RoomState("r", effects={"lipstick": False}))
    assert chain.enabled["lipstick"] is False
