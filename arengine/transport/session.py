"""A WHIP or WHEP session: one aiortc peer connection behind an HTTP resource."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from arengine.transport import hooks

logger = logging.getLogger(__name__)


def send_json(channel: RTCDataChannel | None, event: dict[str, Any], who: str) -> bool:
    """Send ``event`` as compact JSON on ``channel`` when it is open; False when it is not
    or the send failed (logged at debug level, as ``who``: a viewer that left mid-send is
    not an error)."""
    if channel is None or channel.readyState != "open":
        return False
    try:
        channel.send(json.dumps(event, separators=(",", ":")))
    except Exception:
        logger.debug("%s: data channel send failed", who, exc_info=True)
        return False
    return True


class PeerSession:
    """The resource a WHIP/WHEP POST creates; DELETE (or a failed connection) closes it.

    ``on_closed`` runs once, whichever way the session ends, so the room can switch to its
    slate when a host leaves and drop a viewer's encoder subscription.
    """

    kind = "session"

    def __init__(self, room: str, config: RTCConfiguration | None = None) -> None:
        hooks.allow_rsa_dtls()  # publishers and viewers with RSA certificates (GStreamer)
        # The resource URL is the only thing that lets a viewer end its session: 256
        # random bits, never listed anywhere public.
        self.id = secrets.token_urlsafe(32)
        self.etag = f'"{secrets.token_hex(8)}"'
        self.room = room
        self.created = time.time()
        self.pc = RTCPeerConnection(config)
        self.closed = False
        self._on_closed: list[Callable[[PeerSession], Awaitable[None]]] = []

        @self.pc.on("connectionstatechange")
        async def on_state() -> None:
            logger.info("%s %s in room %s: %s", self.kind, self.id, self.room,
                        self.pc.connectionState)
            if self.pc.connectionState in ("failed", "closed"):
                await self.close()

    def on_closed(self, callback: Callable[[PeerSession], Awaitable[None]]) -> None:
        self._on_closed.append(callback)

    @property
    def state(self) -> str:
        return str(self.pc.connectionState)

    async def answer(self, offer: str) -> str:
        """Apply the offer and return the complete answer (ICE gathered: no trickle)."""
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        self.prepare()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    def prepare(self) -> None:
        """Hook between offer and answer: attach tracks, set codec preferences."""

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for cb in self._on_closed:
            try:
                await cb(self)
            except Exception:
                logger.exception("%s %s: close callback failed", self.kind, self.id)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):  # not wait_for: it can swallow a cancel (3.11)
                await self.pc.close()
