"""Publishing a room into a real Janus VideoRoom, and watching it back through Janus.

Each test starts Debian's Janus with its own config (see janus_server.py), publishes the
demo room through the host API, and subscribes with aiortc through Janus's HTTP API, as a
viewer's browser would: the picture carries the shade, the data channel carries the click
regions, keyframe requests reach the shared encoder, and a Janus restart heals by itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from arengine.app import Ready, create_app, running
from arengine.demo import DemoSource
from arengine.pipeline import RoomConfig
from arengine.settings import Settings
from arengine.transport import hooks, janus
from arengine.transport.hooks import HookError, verify_hooks
from arengine.transport.janus import JanusAccess, JanusError, JanusOutput, JanusSession
from tests.transport.janus_server import JanusServer, JanusSubscriber, janus_or_fail

pytestmark = pytest.mark.slow

PLUM = "#5B2140"
ROOM = 4321
CONFIG = RoomConfig(demo_size=(640, 360), fps=15, track_hands=False, gestures=False,
                    effects=("lipstick", "product"))


@pytest.fixture
def janus_server(tmp_path: Path) -> Iterator[JanusServer]:
    server = JanusServer(tmp_path / "janus", janus_or_fail())
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _settings(tmp_path: Path, server: JanusServer, url: str | None = None) -> Settings:
    return Settings(db=str(tmp_path / "rooms.db"), janus_url=url or server.url,
                    janus_room=ROOM, demo_crowd=False, room=CONFIG)


async def _until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


async def _publish(http: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    r = await http.post("/api/rooms/demo/outputs", json={"kind": "janus"}, headers=auth)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _output(app: Any) -> JanusOutput:
    (o,) = app.state.media.outputs["demo"].outputs.values()
    assert isinstance(o, JanusOutput)
    return o


async def _live_output(app: Any, http: httpx.AsyncClient, host_token: str) -> JanusOutput:
    """Start the demo room's Janus output as its host and wait until it is live."""
    await _publish(http, {"Authorization": f"Bearer {host_token}"})
    output = _output(app)
    await _until(lambda: output.state == "live", 20, "the output to go live")
    return output


def test_janus_output_is_refused_without_an_sfu(tmp_path: Path) -> None:
    async def main() -> None:
        ready: list[Ready] = []
        app = create_app(Settings(db=str(tmp_path / "rooms.db"), demo_crowd=False,
                                  room=CONFIG), on_ready=ready.append)
        async with running(app) as http:
            auth = {"Authorization": f"Bearer {ready[0].host_token}"}
            r = await http.post("/api/rooms/demo/outputs", json={"kind": "janus"},
                                headers=auth)
            assert r.status_code == 409 and "--janus" in r.json()["detail"], r.text
            # The SFU is the operator's: a host cannot point the server elsewhere.
            r = await http.post("/api/rooms/demo/outputs", headers=auth, json={
                "kind": "janus", "url": "http://198.51.100.7:8088/janus"})
            assert r.status_code == 409, r.text  # not set up, whatever the body says
            with pytest.raises(ValidationError, match="url"):  # and no field names a URL
                janus.JanusIn.model_validate({"kind": "janus",
                                              "url": "http://198.51.100.7:8088/janus"})
            r = await http.get("/api/rooms/demo/sfu")
            assert r.status_code == 404 and "not on an SFU" in r.json()["detail"]
            assert (await http.get("/api/rooms/nope/sfu")).status_code == 404

    asyncio.run(main())


