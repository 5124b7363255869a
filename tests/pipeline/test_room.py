"""The room pipeline end to end over WebRTC: switching inputs, many viewers, failures."""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import replace

import numpy as np
import pytest

from arengine.demo import DemoSource, DemoTrack
from arengine.effects import Effect
from arengine.pipeline import EffectChain, RoomConfig
from arengine.pipeline.room import Timeline
from arengine.pipeline.slot import LatestSlot
from arengine.transport.client import WhepClient, WhipClient
from arengine.types import Scene

HOST_AUTH = {"Authorization": "Bearer host-secret"}

FAST = RoomConfig(demo_size=(320, 180), fps=15, track_faces=False, track_hands=False,
                  effects=(), stale_after=0.5, reconnect_grace=30.0)
URL = "http://arengine.test"


def test_latest_slot_keeps_only_newest() -> None:
    async def main() -> None:
        slot: LatestSlot[int] = LatestSlot()
        for i in range(5):
            slot.put(i)
        assert await slot.get() == 4
        assert slot.dropped == 4

    asyncio.run(main())


def test_timeline_rises_across_switches() -> None:
    tl = Timeline(30)
    a = [tl.map(1, t) for t in (10.0, 10.033, 10.066)]
    b = [tl.map(2, t) for t in (0.0, 0.033)]  # the new source starts its clock at 0
    c = [tl.map(3, None) for _ in range(3)]  # slate frames have no pts
    seq = a + b + c
    assert all(y > x for x, y in itertools.pairwise(seq))
    assert a[1] - a[0] == pytest.approx(0.033 * 90000, abs=2)
    d = [tl.map(4, t) for t in (100.0, 100.05, 5000.0, 5000.05, 20.0, 20.05)]  # leaps
    assert all(y > x for x, y in itertools.pairwise(d))
    assert max(np.diff(d)) < 0.2 * 90000  # no leap reaches the output clock


@pytest.mark.slow
def test_host_leaves_viewers_stay_and_see_slate_then_live_again(hub, server) -> None:
    async def main() -> None:
        async with server(hub, FAST) as (http, media):
            viewer = WhepClient(http, f"{URL}/whep/demo")
            await viewer.play()
            await viewer.wait_frames(5)
            pipeline = media.pipelines["demo"]
            assert pipeline.status == "demo"

            host = WhipClient(http, f"{URL}/whip/demo")
            await host.publish(DemoTrack(DemoSource(640, 360, fps=15)), "host-secret")
            frame = await viewer.wait_frames(20)
            for _ in range(50):
                if (viewer.latest.width, viewer.latest.height) == (640, 360):
                    break
                await viewer.wait_frames(1)
            assert pipeline.status == "live"
            assert (viewer.latest.width, viewer.latest.height) == (640, 360)

            await host.close()  # DELETE: the host is gone, the viewer stays
            await asyncio.sleep(0.3)
            assert pipeline.status == "reconnecting"
            frame = await viewer.wait_frames(5)
            slate = frame.to_ndarray(format="bgr24")
            assert slate.mean() < 100  # dimmed last picture with a message
            assert len(media.viewers("demo")) == 1

            host2 = WhipClient(http, f"{URL}/whip/demo")
            await host2.publish(DemoTrack(DemoSource(480, 270, fps=15)), "host-secret")
            for _ in range(100):
                await viewer.wait_frames(1)
                if (viewer.latest.width, viewer.latest.height) == (480, 270):
                    break
            assert (viewer.latest.width, viewer.latest.height) == (480, 270)
            assert pipeline.status == "live"
            assert pipeline.encoders["vp8"].encoder.reopened >= 2  # sizes changed, no restart
            await host2.close()
            await viewer.close()

    asyncio.run(main())


@pytest.mark.slow
def test_a_virtual_host_keeps_moving_while_the_host_reconnects(hub, server) -> None:
    """Never a dead screen: the slate a viewer gets while the host reconnects still shows
    the character idling (it was one still picture)."""
    config = replace(FAST, effects=("virtual_host",), track_hands=False)

    async def main() -> None:
        async with server(hub, config) as (http, media):
            await media.hub.get("demo").set_effects({"virtual_host": {
                "enabled": True, "settings": {"mode": "replace", "background": "studio"}}})
            viewer = WhepClient(http, f"{URL}/whep/demo")
            await viewer.play()
            host = WhipClient(http, f"{URL}/whip/demo")
            await host.publish(DemoTrack(DemoSource(640, 360, fps=15)), "host-secret")
            pipeline = media.pipelines["demo"]
            for _ in range(100):
                await viewer.wait_frames(1)
                if pipeline.status == "live":
                    break
            await viewer.wait_frames(10)
            await host.close()
            await asyncio.sleep(0.3)
            assert pipeline.status == "reconnecting"
            pictures = []
            for _ in range(4):
                await asyncio.sleep(0.6)  # breathing and blinks take a while
                pictures.append((await viewer.wait_frames(1)).to_ndarray(format="bgr24"))
            moved = [float(np.abs(a.astype(int) - b).mean())
                     for a, b in itertools.pairwise(pictures)]
            print("mean change between pictures of the slate:", moved)
            assert max(moved) > 0.5, moved  # not one still picture (still: ~0.02)
            assert pictures[-1].mean() > 60  # the studio, not a dimmed slate
            await viewer.close()

    asyncio.run(main())


