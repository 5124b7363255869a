"""SQLite store and group commit: WAL, ordering, batching, failures reported to waiters."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from arengine.interaction.events import Event
from arengine.interaction.store import GroupCommitter, SQLiteStore, Store, StoreFailedError


def ev(room: str, seq: int, kind: str = "like", **data: object) -> Event:
    return Event(room, seq, 1000.0 + seq, kind, "v1", dict(data))


def test_sqlite_store_round_trip_in_wal_mode(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    assert isinstance(store, Store)
    store.write([ev("r1", 1, "room_created", title="直播"), ev("r1", 2, count=3)])
    store.write([ev("r2", 1, "room_created")])
    assert store.room_ids() == ["r1", "r2"]
    events = list(store.events("r1"))
    assert [(e.seq, e.kind) for e in events] == [(1, "room_created"), (2, "like")]
    assert events[0].data == {"title": "直播"} and events[1].data == {"count": 3}
    store.close()
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_a_failed_batch_writes_nothing(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    store.write([ev("r1", 1)])
    with pytest.raises(sqlite3.IntegrityError):
        store.write([ev("r1", 2), ev("r1", 1)])  # duplicate seq: the whole batch rolls back
    assert [e.seq for e in store.events("r1")] == [1]
    store.close()


def test_synchronous_mode_is_checked(db_path: Path) -> None:
    with pytest.raises(ValueError, match="FULL or NORMAL"):
        SQLiteStore(db_path, synchronous="OFF")  # type: ignore[arg-type]


class SlowStore:
    """Counts transactions; each one takes a while, like an fsync."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.fail = False

    def write(self, events: Sequence[Event]) -> None:
        import time

        time.sleep(0.01)
        if self.fail:
            raise OSError("disk full")
        self.batches.append(len(events))

    def room_ids(self) -> list[str]:
        return []

    def events(self, room_id: str) -> Iterator[Event]:
        return iter(())

    def close(self) -> None:
        pass


def test_group_commit_batches_concurrent_writers() -> None:
    async def main() -> SlowStore:
        store = SlowStore()
        gc = GroupCommitter(store)
        await asyncio.gather(*(gc.append([ev("r", i)]) for i in range(200)))
        gc.stop()
        return store

    store = asyncio.run(main())
    assert sum(store.batches) == 200
    assert len(store.batches) < 20  # ~2 batches in practice; one per event would be 200


def test_store_failure_reaches_every_waiter_and_stops_writes() -> None:
    async def main() -> None:
        store = SlowStore()
        store.fail = True
        gc = GroupCommitter(store)
        results = await asyncio.gather(*(gc.append([ev("r", i)]) for i in range(5)),
                                       return_exceptions=True)
        assert all(isinstance(r, StoreFailedError) for r in results)
        with pytest.raises(StoreFailedError, match="disk full"):
            await gc.append([ev("r", 9)])
        gc.stop()

    asyncio.run(main())
