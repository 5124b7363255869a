"""Fixtures for the WebRTC transport tests: the same in-process server and hub as the
pipeline tests (real aiortc peers talk to it)."""

from tests.pipeline.conftest import Rooms, hub, running_server, server

__all__ = ["Rooms", "hub", "running_server", "server"]
