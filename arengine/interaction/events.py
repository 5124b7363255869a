"""Room events: the append-only log a room is rebuilt from.

Every change to a room is one :class:`Event`. The live room applies an event the same
way it does on replay after a restart, so the log alone is the source of truth and the
in-memory state is only a cache of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

EventKind = Literal[
    "room_created",
    "host_token_rotated",
    "join",
    "leave",
    "comment",
    "like",
    "share",
    "follow",
    "vote",
    "sticker_click",
    "avatar",
    "poll_opened",
    "poll_closed",
    "shade_set",
    "effects_set",
    "product_set",
    "like_goal_set",
    "like_goal_reached",
]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)

# Kinds that count towards the interaction rate (see metrics.py).
INTERACTION_KINDS = frozenset({"comment", "like", "share", "follow"})


@dataclass(frozen=True)
class Event:
    """One accepted change to a room, numbered by ``seq`` (1, 2, ... per room)."""

    room_id: str
    seq: int
    ts: float  # unix seconds
    kind: str
    viewer_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The form sent to WebSocket subscribers (secrets such as token hashes removed)."""
        data = {k: v for k, v in self.data.items() if not k.startswith("_")}
        return {"room_id": self.room_id, "seq": self.seq, "ts": self.ts, "kind": self.kind,
                "viewer_id": self.viewer_id, "data": data}

    def to_row(self) -> tuple[str, int, float, str, str | None, str]:
        """The SQLite row; keys starting with ``_`` are stored but never published."""
        return (self.room_id, self.seq, self.ts, self.kind, self.viewer_id,
                json.dumps(self.data, ensure_ascii=False, separators=(",", ":")))

    @classmethod
    def from_row(cls, row: tuple[str, int, float, str, str | None, str]) -> Event:
        room_id, seq, ts, kind, viewer_id, data = row
        return cls(room_id, int(seq), float(ts), kind, viewer_id, json.loads(data))
