"""Schemathesis extensions for arengine's API (loaded with SCHEMATHESIS_HOOKS).

WHIP and WHEP take an ``application/sdp`` body, which schemathesis cannot generate by
itself: give it real offers (a viewer's and a host's, made here by aiortc), broken ones,
and text that is not SDP at all.
"""

from __future__ import annotations

import asyncio

import schemathesis
from aiortc import RTCPeerConnection
from hypothesis import strategies as st


async def _offer(direction: str) -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction=direction)  # type: ignore[arg-type]
    pc.addTransceiver("audio", direction=direction)  # type: ignore[arg-type]
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


VIEWER_OFFER = asyncio.run(_offer("recvonly"))
HOST_OFFER = asyncio.run(_offer("sendonly"))
SDP = st.sampled_from([VIEWER_OFFER, HOST_OFFER]) | st.sampled_from([
    "", "v=0\r\n", "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
    VIEWER_OFFER.replace("a=ice-pwd", "a=x-pwd"), VIEWER_OFFER.replace("VP8", "VP9"),
    VIEWER_OFFER[: len(VIEWER_OFFER) // 2]]) | st.text(max_size=300)

schemathesis.openapi.media_type("application/sdp", SDP.map(lambda s: s.encode("utf-8")))
