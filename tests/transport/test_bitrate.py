"""The bitrate the server announces to a publishing host (REMB), end to end with aiortc."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest
from aiortc import RTCPeerConnection

from arengine.demo import DemoSource, DemoTrack
from arengine.transport.bitrate import INTERVAL_MS, AnnouncedBitrate, announce_bitrate
from arengine.transport.client import WhipClient
from tests.transport.test_whip import SMALL


def test_reports_the_bitrate_twice_a_second_of_arrival_time() -> None:
    est = AnnouncedBitrate(3_000_000)
    due = [est.add(arrival_time_ms=t, abs_send_time=0, payload_size=1200, ssrc=7)
           for t in (1000, 1001, 1000 + INTERVAL_MS - 1, 1000 + INTERVAL_MS, 1900)]
    assert due == [(3_000_000, [7]), None, None, (3_000_000, [7]), None]
    assert est.sent == 2
    with pytest.raises(ValueError, match="positive"):
        AnnouncedBitrate(0)


def test_replaces_the_estimator_of_a_real_receiver(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        pc = RTCPeerConnection()
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        assert announce_bitrate(receiver, 4_000_000)
        est = receiver._RTCRtpReceiver__remote_bitrate_estimator  # type: ignore[attr-defined]
        assert isinstance(est, AnnouncedBitrate) and est.bitrate == 4_000_000
        assert announce_bitrate(receiver, 2_000_000)  # a second call changes the figure
        assert receiver._RTCRtpReceiver__remote_bitrate_estimator is est  # type: ignore[attr-defined]
        assert est.bitrate == 2_000_000
        with caplog.at_level(logging.WARNING):
            assert not announce_bitrate(object(), 1_000_000)
        assert "no replaceable bitrate estimator" in caplog.text
        await pc.close()

    asyncio.run(main())


def test_a_publishing_host_is_told_the_rooms_ingest_bitrate(hub, server) -> None:
    # aiortc's own estimator would start from what the host sends (500 kbit/s here) and
    # creep up 8% a second; the host's encoder takes the announced figure at once.
    config = replace(SMALL, ingest_bitrate=1_200_000)

    async def main() -> None:
        async with server(hub, config) as (http, media):
            host = WhipClient(http, "http://arengine.test/whip/demo")
            await host.publish(DemoTrack(DemoSource(320, 180, fps=15)), "host-secret", "vp8")
            sender = host.pc.getSenders()[0]
            seen = None
            for _ in range(100):
                encoder = sender._RTCRtpSender__encoder  # type: ignore[attr-defined]
                seen = getattr(encoder, "target_bitrate", None)
                if seen == 1_200_000:
                    break
                await asyncio.sleep(0.1)
            assert seen == 1_200_000
            session = media.publishers["demo"]
            receiver = session.pc.getTransceivers()[0].receiver
            est = receiver._RTCRtpReceiver__remote_bitrate_estimator
            assert isinstance(est, AnnouncedBitrate) and est.sent >= 1
            await host.close()

    asyncio.run(main())
