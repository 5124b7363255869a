"""Fixtures for the WebRTC tests: the real app in process and real aiortc peers."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace

import httpx
import pytest

from arengine.app import create_app, running
from arengine.pipeline import RoomConfig
from arengine.server import MediaServer
from arengine.settings import Settings


@dataclass
class Rooms:
    """The rooms a server under test starts with: id -> (host token, shade)."""

    rooms: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def add(self, room: str, token: str, shade: str | None = None) -> None:
        self.rooms[room] = (token, shade)


@contextlib.asynccontextmanager
async def running_server(rooms: Rooms, config: RoomConfig, codec: str = "vp8",
                         settings: Settings | None = None
                         ) -> AsyncIterator[tuple[httpx.AsyncClient, MediaServer]]:
    """The app users run (``create_app``), started in this loop on a fresh database."""
    with tempfile.TemporaryDirectory(prefix="arengine-test-") as tmp:
        app = create_app(replace(settings or Settings(), db=f"{tmp}/rooms.db", demo=False,
                                 room=config, codec=codec))  # type: ignore[arg-type]
        async with running(app) as http:
            for room, (token, shade) in rooms.rooms.items():
                r, _ = await app.state.hub.create_room(room, room, host_token=token)
                if shade:
                    await r.set_shade(shade)
            yield http, app.state.media


@pytest.fixture
def hub() -> Rooms:
    h = Rooms()
    h.add("demo", "host-secret", shade="velvet-plum")
    return h


@pytest.fixture
def server() -> Callable[..., contextlib.AbstractAsyncContextManager[
        tuple[httpx.AsyncClient, MediaServer]]]:
    return running_server
