"""Fixtures for room tests: a clock the test moves by hand and a hub on a temp SQLite file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from arengine.interaction.hub import RoomHub
from arengine.interaction.ratelimit import RateLimits


class FakeClock:
    """Unix time that only moves when a test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "rooms.db"


@pytest.fixture
def make_hub(db_path: Path, clock: FakeClock) -> Iterator[Callable[..., RoomHub]]:
    """Opens hubs on the same file (call again to simulate a restart)."""

    def make(**kwargs: Any) -> RoomHub:
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("limits", RateLimits())
        return RoomHub.open(db_path, **kwargs)

    yield make