def test_room_publishes_through_janus(tmp_path: Path, janus_server: JanusServer,
                                      lip_distance: Any) -> None:
    """The shaded picture, the click regions and keyframe requests, through Janus."""

    async def main() -> None:
        ready: list[Ready] = []
        app = create_app(_settings(tmp_path, janus_server), on_ready=ready.append)
        async with running(app) as http, httpx.AsyncClient(timeout=40) as jhttp:
            auth = {"Authorization": f"Bearer {ready[0].host_token}"}
            assert (await http.put("/api/rooms/demo/shade", headers=auth,
                                   json={"shade_id": "velvet-plum"})).status_code == 200
            assert (await http.put("/api/rooms/demo/product", headers=auth, json={
                "name": "Velvet Plum", "price": "$19.90"})).status_code == 200
            made = await _publish(http, auth)
            assert made["kind"] == "janus" and made["janus_room"] == ROOM
            output = _output(app)
            started = time.monotonic()
            await _until(lambda: output.state == "live", 20, "the output to go live")
            print(f"live in Janus after {time.monotonic() - started:.1f} s")

            r = await http.get("/api/rooms/demo/sfu")
            assert r.status_code == 200
            info = r.json()
            assert info == {"janus": janus_server.url, "room": ROOM, "feed": output.feed,
                            "state": "live"}
            secret = output.access.secret(ROOM)
            for text in (r.text, json.dumps(made)):
                assert secret not in text and output.access.token(ROOM) not in text
                assert "session" not in text

            sub = JanusSubscriber(jhttp, info["janus"], info["room"], info["feed"])
            await sub.start()
            frame = await sub.wait_frames(15, 30)
            assert (frame.width, frame.height) == (640, 360)
            n0, t0 = sub.frames, time.monotonic()
            await asyncio.sleep(3.0)
            fps = (sub.frames - n0) / (time.monotonic() - t0)
            print(f"through Janus: {fps:.1f} fps at 640x360 (room 15 fps)")
            assert fps > 8

            before = lip_distance(DemoSource(640, 360).frame_at(0.0), PLUM)
            afters = []
            for _ in range(5):
                got = (await sub.wait_frames(3)).to_ndarray(format="bgr24")
                afters.append(lip_distance(got, PLUM))
            hue, full = (float(np.median([a[i] for a in afters])) for i in (0, 1))
            print(f"lip colour distance to the shade (a-b, Lab): source {before[0]:.1f} "
                  f"{before[1]:.1f}, through Janus {hue:.1f} {full:.1f}")
            assert hue < before[0] - 4, (before, afters)
            assert full < 0.6 * before[1], (before, afters)

            event = await _until(lambda: next((e for e in sub.events if e.get("regions")),
                                              None), 10, "click regions on the data channel")
            assert event["type"] == "media" and event["size"] == [640, 360]
            region = event["regions"][0]
            assert {"x", "y", "w", "h"} <= set(region) and 0 <= region["x"] < 1

            # A subscriber's keyframe request (RTCP PLI to Janus) reaches the one encoder.
            pipeline = app.state.media.pipelines["demo"]
            assert list(pipeline.encoders) == ["vp8"]  # WHEP viewers' encoder, no other
            fanout = pipeline.encoders["vp8"].fanout
            receiver = next(t.receiver for t in sub.pc.getTransceivers() if t.kind == "video")
            requested, forced = fanout.keyframe_requests, fanout.keyframes_forced
            assert await hooks.report_picture_loss(receiver)
            await _until(lambda: fanout.keyframe_requests > requested, 5,
                         "the PLI to reach the shared encoder")
            await _until(lambda: fanout.keyframes_forced > forced, 5, "a forced keyframe")

            stats = (await http.get("/api/rooms/demo/stats", headers=auth)).json()
            (s,) = stats["outputs"]
            assert s["kind"] == "janus" and s["state"] == "live" and s["fps"] > 8
            assert s["feed"] == output.feed and s["janus_room"] == ROOM
            metrics = (await http.get("/metrics")).text
            up = f'arengine_output_up{{kind="janus",output="{output.id}",room="demo"}} 1.0'
            assert up in metrics

            await sub.close()
            r = await http.delete(f"/api/rooms/demo/outputs/{output.id}", headers=auth)
            assert r.status_code == 200
            assert (await http.get("/api/rooms/demo/sfu")).status_code == 404
            assert not pipeline.encoders
            # The room's secret comes from the server's key file: the room stays, still
            # this server's (a restart, even after a crash, publishes into it again), and
            # still closed to strangers.
            probe = JanusSession(jhttp, janus_server.url)
            await probe.create()
            handle = await probe.attach(janus.VIDEOROOM)
            exists = await probe.request(handle, {"request": "exists", "room": ROOM})
            assert exists["exists"] is True
            with pytest.raises(janus.JanusError, match="wrong secret"):
                await probe.request(handle, {"request": "destroy", "room": ROOM,
                                             "secret": "a-stranger-guess"})
            await probe.destroy()

    asyncio.run(main())


