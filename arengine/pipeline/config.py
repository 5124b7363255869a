"""A room's media settings, apart from the room so a compositor process can be given them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from arengine.effects.chain import DEFAULT_EFFECTS

CompositorWhere = Literal["thread", "process"]


@dataclass
class RoomConfig:
    """Media settings of a room."""

    effects: tuple[str, ...] = DEFAULT_EFFECTS
    track_faces: bool = True
    track_hands: bool = True
    # Shortest time between face-tracking runs (0: every frame it can take). With
    # pace_tracking the face rate follows the machine's CPU use down to min_face_rate, and
    # the hand search while no hand is in view down to min_hand_search_rate
    # (see pipeline/pacing.py).
    face_interval: float = 0.0
    pace_tracking: bool = True
    min_face_rate: float = 15.0
    hand_interval: float = 1 / 15
    # Hand search rate while no hand is in view (None: always hand_interval).
    hand_idle_interval: float | None = 1 / 5
    min_hand_search_rate: float = 2.0
    gestures: bool = True  # host hand gestures drive room actions (thumbs up: likes...)
    demo: bool = True
    demo_size: tuple[int, int] = (1280, 720)
    fps: int = 30
    bitrate: int = 2_000_000
    # Announced to the publishing host as its receive bitrate (see transport/bitrate.py).
    ingest_bitrate: int = 5_000_000
    stale_after: float = 2.0  # seconds without host frames before the slate shows
    reconnect_grace: float = 8.0  # slate time before the demo takes over again
    render: str = "cpu"  # "auto" | "cpu" | "gl": where the effects composite (see render/)
    # Added to the tracking threads' nice value: under CPU pressure inference falls behind,
    # frames do not (0 keeps them at the pipeline's priority). With one room it made no
    # difference; with two 720p30 rooms on 2 cores, 10 halved the engine's p99 (about
    # 120 -> 60 ms over four runs) at the same tracked rate.
    tracking_nice: int = 10
    # Where the compositor (tracking, gestures, effects) runs: on the room's effects thread
    # ("thread"), or in a process of its own ("process", see pipeline/compositor_process.py)
    # so that a storm of viewer actions on the event loop cannot hold the interpreter lock
    # the frames need.
    compositor: CompositorWhere = "thread"
