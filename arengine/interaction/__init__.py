"""Rooms, viewers, polls, likes and metrics, stored durably and served over HTTP/WebSocket.

``RoomHub`` is the in-process entry point; ``arengine.interaction.api`` has the FastAPI
router (imported separately, so the rest needs no FastAPI). Room snapshots live in
:mod:`arengine.state`, below every package that reads them.
"""

from arengine.interaction.events import Event
from arengine.interaction.hub import RoomHub
from arengine.interaction.room import Room, Subscription
from arengine.state import RoomState

__all__ = ["Event", "Room", "RoomHub", "RoomState", "Subscription"]
