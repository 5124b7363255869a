"""Polls: one ballot per viewer, a deadline, and a winner with a deterministic tie-break.

A viewer who votes again moves their ballot; the tallies never count a viewer twice.
Ties go to the option that reached the winning count first. "First" is measured in
event sequence numbers rather than wall-clock time, so a room rebuilt from its log
picks the same winner as the live room did.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from arengine.state import PollOptionView, PollView

MIN_OPTIONS = 2
MAX_OPTIONS = 5
MIN_DURATION_S = 15.0
MAX_DURATION_S = 1800.0
QUESTION_MAX_CHARS = 140
OPTION_MAX_CHARS = 40


@dataclass
class PollOption:
    label: str
    shade_id: str | None = None
    swatch_hex: str | None = None
    votes: int = 0
    # rise[c] = seq at which the count last rose to c (and has stayed >= c since).
    rise: dict[int, int] = field(default_factory=dict)


@dataclass
class Poll:
    id: str
    question: str
    options: list[PollOption]
    opened_at: float
    closes_at: float
    opened_seq: int
    apply_shade: bool = False
    closed: bool = False
    closed_at: float | None = None
    close_reason: str | None = None
    winner: int | None = None
    ballots: dict[str, int] = field(default_factory=dict)  # viewer id -> option index
    # (ts, option, previous option or None) per accepted vote, for votes-over-time.
    timeline: list[tuple[float, int, int | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for o in self.options:
            o.rise.setdefault(0, self.opened_seq)

    @property
    def is_shade_poll(self) -> bool:
        return any(o.shade_id is not None for o in self.options)

    def vote(self, viewer_id: str, option: int, seq: int, ts: float) -> int | None:
        """Record the viewer's ballot; returns their previous option (None if first)."""
        previous = self.ballots.get(viewer_id)
        if previous == option:
            return previous
        if previous is not None:
            old = self.options[previous]
            old.rise.pop(old.votes, None)
            old.votes -= 1
        new = self.options[option]
        new.votes += 1
        new.rise[new.votes] = seq
        self.ballots[viewer_id] = option
        self.timeline.append((ts, option, previous))
        return previous

    def leader(self) -> int | None:
        """The option that would win now: most votes, then earliest to reach that count."""
        best = max((o.votes for o in self.options), default=0)
        if best == 0:
            return None
        ranked = [(o.rise[o.votes], i) for i, o in enumerate(self.options) if o.votes == best]
        return min(ranked)[1]

    def close(self, ts: float, reason: str) -> int | None:
        self.closed = True
        self.closed_at = ts
        self.close_reason = reason
        self.winner = self.leader()
        return self.winner

    def view(self) -> PollView:
        return PollView(
            id=self.id, question=self.question,
            options=tuple(PollOptionView(o.label, o.votes, o.shade_id, o.swatch_hex)
                          for o in self.options),
            opened_at=self.opened_at, closes_at=self.closes_at, closed=self.closed,
            winner=self.winner)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id, "question": self.question,
            "options": [{"label": o.label, "votes": o.votes, "shade_id": o.shade_id,
                         "swatch_hex": o.swatch_hex} for o in self.options],
            "opened_at": self.opened_at, "closes_at": self.closes_at,
            "apply_shade": self.apply_shade, "closed": self.closed,
            "closed_at": self.closed_at, "close_reason": self.close_reason,
            "winner": self.winner, "total_votes": sum(o.votes for o in self.options),
            "leader": self.leader(),
        }
