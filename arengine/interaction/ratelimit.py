"""Token buckets that keep one viewer, or one client address, from flooding the server."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
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


# Distinct client addresses tracked at once. Beyond it the least recently seen address
# starts afresh: 100k buckets are ~20 MB, and only an attack from over 100k addresses
# at once (which per-address limits cannot stop anyway) ever evicts a live one.
MAX_CLIENTS = 100_000


class ClientLimiter:
    """One bucket per (client address, action), across every token that client holds.

    Per-viewer limits alone let one script mint 2,000 viewer tokens in 5 s and post 500
    comments in 1 s through 500 of them; these limits follow the network address instead.
    ``rates`` maps an action ("join", "room", "comment") to its :class:`Rate`; an action
    with no rate (None or absent) is not limited.
    """

    def __init__(self, rates: Mapping[str, Rate | None], clock: Callable[[], float],
                 max_clients: int = MAX_CLIENTS) -> None:
        self.rates = dict(rates)
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()

    def check(self, client: str | None, action: str, what: str, cost: float = 1.0) -> None:
        """Take ``cost`` from the client's bucket or raise :class:`RateLimitedError`;
        ``what`` names the action in the message ("new viewers", "rooms")."""
        rate = self.rates.get(action)
        if rate is None or not client:
            return
        now = self.clock()
        key = (client, action)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate, now)
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        wait = bucket.take(now, cost)
        if wait > 0:
            period = rate.burst / rate.per_second
            raise RateLimitedError(
                f"too many {what} from your address: at most {rate.burst:g} per "
                f"{_period(period)}; retry in {max(1, math.ceil(wait))} s",
                retry_after=wait if wait != float("inf") else period)


def _period(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        n = int(seconds // 3600)
        return "hour" if n == 1 else f"{n} hours"
    if seconds >= 60 and seconds % 60 == 0:
        n = int(seconds // 60)
        return "minute" if n == 1 else f"{n} minutes"
    return "second" if seconds == 1 else f"{seconds:g} seconds"