@pytest.mark.slow
def test_ten_viewers_share_one_encoder(hub, server) -> None:
    async def main() -> None:
        async with server(hub, FAST) as (http, media):
            viewers = [WhepClient(http, f"{URL}/whep/demo") for _ in range(10)]
            for v in viewers:
                await v.play("vp8")
            await asyncio.gather(*(v.wait_frames(10, timeout=60) for v in viewers))
            pipeline = media.pipelines["demo"]
            assert list(pipeline.encoders) == ["vp8"]
            enc = pipeline.encoders["vp8"]
            assert len(enc.fanout) == 10
            stats = (await http.get("/api/rooms/demo/stats", headers=HOST_AUTH)).json()
            assert stats["viewers"] == 10
            # one encode per frame, whatever the number of viewers
            encoded = stats["stages"]["encode:vp8"]["n"]
            assert encoded <= stats["frames"]["processed"]
            # ten new viewers asked for keyframes; the rate limit made far fewer
            assert enc.fanout.keyframe_requests >= 10
            assert enc.fanout.keyframes_forced < enc.fanout.keyframe_requests
            h264 = WhepClient(http, f"{URL}/whep/demo")
            await h264.play("h264")
            await h264.wait_frames(5)
            assert sorted(pipeline.encoders) == ["h264", "vp8"]
            await h264.close()
            await asyncio.sleep(0.1)
            assert list(pipeline.encoders) == ["vp8"]
            for v in viewers:
                await v.close()
            await asyncio.sleep(0.1)
            assert not pipeline.encoders

    asyncio.run(main())


class _Boom(Effect):
    """Paints the frame, then fails every other frame half way through."""

    def __init__(self) -> None:
        self.calls = 0

    def apply(self, frame: np.ndarray, scene: Scene) -> np.ndarray:
        self.calls += 1
        frame[:] = (0, 255, 0)
        if self.calls % 2 == 0:
            raise RuntimeError("boom")
        return frame


@pytest.mark.slow
def test_effect_exception_sends_frame_without_it(hub, server, caplog) -> None:
    caplog.set_level(logging.ERROR)

    async def main() -> None:
        async with server(hub, FAST) as (http, media):
            pipeline = await media.pipeline("demo")
            boom = _Boom()
            pipeline.effects = EffectChain(effects={"boom": boom})
            viewer = WhepClient(http, f"{URL}/whep/demo")
            greens, plain = 0, 0

            def on_frame(f) -> None:
                nonlocal greens, plain
                img = f.to_ndarray(format="bgr24")
                g = img[..., 1].mean() > 200 and img[..., 2].mean() < 60
                greens += g
                plain += not g

            await viewer.play(on_frame=on_frame)
            await viewer.wait_frames(30, timeout=60)
            stats = (await http.get("/api/rooms/demo/stats", headers=HOST_AUTH)).json()
            assert stats["errors"]["effect:boom"] >= 5
            assert greens >= 5 and plain >= 5  # failed frames went out, without the effect
            assert "effect:boom failed" in caplog.text
            await viewer.close()

    asyncio.run(main())


class _SizeSwitchTrack:
    """Demo frames at one size, then another, in one WHIP session (a camera renegotiating)."""

    def __new__(cls, first: tuple[int, int], second: tuple[int, int], after: int) -> object:
        from aiortc import MediaStreamTrack

        sources = (DemoSource(*first, fps=15), DemoSource(*second, fps=15))

        class _Track(MediaStreamTrack):
            kind = "video"

            def __init__(self) -> None:
                super().__init__()
                self.index = 0

            async def recv(self):
                await asyncio.sleep(1 / 15)
                src = sources[0] if self.index < after else sources[1]
                frame = src.frame(self.index).to_av()
                self.index += 1
                return frame

        return _Track()


@pytest.mark.slow
def test_resolution_change_mid_stream(hub, server) -> None:
    config = RoomConfig(demo_size=(320, 180), fps=15, track_hands=False, effects=("lipstick",))

    async def main() -> None:
        async with server(hub, config) as (http, media):
            viewer = WhepClient(http, f"{URL}/whep/demo")
            sizes: set[tuple[int, int]] = set()
            await viewer.play(on_frame=lambda f: sizes.add((f.width, f.height)))
            host = WhipClient(http, f"{URL}/whip/demo")
            await host.publish(_SizeSwitchTrack((640, 360), (480, 270), 30), "host-secret")
            for _ in range(200):
                if (480, 270) in sizes:
                    break
                await viewer.wait_frames(1, timeout=30)
            assert {(640, 360), (480, 270)} <= sizes
            await viewer.wait_frames(10)
            pipeline = media.pipelines["demo"]
            assert pipeline.status == "live" and pipeline.size == (480, 270)
            assert len(media.viewers("demo")) == 1  # the same session throughout
            await host.close()
            await viewer.close()

    asyncio.run(main())
