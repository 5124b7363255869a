"""A host's thumbs-up in the published video becomes likes in the room (real hub)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from aiortc import MediaStreamTrack

from arengine.app import create_app, running
from arengine.pipeline import RoomConfig
from arengine.settings import Settings
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
@pytest.mark.parametrize("where", ["thread", "process"])
def test_thumbs_up_makes_a_like_burst(tmp_path: Path, data_dir: Path, where: str) -> None:
    """Either compositor: the gesture crosses back from a compositor process too."""
    img = cv2.imread(str(data_dir / "mediapipe_samples" / "hand_thumb_up.jpg"))
    img = cv2.resize(img, (640, 520))[:480]

    async def main() -> None:
        config = replace(CONFIG, compositor=where)
        app = create_app(Settings(db=str(tmp_path / "rooms.db"), demo=False, room=config))
        async with running(app) as http:
            room, token = await app.state.hub.create_room("gestures", "studio")
            viewer = WhepClient(http, "http://arengine.local/whep/studio")
            await viewer.play()
            host = WhipClient(http, "http://arengine.local/whip/studio")
            await host.publish(StillTrack(img), token)
            for _ in range(150):
                if room.snapshot().likes > 0:
                    break
                await asyncio.sleep(0.1)
            assert room.snapshot().likes == 10  # one burst: held, fired once
            stats = (await http.get("/api/rooms/studio/stats",
                                    headers={"Authorization": f"Bearer {token}"})).json()
            assert stats["frames"]["gesture:thumbs_up"] == 1
            assert stats["stages"]["gestures"]["n"] > 0
            assert stats["compositor"]["where"] == where
            await host.close()
            await viewer.close()

    asyncio.run(main())
