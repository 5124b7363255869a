"""Recordings: the room to mp4/mkv through the API, read back to the end; names that could
escape the folder or overwrite a file are refused; and the feed both recordings and RTMP
use drops whole GOPs when its writer falls behind."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from arengine.app import create_app, running
from arengine.pipeline import RoomConfig
from arengine.settings import Settings
from arengine.transport.encoder import PacketFanout, PacketQueue, VideoEncoder
from arengine.transport.output import EncoderSpec, PcmQueue, WriterThread
from arengine.transport.recording import Feed, MediaClock
from arengine.types import VIDEO_TIME_BASE
from tests.transport.nginx_rtmp import free_port

ROOM = RoomConfig(demo_size=(640, 360), fps=15, track_faces=False, track_hands=False,
                  gestures=False, effects=())


@asynccontextmanager
async def serve(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient,
                                                                        Any,
                                                                        dict[str, str]]]:
    ready: list[Any] = []
    s = Settings(db=str(tmp_path / "rooms.db"), demo_crowd=False, room=ROOM, **settings)
    app = create_app(s, on_ready=ready.append)
    async with running(app) as http:
        yield http, app, {"Authorization": f"Bearer {ready[0].host_token}"}


def read_back(path: Path) -> dict[str, Any]:
    """Every stream of a recording decoded to its end."""
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        audio = c.streams.audio[0]
        info = {"video": video.codec_context.name, "audio": audio.codec_context.name,
                "size": (video.codec_context.width, video.codec_context.height),
                "rate": audio.codec_context.sample_rate,
                "duration": (c.duration or 0) / 1e6}
        frames = samples = 0
        last = 0.0
        for frame in c.decode(video, audio):
            if isinstance(frame, av.VideoFrame):
                frames += 1
                last = max(last, frame.time or 0.0)
            else:
                samples += frame.samples
    return {**info, "frames": frames, "last_frame": last, "audio_s": samples / info["rate"]}


def test_record_mp4_and_mkv_and_read_them_back(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"

    async def main() -> None:
        async with serve(tmp_path, record_dir=str(folder),
                         allow_private_outputs=True) as (http, app, auth):
            made = []
            for name in ("show.mp4", "show.mkv"):
                r = await http.post("/api/rooms/demo/outputs", headers=auth,
                                    json={"kind": "record", "file": name,
                                          "bitrate_kbps": 1000})
                assert r.status_code == 201, r.text
                assert r.json()["file"] == name
                made.append(r.json()["id"])
            # an RTMP push with the same settings shares their encoder (its far end is down)
            r = await http.post("/api/rooms/demo/outputs", headers=auth, json={
                "kind": "rtmp", "url": f"rtmp://127.0.0.1:{free_port()}/live/k",
                "bitrate_kbps": 1000})
            assert r.status_code == 201, r.text
            await asyncio.sleep(4.0)
            assert len(app.state.media.pipelines["demo"].encoders) == 1
            listed = (await http.get("/api/rooms/demo/outputs", headers=auth)).json()
            for o in listed["outputs"]:
                if o["kind"] == "record":
                    assert o["state"] == "live" and o["bytes"] > 20_000, o
                    assert 12 <= o["fps"] <= 18 and o["dropped"] == 0, o
            for oid in made:
                r = await http.delete(f"/api/rooms/demo/outputs/{oid}", headers=auth)
                assert r.status_code == 200

    asyncio.run(main())
    for name in ("show.mp4", "show.mkv"):
        got = read_back(folder / name)
        print(name, got)
        assert (got["video"], got["audio"], got["size"], got["rate"]) == \
            ("h264", "aac", (640, 360), 48000)
        assert 3.0 <= got["duration"] <= 6.0
        assert abs(got["frames"] - 15 * got["duration"]) <= 0.15 * 15 * got["duration"]
        assert got["last_frame"] >= got["duration"] - 0.5  # plays to its end
        assert abs(got["audio_s"] - got["duration"]) < 0.5


@pytest.mark.parametrize(("name", "words"), [
    ("../escape.mp4", "plain file name"),
    ("sub/dir.mp4", "plain file name"),
    ("back\\slash.mkv", "plain file name"),
    (".hidden.mp4", "start with a dot"),
    ("show.avi", ".mp4 or .mkv"),
    (".mp4", "start with a dot"),
    ("x" * 97 + ".mp4", "1 to 100 characters"),
    ("bell\x07.mp4", "control characters"),
    ("taken.mp4", "exists already"),
])
def test_bad_names_are_refused(tmp_path: Path, name: str, words: str) -> None:
    folder = tmp_path / "recordings"
    folder.mkdir()
    (folder / "taken.mp4").write_bytes(b"keep me")

    async def main() -> None:
        async with serve(tmp_path, record_dir=str(folder)) as (http, _, auth):
            r = await http.post("/api/rooms/demo/outputs", headers=auth,
                                json={"kind": "record", "file": name})
            assert r.status_code == 422 and words in r.json()["detail"], r.text

    asyncio.run(main())
    assert (folder / "taken.mp4").read_bytes() == b"keep me"
    assert sorted(p.name for p in folder.iterdir()) == ["taken.mp4"]
    assert not (tmp_path / "escape.mp4").exists()


def test_recording_is_off_without_a_record_dir(tmp_path: Path) -> None:
    async def main() -> None:
        async with serve(tmp_path) as (http, _, auth):
            r = await http.post("/api/rooms/demo/outputs", headers=auth,
                                json={"kind": "record", "file": "show.mp4"})
            assert r.status_code == 409  # a well-formed request this server cannot serve
            assert r.json()["detail"] == ("recording is off on this server; start it with "
                                          "--record-dir")

    asyncio.run(main())


class Source:
    """A room of 30 fps H.264 (keyframes every 1 s) and 20 ms PCM frames."""

    room = "r"
    size = (64, 64)
    fps = 30

    def __init__(self) -> None:
        self.fanout = PacketFanout("h264")
        self.pcm: set[PcmQueue] = set()
        self.late = 0.0  # how far behind its schedule the encoder loop ever fell (s)

    def video(self, spec: EncoderSpec) -> PacketQueue:
        return self.fanout.subscribe()

    def release_video(self, q: PacketQueue) -> None:
        self.fanout.unsubscribe(q)

    def audio_pcm(self) -> PcmQueue:
        q = PcmQueue()
        self.pcm.add(q)
        return q

    def release_audio_pcm(self, q: PcmQueue) -> None:
        self.pcm.discard(q)

    async def run(self, seconds: float) -> None:
        enc = VideoEncoder("h264", 300_000, 30, 1.0, "main")
        start = time.monotonic()
        for i in range(int(seconds * 30)):
            img = np.full((64, 64, 3), i % 250, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts, frame.time_base = i * 3000, VIDEO_TIME_BASE
            self.fanout.publish(enc.encode(frame, self.fanout.take_keyframe_request()))
            if i % 3 == 0:
                for _ in range(2):  # ~20 ms of audio per 20 ms
                    pcm = np.zeros((1, 1920), np.int16)
                    a = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
                    a.sample_rate = 48000
                    for q in list(self.pcm):
                        q.push(a)
            due = start + (i + 1) / 30
            self.late = max(self.late, time.monotonic() - due)
            await asyncio.sleep(max(0.0, due - time.monotonic()))


def test_a_slow_writer_drops_whole_gops_and_never_holds_the_room() -> None:
    written: list[tuple[int, bool]] = []
    slow = threading.Event()
    slow.set()

    def write(item: tuple[Any, ...]) -> None:
        if item[0] == "v":
            written.append((item[2], item[3]))
            if slow.is_set():
                time.sleep(0.08)  # a far end at a third of the frame rate

    async def main() -> Feed:
        source = Source()
        writer = WriterThread("slow", write, lambda e: None, max_items=20)
        feed = Feed(source, EncoderSpec("h264", 300_000, 30, 1.0, "main"))
        runner = asyncio.create_task(source.run(6.0))
        loop_start = time.monotonic()
        while not runner.done():
            await feed.step(writer)
            if time.monotonic() - loop_start > 3.0:
                slow.clear()  # the far end catches up
        feed.close()
        writer.close()
        assert source.late < 0.1, source.late  # the encoder kept its schedule
        return feed

    feed = asyncio.run(main())
    ticks = [t for t, _ in written]
    assert ticks == sorted(ticks) and len(set(ticks)) == len(ticks)  # strictly rising
    assert written[0][1]  # starts with a keyframe
    gaps = [i for i in range(1, len(ticks)) if ticks[i] - ticks[i - 1] > 3000 * 1.5]
    print(f"written {len(written)}, dropped {feed.dropped}, gaps {len(gaps)}, keyframes "
          f"{sum(k for _, k in written)}")
    assert feed.dropped > 20 and gaps
    assert all(written[i][1] for i in gaps)  # after every gap, a keyframe first
    assert len(written) + feed.dropped >= 150  # every frame accounted for (6 s at 30 fps)


def test_one_clock_for_video_and_audio() -> None:
    clock = MediaClock()
    assert clock.audio(960, 10.0) is None  # no audio before the first keyframe
    assert clock.video(5.0, 10.0) == 0
    assert clock.video(5.0 + 1 / 30, 10.03) == 3000
    assert clock.video(5.0 + 1 / 30, 10.04) == 3090  # never the same tick twice
    # 60 ms of audio that began 10 ms before the keyframe: its first 20 ms frame goes
    assert clock.audio(3 * 960, 10.05) == (480, 1)
    assert clock.audio(960, 10.07) == (2400, 0)  # continuous
    assert clock.video(9.0, 10.1) == 9000  # a jump in pts: back onto the wall clock
    nxt, _ = clock.audio(960, 11.0) or (0, 0)  # frames were lost: onto the wall clock
    assert nxt == round(1.0 * 48000) - 960
