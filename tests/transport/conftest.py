"""Fixtures for the WebRTC transport tests: the same in-process server and hub as the
pipeline tests (real aiortc peers talk to it), and the real uvicorn server of the web tests
for peers that need a real HTTP address (a GStreamer publisher in another process)."""

import pytest

from tests.pipeline.conftest import Rooms, hub, running_server, server
from tests.web.conftest import LiveServer, live_server

__all__ = ["LiveServer", "Rooms", "hub", "live_server", "running_server", "server"]


def pytest_configure(config: pytest.Config) -> None:
    # live_server reads this marker; tests/web registers it only when its tests are collected
    config.addinivalue_line("markers", "room_config(config): RoomConfig for live_server")
