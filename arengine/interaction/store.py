"""Durable event storage: a small :class:`Store` interface, SQLite behind it, group commit.

A request is acknowledged only after its event is committed, so a crash (even
``kill -9``) loses nothing that a client was told succeeded. Committing one transaction
per request would cap the server at the disk's fsync rate; :class:`GroupCommitter`
instead collects every event that arrives while the previous commit is in progress and
writes them together, so throughput grows with concurrency while each request still
waits for its own commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from arengine.interaction.events import Event

Synchronous = Literal["FULL", "NORMAL"]


@runtime_checkable
class Store(Protocol):
    """Where room events live. Implementations must make ``write`` atomic and durable."""

    def write(self, events: Sequence[Event]) -> None:
        """Append ``events`` in one transaction; return only once they are durable."""

    def room_ids(self) -> list[str]:
        """Every room that has at least one event, oldest first."""

    def events(self, room_id: str) -> Iterator[Event]:
        """The room's events in ``seq`` order."""

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    room_id   TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    ts        REAL    NOT NULL,
    kind      TEXT    NOT NULL,
    viewer_id TEXT,
    data      TEXT    NOT NULL,
    PRIMARY KEY (room_id, seq)
) WITHOUT ROWID;
"""


class SQLiteStore:
    """Events in one embedded SQLite file, in WAL mode.

    ``synchronous="FULL"`` (the default) fsyncs the WAL on every commit, so an
    acknowledged event survives power loss as well as a process crash. ``"NORMAL"``
    survives a process crash (the WAL is in the OS page cache) but may lose the last
    commits on power loss; choose it only where the disk's fsync is the bottleneck.
    The connection is used from one thread at a time (the writer thread while serving).
    """

    def __init__(self, path: str | Path, synchronous: Synchronous = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def write(self, events: Sequence[Event]) -> None:
        if not events:
            return
        rows = [e.to_row() for e in events]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def room_ids(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT room_id FROM events WHERE seq = 1 ORDER BY ts, room_id").fetchall()
        return [r[0] for r in rows]

    def events(self, room_id: str) -> Iterator[Event]:
        with self._lock:
            rows = self._db.execute(
                "SELECT room_id, seq, ts, kind, viewer_id, data FROM events "
                "WHERE room_id = ? ORDER BY seq", (room_id,)).fetchall()
        for row in rows:
            yield Event.from_row(row)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class StoreFailedError(RuntimeError):
    """The store could not write; the server stops accepting changes rather than lie."""


_Pending = tuple[list[Event], "asyncio.Future[None]"]
_Item = list[_Pending]


class GroupCommitter:
    """Writes events from an asyncio loop through one writer thread, in batches.

    ``await committer.append(events)`` returns once ``events`` are committed. Everything
    queued while a commit runs goes into the next transaction (at most ``max_batch``
    events), and the batch's waiters are woken with a single call into the loop.
    """

    def __init__(self, store: Store, max_batch: int = 4096) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._gathering: _Item = []
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self.batches = 0
        self.events_written = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="event-writer",
                                            daemon=True)
            self._thread.start()

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    async def append(self, events: list[Event]) -> None:
        if self._failure is not None:
            raise StoreFailedError(f"event store failed: {self._failure}")
        self.start()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if not self._gathering:
            loop.call_soon(self._hand_over)
        self._gathering.append((events, fut))
        await fut

    def _hand_over(self) -> None:
        item, self._gathering = self._gathering, []
        if item:
            self._queue.put(item)

    def stop(self) -> None:
        """Commit what is queued, then end the writer thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = list(first)
            n = sum(len(events) for events, _ in first)
            while n < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.extend(item)
                n += sum(len(events) for events, _ in item)
            error: BaseException | None = None
            try:
                self.store.write([e for events, _ in batch for e in events])
                self.batches += 1
                self.events_written += n
            except BaseException as e:  # reported to every waiter of the batch
                error = e
                self._failure = e
            self._wake(batch, error)

    @staticmethod
    def _wake(batch: list[_Pending], error: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for _, fut in batch:
            by_loop.setdefault(fut.get_loop(), []).append(fut)
        for loop, futs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(_resolve, futs, error)


def _resolve(futs: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for fut in futs:
        if fut.done():
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(StoreFailedError(f"event store failed: {error}"))
