"""Metrics maths: interaction rate, per-minute rates, votes over time, peak viewers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from arengine.interaction.errors import InvalidInputError
from arengine.interaction.hub import RoomHub
from arengine.interaction.metrics import room_metrics
from arengine.interaction.ratelimit import Rate, RateLimits


def test_interaction_rate_and_per_minute(make_hub: Callable[..., RoomHub], clock) -> None:
    async def main() -> None:
        hub = make_hub(limits=RateLimits(like=Rate(1000, 1000), comment=Rate(100, 100)))
        room, _ = await hub.create_room()
        a, _ = await room.join("A")
        b, _ = await room.join("B")
        await room.comment(a, "hi")
        await room.like(b, 5)  # five likes in one request
        await room.like_burst(100)  # host: not an interaction
        clock.advance(60)  # minute 1
        c, c_token = await room.join("C")
        await room.share(c)
        await room.follow(a)
        await room.leave(c)
        await room.join("C", c_token)  # rejoin: still one unique viewer
        await room.leave(a)
        clock.advance(125)  # minute 3 (minute 2 is empty)
        await room.comment(b, "still here")
        m = room_metrics(room)
        assert m["viewers"] == 3
        assert m["interactions"] == 1 + 5 + 1 + 1 + 1
        assert m["interaction_rate"] == pytest.approx(9 / 3)
        assert m["likes"] == 5 and m["host_likes"] == 100
        assert m["peak_concurrent_viewers"] == 3 and m["present_viewers"] == 2
        per = m["per_minute"]
        assert [p["minute"] for p in per] == [0, 1, 2, 3]
        assert [p["interactions"] for p in per] == [6, 2, 0, 1]
        assert [p["viewers"] for p in per] == [2, 3, 3, 3]
        assert per[0]["interaction_rate"] == pytest.approx(3.0)
        assert per[1]["interaction_rate"] == pytest.approx(2 / 3)
        assert per[2]["interaction_rate"] == 0.0
        assert [p["peak_concurrent_viewers"] for p in per] == [2, 3, 2, 2]
        assert room.snapshot().interaction_rate == pytest.approx(3.0)
        await hub.close()

    asyncio.run(main())


def test_empty_room_rate_is_zero(make_hub: Callable[..., RoomHub]) -> None:
    async def main() -> None:
        hub = make_hub()
        room, _ = await hub.create_room()
        m = room_metrics(room)
        assert m["interaction_rate"] == 0.0 and m["viewers"] == 0
        await hub.close()

    asyncio.run(main())


def test_votes_over_time_follow_moved_ballots(make_hub: Callable[..., RoomHub],
                                              clock) -> None:
    async def main() -> None:
        hub = make_hub()
        room, _ = await hub.create_room()
        vids = [(await room.join(f"v{i}"))[0] for i in range(3)]
        poll = await room.open_poll("Q", [("A", None), ("B", None)], 60)
        clock.advance(5)
        await room.vote(vids[0], poll.id, 0)
        await room.vote(vids[1], poll.id, 0)
        clock.advance(10)  # t = 15
        await room.vote(vids[1], poll.id, 1)  # moves
        await room.vote(vids[2], poll.id, 1)
        clock.advance(20)  # t = 35
        await room.close_poll()
        series = room_metrics(room, bucket_s=10)["polls"][0]["votes_over_time"]
        assert [s["t"] for s in series] == [10, 20, 30, 35]
        assert [s["votes"] for s in series] == [[2, 0], [1, 2], [1, 2], [1, 2]]
        assert [s["ballots_cast"] for s in series] == [2, 2, 0, 0]
        assert all(sum(s["votes"]) <= 3 for s in series)
        with pytest.raises(InvalidInputError, match="at least 1"):
            room_metrics(room, bucket_s=0.5)
        await hub.close()

    asyncio.run(main())
