"""A small, clearly labelled crowd for the demo room.

``arengine serve`` must show every layer at once on a machine with no camera and no
viewers: the lipstick on the demo face, a running shade vote, avatars with comments in
several languages, likes toward a goal and a product card. This module stages that in the
demo room only, through the same room API real viewers use, so what it shows is exactly
what real interaction would draw. Its viewers carry a "(demo)" tag: the plan warns that
fake interaction erodes trust, so they must never pass for real people.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from arengine.interaction.room import Room

logger = logging.getLogger(__name__)

DEMO_TAG = " (demo)"
DEMO_VIEWERS = ("小红", "Emma", "Ploy", "Lan", "Putri", "王芳", "Budi", "Minh Anh")
DEMO_COMMENTS = (
    "这个颜色太好看了！", "Love this shade!", "สวยมากค่ะ", "Màu này đẹp quá!",
    "Cantik banget, kak!", "想要这个色号 💄", "Is it long-lasting?", "Harganya berapa kak?",
)
DEMO_POLL_SHADES = (("Ruby Velvet", "velvet-ruby"), ("Cherry Silk", "silk-cherry"),
                    ("Strawberry Dew", "dew-strawberry"), ("Champagne Star", "star-champagne"))


async def stage_demo_room(room: Room, shade_id: str | None) -> None:
    """Product card, like goal and lipstick for a demo room that has none yet."""
    state = room.snapshot()
    if shade_id and state.shade_id is None:
        await room.set_shade(shade_id)
    if state.product is None:
        await room.set_product("Velvet Ruby Lipstick", "¥129", None, "demo-lipstick")
    if state.like_goal is None or state.like_goal.reached:
        await room.set_like_goal(500, "500 likes unlock a coupon!")


class DemoCrowd:
    """Demo viewers who join, comment, like and vote at a gentle pace, and shade polls
    that open one after another (the winner is put on the host when each closes)."""

    def __init__(self, room: Room, period_s: float = 2.0, poll_s: float = 60.0,
                 seed: int = 7) -> None:
        self.room = room
        self.period_s = period_s
        self.poll_s = poll_s
        self._rng = random.Random(seed)
        self._viewers: list[str] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="demo-crowd")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a refused action (rate limit...) is no reason to stop
                logger.debug("demo crowd: %s", e)
            await asyncio.sleep(self.period_s)

    async def step(self) -> None:
        """One action: open a poll if none runs, else a join, a comment, likes or a vote."""
        room, rng = self.room, self._rng
        state = room.snapshot()
        if state.poll is None or state.poll.closed:
            options = rng.sample(DEMO_POLL_SHADES, 3)
            await room.open_poll("Which shade next? 下一个色号？", options, self.poll_s,
                                 apply_shade=True)
            return
        if len(self._viewers) < len(DEMO_VIEWERS):
            vid, _ = await room.join(DEMO_VIEWERS[len(self._viewers)] + DEMO_TAG,
                                     reserved_ok=True)  # the tag is reserved for us
            self._viewers.append(vid)
            return
        vid = rng.choice(self._viewers)
        roll = rng.random()
        if roll < 0.35:
            await room.comment(vid, rng.choice(DEMO_COMMENTS))
        elif roll < 0.7:
            await room.like(vid, rng.randint(1, 5))
        else:
            await room.vote(vid, state.poll.id, rng.randrange(len(state.poll.options)))
