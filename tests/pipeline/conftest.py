"""Fixtures for the WebRTC tests: an in-process server and real aiortc peers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import httpx
import pytest

from arengine.interaction.state import RoomState
from arengine.pipeline import RoomConfig
from arengine.server import MediaServer, build_app


class MemoryHub:
    """The three things the media side asks the interaction hub, kept in memory."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.states: dict[str, RoomState] = {}

    def add(self, room: str, token: str, shade: str | None = None) -> None:
        self.tokens[room] = token
        self.states[room] = RoomState(room, shade_id=shade)

    def set_shade(self, room: str, shade: str) -> None:
        self.states[room] = replace(self.states[room], shade_id=shade)

    def get(self, room: str) -> MemoryHub._Room | None:
        return MemoryHub._Room(self, room) if room in self.tokens else None

    def verify_host(self, room: str, token: str) -> bool:
        return self.tokens.get(room) == token

    class _Room:
        def __init__(self, hub: MemoryHub, room: str) -> None:
            self.hub, self.room = hub, room

        def snapshot(self) -> RoomState:
            return self.hub.states[self.room]


@contextlib.asynccontextmanager
async def running_server(hub: MemoryHub, config: RoomConfig,
                         codec: str = "vp8") -> AsyncIterator[tuple[httpx.AsyncClient,
                                                                      MediaServer]]:
    media = MediaServer(hub, config, codec)  # type: ignore[arg-type]
    app = build_app(hub, media)
    await media.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://arengine.test") as http:
            yield http, media
    finally:
        await media.close()


@pytest.fixture
def hub() -> MemoryHub:
    h = MemoryHub()
    h.add("demo", "host-secret", shade="velvet-plum")
    return h


@pytest.fixture
def server() -> Callable[..., contextlib.AbstractAsyncContextManager[
        tuple[httpx.AsyncClient, MediaServer]]]:
    return running_server
