"""RTMP(S) push against a real nginx-rtmp: the stream arrives (size, rate, AAC, lipstick),
nginx makes HLS of it, the push survives nginx being killed, RTMPS checks certificates,
and the stream key never shows; and against FFmpeg's own RTMP server, a second one."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from arengine.app import create_app, running
from arengine.catalog import default_catalog
from arengine.demo import DemoSource
from arengine.pipeline import RoomConfig
from arengine.settings import Settings
from arengine.transport import rtmp
from arengine.transport.rtmp import amf_decode, amf_encode, parse_target
from tests.transport.nginx_rtmp import free_port, make_tls, nginx_rtmp

KEY = "live_4711_s3cr3tStreamKey"
SHADE = "velvet-ruby"
# Face tracking and the lipstick on: the pulled frames must show the shade.
LIPS_ROOM = RoomConfig(demo_size=(640, 360), fps=15, track_hands=False, gestures=False,
                       effects=("lipstick",))
# Nothing to track: for tests about the connection, not the picture.
PLAIN_ROOM = RoomConfig(demo_size=(320, 180), fps=15, track_faces=False, track_hands=False,
                        gestures=False, effects=())


@dataclass
class Server:
    http: httpx.AsyncClient
    app: Any
    auth: dict[str, str]
    answers: list[str]  # every API answer's text, to look for the key in

    async def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        r = await self.http.request(method, path, headers=self.auth, **kw)
        self.answers.append(r.text)
        return r

    async def push(self, body: dict[str, Any]) -> dict[str, Any]:
        r = await self.call("POST", "/api/rooms/demo/outputs", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def output(self, output_id: str) -> dict[str, Any]:
        r = await self.call("GET", "/api/rooms/demo/outputs")
        return next(o for o in r.json()["outputs"] if o["id"] == output_id)

    async def wait(self, output_id: str, ok: Callable[[dict[str, Any]], bool],
                   timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            o = await self.output(output_id)
            if ok(o):
                return o
            if time.monotonic() > deadline:
                pytest.fail(f"{what} within {timeout} s: {o}")
            await asyncio.sleep(0.2)


@asynccontextmanager
async def serve(tmp_path: Path, room: RoomConfig = PLAIN_ROOM,
                **settings: Any) -> AsyncIterator[Server]:
    ready: list[Any] = []
    given = {"allow_private_outputs": True, "demo_shade": SHADE, **settings}
    s = Settings(db=str(tmp_path / "rooms.db"), demo_crowd=False, room=room, **given)
    app = create_app(s, on_ready=ready.append)
    async with running(app) as http:
        yield Server(http, app, {"Authorization": f"Bearer {ready[0].host_token}"}, [])


@dataclass
class Pulled:
    size: tuple[int, int]
    fps: float
    frames: int
    images: list[np.ndarray]
    audio: tuple[str, int, int] | None  # codec, rate, channels
    av_gap: float  # between the last audio and video times read (s)


def pull(url: str, frames: int = 45, keep: int = 3) -> Pulled:
    """Read ``frames`` video frames of a live stream back from nginx, as a player would."""
    with av.open(url, timeout=(15.0, 5.0)) as c:
        video = c.streams.video[0]
        audio = None
        if c.streams.audio:
            a = c.streams.audio[0].codec_context
            audio = (a.name, a.sample_rate, a.channels)
        times: list[float] = []
        images: list[np.ndarray] = []
        last_audio = 0.0
        for packet in c.demux():
            if packet.stream.type == "audio":
                if packet.pts is not None:
                    last_audio = float(packet.pts * packet.time_base)
                continue
            for f in packet.decode():
                assert f.time is not None
                times.append(f.time)
                if len(times) > frames - keep:
                    images.append(f.to_ndarray(format="bgr24"))
            if len(times) >= frames:
                break
        size = (video.codec_context.width, video.codec_context.height)
    fps = (len(times) - 1) / (times[-1] - times[0])
    return Pulled(size, fps, len(times), images, audio, abs(times[-1] - last_audio))


def hls_latency(playlists: list[Path]) -> tuple[int, float]:
    """Segments in nginx's playlist, and the live-edge delay of a player that starts three
    segments back (as hls.js and Safari do): their duration plus the newest one's age."""
    text = playlists[0].read_text()
    durations = [float(d) for d in re.findall(r"#EXTINF:([0-9.]+)", text)]
    names = [line for line in text.splitlines() if line and not line.startswith("#")]
    newest = playlists[0].parent / names[-1]
    age = time.time() - newest.stat().st_mtime
    return len(durations), sum(durations[-3:]) + age


