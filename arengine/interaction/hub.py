"""The set of rooms served by one process, backed by one durable store.

Other parts of the engine use it in-process::

    hub = RoomHub.open("rooms.db")
    room, host_token = await hub.create_room("Spring lipstick launch")
    state = hub.get(room.id).snapshot()          # cheap, no I/O
    with room.subscribe() as feed:               # bounded, drops oldest when slow
        async for event in feed: ...
    await room.like_burst(20)                    # host gestures from the video pipeline

On start the hub replays every room's log, so a restarted server shows exactly what
was acknowledged before it stopped.

Privacy: nothing from the video (frames, face crops, landmarks) ever reaches this
package or its store. Viewer ids are random pseudonyms issued at join; tokens are kept
only as SHA-256 hashes; the only images stored are avatars viewers choose to upload,
re-encoded to 96x96 PNG without metadata.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge

from arengine.interaction.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
    shown,
)
from arengine.interaction.events import Event
from arengine.interaction.ratelimit import ClientLimiter, Rate, RateLimiter, RateLimits
from arengine.interaction.room import ROOM_ID, ROOM_TITLE_MAX_CHARS, Room, token_hash
from arengine.interaction.store import GroupCommitter, SQLiteStore, Store, Synchronous
from arengine.interaction.text import check_text
from arengine.keys import new_token

Clock = Callable[[], float]
T = TypeVar("T")
log = logging.getLogger(__name__)
IDLE_SCAN_S = 5.0


def _catalog_hex(shade_id: str) -> str:
    from arengine.catalog import default_catalog

    return default_catalog().get(shade_id).hex


def _no_effects() -> list[str]:
    return []


def _no_settings(name: str, settings: Mapping[str, Any]) -> None:
    """A hub told of no effects accepts no settings for them (see ``check_effect_settings``)."""


class RoomHub:
    """Rooms by id, their store, and the shared services rooms use (clock, limits, metrics).

    ``clock`` and ``shade_hex`` can be injected, so tests drive poll deadlines and rate
    limits without sleeping. ``effect_names`` and ``check_effect_settings`` come from the
    app (the effects package sits beside this one, not below it): a hub given none knows
    no effects. Viewers not seen for ``idle_s`` seconds
    (no request, no heartbeat, no open event stream) are marked as left; None keeps
    everyone until they leave.
    """

    def __init__(self, store: Store, *, clock: Clock = time.time,
                 limits: RateLimits | None = None,
                 client_rates: Mapping[str, Rate | None] | None = None,
                 max_rooms: int | None = None,
                 shade_hex: Callable[[str], str] = _catalog_hex,
                 effect_names: Callable[[], list[str]] = _no_effects,
                 check_effect_settings: Callable[[str, Mapping[str, Any]], None] =
                 _no_settings,
                 tick_s: float = 0.25, idle_s: float | None = 300.0) -> None:
        self.store = store
        self.idle_s = idle_s
        self._idle_scan_at = 0.0
        self.clock = clock
        self.limiter = RateLimiter(limits or RateLimits(), clock)
        # Per client address ("join", "room", "comment"), across all of its tokens.
        self.client_limiter = ClientLimiter(client_rates or {}, clock)
        self.max_rooms = max_rooms
        self._shade_hex = shade_hex
        self.effect_names = effect_names
        self._check_effect_settings = check_effect_settings
        self.tick_s = tick_s
        self.committer = GroupCommitter(store)
        self.rooms: dict[str, Room] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        self._events_total = Counter(
            "arengine_room_events", "Accepted room events by kind.", ["room", "kind"],
            registry=self.registry)
        self._viewers = Gauge("arengine_room_viewers", "Viewers present now.", ["room"],
                              registry=self.registry)
        self._peak = Gauge("arengine_room_peak_viewers", "Most viewers present at once.",
                           ["room"], registry=self.registry)
        self._subs = Gauge("arengine_room_subscribers", "Live event subscribers.", ["room"],
                           registry=self.registry)
        self.dropped_total = Counter(
            "arengine_room_dropped_events",
            "Events dropped for subscribers that fell behind.", ["room"],
            registry=self.registry)
        self._batches = Gauge("arengine_store_commits", "Store transactions committed.",
                              registry=self.registry)
        self._batches.set_function(lambda: self.committer.batches)
        self._written = Gauge("arengine_store_events_written", "Events committed.",
                              registry=self.registry)
        self._written.set_function(lambda: self.committer.events_written)
        self._counter_cache: dict[tuple[str, str], Counter] = {}
        self._load()

    @classmethod
    def open(cls, db_path: str | Path, synchronous: Synchronous = "FULL",
             **kwargs: Any) -> RoomHub:
        """A hub on an SQLite file (created if missing), with every room replayed;
        ``kwargs`` as for the constructor."""
        return cls(SQLiteStore(db_path, synchronous=synchronous), **kwargs)

    # ------------------------------------------------------------------ rooms

    def get(self, room_id: str) -> Room:
        try:
            return self.rooms[room_id]
        except KeyError:
            raise NotFoundError(f"no room {shown(room_id)}") from None

    def page(self, limit: int, after: str | None = None) -> tuple[list[Room], str | None]:
        """Rooms by id after ``after``, at most ``limit``, and the cursor of the next page."""
        ids = sorted(self.rooms)
        start = bisect.bisect_right(ids, after) if after else 0
        chosen = ids[start:start + limit]
        more = start + limit < len(ids)
        return [self.rooms[i] for i in chosen], (chosen[-1] if more and chosen else None)

    def verify_host(self, room_id: str, token: str | None) -> bool:
        room = self.rooms.get(room_id)
        return room is not None and room.verify_host(token)

    async def create_room(self, title: str = "", room_id: str | None = None,
                          host_token: str | None = None) -> tuple[Room, str]:
        """A new room and its host token (shown once; only its hash is stored).

        ``host_token`` sets the token instead of a random one (the server's demo room
        keeps a token derived from its key file, so an OBS set-up survives restarts).
        """
        if title:
            check_text(title, "title", ROOM_TITLE_MAX_CHARS)
        if room_id is None:
            room_id = "r-" + secrets.token_hex(5)
        elif not isinstance(room_id, str) or not ROOM_ID.match(room_id):
            raise InvalidInputError(
                "room id must be 3-40 of a-z, 0-9 and -, starting with a letter or digit")
        if room_id in self.rooms:
            raise ConflictError(f"room {room_id!r} already exists")
        if self.max_rooms is not None and len(self.rooms) >= self.max_rooms:
            raise UnavailableError(f"this server holds its maximum of {self.max_rooms} rooms")
        self.start()
        token = host_token or new_token()
        room = Room(room_id, self)
        self.rooms[room_id] = room
        try:
            await room._commit([Event(room_id, 0, self.clock(), "room_created", None,
                                      {"title": title, "_host_token_sha256": token_hash(token)})])
        except BaseException:
            self.rooms.pop(room_id, None)
            raise
        return room, token

    async def rotate_host_token(self, room_id: str, token: str | None = None) -> str:
        """A new host token for an existing room (``token``, or a random one); the old one
        stops working.

        Only hashes of tokens are stored, so a restarted server cannot show the old token
        again: this is how it hands the operator a working one.
        """
        room = self.get(room_id)
        self.start()
        token = token or new_token()
        await room._commit([Event(room_id, 0, self.clock(), "host_token_rotated", None,
                                  {"_host_token_sha256": token_hash(token)})])
        return token

    # ---------------------------------------------------------------- services

    def shade_hex(self, shade_id: str) -> str:
        """The swatch of a catalog shade; unknown ids raise a 422 listing valid ones."""
        if not isinstance(shade_id, str):
            raise InvalidInputError("shade id must be a string")
        try:
            return self._shade_hex(shade_id)
        except KeyError as e:  # UnknownShadeError is a KeyError with a readable message
            raise InvalidInputError(str(e) if str(e) != repr(shade_id)
                                    else f"unknown shade {shown(shade_id)}") from None

    def check_effect_settings(self, name: str, settings: Mapping[str, Any]) -> None:
        """422 unless ``settings`` make a working effect ``name`` (checked when stored,
        so a setting never silently does nothing on the picture)."""
        try:
            self._check_effect_settings(name, settings)
        except ValueError as e:
            raise InvalidInputError(str(e)) from None

    def check_writable(self) -> None:
        if self.committer.failure is not None:
            raise UnavailableError(
                f"the event store failed ({self.committer.failure}); restart the server")

    async def persist(self, events: list[Event]) -> None:
        self.start()
        try:
            await self.committer.append(events)
        except Exception as e:
            raise UnavailableError(f"could not store the event: {e}") from e

    def observe(self, event: Event) -> None:
        """Prometheus counters; called once per committed event."""
        key = (event.room_id, event.kind)
        c = self._counter_cache.get(key)
        if c is None:
            c = self._counter_cache[key] = self._events_total.labels(*key)
        c.inc()
        if event.kind in ("join", "leave", "room_created"):
            room = self.rooms[event.room_id]
            self._viewers.labels(event.room_id).set(room.present)
            self._peak.labels(event.room_id).set(room.peak_viewers)

    def refresh_gauges(self) -> None:
        for rid, room in self.rooms.items():
            self._subs.labels(rid).set(room.subscriber_count)

    # --------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the writer thread and, inside a running loop, the poll-deadline ticker."""
        self.committer.start()
        if self._ticker is None or self._ticker.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._loop, self._loop_thread = loop, threading.get_ident()
            self._ticker = loop.create_task(self._tick_forever(), name="poll-deadlines")

    def on_loop_thread(self) -> bool:
        """True on the thread that runs the hub's event loop (or before it started)."""
        return self._loop_thread is None or self._loop_thread == threading.get_ident()

    def call_on_loop(self, fn: Callable[[], object]) -> bool:
        """Run ``fn`` soon on the hub's loop, from any thread; False if there is none."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        try:
            loop.call_soon_threadsafe(fn)
        except RuntimeError:  # closed between the check and the call
            return False
        return True

    async def tick(self) -> int:
        """Close every poll whose deadline has passed; returns how many were closed.

        Every ``IDLE_SCAN_S`` it also marks idle viewers as left (see ``idle_s``).
        """
        closed = 0
        for room in list(self.rooms.values()):
            poll = room.active_poll
            if poll is not None and self.clock() >= poll.closes_at:
                await room._close_if_due(poll)
                closed += 1
        now = self.clock()
        if self.idle_s is not None and now - self._idle_scan_at >= IDLE_SCAN_S:
            self._idle_scan_at = now
            for room in list(self.rooms.values()):
                await room.leave_idle(self.idle_s)
        return closed

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.tick()
            except UnavailableError:
                pass  # reported to every writer already
            except Exception:  # keep closing polls whatever one room did
                log.exception("closing polls at their deadline failed")

    def run_threadsafe(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run a room action from another thread (e.g. a gesture seen by the video
        pipeline): ``hub.run_threadsafe(room.like_burst(20))``. Never blocks the caller;
        wait on the returned future only if the result matters."""
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            raise UnavailableError("the room hub is not running; call hub.start() in its loop")
        return asyncio.run_coroutine_threadsafe(coro, loop)

    async def close(self) -> None:
        """Stop the ticker, commit what is queued, close the store."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self._loop = self._loop_thread = None
        await asyncio.to_thread(self.committer.stop)
        self.store.close()

    def _load(self) -> None:
        now = self.clock()
        for room_id in self.store.room_ids():
            room = Room(room_id, self)
            self._replay(room, self.store.events(room_id))
            for v in room.viewers.values():  # a grace period to come back after a restart
                v.last_seen = max(v.last_seen, now)
            self.rooms[room_id] = room
            self._viewers.labels(room_id).set(room.present)
            self._peak.labels(room_id).set(room.peak_viewers)
            for kind, n in room.counts.items():
                self._events_total.labels(room_id, kind).inc(n)

    @staticmethod
    def _replay(room: Room, events: Iterable[Event]) -> None:
        for e in events:
            room.apply(e)
