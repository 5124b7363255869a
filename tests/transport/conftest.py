"""Fixtures for the WebRTC tests: an in-process server and real aiortc peers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import cv2
import httpx
import numpy as np
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


@pytest.fixture
def lip_distance() -> Callable[[np.ndarray, str], tuple[float, float]]:
    """CIELAB distances between the lips of an image and a shade: (hue plane a-b, full)."""

    def distance(image: np.ndarray, shade_hex: str) -> tuple[float, float]:
        d = lip_lab(image) - hex_lab(shade_hex)
        return float(np.linalg.norm(d[1:])), float(np.linalg.norm(d))

    return distance


def lip_lab(image: np.ndarray) -> np.ndarray:
    """Mean CIELAB colour (L, a, b) inside the lips of the one face in a BGR image."""
    from arengine.tracking import FaceTracker

    with FaceTracker("image", max_faces=1) as ft:
        faces = ft.detect(image)
    assert len(faces) == 1, "no face found"
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [faces.lips_outer()[0].astype(np.int32)], 255)
    cv2.fillPoly(mask, [faces.lips_inner()[0].astype(np.int32)], 0)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2Lab).astype(np.float32)
    return lab[mask > 0].mean(axis=0)


def hex_lab(hex_colour: str) -> np.ndarray:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    px = np.array([[[b, g, r]]], np.uint8)
    return cv2.cvtColor(px, cv2.COLOR_BGR2Lab)[0, 0].astype(np.float32)
