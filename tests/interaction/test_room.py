"""Room rules through the in-process API: polls, deadlines, like goals, auth, rate limits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from arengine.catalog import default_catalog
from arengine.interaction.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
)
from arengine.interaction.hub import RoomHub
from arengine.interaction.ratelimit import Rate, RateLimits
from arengine.interaction.room import Room

SHADES = [("Ruby", "velvet-ruby"), ("Nude", "velvet-nude"), ("Coral", "velvet-coral")]


async def room_with_viewers(hub: RoomHub, n: int) -> tuple[Room, str, list[str]]:
    room, host = await hub.create_room("Launch")
    viewers = [(await room.join(f"viewer {i}"))[0] for i in range(n)]
    return room, host, viewers


def test_poll_validation(make_hub: Callable[..., RoomHub]) -> None:
    async def main() -> None:
        hub = make_hub()
        room, _, _ = await room_with_viewers(hub, 1)
        two = [("A", None), ("B", None)]
        with pytest.raises(InvalidInputError, match="2 to 5 options; got 1"):
            await room.open_poll("Q?", [("A", None)], 60)
        with pytest.raises(InvalidInputError, match="2 to 5 options; got 6"):
            await room.open_poll("Q?", [(str(i), None) for i in range(6)], 60)
        for bad in (14.9, 1800.5, float("nan"), True):
            with pytest.raises(InvalidInputError, match="duration_s must be 15 to 1800"):
                await room.open_poll("Q?", two, bad)
        with pytest.raises(InvalidInputError, match="unknown shade 'no-such'; valid ids: "):
            await room.open_poll("Q?", [("A", "no-such"), ("B", None)], 60)
        with pytest.raises(InvalidInputError, match="repeats the label"):
            await room.open_poll("Q?", [("A", None), ("A", None)], 60)
        with pytest.raises(InvalidInputError, match="apply_shade needs every option"):
            await room.open_poll("Q?", [("A", "velvet-ruby"), ("B", None)], 60,
                                 apply_shade=True)
        poll = await room.open_poll("Q?", SHADES, 15)
        catalog = default_catalog()
        assert [o.swatch_hex for o in poll.options] == [catalog.get(s).hex for _, s in SHADES]
        with pytest.raises(ConflictError, match="still open; close it first"):
            await room.open_poll("Another?", two, 60)
        await hub.close()

    asyncio.run(main())


def test_one_ballot_per_viewer_and_vote_errors(make_hub: Callable[..., RoomHub]) -> None:
    async def main() -> None:
        hub = make_hub()
        room, _, (a, b) = await room_with_viewers(hub, 2)
        poll = await room.open_poll("Which?", SHADES, 60)
        await room.vote(a, poll.id, 0)
        await room.vote(a, poll.id, 1)
        await room.vote(b, poll.id, 1)
        assert [o.votes for o in poll.options] == [0, 2, 0]
        with pytest.raises(InvalidInputError, match=r"options 0\.\.2; got 3"):
            await room.vote(a, poll.id, 3)
        with pytest.raises(InvalidInputError, match="got -1"):
            await room.vote(a, poll.id, -1)
        with pytest.raises(NotFoundError, match="no poll 'p9'"):
            await room.vote(a, "p9", 0)
        with pytest.raises(NotFoundError, match="no viewer"):
            await room.vote("v_nobody", poll.id, 0)
        await room.close_poll(poll.id)
        with pytest.raises(ConflictError, match="is closed"):
            await room.vote(b, poll.id, 0)
        with pytest.raises(ConflictError, match="already closed"):
            await room.close_poll(poll.id)
        assert poll.winner == 1
        await hub.close()

    asyncio.run(main())


def test_concurrent_votes_from_one_viewer_count_once(make_hub: Callable[..., RoomHub]) -> None:
    async def main() -> None:
        hub = make_hub(limits=RateLimits(vote=Rate(1000, 1000)))
        room, _, (a,) = await room_with_viewers(hub, 1)
        poll = await room.open_poll("Which?", SHADES, 60)
        await asyncio.gather(*(room.vote(a, poll.id, i % 3) for i in range(50)))
        assert poll.view().total_votes == 1
        assert poll.ballots[a] == 49 % 3
        await hub.close()

    asyncio.run(main())


def test_auto_close_at_deadline_applies_the_winning_shade(
        make_hub: Callable[..., RoomHub], clock) -> None:
    async def main() -> None:
        hub = make_hub()
        room, _, (a, b, c) = await room_with_viewers(hub, 3)
        poll = await room.open_poll("Which shade?", SHADES, 30, apply_shade=True)
        feed = room.subscribe()
        await room.vote(a, poll.id, 2)
        await room.vote(b, poll.id, 1)
        await room.vote(c, poll.id, 1)
        clock.advance(29.9)
        assert await hub.tick() == 0
        assert not poll.closed
        clock.advance(0.1)
        assert await hub.tick() == 1
        assert poll.closed and poll.close_reason == "deadline" and poll.winner == 1
        assert room.shade_id == "velvet-nude"
        snap = room.snapshot()
        assert snap.shade_id == "velvet-nude" and snap.poll is not None and snap.poll.closed
        kinds = []
        while (e := feed.get_nowait()) is not None:
            kinds.append((e.kind, e.data.get("shade_id"), e.data.get("winner")))
        assert kinds[-2:] == [("poll_closed", None, 1), ("shade_set", "velvet-nude", None)]
        await hub.close()

    asyncio.run(main())


def test_vote_after_deadline_closes_the_poll_and_is_refused(
        make_hub: Callable[..., RoomHub], clock) -> None:
    async def main() -> None:
        hub = make_hub()
        room, _, (a,) = await room_with_viewers(hub, 1)
        poll = await room.open_poll("Which?", SHADES, 15)
        clock.advance(15)
        with pytest.raises(ConflictError, match="is closed"):
            await room.vote(a, poll.id, 0)
        assert poll.closed and poll.winner is None
        # A closed poll without votes changes no shade and a new poll may open.
        assert room.shade_id is None
        await room.open_poll("Next?", SHADES, 15)
        await hub.close()

    asyncio.run(main())


def test_shade_poll_with_no_votes_leaves_the_shade(make_hub: Callable[..., RoomHub]) -> None:
    async def main() -> None:
        hub = make_hub()
        room, _, _ = await room_with_viewers(hub, 1)
        await room.set_shade("velvet-ruby")
        await room.open_poll("Which?", SHADES, 15, apply_shade=True)
        await room.close_poll()
        assert room.shade_id == "velvet-ruby"
        await hub.close()

    asyncio.run(main())


def test_host_gestures(make_hub: Callable[..., RoomHub]) -> None:
    async def main() -> None:
        hub = make_hub()
        room, _, (a,) = await room_with_viewers(hub, 1)
        with pytest.raises(ConflictError, match="no poll is open"):
            await room.host_vote(0)
        poll = await room.open_poll("Which?", SHADES, 60)
        await room.vote(a, poll.id, 0)
        await room.host_vote(2)
        await room.host_vote(2)  # the host has one ballot too
        assert [o.votes for o in poll.options] == [1, 0, 1]
        await room.like_burst(25)
        assert room.likes == 25 and room.host_likes == 25
        assert room.interactions == 0  # host likes are not viewer interactions
        closed = await room.close_poll()
        assert closed.winner == 0  # option 0 reached one vote first
        await hub.close()

    asyncio.run(main())


def test_like_goal_is_reached_once(make_hub: Callable[..., RoomHub]) -> None:
    async def main() -> None:
        hub = make_hub()
        room, _, (a,) = await room_with_viewers(hub, 1)
        await room.like(a, 5)
        await room.set_like_goal(10, "10 likes: 10% off!")
        feed = room.subscribe()
        await room.like(a, 4)
        assert room.snapshot().like_goal is not None
        assert room.snapshot().like_goal.count == 4  # likes before the goal do not count
        await room.like(a, 7)
        await room.like_burst(30)
        goal = room.snapshot().like_goal
        assert goal is not None and goal.reached and goal.count == 11
        reached = []
        while (e := feed.get_nowait()) is not None:
            if e.kind == "like_goal_reached":
                reached.append(e.data["message"])
        assert reached == ["10 likes: 10% off!"]
        with pytest.raises(InvalidInputError, match="target must be an integer from 1"):
            await room.set_like_goal(0, "x")
        await hub.close()

    asyncio.run(main())


def test_host_and_viewer_tokens(make_hub: Callable[..., RoomHub]) -> None:
    async def main() -> None:
        hub = make_hub()
        room, host = await hub.create_room()
        vid, token = await room.join("Ana")
        assert hub.verify_host(room.id, host)
        assert not hub.verify_host(room.id, token)
        assert not hub.verify_host("r-missing", host)
        with pytest.raises(UnauthorizedError):
            room.require_host(None)
        with pytest.raises(ForbiddenError):
            room.require_host(token)
        assert room.viewer_for_token(token) == vid
        with pytest.raises(UnauthorizedError, match="join first"):
            room.viewer_for_token(host)
        other, _ = await hub.create_room()
        with pytest.raises(UnauthorizedError):
            other.viewer_for_token(token)  # tokens are per room
        await hub.close()

    asyncio.run(main())


def test_a_viewer_who_left_is_back_on_their_next_action(
        make_hub: Callable[..., RoomHub], clock) -> None:
    """Watching silently is normal: a viewer timed out while away (or whose tab said
    goodbye) who acts later is the same viewer coming back, not an error."""
    async def main() -> None:
        hub = make_hub(idle_s=300.0)
        room, _ = await hub.create_room()
        vid, token = await room.join("Ana")
        await room.leave(vid)
        assert room.present == 0
        await room.leave(vid)  # leaving twice changes nothing
        assert room.present == 0
        event = await room.comment(vid, "hello")  # back, under the same name
        assert room.present == 1 and room.viewers[vid].present and event.kind == "comment"
        assert [e.kind for e in hub.store.events(room.id)][-2:] == ["join", "comment"]
        clock.advance(301)
        assert await room.leave_idle(300.0) == 1 and room.present == 0
        await asyncio.gather(room.like(vid, 1), room.like(vid, 2))  # both re-join: counted once
        assert room.present == 1 and room.peak_viewers == 1
        again, same = await room.join("Ana B", token)
        assert (again, same) == (vid, token)
        seq = room.seq
        assert await room.join("Ana", token) == (vid, token)  # already in: nothing changes
        assert room.seq == seq
        assert room.unique_viewers == 1 and room.present == 1
        await room.follow(vid)
        with pytest.raises(ConflictError, match="already follows"):
            await room.follow(vid)
        await hub.close()
        replayed = make_hub()
        assert replayed.get(room.id).present == 1
        await replayed.close()

    asyncio.run(main())


def test_rate_limits_use_the_injected_clock(make_hub: Callable[..., RoomHub], clock) -> None:
    async def main() -> None:
        hub = make_hub(limits=RateLimits(comment=Rate(2, 0.5), like=Rate(10, 5)))
        room, _, (a,) = await room_with_viewers(hub, 1)
        await room.comment(a, "one")
        await room.comment(a, "two")
        with pytest.raises(RateLimitedError) as e:
            await room.comment(a, "three")
        assert e.value.retry_after == pytest.approx(2.0)
        await room.like(a, 10)
        with pytest.raises(RateLimitedError):
            await room.like(a, 1)
        clock.advance(2.0)
        await room.comment(a, "three")
        await room.like(a, 10)
        assert room.counts["comment"] == 3 and room.likes == 20
        await hub.close()

    asyncio.run(main())


def test_settings_validation(make_hub: Callable[..., RoomHub]) -> None:
    async def main() -> None:
        hub = make_hub(effect_names=lambda: ["lipstick", "stickers"],
                       check_effect_settings=lambda name, settings: None)
        room, _ = await hub.create_room()
        with pytest.raises(InvalidInputError, match="unknown effect 'glitter'; known: lipstick"):
            await room.set_effects({"glitter": {"enabled": True}})
        with pytest.raises(InvalidInputError, match="setting 'x'"):
            await room.set_effects({"lipstick": {"settings": {"x": {"nested": 1}}}})
        with pytest.raises(InvalidInputError, match="enabled must be true or false"):
            await room.set_effects({"lipstick": {"enabled": "yes"}})
        await room.set_effects({"lipstick": {"enabled": True, "settings": {"opacity": 0.7}}})
        await room.set_effects({"stickers": {"enabled": False}})
        await room.set_effects({"lipstick": {"enabled": False}})  # keeps its settings
        snap = room.snapshot()
        assert snap.effects == {"lipstick": False, "stickers": False}
        assert snap.effect_settings["lipstick"] == {"opacity": 0.7}
        with pytest.raises(InvalidInputError, match="url must be an http"):
            await room.set_product("Velvet Ruby", "¥129", "javascript:alert(1)")
        with pytest.raises(InvalidInputError, match="unknown shade"):
            await room.set_shade("nope")
        await room.set_product("Velvet Ruby 丝绒", "¥129", "https://shop.example/ruby")
        assert room.snapshot().product is not None
        assert room.snapshot().product.name == "Velvet Ruby 丝绒"
        await hub.close()

    asyncio.run(main())


def test_slow_subscribers_lose_the_oldest_events_only(make_hub: Callable[..., RoomHub]) -> None:
    async def main() -> None:
        hub = make_hub(limits=RateLimits(like=Rate(1000, 1000)))
        room, _, (a,) = await room_with_viewers(hub, 1)
        with room.subscribe(maxsize=4) as slow:
            for _ in range(10):
                await room.like(a)
            assert slow.dropped == 6
            seqs = [(await slow.get()).seq for _ in range(4)]
            assert seqs == list(range(room.seq - 3, room.seq + 1))
        assert room.subscriber_count == 0
        await hub.close()

    asyncio.run(main())


def test_snapshot_is_cached_until_a_change(make_hub: Callable[..., RoomHub]) -> None:
    async def main() -> None:
        hub = make_hub()
        room, _, (a,) = await room_with_viewers(hub, 1)
        s1 = room.snapshot()
        assert room.snapshot() is s1
        await room.comment(a, "hi")
        s2 = room.snapshot()
        assert s2 is not s1 and s2.recent_comments[-1].text == "hi"
        assert s2.viewers[0].last_comment == "hi"
        await hub.close()

    asyncio.run(main())


def test_room_ids_and_titles_are_checked(make_hub: Callable[..., RoomHub]) -> None:
    async def main() -> None:
        hub = make_hub()
        await hub.create_room("A", room_id="spring-launch")
        with pytest.raises(ConflictError, match="already exists"):
            await hub.create_room("B", room_id="spring-launch")
        with pytest.raises(InvalidInputError, match="room id must be"):
            await hub.create_room("B", room_id="Bad Id!")
        with pytest.raises(NotFoundError, match="no room 'nope'"):
            hub.get("nope")
        await hub.close()

    asyncio.run(main())


def test_snapshot_from_another_thread_never_blocks_and_catches_up(
        make_hub: Callable[..., RoomHub]) -> None:
    import threading

    async def main() -> None:
        hub = make_hub()
        room, _, (a,) = await room_with_viewers(hub, 1)
        before = room.snapshot()
        await room.comment(a, "new")
        seen: list[object] = []
        t = threading.Thread(target=lambda: seen.append(room.snapshot()))
        t.start()
        t.join()
        assert seen == [before]  # the video thread gets the last built state at once
        await asyncio.sleep(0)  # the queued rebuild runs on the loop
        await asyncio.sleep(0)
        t = threading.Thread(target=lambda: seen.append(room.snapshot()))
        t.start()
        t.join()
        latest = seen[-1]
        assert isinstance(latest, type(before)) and latest.recent_comments[-1].text == "new"
        await hub.close()

    asyncio.run(main())


def test_idle_viewers_are_marked_as_left(make_hub: Callable[..., RoomHub], clock) -> None:
    async def main() -> None:
        hub = make_hub(idle_s=60)
        room, _, (quiet, chatty, streaming) = await room_with_viewers(hub, 3)
        room.connect(streaming)  # an open event stream counts as presence
        clock.advance(50)
        await room.comment(chatty, "still here")
        clock.advance(15)  # quiet: 65 s unseen; chatty: 15 s
        await hub.tick()
        assert not room.viewers[quiet].present and room.viewers[chatty].present
        assert room.viewers[streaming].present
        assert room.snapshot().viewer_count == 2 and room.peak_viewers == 3
        room.disconnect(streaming)
        clock.advance(30)
        await room.heartbeat(chatty)
        clock.advance(35)
        await hub.tick()
        assert room.viewers[chatty].present and not room.viewers[streaming].present
        assert [e.data for e in hub.store.events(room.id) if e.kind == "leave"] \
            == [{"reason": "idle"}, {"reason": "idle"}]
        await room.comment(quiet, "back?")  # timed out while away: back transparently
        assert room.viewers[quiet].present and room.snapshot().viewer_count == 2
        await hub.close()

    asyncio.run(main())
