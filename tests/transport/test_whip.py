"""WHIP ingest over a real aiortc peer: protocol, errors, and the processed picture."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from arengine.demo import DemoSource, DemoTrack
from arengine.pipeline import RoomConfig
from arengine.transport.client import WhepClient, WhipClient, WhipError

HOST_AUTH = {"Authorization": "Bearer host-secret"}

SMALL = RoomConfig(demo_size=(640, 360), fps=15, track_hands=False,
                   effects=("lipstick",), stale_after=0.6, reconnect_grace=30.0)
PLUM = "#5B2140"


def _offer_sdp() -> str:
    async def make() -> str:
        from aiortc import RTCPeerConnection

        pc = RTCPeerConnection()
        pc.addTransceiver(DemoTrack(DemoSource(320, 180)), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return str(sdp)

    return asyncio.run(make())


def test_options_advertises_sdp(hub, server) -> None:
    async def main() -> None:
        async with server(hub, SMALL) as (http, _):
            r = await http.options("/whip/demo")
            assert r.status_code == 204
            assert r.headers["accept-post"] == "application/sdp"
            assert "POST" in r.headers["access-control-allow-methods"]
            assert "Authorization" in r.headers["access-control-allow-headers"]

    asyncio.run(main())


@pytest.mark.parametrize(("headers", "body", "status"), [
    ({"Content-Type": "text/plain", "Authorization": "Bearer host-secret"}, "v=0", 415),
    ({"Content-Type": "application/sdp"}, "OFFER", 401),
    ({"Content-Type": "application/sdp", "Authorization": "Bearer wrong"}, "OFFER", 401),
    ({"Content-Type": "application/sdp", "Authorization": "Basic host-secret"}, "OFFER", 401),
    ({"Content-Type": "application/sdp", "Authorization": "Bearer host-secret"},
     "hello", 400),
    ({"Content-Type": "application/sdp", "Authorization": "Bearer host-secret"},
     "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nx", 400),
])
def test_whip_errors(hub, server, headers, body, status) -> None:
    offer = _offer_sdp()
    body = body.replace("OFFER", offer)

    async def main() -> None:
        async with server(hub, SMALL) as (http, media):
            r = await http.post("/whip/demo", content=body, headers=headers)
            assert r.status_code == status, r.text
            assert r.text.strip()
            if status == 401:
                assert r.headers["www-authenticate"].startswith("Bearer")
            # the server keeps serving after a refused offer
            assert (await http.options("/whip/demo")).status_code == 204
            assert not media.publishers

    asyncio.run(main())


def test_whip_422_without_video_or_with_unsupported_codec(hub, server) -> None:
    offer = _offer_sdp()
    audio_only = offer.replace("m=video", "m=audio")
    vp9_only = offer.replace("VP8/90000", "VP9/90000").replace("H264/90000", "VP9/90000")

    async def main() -> None:
        async with server(hub, SMALL) as (http, _):
            h = {"Content-Type": "application/sdp", "Authorization": "Bearer host-secret"}
            r = await http.post("/whip/demo", content=audio_only, headers=h)
            assert r.status_code == 422, r.text
            r = await http.post("/whip/demo", content=vp9_only, headers=h)
            assert r.status_code == 422 and "VP9" in r.text, r.text
            r = await http.post("/whip/nope", content=offer, headers=h)
            assert r.status_code == 404

    asyncio.run(main())


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_publish_play_lipstick_then_second_publisher_409(hub, server, codec,
                                                        lip_distance) -> None:
    async def main() -> None:
        async with server(hub, SMALL, codec) as (http, media):
            host = WhipClient(http, "http://arengine.test/whip/demo")
            await host.publish(DemoTrack(DemoSource(640, 360, fps=15)), "host-secret", codec)
            assert host.location and host.location.startswith("http://arengine.test/whip/demo/")
            assert host.etag

            viewer = WhepClient(http, "http://arengine.test/whep/demo")
            await viewer.play(codec)
            await viewer.wait_frames(45, timeout=60)
            frame = viewer.latest
            assert frame is not None and (frame.width, frame.height) == (640, 360)
            assert media.pipelines["demo"].status == "live"
            assert list(media.pipelines["demo"].encoders) == [codec]

            second = WhipClient(http, "http://arengine.test/whip/demo")
            with pytest.raises(WhipError) as err:
                await second.publish(DemoTrack(DemoSource(320, 180)), "host-secret")
            assert err.value.status == 409

            trickle = {"Content-Type": "application/trickle-ice-sdpfrag"}
            r = await http.patch(host.location, content="a=ice-ufrag:x",
                                 headers={**trickle, **HOST_AUTH})
            assert r.status_code == 405 and r.headers["allow"] == "DELETE, OPTIONS"
            assert "trickle ICE" in r.json()["detail"]
            # Only the host may end the host's session (it was: anyone).
            for auth in ({}, {"Authorization": "Bearer not-the-host"}):
                r = await http.delete(host.location, headers=auth)
                assert r.status_code == 401, r.text
            assert media.pipelines["demo"].status == "live"
            assert "session" not in str((await http.get("/api/rooms/demo/status")).json())

            stages = ("decode", "convert", "track_face", "effect:lipstick", f"encode:{codec}",
                      "send", "server_total")
            for _ in range(300):  # the face model's first run can be slow on a busy machine
                stats = (await http.get("/api/rooms/demo/stats", headers=HOST_AUTH)).json()
                if all(stats["stages"].get(s, {}).get("n", 0) > 0 for s in stages):
                    break
                await asyncio.sleep(0.1)
            for stage in stages:
                assert stats["stages"][stage]["n"] > 0, stage
            assert stats["viewers"] == 1

            source = DemoSource(640, 360).frame_at(0.0)
            before = lip_distance(source, PLUM)
            afters = []
            for _ in range(5):  # a few frames: one may be caught as tracking catches up
                received = (await viewer.wait_frames(3)).to_ndarray(format="bgr24")
                afters.append(lip_distance(received, PLUM))
            hue, full = (float(np.median([a[i] for a in afters])) for i in (0, 1))
            print(f"lip colour distance to the shade (a-b, Lab): source {before[0]:.1f} "
                  f"{before[1]:.1f}, sent {hue:.1f} {full:.1f}")
            assert hue < before[0] - 4, (before, afters)  # the hue moved toward the shade
            assert full < 0.6 * before[1], (before, afters)  # and the colour came close

            await viewer.close()
            await host.close()
            await asyncio.sleep(0.2)
            assert not media.publishers and not media.sessions

    asyncio.run(main())


class ToneTrack:
    """A 440 Hz tone as an aiortc audio track (a host talking, as far as the relay cares)."""

    def __new__(cls) -> object:
        from fractions import Fraction

        import av
        from aiortc.mediastreams import AudioStreamTrack

        class _Tone(AudioStreamTrack):
            async def recv(self) -> av.AudioFrame:
                silence = await super().recv()  # paces at 20 ms
                n = silence.samples
                t = (silence.pts + np.arange(n)) / silence.sample_rate
                pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)[None, :]
                frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
                frame.sample_rate = silence.sample_rate
                frame.pts = silence.pts
                frame.time_base = Fraction(1, silence.sample_rate)
                return frame

        return _Tone()


@pytest.mark.slow
def test_obs_like_offer_h264_with_audio_relayed(hub, server) -> None:
    """OBS sends H.264 video plus Opus audio: video is processed, audio relayed to viewers."""

    async def main() -> None:
        async with server(hub, SMALL) as (http, media):
            viewer = WhepClient(http, "http://arengine.test/whep/demo")
            await viewer.play("vp8", audio=True)
            await viewer.wait_frames(3)
            await asyncio.sleep(0.5)
            assert viewer.audio_frames > 0 and viewer.audio_peak < 50  # silence, no host

            host = WhipClient(http, "http://arengine.test/whip/demo")
            host.pc.addTransceiver(ToneTrack(), direction="sendonly")
            await host.publish(DemoTrack(DemoSource(320, 180, fps=15)), "host-secret", "h264")
            assert "m=audio" in host.pc.remoteDescription.sdp
            for _ in range(100):
                await viewer.wait_frames(1)
                if viewer.latest.width == 320 and viewer.audio_peak > 2000:
                    break
            assert viewer.latest.width == 320
            assert viewer.audio_peak > 2000  # the tone came through
            assert media.publishers["demo"].codec == "video/H264"
            assert media.audio["demo"].live

            await host.close()
            await asyncio.sleep(0.3)
            assert not media.audio["demo"].live
            before = viewer.audio_frames
            await asyncio.sleep(0.5)
            assert viewer.audio_frames > before  # the viewer's audio goes on (silence)
            await viewer.close()

    asyncio.run(main())
