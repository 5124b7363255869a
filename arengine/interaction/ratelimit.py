"""Token buckets that keep one viewer from flooding a room with comments or likes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from arengine.interaction.errors import RateLimitedError


@dataclass(frozen=True)
class Rate:
    """``burst`` tokens at most, refilled at ``per_second``."""

    burst: float
    per_second: float


@dataclass(frozen=True)
class RateLimits:
    """Per-viewer limits. A like request of ``count`` n costs n tokens."""

    comment: Rate = Rate(burst=5, per_second=1.0)
    like: Rate = Rate(burst=100, per_second=20.0)
    vote: Rate = Rate(burst=20, per_second=5.0)
    other: Rate = Rate(burst=20, per_second=2.0)  # shares, follows, sticker clicks


class TokenBucket:
    """A classic token bucket on an injected clock."""

    __slots__ = ("_at", "_tokens", "rate")

    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self._tokens = rate.burst
        self._at = now

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens and return 0, or return the seconds to wait and take none."""
        self._tokens = min(self.rate.burst,
                           self._tokens + max(0.0, now - self._at) * self.rate.per_second)
        self._at = now
        if cost > self.rate.burst:
            return float("inf")
        if self._tokens >= cost:
            self._tokens -= cost
            return 0.0
        return (cost - self._tokens) / self.rate.per_second


class RateLimiter:
    """One bucket per (viewer, action); raises :class:`RateLimitedError` when empty."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def check(self, viewer_id: str, action: str, cost: float = 1.0) -> None:
        rate: Rate = getattr(self.limits, action, self.limits.other)
        now = self.clock()
        bucket = self._buckets.get((viewer_id, action))
        if bucket is None:
            bucket = self._buckets[(viewer_id, action)] = TokenBucket(rate, now)
        wait = bucket.take(now, cost)
        if wait == float("inf"):
            raise RateLimitedError(
                f"{action}: at most {rate.burst:g} at once", retry_after=1.0)
        if wait > 0:
            raise RateLimitedError(
                f"too many {action}s: at most {rate.per_second:g}/s "
                f"(bursts of {rate.burst:g}); retry in {wait:.1f} s", retry_after=wait)

    def forget(self, viewer_id: str) -> None:
        for key in [k for k in self._buckets if k[0] == viewer_id]:
            del self._buckets[key]