def test_strangers_cannot_publish_or_destroy_but_may_watch(
        tmp_path: Path, janus_server: JanusServer) -> None:
    async def main() -> None:
        ready: list[Ready] = []
        app = create_app(_settings(tmp_path, janus_server), on_ready=ready.append)
        async with running(app) as http, httpx.AsyncClient(timeout=40) as jhttp:
            output = await _live_output(app, http, ready[0].host_token)
            stranger = JanusSession(jhttp, janus_server.url)
            await stranger.create()
            handle = await stranger.attach(janus.VIDEOROOM)
            for body in ({"request": "destroy", "room": ROOM},
                         {"request": "destroy", "room": ROOM, "secret": "adminpwd"},
                         {"request": "kick", "room": ROOM, "id": output.feed},
                         {"request": "allowed", "room": ROOM, "action": "disable"},
                         {"request": "edit", "room": ROOM, "new_secret": "mine"}):
                with pytest.raises(JanusError) as err:
                    await stranger.request(handle, body)
                assert err.value.code in (janus.UNAUTHORIZED, 429), body  # 429: no secret
            with pytest.raises(JanusError) as err:
                await stranger.message(handle, {"request": "join", "ptype": "publisher",
                                                "room": ROOM, "display": "stranger"})
            assert err.value.code == janus.UNAUTHORIZED
            listed = await stranger.request(handle, {"request": "list"})
            assert all(r["room"] != ROOM for r in listed["list"])  # a private room
            await stranger.destroy()
            # ... while anyone may subscribe, with no arengine token.
            sub = JanusSubscriber(jhttp, janus_server.url, ROOM, output.feed)
            await sub.start()
            await sub.wait_frames(5, 30)
            await sub.close()
            assert output.state == "live" and output.reconnects == 0

    asyncio.run(main())


def test_a_room_with_another_secret_is_refused(tmp_path: Path,
                                               janus_server: JanusServer) -> None:
    async def main() -> None:
        async with httpx.AsyncClient(timeout=40) as jhttp:
            other = JanusSession(jhttp, janus_server.url)
            await other.create()
            handle = await other.attach(janus.VIDEOROOM)
            await other.request(handle, {"request": "create", "room": ROOM,
                                         "secret": "someone-else"})
            ready: list[Ready] = []
            app = create_app(_settings(tmp_path, janus_server), on_ready=ready.append)
            async with running(app) as http:
                await _publish(http, {"Authorization": f"Bearer {ready[0].host_token}"})
                output = _output(app)
                await _until(lambda: output.last_error, 20, "the refusal")
                assert "secret this server does not hold" in output.last_error
                assert output.state == "reconnecting" and output.frames == 0
            await other.destroy()

    asyncio.run(main())


def test_a_stable_secret_survives_an_arengine_restart(tmp_path: Path) -> None:
    """With the secret in the --janus URL the room is kept, and found again after a restart;
    as the VideoRoom's admin_key it keeps anyone else from creating rooms."""
    janus_server = JanusServer(tmp_path / "janus", janus_or_fail(),
                               admin_key="s3cret-for-tests")
    url = janus_server.url.replace("http://", "http://:s3cret-for-tests@")
    assert JanusAccess.from_url(url).stable

    async def run_once(n: int) -> int:
        ready: list[Ready] = []
        app = create_app(_settings(tmp_path, janus_server, url), on_ready=ready.append)
        async with running(app) as http:
            await _publish(http, {"Authorization": f"Bearer {ready[0].host_token}"})
            output = _output(app)
            await _until(lambda: output.state == "live", 20, f"run {n} to go live")
            assert output.url == janus_server.url  # the password is never sent or shown
            info = (await http.get("/api/rooms/demo/sfu")).json()
            assert "s3cret" not in json.dumps(info) + json.dumps(output.stats())
            return output.feed

    async def main() -> None:
        assert await run_once(1) != await run_once(2)
        async with httpx.AsyncClient(timeout=40) as jhttp:
            stranger = JanusSession(jhttp, janus_server.url)
            await stranger.create()
            handle = await stranger.attach(janus.VIDEOROOM)
            with pytest.raises(JanusError) as err:
                await stranger.request(handle, {"request": "create", "room": 999})
            assert err.value.code in (janus.UNAUTHORIZED, 429)
            exists = await stranger.request(handle, {"request": "exists", "room": ROOM})
            assert exists["exists"] is True  # kept for the next run
            await stranger.destroy()

    janus_server.start()
    try:
        asyncio.run(main())
    finally:
        janus_server.kill()


