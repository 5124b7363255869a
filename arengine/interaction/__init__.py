"""Rooms, viewers, polls, likes and metrics, stored durably and served over HTTP/WebSocket.

``RoomHub`` is the in-process entry point; ``arengine.interaction.api`` has the FastAPI
router (imported separately so on-screen layers can read ``state`` without FastAPI).
"""

from arengine.interaction.events import Event
from arengine.interaction.hub import RoomHub
from arengine.interaction.room import Room, Subscription
from arengine.interaction.state import RoomState

__all__ = ["Event", "Room", "RoomHub", "RoomState", "Subscription"]
