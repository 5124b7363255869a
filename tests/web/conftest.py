"""A real arengine server (uvicorn in a thread) for page and browser tests."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import uvicorn

from arengine.app import Ready, create_app
from arengine.pipeline import RoomConfig
from arengine.settings import Settings

CHROMIUM = "/usr/bin/chromium"


@dataclass
class LiveServer:
    url: str
    room: str
    token: str
    app: object
    admin_token: str | None = None

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
    ready: list[Ready] = []
    settings_marker = request.node.get_closest_marker("server_settings")
    settings = replace(settings_marker.args[0] if settings_marker else Settings(),
                       db=str(tmp_path / "rooms.db"), room=config, codec=codec,
                       demo_crowd=False)
    app = create_app(settings, on_ready=ready.append)
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
    token = ready[0].host_token
    assert token is not None
    yield LiveServer(f"http://127.0.0.1:{port}", "demo", token, app, ready[0].admin_token)
    server.should_exit = True
    thread.join(timeout=20)


# What every browser test starts Chromium with: no sandbox (root), no GPU, nothing that
# calls out to Google's hosts (refused here), autoplay, real local IPs in ICE candidates.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required",
                 "--disable-features=WebRtcHideLocalIpsWithMdns")


def launch_chromium(playwright: object, *extra: str) -> object:
    """Debian's Chromium through Playwright (never a downloaded browser)."""
    return playwright.chromium.launch(  # type: ignore[attr-defined]
        executable_path=chromium_or_fail(), args=[*CHROMIUM_ARGS, *extra])


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
    config.addinivalue_line("markers", "server_settings(settings): Settings of live_server "
                                       "(db, room and codec are set by the fixture)")