def test_reconnects_after_janus_restarts(tmp_path: Path, janus_server: JanusServer) -> None:
    async def main() -> None:
        ready: list[Ready] = []
        app = create_app(_settings(tmp_path, janus_server), on_ready=ready.append)
        async with running(app) as http, httpx.AsyncClient(timeout=40) as jhttp:
            output = await _live_output(app, http, ready[0].host_token)
            sub = JanusSubscriber(jhttp, janus_server.url, ROOM, output.feed)
            await sub.start()
            await sub.wait_frames(10, 30)
            await sub.close()

            janus_server.kill()
            killed = time.monotonic()
            await _until(lambda: output.state == "reconnecting", 10, "the loss to be seen")
            assert output.last_error and "Janus" in output.last_error
            print(f"seen: {output.last_error}")
            await asyncio.sleep(1.0)
            janus_server.start()
            restarted = time.monotonic()
            await _until(lambda: output.state == "live", 30, "the output to come back")
            now = time.monotonic()
            print(f"live again {now - restarted:.1f} s after Janus answered again "
                  f"({now - killed:.1f} s after it was killed, 1 s of it down on purpose)")
            assert output.reconnects == 1 and output.last_error is None

            info = (await http.get("/api/rooms/demo/sfu")).json()
            assert info["feed"] == output.feed  # the same feed id: viewers find it again
            sub = JanusSubscriber(jhttp, janus_server.url, ROOM, info["feed"])
            await sub.start()
            await sub.wait_frames(10, 30)
            await sub.close()
            stats = (await http.get("/api/rooms/demo/stats", headers={
                "Authorization": f"Bearer {ready[0].host_token}"})).json()
            assert stats["outputs"][0]["reconnects"] == 1
            metrics = (await http.get("/metrics")).text
            assert (f'arengine_output_reconnects_total{{kind="janus",output="{output.id}",'
                    f'room="demo"}} 1.0') in metrics

    asyncio.run(main())


def test_keepalives_hold_the_session_and_a_timeout_reconnects(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = JanusServer(tmp_path / "janus", janus_or_fail(), session_timeout=4)
    server.start()
    monkeypatch.setattr(janus, "KEEPALIVE_S", 1.0)

    async def main() -> None:
        ready: list[Ready] = []
        app = create_app(_settings(tmp_path, server), on_ready=ready.append)
        async with running(app) as http:
            output = await _live_output(app, http, ready[0].host_token)
            await asyncio.sleep(9.0)  # over twice the session timeout
            assert output.state == "live" and output.reconnects == 0, output.last_error
            monkeypatch.setattr(janus, "KEEPALIVE_S", 1000.0)  # a keepalive goes missing
            await _until(lambda: output.reconnects >= 1, 30, "a reconnection after a timeout")
            print(f"after the timeout: reconnects {output.reconnects}, state {output.state}")

    try:
        asyncio.run(main())
    finally:
        server.kill()


def test_ten_subscribers_cost_arengine_no_more_encoding(tmp_path: Path,
                                                        janus_server: JanusServer) -> None:
    """One encoder whatever the audience: 1 then 10 subscribers (in another process)."""

    async def crowd(n: int, feed: int, window: float = 5.0) -> dict[str, float]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.transport.janus_server", "subscribe",
             janus_server.url, str(ROOM), str(feed), str(n), str(window)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
            assert line.strip() == "ready", line
            ours, theirs = time.process_time(), janus_server.cpu_seconds()
            wall = time.monotonic()
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
            wall = time.monotonic() - wall
            fps = json.loads(line)["fps"]
            return {"n": n, "wall": wall, "arengine": (time.process_time() - ours) / wall,
                    "janus": (janus_server.cpu_seconds() - theirs) / wall,
                    "min_fps": min(fps)}
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()

    async def main() -> None:
        ready: list[Ready] = []
        app = create_app(_settings(tmp_path, janus_server), on_ready=ready.append)
        async with running(app) as http:
            output = await _live_output(app, http, ready[0].host_token)
            pipeline = app.state.media.pipelines["demo"]
            rows = []
            for n in (1, 10):
                encoded = pipeline.encoders["vp8"].frames
                started = time.monotonic()
                row = await crowd(n, output.feed)
                row["encoded_fps"] = (pipeline.encoders["vp8"].frames - encoded) / (
                    time.monotonic() - started)
                rows.append(row)
                assert list(pipeline.encoders) == ["vp8"]  # one encoder, whatever the audience
                assert row["min_fps"] > 5, row
            for r in rows:
                print(f"{r['n']:>2} subscribers through Janus, {r['wall']:.1f} s: arengine "
                      f"{r['arengine'] * r['wall']:.2f} CPU s ({100 * r['arengine']:.0f}% of a "
                      f"core), Janus {r['janus'] * r['wall']:.2f} CPU s "
                      f"({100 * r['janus']:.1f}%); one encoder at {r['encoded_fps']:.1f} fps; "
                      f"slowest subscriber {r['min_fps']:.1f} fps")
            extra = (rows[1]["janus"] - rows[0]["janus"]) / 9
            print(f"Janus per extra subscriber: {100 * extra:.2f}% of a core (640x360 15 fps)")

    asyncio.run(main())


def test_a_missing_picture_loss_hook_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    monkeypatch.delattr(RTCRtpReceiver, "_send_rtcp_pli")
    with pytest.raises(HookError) as err:
        verify_hooks()
    assert err.value.hooks == ("picture-loss",)