def test_push_reaches_nginx_survives_a_restart_and_hides_the_key(
        tmp_path: Path, lip_distance: Callable[[np.ndarray, str], tuple[float, float]],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    shade = default_catalog().get(SHADE).hex

    async def main() -> None:
        with nginx_rtmp(tmp_path / "nginx") as nginx:
            async with serve(tmp_path, LIPS_ROOM) as server:
                made = await server.push({"kind": "rtmp", "bitrate_kbps": 1500,
                                          "url": f"rtmp://127.0.0.1:{nginx.port}/live",
                                          "stream_key": KEY})
                oid = made["id"]
                assert made["target"] == f"rtmp://127.0.0.1:{nginx.port}/live/***"
                await server.wait(oid, lambda o: o["state"] == "live", 20, "live")
                await asyncio.sleep(2.0)  # the tracker locks on, the shade fades in
                got = await asyncio.to_thread(pull, nginx.url(KEY))
                print(f"pulled {got.size[0]}x{got.size[1]} at {got.fps:.1f} fps, audio "
                      f"{got.audio}, audio-video gap {got.av_gap * 1000:.0f} ms")
                assert got.size == (640, 360)
                assert 13.0 <= got.fps <= 17.0
                assert got.audio == ("aac", 48000, 2)
                assert got.av_gap < 0.2
                before = [lip_distance(DemoSource(640, 360).frame_at(t), shade)
                          for t in (1.0, 2.0, 3.0)]
                after = [lip_distance(image, shade) for image in got.images]
                b_hue, b_full = (float(np.median([d[i] for d in before])) for i in (0, 1))
                a_hue, a_full = (float(np.median([d[i] for d in after])) for i in (0, 1))
                print(f"lip colour distance to {SHADE} (a-b, Lab): demo face {b_hue:.1f} "
                      f"{b_full:.1f}, pulled {a_hue:.1f} {a_full:.1f}")
                assert a_hue < b_hue - 4 and a_full < 0.6 * b_full

                deadline = time.monotonic() + 15
                while not nginx.playlists() or hls_latency(nginx.playlists())[0] < 2:
                    assert time.monotonic() < deadline, "no HLS playlist with segments"
                    await asyncio.sleep(0.3)
                segments, latency = hls_latency(nginx.playlists())
                print(f"HLS: {segments} segments, live-edge latency {latency:.1f} s")

                nginx.kill()
                o = await server.wait(oid, lambda o: o["state"] == "reconnecting", 10,
                                      "reconnecting after nginx was killed")
                print("nginx killed:", o["last_error"])
                assert o["last_error"] and "127.0.0.1" in o["last_error"], o
                await asyncio.sleep(1.0)
                restarted = time.monotonic()
                nginx.start()
                o = await server.wait(oid, lambda o: o["state"] == "live", 20,
                                      "live again after nginx came back")
                print(f"live again {time.monotonic() - restarted:.1f} s after nginx "
                      f"restarted; reconnects {o['reconnects']}: {o['last_error']}")
                assert o["reconnects"] >= 1
                again = await asyncio.to_thread(pull, nginx.url(KEY), 15, 1)
                assert again.size == (640, 360) and again.frames == 15
                stats = await server.call("GET", "/api/rooms/demo/stats")
                assert any(s["id"] == oid for s in stats.json()["outputs"])
                r = await server.call("DELETE", f"/api/rooms/demo/outputs/{oid}")
                assert r.status_code == 200
        for text in [*server.answers, caplog.text]:
            assert KEY not in text and "s3cr3t" not in text

    asyncio.run(main())


def test_push_reaches_ffmpegs_own_rtmp_server(
        tmp_path: Path, lip_distance: Callable[[np.ndarray, str], tuple[float, float]]) -> None:
    """A second RTMP server, written apart from nginx-rtmp: FFmpeg's (libavformat's listen
    mode), with its own handshake, chunk sizes and command replies. It takes the publish
    and writes what arrives to a file, which must be the room's picture and sound."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        message = "ffmpeg not found: apt-get install ffmpeg"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    port, got_file = free_port(), tmp_path / "got.flv"
    server_proc = subprocess.Popen(
        [ffmpeg, "-hide_banner", "-loglevel", "warning", "-listen", "1", "-timeout", "40",
         "-i", f"rtmp://127.0.0.1:{port}/live/{KEY}", "-t", "6", "-c", "copy", "-y",
         str(got_file)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    shade = default_catalog().get(SHADE).hex

    async def main() -> None:
        async with serve(tmp_path, LIPS_ROOM) as server:
            await asyncio.sleep(0.5)  # ffmpeg listening (the output retries if not yet)
            made = await server.push({"kind": "rtmp", "bitrate_kbps": 1500,
                                      "url": f"rtmp://127.0.0.1:{port}/live",
                                      "stream_key": KEY})
            await server.wait(made["id"], lambda o: o["state"] == "live", 20, "live")
            await asyncio.to_thread(server_proc.wait, 40)  # 6 s of stream, then it exits

    try:
        asyncio.run(main())
        _, errors = server_proc.communicate(timeout=10)
    finally:
        if server_proc.poll() is None:
            server_proc.kill()
            server_proc.wait(10)
    assert server_proc.returncode == 0, errors
    got = pull(str(got_file), frames=75)  # the last frames kept, 5 s in: the shade is on
    print(f"ffmpeg's server got {got.size[0]}x{got.size[1]} at {got.fps:.1f} fps, audio "
          f"{got.audio}; its warnings: {errors.strip()[:300]!r}")
    assert got.size == (640, 360) and 13.0 <= got.fps <= 17.0, got
    assert got.audio == ("aac", 48000, 2) and got.frames == 75
    before = [lip_distance(DemoSource(640, 360).frame_at(t), shade) for t in (1.0, 2.0, 3.0)]
    after = [lip_distance(image, shade) for image in got.images]
    b_hue = float(np.median([d[0] for d in before]))
    a_hue = float(np.median([d[0] for d in after]))
    assert a_hue < b_hue - 4, (a_hue, b_hue)


def test_rtmps_checks_the_certificate(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")

    async def main() -> None:
        with nginx_rtmp(tmp_path / "nginx", tls) as nginx:
            async with serve(tmp_path) as server:
                untrusted = await server.push({"kind": "rtmp",
                                               "url": nginx.rtmps_url(KEY)})
                o = await server.wait(untrusted["id"], lambda o: o["last_error"], 10,
                                      "a certificate error")
                print("without the CA:", o["last_error"])
                assert o["state"] == "reconnecting" and o["frames"] == 0
                assert "certificate" in o["last_error"] and "not accepted" in o["last_error"]
                assert "issuer" in o["last_error"]
                await server.call("DELETE", f"/api/rooms/demo/outputs/{untrusted['id']}")

                media = server.app.state.media
                media.output_policy = replace(media.output_policy,
                                              rtmps_ca_file=str(tls.ca))
                by_ip = await server.push({"kind": "rtmp",
                                           "url": nginx.rtmps_url(KEY, "127.0.0.1")})
                trusted = await server.push({"kind": "rtmp", "url": nginx.rtmps_url(KEY)})
                await server.wait(trusted["id"], lambda o: o["state"] == "live", 15,
                                  "live over RTMPS with the test CA")
                got = await asyncio.to_thread(pull, nginx.url(KEY), 15, 1)
                assert got.size == (320, 180) and got.audio == ("aac", 48000, 2)
                o = await server.wait(by_ip["id"], lambda o: o["last_error"], 10,
                                      "a host name error")
                print("by IP address:", o["last_error"])
                assert o["frames"] == 0 and "mismatch" in o["last_error"]

    asyncio.run(main())


def test_output_flag_pushes_the_demo_room_from_the_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        with nginx_rtmp(tmp_path / "nginx") as nginx:
            async with serve(tmp_path, outputs=(nginx.url(KEY),)) as server:
                r = await server.call("GET", "/api/rooms/demo/outputs")
                (made,) = r.json()["outputs"]
                assert made["kind"] == "rtmp" and made["target"].endswith("/live/***")
                await server.wait(made["id"], lambda o: o["state"] == "live", 20, "live")
                got = await asyncio.to_thread(pull, nginx.url(KEY), 15, 1)
                assert got.size == (320, 180)
                await server.call("GET", "/api/rooms/demo/stats")
        for text in [*server.answers, caplog.text]:
            assert KEY not in text

    asyncio.run(main())


def test_private_targets_are_refused_unless_allowed(tmp_path: Path) -> None:
    async def main() -> None:
        async with serve(tmp_path, allow_private_outputs=False) as server:
            for url in (f"rtmp://127.0.0.1/live/{KEY}", f"rtmps://localhost/live/{KEY}",
                        f"rtmp://10.0.0.8:1935/app/{KEY}"):
                r = await server.call("POST", "/api/rooms/demo/outputs",
                                      json={"kind": "rtmp", "url": url})
                assert r.status_code == 422, r.text
                assert "private or local address" in r.json()["detail"]
                assert KEY not in r.text

    asyncio.run(main())


BAD_BODIES = [
    ({"url": f"http://example.com/live/{KEY}"}, "rtmp:// or rtmps://"),
    ({"url": "rtmp://example.com/live"}, "application path and the stream key"),
    ({"url": f"rtmp://example.com/{KEY}"}, "application path and the stream key"),
    ({"url": "rtmp://example.com/", "stream_key": KEY}, "application path"),
    ({"url": f"rtmp://example.com:99999/live/{KEY}"}, "port"),
    ({"url": f"rtmp://user:pw@example.com/live/{KEY}"}, "user name or password"),
    ({"url": "rtmp://example.com/live", "stream_key": "two words"}, "stream_key"),
    ({"url": f"rtmp://example.com/live/{KEY}", "bitrate_kbps": 100}, "bitrate_kbps"),
    ({"url": f"rtmp://example.com/live/{KEY}", "keyframe_interval_s": 20}, "keyframe"),
    ({"url": f"rtmp://example.com/live/{KEY}", "profile": "ultra"}, "profile"),
    ({"url": f"rtmp://example.com/live/{KEY}", "audio_bitrate_kbps": 8}, "audio_bitrate"),
    ({"url": f"rtmp://example.com/live/{KEY}", "key": KEY}, "Extra inputs"),
    ({"url": "rtmp://example.com/live/" + "k" * 3000}, "longer than 2048"),
    ({"url": "rtmp://example.com/live", "stream_key": "k" * 2000}, "1 to 1024"),
    ({}, "url"),
]


def test_bad_bodies_are_refused_in_words(tmp_path: Path) -> None:
    async def main() -> None:
        async with serve(tmp_path) as server:
            for body, words in BAD_BODIES:
                r = await server.call("POST", "/api/rooms/demo/outputs",
                                      json={"kind": "rtmp", **body})
                assert r.status_code == 422, (body, r.text)
                assert words in r.json()["detail"], (body, r.text)
                assert KEY not in r.text, r.text

    asyncio.run(main())


def test_a_far_end_that_never_answers_is_retried_with_backoff(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtmp, "CONNECT_TIMEOUT_S", 1.0)
    silent = socket.socket()  # listens (the kernel completes connects) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    refused = free_port()

    async def main() -> None:
        async with serve(tmp_path) as server:
            quiet = await server.push({"kind": "rtmp", "url": f"rtmp://127.0.0.1:"
                                       f"{silent.getsockname()[1]}/live/{KEY}"})
            closed = await server.push({"kind": "rtmp",
                                        "url": f"rtmp://127.0.0.1:{refused}/live/{KEY}"})
            waits: dict[str, set[float]] = {quiet["id"]: set(), closed["id"]: set()}
            start = time.monotonic()
            while time.monotonic() - start < 7.5:
                for oid, seen in waits.items():
                    o = await server.output(oid)
                    assert o["state"] in ("starting", "connecting", "reconnecting")
                    assert o["frames"] == 0
                    if o["retry_in_s"] is not None:
                        seen.add(o["retry_in_s"])
                await asyncio.sleep(0.1)
            q, c = await server.output(quiet["id"]), await server.output(closed["id"])
            print("silent:", q["last_error"], q["reconnects"], sorted(waits[quiet["id"]]))
            print("refused:", c["last_error"], c["reconnects"], sorted(waits[closed["id"]]))
            assert "no answer from" in q["last_error"] and "within 1 s" in q["last_error"]
            assert "refused the connection" in c["last_error"]
            assert {1.0, 2.0} <= waits[quiet["id"]]
            assert {1.0, 2.0, 4.0} <= waits[closed["id"]] and c["reconnects"] >= 2

    try:
        asyncio.run(main())
    finally:
        silent.close()


def test_targets_split_into_server_and_key() -> None:
    t = parse_target("rtmp://a.rtmp.youtube.com/live2", "abcd-efgh-ijkl")
    assert (t.host, t.port, t.app, t.key) == ("a.rtmp.youtube.com", 1935, "live2",
                                              "abcd-efgh-ijkl")
    assert t.tc_url == "rtmp://a.rtmp.youtube.com/live2"
    assert t.masked == "rtmp://a.rtmp.youtube.com:1935/live2/***"
    t = parse_target("rtmps://live-api-s.facebook.com:443/rtmp/", "FB-123?s_bl=1")
    assert (t.port, t.app, t.key, t.tls) == (443, "rtmp", "FB-123?s_bl=1", True)
    t = parse_target("rtmp://b.rtmp.youtube.com/live2?backup=1/abcd-efgh")  # key in the URL
    assert (t.app, t.key) == ("live2?backup=1", "abcd-efgh")
    assert parse_target("rtmps://[::1]/app/k").masked == "rtmps://[::1]:443/app/***"
    t = parse_target("RTMP://push.example.com/live/stream-9?txSecret=f00&txTime=6")
    assert (t.scheme, t.app, t.key) == ("rtmp", "live", "stream-9?txSecret=f00&txTime=6")
    assert t.hide("Already publishing stream-9") == "Already publishing ***"


def test_amf0_round_trip() -> None:
    values = ["connect", 1.0, {"app": "live", "ok": True, "n": 2.5}, None, "é" * 3]
    assert amf_decode(amf_encode(*values)) == values
