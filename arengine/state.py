"""Read-only snapshots of a room, the only thing on-screen layers read.

Layers draw from a :class:`RoomState` taken by the room after each change; they never
touch the store or wait on I/O, so drawing can never stall a frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ViewerView:
    """A viewer as the picture shows them."""

    id: str
    name: str
    avatar: bytes | None = None  # validated PNG/JPEG bytes, or None for a generated one
    last_comment: str | None = None
    last_active: float = 0.0  # unix seconds of their latest join/comment/vote
    joined_at: float = 0.0


@dataclass(frozen=True)
class PollOptionView:
    label: str
    votes: int = 0
    shade_id: str | None = None
    swatch_hex: str | None = None  # "#RRGGBB" when the option is a shade


@dataclass(frozen=True)
class PollView:
    id: str
    question: str
    options: tuple[PollOptionView, ...]
    opened_at: float
    closes_at: float
    closed: bool = False
    winner: int | None = None  # option index once closed

    @property
    def total_votes(self) -> int:
        return sum(o.votes for o in self.options)


@dataclass(frozen=True)
class LikeGoalView:
    target: int
    count: int
    message: str
    reached: bool = False


@dataclass(frozen=True)
class ProductView:
    id: str
    name: str
    price: str  # already formatted, e.g. "¥129" or "$19.90"
    url: str | None = None


@dataclass(frozen=True)
class CommentView:
    """One recent comment, for a scrolling comment layer."""

    viewer_id: str
    name: str
    text: str
    ts: float


@dataclass(frozen=True)
class RoomState:
    """Everything visible about a room at one instant (times are unix seconds)."""

    room_id: str
    taken_at: float = 0.0
    viewers: tuple[ViewerView, ...] = ()
    poll: PollView | None = None
    likes: int = 0
    recent_likes: tuple[float, ...] = ()  # times of the latest likes, for bursts
    like_goal: LikeGoalView | None = None
    product: ProductView | None = None
    shade_id: str | None = None
    effects: dict[str, bool] = field(default_factory=dict)
    viewer_count: int = 0
    interaction_rate: float = 0.0
    # Added after the first layers were written; all have defaults.
    seq: int = 0  # sequence number of the latest event applied
    title: str = ""
    peak_viewers: int = 0
    shade_hex: str | None = None
    effect_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    recent_comments: tuple[CommentView, ...] = ()
    follows: int = 0
    shares: int = 0
