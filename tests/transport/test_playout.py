"""Playout delay: the extension's bytes, its negotiation with a viewer, and its packets."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc import rtp as aiortc_rtp

from arengine.transport.playout import (
    PLAYOUT_DELAY_URI,
    PlayoutDelayMap,
    pack_playout_delay,
    unpack_playout_delay,
)
from arengine.transport.whep import WhepSession
from tests.transport.test_whip import SMALL


@pytest.mark.parametrize("lo, hi, raw", [(0, 0, b"\x00\x00\x00"),
                                          (100, 400, b"\x00\xa0\x28"),
                                          (40950, 40950, b"\xff\xff\xff")])
def test_extension_bytes(lo: int, hi: int, raw: bytes) -> None:
    assert pack_playout_delay(lo, hi) == raw
    assert unpack_playout_delay(raw) == (lo, hi)


@pytest.mark.parametrize("lo, hi", [(-10, 0), (100, 50), (0, 41000)])
def test_bad_delays_are_refused(lo: int, hi: int) -> None:
    with pytest.raises(ValueError):
        pack_playout_delay(lo, hi)


def _offer_with_playout_delay(sdp: str, ext_id: int = 9) -> str:
    """A browser-like offer: aiortc's own, with Chrome's playout-delay extmap added."""
    out = []
    for line in sdp.splitlines():
        out.append(line)
        if line.startswith("a=mid:"):
            out.append(f"a=extmap:{ext_id} {PLAYOUT_DELAY_URI}")
    return "\r\n".join(out) + "\r\n"


@pytest.mark.parametrize("offered", [True, False])
def test_viewer_that_offers_it_gets_zero_playout_delay_on_every_packet(
        hub, server, offered: bool) -> None:
    async def main() -> None:
        async with server(hub, SMALL) as (http, media):
            pc = RTCPeerConnection()
            pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            offer = pc.localDescription.sdp
            if offered:
                offer = _offer_with_playout_delay(offer)
            r = await http.post("/whep/demo", content=offer,
                                headers={"Content-Type": "application/sdp"})
            assert r.status_code == 201, r.text
            assert (f"a=extmap:9 {PLAYOUT_DELAY_URI}" in r.text) == offered
            await pc.setRemoteDescription(RTCSessionDescription(r.text, "answer"))
            session = next(s for s in media.sessions.values() if isinstance(s, WhepSession))
            assert session.playout_delay_sent == offered
            sender = next(t.sender for t in session.pc.getTransceivers()
                          if t.kind == "video")
            for _ in range(50):  # the map is configured once the sender starts
                if sender._RTCRtpSender__started:  # type: ignore[attr-defined]
                    break
                await asyncio.sleep(0.05)
            ext_map = sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
            packed = ext_map.set(aiortc_rtp.HeaderExtensions(mid="0", abs_send_time=1))
            got = dict(aiortc_rtp.unpack_header_extensions(*packed))
            if offered:
                assert isinstance(ext_map, PlayoutDelayMap)
                assert got[9] == b"\x00\x00\x00"  # min 0, max 0: show when decoded
            assert 9 not in got or offered
            assert got  # mid and abs-send-time are still written
            await pc.close()

    asyncio.run(main())
