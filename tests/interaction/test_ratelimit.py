"""Token buckets: bursts allowed, steady rate enforced, a clear wait time when empty."""

from __future__ import annotations

import pytest

from arengine.interaction.errors import RateLimitedError
from arengine.interaction.ratelimit import Rate, RateLimiter, RateLimits, TokenBucket


def test_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    b = TokenBucket(Rate(burst=3, per_second=2), now=0.0)
    assert [b.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take(0.0) == pytest.approx(0.5)
    assert b.take(0.5) == 0.0  # one token came back
    assert b.take(0.5) == pytest.approx(0.5)


def test_bucket_never_fills_past_its_burst() -> None:
    b = TokenBucket(Rate(burst=2, per_second=10), now=0.0)
    assert b.take(1000.0, cost=2) == 0.0
    assert b.take(1000.0) == pytest.approx(0.1)


def test_cost_above_the_burst_can_never_pass() -> None:
    b = TokenBucket(Rate(burst=5, per_second=1), now=0.0)
    assert b.take(0.0, cost=6) == float("inf")


def test_limiter_is_per_viewer_and_per_action(clock) -> None:
    lim = RateLimiter(RateLimits(comment=Rate(2, 1)), clock)
    lim.check("a", "comment")
    lim.check("a", "comment")
    with pytest.raises(RateLimitedError) as e:
        lim.check("a", "comment")
    assert e.value.retry_after == pytest.approx(1.0)
    assert e.value.status == 429
    assert "comment" in e.value.message
    lim.check("b", "comment")  # another viewer has their own bucket
    lim.check("a", "like")  # another action too
    clock.advance(1.0)
    lim.check("a", "comment")
