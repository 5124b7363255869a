"""WHEP egress over real aiortc peers: protocol, errors, events on the data channel."""

from __future__ import annotations

import asyncio
import json

import pytest

from arengine.pipeline import RoomConfig
from arengine.transport.client import WhepClient, WhipError
from arengine.transport.whep import choose_codec

FAST = RoomConfig(demo_size=(320, 180), fps=15, track_faces=False, track_hands=False,
                  effects=("product",))
URL = "http://arengine.test"


def _recv_offer(direction: str = "recvonly") -> str:
    async def make() -> str:
        from aiortc import RTCPeerConnection

        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction=direction)
        await pc.setLocalDescription(await pc.createOffer())
        sdp = str(pc.localDescription.sdp)
        await pc.close()
        return sdp

    return asyncio.run(make())


def test_choose_codec() -> None:
    assert choose_codec(("VP8", "H264"), "h264") == "h264"
    assert choose_codec(("H264",), "vp8") == "h264"
    with pytest.raises(ValueError):
        choose_codec((), "vp8")


def test_whep_errors(hub, server) -> None:
    offer = _recv_offer()
    sendonly = offer.replace("a=recvonly", "a=sendonly")

    async def main() -> None:
        async with server(hub, FAST) as (http, media):
            sdp = {"Content-Type": "application/sdp"}
            assert (await http.post("/whep/demo", content=offer,
                                    headers={"Content-Type": "text/plain"})).status_code == 415
            assert (await http.post("/whep/nope", content=offer, headers=sdp)).status_code == 404
            assert (await http.post("/whep/demo", content="garbage",
                                    headers=sdp)).status_code == 400
            r = await http.post("/whep/demo", content=sendonly, headers=sdp)
            assert r.status_code == 422, r.text
            r = await http.options("/whep/demo")
            assert r.status_code == 204 and r.headers["accept-post"] == "application/sdp"
            assert (await http.delete("/whep/demo/unknown")).status_code == 404
            assert not media.sessions

    asyncio.run(main())


@pytest.mark.slow
def test_viewer_gets_frames_and_product_regions(hub, server) -> None:
    async def main() -> None:
        async with server(hub, FAST) as (http, media):
            await media.hub.get("demo").set_product(
                "Velvet Plum Lipstick", "$19.90", "https://shop.example/lip-01", "lip-01")
            viewer = WhepClient(http, f"{URL}/whep/demo")
            await viewer.play("h264")
            assert viewer.location and viewer.etag
            frame = await viewer.wait_frames(10)
            assert (frame.width, frame.height) == (320, 180)
            for _ in range(40):
                if any(json.loads(e).get("regions") for e in viewer.events):
                    break
                await asyncio.sleep(0.1)
            events = [json.loads(e) for e in viewer.events]
            assert events and events[-1]["type"] == "media"
            assert events[-1]["status"] == "demo"
            region = next(e for e in events if e["regions"])["regions"][0]
            assert region["id"] == "lip-01"
            assert 0 <= region["x"] < 1 and 0 < region["w"] <= 1
            r = (await http.get("/api/rooms/demo/regions")).json()
            assert r["size"] == [320, 180] and r["regions"][0]["id"] == "lip-01"
            r = await http.patch(viewer.location, content="x")
            assert r.status_code == 405
            await viewer.close()
            await asyncio.sleep(0.1)
            assert not media.sessions and not media.pipelines["demo"].encoders
            with pytest.raises(WhipError):
                bad = WhepClient(http, f"{URL}/whep/none")
                await bad.play()

    asyncio.run(main())


@pytest.mark.slow
@pytest.mark.parametrize("room_codec", ["h264", "vp8"])
def test_answer_names_only_the_shared_codec(hub, server, room_codec) -> None:
    """A viewer offering both codecs gets an answer with just the room's codec.

    Browsers list several codecs (Chrome VP8 first, Safari H.264 first); an answer that
    kept the viewer's first one would label the shared packets with the wrong codec.
    """

    async def main() -> None:
        async with server(hub, FAST, room_codec) as (http, _):
            viewer = WhepClient(http, f"{URL}/whep/demo")
            await viewer.play(codec=None, data_channel=False)  # offers VP8 and H.264
            video = viewer.pc.remoteDescription.sdp.split("m=video", 1)[1].split("m=", 1)[0]
            names = {line.split()[1].split("/")[0] for line in video.splitlines()
                     if line.startswith("a=rtpmap:")}
            assert names == {room_codec.upper(), "rtx"}, names
            frame = await viewer.wait_frames(5)
            assert frame.width == 320
            await viewer.close()

    asyncio.run(main())
