"""A host's thumbs-up in the published video becomes likes in the room (real hub)."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from pathlib import Path

import av
import cv2
import httpx
import numpy as np
import pytest
from aiortc import MediaStreamTrack

from arengine.interaction.hub import RoomHub
from arengine.pipeline import RoomConfig
from arengine.server import MediaServer, build_app
from arengine.transport.client import WhepClient, WhipClient

CONFIG = RoomConfig(demo_size=(320, 180), fps=15, track_faces=False, effects=(),
                    hand_interval=0.05)


class StillTrack(MediaStreamTrack):
    """One picture, 15 times a second, as a camera would send it."""

    kind = "video"

    def __init__(self, image: np.ndarray) -> None:
        super().__init__()
        self.image = image
        self.index = 0

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(1 / 15)
        frame = av.VideoFrame.from_ndarray(self.image, format="bgr24")
        frame.pts = self.index * 6000
        frame.time_base = Fraction(1, 90000)
        self.index += 1
        return frame


@pytest.mark.slow
def test_thumbs_up_makes_a_like_burst(tmp_path: Path, data_dir: Path) -> None:
    img = cv2.imread(str(data_dir / "mediapipe_samples" / "hand_thumb_up.jpg"))
    img = cv2.resize(img, (640, 520))[:480]

    async def main() -> None:
        hub = RoomHub.open(tmp_path / "rooms.db")
        room, token = await hub.create_room("gestures", "studio")
        media = MediaServer(hub, CONFIG)
        app = build_app(hub, media)
        await media.start()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://arengine.test") as http:
                viewer = WhepClient(http, "http://arengine.test/whep/studio")
                await viewer.play()
                host = WhipClient(http, "http://arengine.test/whip/studio")
                await host.publish(StillTrack(img), token)
                for _ in range(150):
                    if room.snapshot().likes > 0:
                        break
                    await asyncio.sleep(0.1)
                assert room.snapshot().likes == 10  # one burst: held, fired once
                stats = (await http.get("/api/rooms/studio/stats")).json()
                assert stats["frames"]["gesture:thumbs_up"] == 1
                assert stats["stages"]["gestures"]["n"] > 0
                await host.close()
                await viewer.close()
        finally:
            await media.close()
            await hub.close()

    asyncio.run(main())
