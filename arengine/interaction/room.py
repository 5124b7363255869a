"""A live room: validates actions, turns them into events, applies and publishes them.

Every action follows the same path: check it against the current state (raising an
:class:`~arengine.interaction.errors.InteractionError` that says what is wrong), build the
event(s), apply them to memory, wait until the store has committed them, then publish
them to subscribers and return. Validation and apply run without an ``await`` in between,
so two concurrent actions on one event loop can never both pass a check that only one
of them should (two votes from one viewer, two polls opened at once).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
import re
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from arengine.interaction.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    UnauthorizedError,
    shown,
)
from arengine.interaction.events import INTERACTION_KINDS, Event
from arengine.interaction.polls import (
    MAX_DURATION_S,
    MAX_OPTIONS,
    MIN_DURATION_S,
    MIN_OPTIONS,
    OPTION_MAX_CHARS,
    QUESTION_MAX_CHARS,
    Poll,
    PollOption,
)
from arengine.interaction.ratelimit import RateLimiter
from arengine.interaction.text import check_comment, check_name, check_text
from arengine.keys import new_token
from arengine.state import (
    CommentView,
    LikeGoalView,
    ProductView,
    RoomState,
    ViewerView,
)

HOST = "host"  # viewer id used for the host's own votes and likes
RECENT_LIKES = 64
RECENT_COMMENTS = 20
SNAPSHOT_VIEWERS = 500  # most recently active viewers in a snapshot; viewer_count has all
MAX_LIKES_PER_REQUEST = 50
MAX_LIKE_BURST = 500
LIKE_GOAL_MAX = 100_000_000
GOAL_MESSAGE_MAX_CHARS = 120
ROOM_TITLE_MAX_CHARS = 120
PRODUCT_NAME_MAX_CHARS = 120
PRODUCT_PRICE_MAX_CHARS = 24
URL_MAX_CHARS = 2048
MAX_EFFECT_SETTINGS = 32

ROOM_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,39}$")
STICKER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
SETTING_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
CHANNEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,23}$")
URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


def token_hash(token: str) -> str:
    """Only hashes of tokens are stored, so a copy of the database grants no access."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Viewer:
    id: str
    name: str
    token_hash: str
    joined_at: float
    last_active: float
    present: bool = True
    avatar: bytes | None = None
    last_comment: str | None = None
    following: bool = False
    last_seen: float = 0.0  # any request or live connection; in memory only
    connections: int = 0  # open event streams that identified as this viewer

    def view(self) -> ViewerView:
        return ViewerView(self.id, self.name, self.avatar, self.last_comment,
                          self.last_active, self.joined_at)


@dataclass
class LikeGoal:
    target: int
    message: str
    count: int = 0
    reached: bool = False


@dataclass
class MinuteStats:
    """Counts for one minute of the room's life (minute 0 starts at room creation)."""

    counts: dict[str, int] = field(default_factory=dict)
    interactions: int = 0
    unique_viewers: int = 0  # viewers who had joined by the end of the minute
    peak_viewers: int = 0  # most viewers present at once during the minute
    present: int = 0  # viewers present at the minute's last event


