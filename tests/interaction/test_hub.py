"""A hub reopened on the same file rebuilds every room exactly from the event log."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from arengine.interaction.errors import UnavailableError
from arengine.interaction.hub import RoomHub
from arengine.interaction.ratelimit import Rate, RateLimits
from arengine.interaction.room import Room

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf0000000401010018dd8db40000000049454e44ae426082")


async def busy_room(hub: RoomHub, clock) -> tuple[Room, str, dict[str, str]]:
    room, host = await hub.create_room("春季新品 Spring launch", room_id="spring")
    tokens = {}
    for name in ("小明", "Somchai สมชาย", "Nguyễn Thị Lan", "Putri", "Ann"):
        vid, tok = await room.join(name)
        tokens[vid] = tok
    vids = list(tokens)
    await room.set_avatar(vids[0], PNG_1PX)
    await room.comment(vids[1], "สวยมาก 💄")
    await room.like(vids[2], 7)
    await room.share(vids[3], "line")
    await room.follow(vids[4])
    await room.sticker_click(vids[0], "vote-ruby")
    await room.set_like_goal(20, "Goal! 🎉")
    await room.like(vids[0], 20)
    await room.set_product("Velvet Ruby", "¥129", "https://shop.example/p/1", "ruby-01")
    await room.set_effects({"lipstick": {"enabled": True, "settings": {"intensity": 0.8}}})
    poll = await room.open_poll("Which shade?", [("Ruby", "velvet-ruby"),
                                                 ("Nude", "velvet-nude")], 60,
                                apply_shade=True)
    await room.vote(vids[0], poll.id, 0)
    await room.vote(vids[1], poll.id, 1)
    await room.vote(vids[0], poll.id, 1)
    clock.advance(61)
    await hub.tick()
    p2 = await room.open_poll("Tie?", [("A", None), ("B", None)], 15)
    await room.vote(vids[3], p2.id, 1)
    await room.vote(vids[2], p2.id, 0)
    await room.leave(vids[4])
    return room, host, tokens


def test_reopened_hub_rebuilds_identical_state(make_hub: Callable[..., RoomHub],
                                               clock) -> None:
    async def first() -> tuple[object, str, dict[str, str], dict[str, int]]:
        hub = make_hub(effect_names=lambda: ["lipstick"])
        room, host, tokens = await busy_room(hub, clock)
        snap = room.snapshot()
        ballots = dict(room.polls["p2"].ballots)
        await hub.close()
        return snap, host, tokens, ballots

    snap, host, tokens, ballots = asyncio.run(first())

    async def second() -> None:
        hub = make_hub(effect_names=lambda: ["lipstick"])
        room = hub.get("spring")
        again = room.snapshot()
        assert again == snap  # every field, including polls, goal, product, avatars
        assert again.shade_id == "velvet-nude" and again.like_goal is not None
        assert again.like_goal.reached and room.polls["p1"].winner == 1
        assert room.polls["p2"].ballots == ballots and room.polls["p2"].leader() == 1
        assert hub.verify_host("spring", host)
        vid = next(iter(tokens))
        assert room.viewer_for_token(tokens[vid]) == vid
        assert room.viewers[vid].avatar == PNG_1PX
        # The rebuilt room goes on numbering where it stopped and accepts new actions.
        seq = room.seq
        await room.comment(vid, "after restart")
        assert room.seq == seq + 1
        clock.advance(15)
        assert await hub.tick() == 1
        await hub.close()

    asyncio.run(second())


def test_secrets_are_stored_as_hashes_only(make_hub: Callable[..., RoomHub], clock,
                                           db_path: Path) -> None:
    async def main() -> tuple[str, dict[str, str]]:
        hub = make_hub(effect_names=lambda: ["lipstick"])
        _, host, tokens = await busy_room(hub, clock)
        await hub.close()
        return host, tokens

    host, tokens = asyncio.run(main())
    db = sqlite3.connect(db_path)
    dump = "\n".join(str(r) for r in db.execute("SELECT * FROM events"))
    db.close()
    for secret in (host, *tokens.values()):
        assert secret not in dump


def test_store_failure_makes_the_hub_refuse_writes(make_hub: Callable[..., RoomHub]) -> None:
    async def main() -> None:
        hub = make_hub(limits=RateLimits(like=Rate(100, 100)))
        room, _ = await hub.create_room()
        vid, _ = await room.join("A")
        hub.store.close()  # the next commit fails
        with pytest.raises(UnavailableError, match="could not store"):
            await room.like(vid)
        with pytest.raises(UnavailableError, match="restart the server"):
            await room.like(vid)
        hub.committer.stop()

    asyncio.run(main())


def test_actions_from_another_thread_run_on_the_hub_loop(
        make_hub: Callable[..., RoomHub], tmp_path: Path) -> None:
    import threading

    async def main() -> None:
        hub = make_hub()
        room, _ = await hub.create_room()
        idle = RoomHub.open(tmp_path / "idle.db")  # never started: no loop to run on
        with pytest.raises(UnavailableError, match="not running"):
            idle.run_threadsafe(room.like_burst(1))
        idle.store.close()
        results: list[object] = []

        def pipeline_thread() -> None:  # e.g. a heart gesture recognised on a frame
            results.append(hub.run_threadsafe(room.like_burst(20)).result(timeout=10))

        t = threading.Thread(target=pipeline_thread)
        t.start()
        while t.is_alive():
            await asyncio.sleep(0.01)
        assert room.likes == 20 and len(results) == 1
        await hub.close()

    asyncio.run(main())


def test_a_deadline_close_found_late_ends_at_the_deadline(
        make_hub: Callable[..., RoomHub], clock) -> None:
    async def main() -> None:
        hub = make_hub()
        room, _ = await hub.create_room(room_id="late")
        poll = await room.open_poll("Q", [("A", None), ("B", None)], 30)
        await hub.close()
        clock.advance(3600)  # the server was down through the deadline
        hub = make_hub()
        assert await hub.tick() == 1
        poll = hub.get("late").polls[poll.id]
        assert poll.closed and poll.closed_at == poll.closes_at
        await hub.close()

    asyncio.run(main())


def test_rotated_host_token_replaces_the_old_one_and_survives_restart(
        make_hub: Callable[..., RoomHub]) -> None:
    async def first() -> tuple[str, str]:
        hub = make_hub()
        _, old = await hub.create_room("demo", room_id="demo")
        new = await hub.rotate_host_token("demo")
        assert new != old
        assert hub.verify_host("demo", new) and not hub.verify_host("demo", old)
        await hub.close()
        return old, new

    old, new = asyncio.run(first())

    async def second() -> None:
        hub = make_hub()
        assert hub.verify_host("demo", new) and not hub.verify_host("demo", old)
        await hub.close()

    asyncio.run(second())
