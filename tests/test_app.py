"""The one app as a hostile visitor meets it: who may do what, limits, what is revealed."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection

from arengine.app import Ready, client_for, create_app, running
from arengine.demo import DemoSource, DemoTrack
from arengine.interaction.ratelimit import Rate
from arengine.settings import Limits, Settings
from arengine.transport.client import WhipClient


def settings(tmp_path: Path, **limits: Any) -> Settings:
    """A small, fast server: a 320x180 demo picture and no tracking or effects."""
    s = Settings(db=str(tmp_path / "rooms.db"), demo=False).with_room(
        demo=True, demo_size=(320, 180), fps=10, track_faces=False, track_hands=False,
        effects=(), render="cpu")
    return s.with_limits(**limits) if limits else s


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_room_creation_needs_the_admin_token_by_default(tmp_path: Path) -> None:
    ready: list[Ready] = []

    async def main() -> None:
        app = create_app(settings(tmp_path), on_ready=ready.append)
        async with running(app) as http:
            admin = ready[0].admin_token
            assert admin is not None and len(admin) >= 32
            r = await http.post("/api/rooms", json={})
            assert r.status_code == 401 and "admin token" in r.json()["detail"]
            r = await http.post("/api/rooms", json={}, headers=bearer("x" * 40))
            assert r.status_code == 403
            assert (await http.post("/api/rooms", json={},
                                    headers=bearer(admin))).status_code == 201
        async with running(create_app(settings(tmp_path), on_ready=ready.append)):
            assert ready[1].admin_token == admin  # kept in the key file
        keys = tmp_path / "rooms.keys"
        assert stat.S_IMODE(keys.stat().st_mode) == 0o600
        assert admin not in keys.read_text()  # the file keeps a secret, not the token

    asyncio.run(main())


def test_demo_host_token_survives_a_restart(tmp_path: Path) -> None:
    """An OBS set-up with the demo room's token keeps working after a restart (it was
    rotated at every start)."""
    ready: list[Ready] = []
    s = replace(settings(tmp_path), demo=True, demo_crowd=False)

    async def main() -> None:
        for _ in range(2):
            async with running(create_app(s, on_ready=ready.append)) as http:
                token = ready[-1].host_token
                assert token is not None
                host = WhipClient(http, "http://arengine.local/whip/demo")
                await host.publish(DemoTrack(DemoSource(320, 180, fps=10)), ready[0].host_token)
                await host.close()
        assert ready[0].host_token == ready[1].host_token

    asyncio.run(main())


def test_serve_uses_its_environment(tmp_path: Path) -> None:
    """ARENGINE_ADMIN_TOKEN, ARENGINE_DB and ARENGINE_DB_SYNC were ignored by serve."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = tmp_path / "custom" / "events.db"
    admin = "env-admin-token-0123456789"
    env = {**os.environ, "ARENGINE_ADMIN_TOKEN": admin, "ARENGINE_DB": str(db),
           "ARENGINE_DB_SYNC": "NORMAL", "ARENGINE_DEMO": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "arengine", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        printed = ""
        deadline = time.monotonic() + 60
        while "rooms:" not in printed:
            assert time.monotonic() < deadline and proc.poll() is None, printed
            printed += proc.stdout.readline() if proc.stdout else ""
        assert f"#admin={admin}" in printed

        def create(token: str | None) -> int:
            req = urllib.request.Request(url + "/api/rooms", b"{}", method="POST",
                                         headers={"Content-Type": "application/json",
                                                  **(bearer(token) if token else {})})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return int(r.status)
            except urllib.error.HTTPError as e:
                return int(e.code)

        for _ in range(100):  # the lifespan prints before the socket listens
            try:
                urllib.request.urlopen(url + "/api/rooms", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        assert create(None) == 401
        assert create("wrong-token-0123456789") == 403
        assert create(admin) == 201
        assert db.is_file()
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    async def sync_mode() -> int:
        app = create_app(Settings.from_env({"ARENGINE_DB": str(db), "ARENGINE_DB_SYNC": "NORMAL",
                                            "ARENGINE_DEMO": "0"}))
        async with running(app):
            return int(app.state.hub.store._db.execute("PRAGMA synchronous").fetchone()[0])

    assert asyncio.run(sync_mode()) == 1  # NORMAL (FULL is 2)


async def _offer_and_vanish(http: httpx.AsyncClient, room: str) -> httpx.Response:
    """A WHEP offer whose client never completes ICE (it closes its sockets at once)."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    r = await http.post(f"/whep/{room}", content=pc.localDescription.sdp,
                        headers={"Content-Type": "application/sdp"})
    await pc.close()
    return r


def test_half_open_viewers_are_closed_and_never_counted(tmp_path: Path) -> None:
    async def main() -> None:
        app = create_app(settings(tmp_path, connect_timeout_s=2.0))
        async with running(app) as http:
            _, token = await app.state.hub.create_room("r", "room1")
            for _ in range(3):
                assert (await _offer_and_vanish(http, "room1")).status_code == 201
            media = app.state.media
            assert len(media.viewers("room1")) == 3
            status = (await http.get("/api/rooms/room1/status")).json()
            assert status["viewers"] == 0  # connecting is not watching
            stats = (await http.get("/api/rooms/room1/stats", headers=bearer(token))).json()
            assert stats["viewers"] == 0 and stats["connecting"] == 3
            page = (await http.get("/api/rooms")).json()["rooms"]
            assert page[0]["watching"] == 0
            for _ in range(60):
                if not media.viewers("room1"):
                    break
                await asyncio.sleep(0.1)
            assert not media.viewers("room1") and not media.sessions
            assert not media.pipelines["room1"].encoders  # the encoder stopped too

    asyncio.run(main())


def test_per_client_limits_with_retry_after(tmp_path: Path) -> None:
    s = settings(tmp_path, joins=Rate(3, 3 / 60), rooms=Rate(1, 1 / 3600),
                 comments=Rate(2, 2 / 60), sessions_per_client=1, viewers_per_room=2)
    s = replace(s, open_rooms=True)

    async def main() -> None:
        app = create_app(s)
        async with running(app) as http, client_for(app, "10.0.0.2") as other:
            assert (await http.post("/api/rooms", json={"room_id": "one"})).status_code == 201
            r = await http.post("/api/rooms", json={"room_id": "two"})
            assert r.status_code == 429 and int(r.headers["retry-after"]) > 60
            assert "too many new rooms from your address" in r.json()["detail"]
            tokens = []
            for i in range(3):
                r = await http.post("/api/rooms/one/join", json={"name": f"v{i}"})
                assert r.status_code == 201
                tokens.append(r.json()["viewer_token"])
            r = await http.post("/api/rooms/one/join", json={"name": "v4"})
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            # rejoining with one's own token mints nothing and is not limited
            r = await http.post("/api/rooms/one/join", json={"name": "v0"},
                                headers=bearer(tokens[0]))
            assert r.status_code == 201
            assert (await other.post("/api/rooms/one/join",
                                     json={"name": "w"})).status_code == 201
            # comments: limited per address across all its viewer tokens
            codes = [(await http.post("/api/rooms/one/comments", json={"text": "hi"},
                                      headers=bearer(t))).status_code for t in tokens]
            assert codes == [201, 201, 429]
            # WebRTC sessions per address, then viewers per room
            assert (await _offer_and_vanish(http, "one")).status_code == 201
            r = await _offer_and_vanish(http, "one")
            assert r.status_code == 429 and "open sessions" in r.json()["detail"]
            assert (await _offer_and_vanish(other, "one")).status_code == 201
            async with client_for(app, "10.0.0.3") as third:
                r = await _offer_and_vanish(third, "one")
                assert r.status_code == 503 and r.headers["retry-after"]
                assert "room is full" in r.json()["detail"]

    asyncio.run(main())


def test_rooms_list_is_paged(tmp_path: Path) -> None:
    async def main() -> None:
        app = create_app(settings(tmp_path))
        async with running(app) as http:
            for i in range(120):
                await app.state.hub.create_room("", f"room-{i:03d}")
            seen: list[str] = []
            after = None
            pages = 0
            while True:
                params = {"limit": 50, **({"after": after} if after else {})}
                page = (await http.get("/api/rooms", params=params)).json()
                seen += [r["room_id"] for r in page["rooms"]]
                pages += 1
                after = page["next"]
                if after is None:
                    break
            assert pages == 3 and seen == sorted(seen) and len(set(seen)) == 120
            assert (await http.get("/api/rooms", params={"limit": 1000})).status_code == 422

    asyncio.run(main())


def test_public_answers_reveal_no_session_ids(tmp_path: Path) -> None:
    """Anyone could read the host's WHIP session id from the stats and DELETE it."""
    async def main() -> None:
        app = create_app(settings(tmp_path))
        async with running(app) as http:
            _, token = await app.state.hub.create_room("r", "room1")
            host = WhipClient(http, "http://arengine.local/whip/room1")
            await host.publish(DemoTrack(DemoSource(320, 180, fps=10)), token)
            assert host.location is not None
            sid = host.location.rsplit("/", 1)[1]
            assert len(sid) >= 43  # 256 random bits
            for path in ("/api/rooms", "/api/rooms/room1", "/api/rooms/room1/status",
                         "/api/rooms/room1/regions", "/metrics"):
                r = await http.get(path)
                assert r.status_code == 200 and sid not in r.text, path
            assert (await http.get("/api/rooms/room1/stats")).status_code == 401
            r = await http.get("/api/rooms/room1/stats", headers=bearer(token))
            assert r.status_code == 200 and sid not in r.text
            assert r.json()["publisher"]["state"] in ("new", "connecting", "connected")
            assert (await http.delete(host.location)).status_code == 401
            assert (await http.delete(host.location,
                                      headers=bearer("not-the-host-token"))).status_code == 401
            assert not app.state.media.publishers["room1"].closed
            await host.close()  # with the host token: ends it
            assert "room1" not in app.state.media.publishers

    asyncio.run(main())


@pytest.mark.parametrize("path", ["/watch/", "/host/"])
def test_unknown_room_pages_escape_the_name(tmp_path: Path, path: str) -> None:
    async def main() -> None:
        async with running(create_app(settings(tmp_path))) as http:
            r = await http.get(path + "<img src=x onerror=alert(1)>")
            assert r.status_code == 404
            assert "<img" not in r.text and "&lt;img src=x onerror=alert(1)&gt;" in r.text
            assert "script-src 'self'" in r.headers["content-security-policy"]
            r = await http.get(path + "x" * 5000)
            assert r.status_code == 404 and len(r.text) < 1000  # never echoes it whole
            for p in ("/", "/api/rooms", "/openapi.json"):
                h = (await http.get(p)).headers
                assert "default-src 'none'" in h["content-security-policy"], p
                assert h["x-content-type-options"] == "nosniff", p
            assert (await http.get("/docs")).status_code == 404  # its script is on a CDN

    asyncio.run(main())


def test_limits_settings_reach_the_app(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path, viewers_per_room=7, connect_timeout_s=4.0,
                              max_rooms=3, viewer_idle_s=60.0))
    media, hub = app.state.media, app.state.hub
    assert (media.viewers_per_room, media.connect_timeout) == (7, 4.0)
    assert (hub.max_rooms, hub.idle_s) == (3, 60.0)
    assert isinstance(app.state.settings.limits, Limits)
