"""A real arengine server (uvicorn in a thread) for page and browser tests."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import uvicorn

from arengine.pipeline import RoomConfig
from arengine.server import ServerOptions, create_server

CHROMIUM = "/usr/bin/chromium"


@dataclass
class LiveServer:
    url: str
    room: str
    token: str
    app: object

    @property
    def media(self):  # the MediaServer, to look inside the pipeline
        return self.app.state.media  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    marker = request.node.get_closest_marker("room_config")
    config = marker.args[0] if marker else RoomConfig(demo_size=(640, 360), fps=15)
    codec_marker = request.node.get_closest_marker("server_codec")
    codec = codec_marker.args[0] if codec_marker else "vp8"
    tokens: dict[str | None, str | None] = {}
    app = create_server(ServerOptions(db_path=str(tmp_path / "rooms.db"), room=config,
                                      codec=codec),
                        lambda room, token: tokens.update({room: token}))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not start")
        time.sleep(0.05)
    token = tokens["demo"]
    assert token is not None
    yield LiveServer(f"http://127.0.0.1:{port}", "demo", token, app)
    server.should_exit = True
    thread.join(timeout=20)


def chromium_or_fail() -> str:
    """The Debian chromium; missing is a skip locally but a failure under CI=true."""
    if shutil.which(CHROMIUM) is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is required for browser tests under CI", pytrace=False)
        pytest.skip(f"{CHROMIUM} not installed")
    return CHROMIUM


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "room_config(config): RoomConfig for live_server")
    config.addinivalue_line("markers", "server_codec(name): viewer codec of live_server")


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
