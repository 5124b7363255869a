"""The per-room media pipeline: newest-frame slots, tracking workers, effects, observers."""

from arengine.effects.chain import DEFAULT_EFFECTS, EffectChain
from arengine.pipeline.observer import StatsObserver
from arengine.pipeline.room import RoomConfig, RoomPipeline

__all__ = ["DEFAULT_EFFECTS", "EffectChain", "RoomConfig", "RoomPipeline", "StatsObserver"]
