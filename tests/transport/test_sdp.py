"""Offer checks: max-bundle offers (bundle-only sections at port 0) are live, other port-0
sections are disabled, and a bundle-only offer publishes through WHIP end to end."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from aiortc.sdp import SessionDescription

from arengine.demo import DemoSource, DemoTrack
from arengine.transport.sdp import OfferError, inspect_offer, live_sections
from tests.transport.test_whip import SMALL

FINGERPRINT = ("a=fingerprint:sha-256 17:58:7D:A3:8F:B2:E3:C8:41:B4:1B:C0:F8:F9:C2:F8:6E:02:"
               "0A:35:89:B6:F4:AC:FD:D9:08:B0:55:CF:70:04")
ICE = "a=ice-ufrag:3Y1yaIFgSkvUk7Rs\r\na=ice-pwd:HuJ1acJRS4INdlnPAWD9PThHDhfm6PgF"


def gst_offer(video_port: int = 0, bundle_only: bool = True,
              group: str = "a=group:BUNDLE audio0 video1", audio_port: int = 9) -> str:
    """An audio+video offer shaped like GStreamer webrtcbin's with bundle-policy=max-bundle:
    the video section after the first has port 0 and a=bundle-only."""
    lines = ["v=0", "o=- 93877752504241344 0 IN IP4 0.0.0.0", "s=-", "t=0 0",
             "a=ice-options:trickle", *([group] if group else []),
             f"m=audio {audio_port} UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0",
             "a=setup:actpass", ICE, "a=rtcp-mux", "a=sendonly",
             "a=rtpmap:111 OPUS/48000/2", "a=mid:audio0", FINGERPRINT,
             "a=candidate:1 1 UDP 2015363327 127.0.0.1 35502 typ host",
             f"m=video {video_port} UDP/TLS/RTP/SAVPF 102", "c=IN IP4 0.0.0.0",
             "a=setup:actpass", ICE]
    if bundle_only:
        lines.append("a=bundle-only")
    lines += ["a=rtcp-mux", "a=sendonly", "a=rtpmap:102 H264/90000",
              "a=rtcp-fb:102 nack pli",
              "a=fmtp:102 packetization-mode=1;profile-level-id=42c016;"
              "level-asymmetry-allowed=1", "a=mid:video1", FINGERPRINT]
    return "\r\n".join(lines) + "\r\n"


def test_max_bundle_offer_is_accepted_with_its_audio() -> None:
    info = inspect_offer(gst_offer(), "send")
    assert info.video_codecs == ("H264",)
    assert info.video_direction == "sendonly"
    assert info.has_audio
    desc = SessionDescription.parse(gst_offer())
    assert live_sections(desc, gst_offer()) == [True, True]


def test_bundle_only_audio_after_the_video_counts_as_audio() -> None:
    offer = gst_offer(video_port=9, bundle_only=False, group="a=group:BUNDLE video1 audio0",
                      audio_port=0).replace("a=rtpmap:111", "a=bundle-only\r\na=rtpmap:111")
    info = inspect_offer(offer, "send")
    assert info.video_codecs == ("H264",) and info.has_audio


@pytest.mark.parametrize(("offer", "why"), [
    (gst_offer(bundle_only=False), "port 0 without bundle-only: disabled (RFC 3264)"),
    (gst_offer(group="a=group:BUNDLE audio0"), "bundle-only outside the BUNDLE group"),
    (gst_offer(group=""), "bundle-only with no BUNDLE group at all"),
    (gst_offer(audio_port=0, group="a=group:BUNDLE audio0 video1"),
     "the group's tagged section is itself at port 0"),
])
def test_port_zero_section_that_is_not_live_bundle_only_is_disabled(offer: str,
                                                                    why: str) -> None:
    with pytest.raises(OfferError) as err:
        inspect_offer(offer, "send")
    assert err.value.status == 422, why
    assert "no video track" in str(err.value) and "disabled" in str(err.value), why


def test_disabled_audio_is_not_counted() -> None:
    offer = gst_offer(video_port=9, bundle_only=False, audio_port=0,
                      group="a=group:BUNDLE video1 audio0")
    info = inspect_offer(offer, "send")
    assert not info.has_audio


def test_a_live_bundle_only_section_still_needs_ice_credentials() -> None:
    offer = gst_offer()
    video = offer.index("m=video")
    offer = offer[:video] + offer[video:].replace(ICE + "\r\n", "")
    # aiortc's parser takes session-level credentials as defaults; none are there
    with pytest.raises(OfferError) as err:
        inspect_offer(offer, "send")
    assert err.value.status == 400 and "ICE credentials" in str(err.value)


def _max_bundle(sdp: str) -> str:
    """aiortc's own offer, rewritten the way a max-bundle offerer writes it: every section
    after the first at port 0, with a=bundle-only and no candidates of its own."""
    out: list[str] = []
    section = -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            section += 1
            if section > 0:
                kind, _port, rest = line.split(" ", 2)
                out += [f"{kind} 0 {rest}"]
                out.append("a=bundle-only")
                continue
        if section > 0 and (line.startswith("a=candidate:") or
                            line.startswith("a=end-of-candidates")):
            continue
        out.append(line)
    return "\r\n".join(out) + "\r\n"


@pytest.mark.slow
def test_a_max_bundle_audio_video_offer_publishes(hub, server) -> None:
    async def main() -> None:
        async with server(hub, SMALL) as (http, media):
            pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
            try:
                pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
                pc.addTransceiver(DemoTrack(DemoSource(320, 180, fps=15)),
                                  direction="sendonly")
                await pc.setLocalDescription(await pc.createOffer())
                offer = _max_bundle(pc.localDescription.sdp)
                assert "m=video 0 " in offer and "a=bundle-only" in offer
                r = await http.post("/whip/demo", content=offer, headers={
                    "Content-Type": "application/sdp", "Authorization": "Bearer host-secret"})
                assert r.status_code == 201, r.text
                await pc.setRemoteDescription(RTCSessionDescription(r.text, "answer"))
                pipeline = media.pipelines["demo"]
                for _ in range(300):  # frames decoded from the bundle-only section
                    if pipeline.status == "live" and pipeline.stats()["fps"].get("in", 0) > 0:
                        break
                    await asyncio.sleep(0.05)
                assert pipeline.status == "live", pipeline.stats()
                assert pipeline.stats()["fps"]["in"] > 0, pipeline.stats()
                assert media.publishers["demo"].audio is not None  # the first section
            finally:
                await pc.close()

    asyncio.run(main())


@pytest.mark.parametrize("offer", [
    "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video x UDP/TLS/RTP/SAVPF 96\r\n",
    "v=0\r\nm=video\r\n",
])
def test_a_malformed_offer_names_the_line(offer: str) -> None:
    """It said "malformed SDP offer:" and nothing more, or aiortc's own exception text."""
    with pytest.raises(OfferError) as e:
        inspect_offer(offer, "recv")
    assert e.value.status == 400
    assert re.search(r"malformed SDP offer: line \d+ cannot be read: 'm=video", str(e.value))
