"""Latest-value slots: the only hand-off between pipeline stages.

A slot holds at most one item. Putting a new item over an unread one drops the old one
(and counts it), so a slow stage always works on the newest frame and latency can never
pile up in a queue.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """An asyncio slot for one item; ``put`` never blocks, ``get`` waits for a new one."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._full = False
        self._event = asyncio.Event()
        self.put_count = 0
        self.dropped = 0

    def put(self, item: T) -> None:
        if self._full:
            self.dropped += 1
        self._item = item
        self._full = True
        self.put_count += 1
        self._event.set()

    async def get(self) -> T:
        while not self._full:
            self._event.clear()
            await self._event.wait()
        item = self._item
        self._item = None
        self._full = False
        return item  # type: ignore[return-value]

    def clear(self) -> None:
        self._item = None
        self._full = False


class ThreadSlot(Generic[T]):
    """The same contract as :class:`LatestSlot` between the event loop and a worker thread."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._full = False
        self._closed = False
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._cond:
            if self._full:
                self.dropped += 1
            self._item = item
            self._full = True
            self._cond.notify()

    def get(self, timeout: float | None = None) -> T | None:
        """The newest item, or None when closed (or on timeout)."""
        with self._cond:
            if not self._full and not self._closed:
                self._cond.wait(timeout)
            if self._closed or not self._full:
                return None
            item = self._item
            self._item = None
            self._full = False
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