class Subscription:
    """A bounded feed of a room's events for one consumer.

    When the consumer falls more than ``maxsize`` events behind, the oldest are dropped
    (``dropped`` counts them): a slow viewer must never make the server buffer without
    bound or slow the room down for everyone else.
    """

    def __init__(self, room: Room, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.room = room
        self._items: deque[Event] = deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def push(self, event: Event) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(event)
        self._ready.set()

    async def get(self) -> Event:
        """The next event; raises :class:`StopAsyncIteration` once closed."""
        while not self._items:
            if self.closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def get_nowait(self) -> Event | None:
        return self._items.popleft() if self._items else None

    def close(self) -> None:
        self.closed = True
        self._ready.set()
        self.room._subscribers.discard(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RoomServices(Protocol):
    """What a room asks of the hub that holds it (:class:`~arengine.interaction.hub.RoomHub`
    provides it): a protocol here so the room never imports its hub."""

    limiter: RateLimiter

    def clock(self) -> float: ...
    def shade_hex(self, shade_id: str) -> str: ...
    def effect_names(self) -> list[str]: ...
    def check_effect_settings(self, name: str, settings: Mapping[str, Any]) -> None: ...
    def check_writable(self) -> None: ...
    async def persist(self, events: list[Event]) -> None: ...
    def observe(self, event: Event) -> None: ...
    def on_loop_thread(self) -> bool: ...
    def call_on_loop(self, fn: Callable[[], object]) -> bool: ...


class Room:
    """One live-commerce room. Create rooms through the hub, not directly."""

    def __init__(self, room_id: str, hub: RoomServices) -> None:
        self.id = room_id
        self.hub = hub
        self.title = ""
        self.created_at = 0.0
        self.seq = 0
        self._host_token_hash = ""
        self.viewers: dict[str, Viewer] = {}
        self._by_token: dict[str, str] = {}
        self.present = 0
        self.peak_viewers = 0
        self.polls: dict[str, Poll] = {}
        self.poll_order: list[str] = []
        self.likes = 0
        self.host_likes = 0
        self.recent_likes: deque[float] = deque(maxlen=RECENT_LIKES)
        self.recent_comments: deque[CommentView] = deque(maxlen=RECENT_COMMENTS)
        self.like_goal: LikeGoal | None = None
        self.product: ProductView | None = None
        self.shade_id: str | None = None
        self.shade_hex: str | None = None
        self.effects: dict[str, dict[str, Any]] = {}
        self.counts: dict[str, int] = {}
        self.interactions = 0
        self.sticker_clicks: dict[str, int] = {}
        self.minutes: dict[int, MinuteStats] = {}
        self._snapshot: RoomState | None = None
        self._last_snapshot: RoomState | None = None
        self._refresh_queued = False
        self._subscribers: set[Subscription] = set()

    # ----------------------------------------------------------------- reading

    def snapshot(self) -> RoomState:
        """The room now, as an immutable :class:`RoomState`; cached until the next change.

        Safe from any thread. On the hub's event-loop thread a stale cache is rebuilt at
        once; other threads (the video pipeline drawing a frame) get the latest built
        snapshot without waiting, and a rebuild is queued on the loop for the next frame.
        """
        snap = self._snapshot
        if snap is not None:
            return snap
        if self.hub.on_loop_thread():
            snap = self._snapshot = self._last_snapshot = self._build_snapshot()
            return snap
        if not self._refresh_queued:
            self._refresh_queued = self.hub.call_on_loop(self._refresh)
        return self._last_snapshot or RoomState(room_id=self.id)

    def _refresh(self) -> None:
        self._refresh_queued = False
        self.snapshot()

    @property
    def current_poll(self) -> Poll | None:
        """The open poll, else the latest closed one (so its result stays on screen)."""
        return self.polls[self.poll_order[-1]] if self.poll_order else None

    @property
    def active_poll(self) -> Poll | None:
        p = self.current_poll
        return p if p is not None and not p.closed else None

    @property
    def unique_viewers(self) -> int:
        return len(self.viewers)

    @property
    def interaction_rate(self) -> float:
        """(comments + likes + shares + follows) by viewers / unique viewers who joined."""
        return self.interactions / len(self.viewers) if self.viewers else 0.0

    def poll(self, poll_id: str) -> Poll:
        try:
            return self.polls[poll_id]
        except KeyError:
            raise NotFoundError(f"no poll {shown(poll_id)} in room {self.id!r}") from None

    def viewer(self, viewer_id: str) -> Viewer:
        try:
            return self.viewers[viewer_id]
        except KeyError:
            raise NotFoundError(f"no viewer {shown(viewer_id)} in room {self.id!r}") from None

    def verify_host(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(token_hash(token or ""),
                                                   self._host_token_hash)

    def require_host(self, token: str | None) -> None:
        if not token:
            raise UnauthorizedError("this action needs the host token (Authorization: Bearer)")
        if not self.verify_host(token):
            raise ForbiddenError("wrong host token for this room")

    def viewer_for_token(self, token: str | None) -> str:
        """The viewer id that ``token`` was issued to by :meth:`join`."""
        if not token:
            raise UnauthorizedError(
                "this action needs the viewer token from join (Authorization: Bearer)")
        vid = self._by_token.get(token_hash(token))
        if vid is None:
            raise UnauthorizedError("unknown viewer token for this room; join first")
        return vid

    def subscribe(self, maxsize: int = 256) -> Subscription:
        """A bounded feed of this room's events from now on (see :class:`Subscription`)."""
        sub = Subscription(self, maxsize)
        self._subscribers.add(sub)
        return sub

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    # ------------------------------------------------------------ viewer actions

    async def join(self, name: str, token: str | None = None, *,
                   reserved_ok: bool = False) -> tuple[str, str]:
        """Add a viewer (or bring back one who left, given their token): (viewer_id, token).

        Joining again with the token of a viewer who is still present changes nothing, so
        a client can always "join with my token" on (re)connect. ``reserved_ok`` lets the
        built-in demo crowd use its "(demo)" names (see :func:`check_name`).
        """
        check_name(name, reserved_ok=reserved_ok)
        if token:
            vid = self.viewer_for_token(token)
            if self.viewers[vid].present:
                self.viewers[vid].last_seen = self.hub.clock()
                return vid, token
            await self._commit([self._event("join", vid, {"name": name})])
            return vid, token
        vid = "v_" + secrets.token_urlsafe(9)
        token = new_token()
        await self._commit([self._event("join", vid, {"name": name,
                                                      "_token_sha256": token_hash(token)})])
        return vid, token

    async def leave(self, viewer_id: str) -> None:
        """The viewer goes (a closed tab says so); leaving twice changes nothing."""
        if self.viewer(viewer_id).present:
            await self._commit([self._event("leave", viewer_id)])

    async def heartbeat(self, viewer_id: str) -> None:
        """Note that a viewer is still watching; no event is stored unless the viewer had
        been timed out, who is then back (see :meth:`_back`)."""
        await self._back(viewer_id)

    def connect(self, viewer_id: str) -> None:
        """A live connection of this viewer opened: they count as present while it lasts."""
        v = self.viewer(viewer_id)
        v.connections += 1
        v.last_seen = self.hub.clock()

    def disconnect(self, viewer_id: str) -> None:
        v = self.viewer(viewer_id)
        v.connections = max(0, v.connections - 1)
        v.last_seen = self.hub.clock()

    async def leave_idle(self, idle_s: float) -> int:
        """Mark viewers unseen for ``idle_s`` seconds as gone; returns how many left.

        Viewers rarely say goodbye (a closed tab sends nothing), so without this the
        viewer count and peak would only ever grow.
        """
        cutoff = self.hub.clock() - idle_s
        idle = [v.id for v in self.viewers.values()
                if v.present and not v.connections and v.last_seen < cutoff]
        if idle:
            await self._commit([self._event("leave", vid, {"reason": "idle"}) for vid in idle])
        return len(idle)

    async def comment(self, viewer_id: str, text: str) -> Event:
        await self._back(viewer_id)
        check_comment(text)
        self.hub.limiter.check(viewer_id, "comment")
        return await self._commit_one(self._event("comment", viewer_id, {"text": text}))

    async def like(self, viewer_id: str, count: int = 1) -> Event:
        await self._back(viewer_id)
        _check_int(count, "count", 1, MAX_LIKES_PER_REQUEST)
        self.hub.limiter.check(viewer_id, "like", cost=count)
        return await self._commit_like(viewer_id, count)

    async def share(self, viewer_id: str, channel: str | None = None) -> Event:
        await self._back(viewer_id)
        if channel is not None and (not isinstance(channel, str) or not CHANNEL.match(channel)):
            raise InvalidInputError("channel must be 1-24 of a-z, 0-9, _ and -")
        self.hub.limiter.check(viewer_id, "other")
        return await self._commit_one(self._event("share", viewer_id, {"channel": channel}))

    async def follow(self, viewer_id: str) -> Event:
        if (await self._back(viewer_id)).following:
            raise ConflictError(f"viewer {shown(viewer_id)} already follows this host")
        return await self._commit_one(self._event("follow", viewer_id))

    async def sticker_click(self, viewer_id: str, sticker_id: str) -> Event:
        await self._back(viewer_id)
        if not isinstance(sticker_id, str) or not STICKER_ID.match(sticker_id):
            raise InvalidInputError("sticker id must be 1-40 of a-z, 0-9, _ and -")
        self.hub.limiter.check(viewer_id, "other")
        return await self._commit_one(
            self._event("sticker_click", viewer_id, {"sticker_id": sticker_id}))

    async def set_avatar(self, viewer_id: str, png: bytes) -> Event:
        """Store a viewer's avatar; ``png`` must already be re-encoded by avatar.py."""
        await self._back(viewer_id)
        if not png.startswith(b"\x89PNG\r\n\x1a\n"):
            raise InvalidInputError("avatar must be re-encoded to PNG before storing")
        data = {"_png": base64.b64encode(png).decode("ascii"), "bytes": len(png)}
        return await self._commit_one(self._event("avatar", viewer_id, data))

    async def vote(self, viewer_id: str, poll_id: str, option: int) -> Event:
        """Cast or move the viewer's ballot (one per viewer per poll)."""
        if viewer_id != HOST:
            await self._back(viewer_id)
        poll = self.poll(poll_id)
        if not poll.closed and self.hub.clock() >= poll.closes_at:
            await self._close(poll, "deadline")
        if poll.closed:
            raise ConflictError(f"poll {shown(poll_id)} is closed")
        if isinstance(option, bool) or not isinstance(option, int) \
                or not 0 <= option < len(poll.options):
            raise InvalidInputError(
                f"poll {shown(poll_id)} has options 0..{len(poll.options) - 1}; "
                f"got {shown(option)}")
        if viewer_id != HOST:
            self.hub.limiter.check(viewer_id, "vote")
        return await self._commit_one(
            self._event("vote", viewer_id, {"poll_id": poll_id, "option": option}))

    # -------------------------------------------------------------- host actions

    async def open_poll(self, question: str, options: Sequence[tuple[str, str | None]],
                        duration_s: float, apply_shade: bool = False) -> Poll:
        """Open a poll; an option may name a catalog shade (its swatch is filled in)."""
        check_text(question, "question", QUESTION_MAX_CHARS)
        if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
            raise InvalidInputError(
                f"a poll needs {MIN_OPTIONS} to {MAX_OPTIONS} options; got {len(options)}")
        if not isinstance(duration_s, int | float) or isinstance(duration_s, bool) \
                or not math.isfinite(duration_s) \
                or not MIN_DURATION_S <= duration_s <= MAX_DURATION_S:
            raise InvalidInputError(
                f"duration_s must be {MIN_DURATION_S:g} to {MAX_DURATION_S:g} seconds; "
                f"got {shown(duration_s)}")
        opts = []
        labels = set()
        for i, (label, shade_id) in enumerate(options):
            check_text(label, f"option {i} label", OPTION_MAX_CHARS)
            if label in labels:
                raise InvalidInputError(f"option {i} repeats the label {shown(label)}")
            labels.add(label)
            swatch = None
            if shade_id is not None:
                swatch = self.hub.shade_hex(shade_id)
            opts.append({"label": label, "shade_id": shade_id, "swatch_hex": swatch})
        if apply_shade and any(o["shade_id"] is None for o in opts):
            raise InvalidInputError("apply_shade needs every option to name a shade")
        if self.active_poll is not None:
            await self._close_if_due(self.active_poll)
            if self.active_poll is not None:
                raise ConflictError(
                    f"poll {self.active_poll.id!r} is still open; close it first")
        poll_id = f"p{len(self.polls) + 1}"
        now = self.hub.clock()
        await self._commit([self._event("poll_opened", None, {
            "poll_id": poll_id, "question": question, "options": opts,
            "duration_s": float(duration_s), "closes_at": now + float(duration_s),
            "apply_shade": bool(apply_shade)})])
        return self.polls[poll_id]

    async def close_poll(self, poll_id: str | None = None) -> Poll:
        """Close ``poll_id`` (default: the open poll) now, as the host."""
        if poll_id is None:
            poll = self.active_poll
            if poll is None:
                raise ConflictError("no poll is open")
        else:
            poll = self.poll(poll_id)
        if poll.closed:
            raise ConflictError(f"poll {poll.id!r} is already closed")
        await self._close(poll, "host")
        return poll

    async def set_shade(self, shade_id: str | None) -> Event:
        hex_ = None if shade_id is None else self.hub.shade_hex(shade_id)
        return await self._commit_one(
            self._event("shade_set", None, {"shade_id": shade_id, "hex": hex_}))

    async def set_effects(self, effects: dict[str, dict[str, Any]]) -> Event:
        """Merge ``{name: {"enabled": bool, "settings": {...}}}`` into the room's effects."""
        if not isinstance(effects, dict) or not effects:
            raise InvalidInputError("effects must be a non-empty object of effect name -> "
                                    "{enabled, settings}")
        known = self.hub.effect_names()
        clean: dict[str, dict[str, Any]] = {}
        for name, spec in effects.items():
            if name not in known:
                raise InvalidInputError(
                    f"unknown effect {shown(name)}; known: {', '.join(known) or '(none)'}")
            if not isinstance(spec, dict) or set(spec) - {"enabled", "settings"}:
                raise InvalidInputError(
                    f"effect {shown(name)}: expected "
                    '{"enabled": bool, "settings": {...}}')
            enabled = spec.get("enabled", self.effects.get(name, {}).get("enabled", True))
            if not isinstance(enabled, bool):
                raise InvalidInputError(f"effect {shown(name)}: enabled must be true or false")
            settings = spec.get("settings", self.effects.get(name, {}).get("settings", {}))
            checked = _check_settings(name, settings)
            self.hub.check_effect_settings(name, checked)
            clean[name] = {"enabled": enabled, "settings": checked}
        return await self._commit_one(self._event("effects_set", None, {"effects": clean}))

    async def set_product(self, name: str, price: str, url: str | None = None,
                          product_id: str | None = None) -> Event:
        check_text(name, "product name", PRODUCT_NAME_MAX_CHARS)
        check_text(price, "price", PRODUCT_PRICE_MAX_CHARS)
        if url is not None and (len(url) > URL_MAX_CHARS or not URL.match(url)):
            raise InvalidInputError(f"url must be an http(s) URL of at most {URL_MAX_CHARS} "
                                    "characters")
        if product_id is not None and not STICKER_ID.match(product_id):
            raise InvalidInputError("product id must be 1-40 of a-z, 0-9, _ and -")
        pid = product_id or "product"
        return await self._commit_one(self._event(
            "product_set", None, {"id": pid, "name": name, "price": price, "url": url}))

    async def clear_product(self) -> Event:
        return await self._commit_one(self._event("product_set", None, {"id": None}))

    async def set_like_goal(self, target: int, message: str) -> Event:
        """Start a like goal: likes from now on count towards ``target``."""
        _check_int(target, "target", 1, LIKE_GOAL_MAX)
        check_text(message, "message", GOAL_MESSAGE_MAX_CHARS)
        return await self._commit_one(
            self._event("like_goal_set", None, {"target": target, "message": message}))

    # Gestures recognised by the video pipeline on the host's side.

    async def like_burst(self, count: int = 10) -> Event:
        """The host's own likes (e.g. a heart gesture); they count towards the goal."""
        _check_int(count, "count", 1, MAX_LIKE_BURST)
        return await self._commit_like(HOST, count)

    async def host_vote(self, option: int) -> Event:
        """The host picks option ``option`` of the open poll; one ballot, like a viewer."""
        poll = self.active_poll
        if poll is None:
            raise ConflictError("no poll is open")
        return await self.vote(HOST, poll.id, option)

    # ------------------------------------------------------------------ internals

    async def _back(self, viewer_id: str) -> Viewer:
        """The acting viewer, present again first if they had left.

        Watching silently is the normal case: a viewer timed out while away (or whose tab
        said goodbye) who votes, likes or comments later is the same person coming back,
        so their token re-joins them under their name instead of failing with "has left".
        """
        v = self.viewer(viewer_id)
        if not v.present:
            await self._commit([self._event("join", viewer_id,
                                            {"name": v.name, "reason": "back"})])
        v.last_seen = self.hub.clock()
        return v

    def _event(self, kind: str, viewer_id: str | None,
               data: dict[str, Any] | None = None) -> Event:
        # seq is assigned in _commit, in the order events are applied.
        return Event(self.id, 0, self.hub.clock(), kind, viewer_id, data or {})

    async def _commit_like(self, viewer_id: str, count: int) -> Event:
        events = [self._event("like", viewer_id, {"count": count})]
        goal = self.like_goal
        if goal is not None and not goal.reached and goal.count + count >= goal.target:
            events.append(self._event("like_goal_reached", None,
                                      {"target": goal.target, "message": goal.message}))
        return (await self._commit(events))[0]  # numbered: the ack carries its real seq

    async def _close_if_due(self, poll: Poll) -> None:
        if not poll.closed and self.hub.clock() >= poll.closes_at:
            await self._close(poll, "deadline")

    async def _close(self, poll: Poll, reason: str) -> None:
        winner = poll.leader()
        events = [self._event("poll_closed", None,
                              {"poll_id": poll.id, "reason": reason, "winner": winner})]
        if poll.apply_shade and winner is not None:
            shade = poll.options[winner].shade_id
            events.append(self._event("shade_set", None, {
                "shade_id": shade, "hex": poll.options[winner].swatch_hex,
                "from_poll": poll.id}))
        await self._commit(events)

    async def _commit_one(self, event: Event) -> Event:
        return (await self._commit([event]))[0]

    async def _commit(self, events: list[Event]) -> list[Event]:
        """Number, apply, persist, then publish ``events``; returns them numbered."""
        self.hub.check_writable()
        numbered = []
        for e in events:
            self.seq += 1
            ev = Event(e.room_id, self.seq, e.ts, e.kind, e.viewer_id, e.data)
            self.apply(ev)
            numbered.append(ev)
        await self.hub.persist(numbered)
        for ev in numbered:
            self._publish(ev)
        return numbered

    def _publish(self, event: Event) -> None:
        self.hub.observe(event)
        for sub in self._subscribers:
            sub.push(event)

    # -------------------------------------------------------------------- apply

    def apply(self, e: Event) -> None:
        """Change memory by one event; the same code runs live and on replay."""
        self.seq = max(self.seq, e.seq)
        self._snapshot = None
        self.counts[e.kind] = self.counts.get(e.kind, 0) + 1
        minute = self._minute(e.ts)
        minute.counts[e.kind] = minute.counts.get(e.kind, 0) + 1
        d = e.data
        vid = e.viewer_id
        if vid is not None and vid in self.viewers:
            self.viewers[vid].last_seen = max(self.viewers[vid].last_seen, e.ts)
        if e.kind == "room_created":
            self.title = d.get("title", "")
            self.created_at = e.ts
            self._host_token_hash = d["_host_token_sha256"]
        elif e.kind == "host_token_rotated":
            self._host_token_hash = d["_host_token_sha256"]
        elif e.kind == "join":
            assert vid is not None
            v = self.viewers.get(vid)
            if v is None:
                v = self.viewers[vid] = Viewer(vid, d["name"], d["_token_sha256"], e.ts, e.ts,
                                               present=False, last_seen=e.ts)
                self._by_token[v.token_hash] = vid
            else:
                v.name = d["name"]
            if not v.present:  # two actions of a returning viewer may both re-join
                self.present += 1
            v.present = True
            v.last_active = v.last_seen = e.ts
            self.peak_viewers = max(self.peak_viewers, self.present)
        elif e.kind == "leave":
            v = self.viewers[vid or ""]
            if v.present:
                self.present -= 1
            v.present = False
        elif e.kind == "comment":
            v = self.viewers[vid or ""]
            v.last_comment = d["text"]
            v.last_active = e.ts
            self.recent_comments.append(CommentView(v.id, v.name, d["text"], e.ts))
        elif e.kind == "like":
            self.likes += d["count"]
            if vid == HOST:
                self.host_likes += d["count"]
            self.recent_likes.append(e.ts)
            if self.like_goal is not None and not self.like_goal.reached:
                self.like_goal.count += d["count"]
        elif e.kind == "like_goal_reached":
            if self.like_goal is not None:
                self.like_goal.reached = True
        elif e.kind == "follow":
            self.viewers[vid or ""].following = True
        elif e.kind == "sticker_click":
            sid = d["sticker_id"]
            self.sticker_clicks[sid] = self.sticker_clicks.get(sid, 0) + 1
            self.viewers[vid or ""].last_active = e.ts
        elif e.kind == "avatar":
            self.viewers[vid or ""].avatar = base64.b64decode(d["_png"])
        elif e.kind == "vote":
            self.polls[d["poll_id"]].vote(vid or HOST, d["option"], e.seq, e.ts)
            if vid in self.viewers:
                self.viewers[vid].last_active = e.ts
        elif e.kind == "poll_opened":
            opts = [PollOption(o["label"], o.get("shade_id"), o.get("swatch_hex"))
                    for o in d["options"]]
            self.polls[d["poll_id"]] = Poll(d["poll_id"], d["question"], opts, e.ts,
                                            d["closes_at"], e.seq, d.get("apply_shade", False))
            self.poll_order.append(d["poll_id"])
        elif e.kind == "poll_closed":
            poll = self.polls[d["poll_id"]]
            # A deadline close found late (e.g. after a restart) still ends at the deadline.
            at = min(e.ts, poll.closes_at) if d["reason"] == "deadline" else e.ts
            poll.close(at, d["reason"])
        elif e.kind == "shade_set":
            self.shade_id = d["shade_id"]
            self.shade_hex = d.get("hex")
        elif e.kind == "effects_set":
            self.effects.update(d["effects"])
        elif e.kind == "product_set":
            self.product = None if d.get("id") is None else ProductView(
                d["id"], d["name"], d["price"], d.get("url"))
        elif e.kind == "like_goal_set":
            self.like_goal = LikeGoal(d["target"], d["message"])
        if e.kind in INTERACTION_KINDS and vid != HOST:
            n = d.get("count", 1) if e.kind == "like" else 1
            self.interactions += n
            minute.interactions += n
        minute.unique_viewers = len(self.viewers)
        minute.peak_viewers = max(minute.peak_viewers, self.present)
        minute.present = self.present

    def _minute(self, ts: float) -> MinuteStats:
        idx = max(0, int((ts - self.created_at) // 60)) if self.created_at else 0
        m = self.minutes.get(idx)
        if m is None:
            m = self.minutes[idx] = MinuteStats(peak_viewers=self.present,
                                                unique_viewers=len(self.viewers),
                                                present=self.present)
        return m

    def _build_snapshot(self) -> RoomState:
        present = [v for v in self.viewers.values() if v.present]
        if len(present) > SNAPSHOT_VIEWERS:
            present.sort(key=lambda v: v.last_active, reverse=True)
            present = present[:SNAPSHOT_VIEWERS]
        poll = self.current_poll
        goal = self.like_goal
        return RoomState(
            room_id=self.id,
            taken_at=self.hub.clock(),
            viewers=tuple(v.view() for v in present),
            poll=poll.view() if poll is not None else None,
            likes=self.likes,
            recent_likes=tuple(self.recent_likes),
            like_goal=None if goal is None else LikeGoalView(goal.target, goal.count,
                                                             goal.message, goal.reached),
            product=self.product,
            shade_id=self.shade_id,
            effects={k: bool(v["enabled"]) for k, v in self.effects.items()},
            viewer_count=self.present,
            interaction_rate=self.interaction_rate,
            seq=self.seq,
            title=self.title,
            peak_viewers=self.peak_viewers,
            shade_hex=self.shade_hex,
            effect_settings={k: dict(v["settings"]) for k, v in self.effects.items()},
            recent_comments=tuple(self.recent_comments),
            follows=self.counts.get("follow", 0),
            shares=self.counts.get("share", 0),
        )


def _check_int(value: object, what: str, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidInputError(
            f"{what} must be an integer from {lo} to {hi}; got {shown(value)}")


def _check_settings(effect: str, settings: object) -> dict[str, Any]:
    """Flat JSON settings only: the video pipeline passes them to ``create_effect``."""
    if not isinstance(settings, dict):
        raise InvalidInputError(f"effect {shown(effect)}: settings must be an object")
    if len(settings) > MAX_EFFECT_SETTINGS:
        raise InvalidInputError(
            f"effect {shown(effect)}: at most {MAX_EFFECT_SETTINGS} settings")
    for key, value in settings.items():
        if not isinstance(key, str) or not SETTING_KEY.match(key):
            raise InvalidInputError(
                f"effect {shown(effect)}: setting name {shown(key)} must be snake_case, "
                "<= 40 chars")
        ok = (isinstance(value, bool | int | str) and (not isinstance(value, str)
                                                        or len(value) <= 200)) \
            or (isinstance(value, float) and math.isfinite(value)) or value is None \
            or (isinstance(value, list) and len(value) <= 16
                and all(isinstance(x, int | float) and not isinstance(x, bool)
                        and math.isfinite(x) for x in value))
        if not ok:
            raise InvalidInputError(
                f"effect {shown(effect)}: setting {shown(key)} must be a number, bool, "
                "short string or a list of up to 16 numbers")
    return dict(settings)

