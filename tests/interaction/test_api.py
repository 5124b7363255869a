"""The HTTP and WebSocket API: status codes, messages, auth, Unicode, avatars, streams."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from arengine.app import create_app
from arengine.interaction.hub import RoomHub
from arengine.interaction.ratelimit import Rate, RateLimits
from arengine.settings import Limits, Settings


def api_settings(db_path: Path, **changes: Any) -> Settings:
    """The app as users run it, without the demo room, rooms open to the tests."""
    return replace(Settings(db=str(db_path), demo=False, open_rooms=True,
                            limits=Limits(viewer=RateLimits(comment=Rate(3, 1)))), **changes)


@pytest.fixture
def client(db_path: Path, clock) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings(db_path), clock=clock)) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def room(client: TestClient) -> dict[str, Any]:
    r = client.post("/api/rooms", json={"title": "Spring launch"})
    assert r.status_code == 201, r.text
    body = r.json()
    rid = body["room_id"]
    viewers = []
    for name in ("小明", "Lan"):
        j = client.post(f"/api/rooms/{rid}/join", json={"name": name})
        assert j.status_code == 201, j.text
        viewers.append(j.json())
    return {"id": rid, "host": bearer(body["host_token"]),
            "viewers": [bearer(v["viewer_token"]) for v in viewers],
            "viewer_ids": [v["viewer_id"] for v in viewers]}


def image_bytes(fmt: str, size: tuple[int, int] = (300, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 60)).save(buf, format=fmt)
    return buf.getvalue()


COMMENTS = ["这个颜色太好看了！", "Love it 💄", "สวยมากค่ะ", "Đẹp quá, giá bao nhiêu ạ?",
            "Cantik banget kak"]


def test_comments_keep_unicode_exactly(client: TestClient, room: dict[str, Any]) -> None:
    rid, v = room["id"], room["viewers"]
    for i, text in enumerate(COMMENTS):
        r = client.post(f"/api/rooms/{rid}/comments", json={"text": text}, headers=v[i % 2])
        assert r.status_code == 201, r.text
        assert r.json()["ok"] is True
    state = client.get(f"/api/rooms/{rid}").json()
    assert [c["text"] for c in state["recent_comments"]] == COMMENTS


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"text": "bad\u0007bell"}, 422, "control character U+0007"),
    ({"text": ""}, 422, "must not be empty"),
    ({"text": "x" * 201}, 422, "201 characters; the limit is 200"),
    ({"text": 5}, 422, "text: Input should be a valid string"),
    ({"txt": "typo"}, 422, "text: Field required"),
])
def test_comment_validation(client: TestClient, room: dict[str, Any], body: Any,
                            status: int, message: str) -> None:
    r = client.post(f"/api/rooms/{room['id']}/comments", json=body,
                    headers=room["viewers"][0])
    assert r.status_code == status
    assert message in r.json()["detail"]


def test_comment_rate_limit_answers_429_with_retry_after(client: TestClient,
                                                         room: dict[str, Any]) -> None:
    url = f"/api/rooms/{room['id']}/comments"
    for _ in range(3):
        assert client.post(url, json={"text": "hi"}, headers=room["viewers"][0]).status_code \
            == 201
    r = client.post(url, json={"text": "hi"}, headers=room["viewers"][0])
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1"
    assert "too many comments" in r.json()["detail"]
    # Another viewer is not affected.
    assert client.post(url, json={"text": "hi"}, headers=room["viewers"][1]).status_code == 201


def test_auth_errors(client: TestClient, room: dict[str, Any]) -> None:
    rid = room["id"]
    poll = {"question": "Q?", "options": [{"label": "A"}, {"label": "B"}], "duration_s": 60}
    r = client.post(f"/api/rooms/{rid}/polls", json=poll)
    assert r.status_code == 401 and "host token" in r.json()["detail"]
    r = client.post(f"/api/rooms/{rid}/polls", json=poll, headers=room["viewers"][0])
    assert r.status_code == 403 and "wrong host token" in r.json()["detail"]
    r = client.post(f"/api/rooms/{rid}/likes", json={"count": 1})
    assert r.status_code == 401 and "viewer token" in r.json()["detail"]
    r = client.post(f"/api/rooms/{rid}/likes", json={"count": 1}, headers=bearer("forged"))
    assert r.status_code == 401 and "join first" in r.json()["detail"]
    r = client.post(f"/api/rooms/{rid}/likes", json={"count": 1}, headers=room["host"])
    assert r.status_code == 401
    r = client.get(f"/api/rooms/{rid}/polls/p1/ballots", headers=room["viewers"][0])
    assert r.status_code == 403


def test_poll_flow_and_errors(client: TestClient, room: dict[str, Any]) -> None:
    rid, host, v = room["id"], room["host"], room["viewers"]
    bad = client.post(f"/api/rooms/{rid}/polls", headers=host, json={
        "question": "Q?", "options": [{"label": "A", "shade_id": "nope"}, {"label": "B"}],
        "duration_s": 60})
    assert bad.status_code == 422 and "unknown shade 'nope'" in bad.json()["detail"]
    bad = client.post(f"/api/rooms/{rid}/polls", headers=host, json={
        "question": "Q?", "options": [{"label": "A"}, {"label": "B"}], "duration_s": 5})
    assert bad.status_code == 422 and "duration_s must be 15 to 1800" in bad.json()["detail"]
    r = client.post(f"/api/rooms/{rid}/polls", headers=host, json={
        "question": "Which shade?", "duration_s": 60, "apply_shade": True,
        "options": [{"label": "Ruby", "shade_id": "velvet-ruby"},
                    {"label": "Nude", "shade_id": "velvet-nude"}]})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    url = f"/api/rooms/{rid}/polls/{pid}/votes"
    assert client.post(url, json={"option": 0}, headers=v[0]).status_code == 201
    assert client.post(url, json={"option": 1}, headers=v[0]).status_code == 201
    assert client.post(url, json={"option": 1}, headers=v[1]).status_code == 201
    r = client.post(url, json={"option": 2}, headers=v[0])
    assert r.status_code == 422 and "options 0..1; got 2" in r.json()["detail"]
    r = client.post(url, json={"option": "1"}, headers=v[0])
    assert r.status_code == 422 and "option: Input should be a valid integer" in r.json()["detail"]
    r = client.post(f"/api/rooms/{rid}/polls/p9/votes", json={"option": 0}, headers=v[0])
    assert r.status_code == 404 and "no poll 'p9'" in r.json()["detail"]
    ballots = client.get(f"/api/rooms/{rid}/polls/{pid}/ballots", headers=host).json()
    assert ballots["ballots"] == {room["viewer_ids"][0]: 1, room["viewer_ids"][1]: 1}
    closed = client.post(f"/api/rooms/{rid}/polls/{pid}/close", headers=host).json()
    assert closed["winner"] == 1 and closed["options"][1]["votes"] == 2
    r = client.post(url, json={"option": 0}, headers=v[1])
    assert r.status_code == 409 and "is closed" in r.json()["detail"]
    r = client.post(f"/api/rooms/{rid}/polls/{pid}/close", headers=host)
    assert r.status_code == 409
    state = client.get(f"/api/rooms/{rid}").json()
    assert state["shade_id"] == "velvet-nude" and state["poll"]["winner"] == 1


def test_host_settings(client: TestClient, room: dict[str, Any]) -> None:
    rid, host = room["id"], room["host"]
    assert client.put(f"/api/rooms/{rid}/shade", headers=host,
                      json={"shade_id": "velvet-ruby"}).status_code == 200
    r = client.put(f"/api/rooms/{rid}/effects", headers=host,
                   json={"effects": {"no-such-effect": {"enabled": True}}})
    assert r.status_code == 422 and "unknown effect" in r.json()["detail"]
    # Effect settings are checked against the effect itself (they used to be stored and
    # never reach it), so a bad one is refused at once, in words.
    for settings, words in (({"intensity": 2}, "intensity must be between 0 and 1"),
                            ({"intensity": "half"}, "intensity must be a number"),
                            ({"opacity": 0.5}, "has no setting 'opacity'")):
        r = client.put(f"/api/rooms/{rid}/effects", headers=host,
                       json={"effects": {"lipstick": {"settings": settings}}})
        assert r.status_code == 422 and words in r.json()["detail"], r.text
    r = client.put(f"/api/rooms/{rid}/effects", headers=host,
                   json={"effects": {"lipstick": {"settings": {"intensity": 0.4}}}})
    assert r.status_code == 200 and r.json()["seq"] > 0
    assert client.get(f"/api/rooms/{rid}").json()["effects"]["lipstick"]["settings"] == \
        {"intensity": 0.4}
    r = client.put(f"/api/rooms/{rid}/product", headers=host,
                   json={"name": "Velvet Ruby", "price": "¥129", "url": "ftp://x"})
    assert r.status_code == 422
    assert client.put(f"/api/rooms/{rid}/product", headers=host, json={
        "name": "Velvet Ruby", "price": "¥129", "url": "https://shop.example/1"}
    ).status_code == 200
    r = client.put(f"/api/rooms/{rid}/like-goal", headers=host,
                   json={"target": 3, "message": "3 likes!"})
    assert r.status_code == 200
    client.post(f"/api/rooms/{rid}/likes", json={"count": 3}, headers=room["viewers"][0])
    r = client.post(f"/api/rooms/{rid}/likes", json={"count": 51}, headers=room["viewers"][0])
    assert r.status_code == 422 and "count must be an integer from 1 to 50" in r.json()["detail"]
    state = client.get(f"/api/rooms/{rid}").json()
    assert state["shade_id"] == "velvet-ruby" and state["shade_hex"] == "#9B1B30"
    assert state["product"]["price"] == "¥129"
    assert state["like_goal"] == {"target": 3, "count": 3, "message": "3 likes!",
                                  "reached": True}
    r = client.get(f"/api/rooms/{rid}/metrics")
    assert r.status_code == 200 and r.json()["likes"] == 3
    assert client.get("/api/rooms/nope").status_code == 404


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_avatar_upload_is_reencoded_to_a_small_png(client: TestClient, room: dict[str, Any],
                                                   fmt: str) -> None:
    rid, v = room["id"], room["viewers"][0]
    r = client.put(f"/api/rooms/{rid}/viewers/me/avatar", content=image_bytes(fmt),
                   headers={**v, "Content-Type": f"image/{fmt.lower()}"})
    assert r.status_code == 200, r.text
    png = client.get(r.json()["avatar_url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(png.content))
    assert img.format == "PNG" and img.size == (96, 96)


@pytest.mark.parametrize(("data", "status", "message"), [
    (image_bytes("GIF"), 415, "PNG, JPEG or WebP"),
    (b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, 422, "not a readable PNG"),
    (b"\xff\xd8\xff" + b"\0" * (256 * 1024), 413, "limit is 256 KB"),
    (b"", 422, "empty"),
])
def test_avatar_rejections(client: TestClient, room: dict[str, Any], data: bytes,
                           status: int, message: str) -> None:
    r = client.put(f"/api/rooms/{room['id']}/viewers/me/avatar", content=data,
                   headers=room["viewers"][0])
    assert r.status_code == status
    assert message in r.json()["detail"]


def test_events_websocket_sends_a_snapshot_then_events(client: TestClient,
                                                        room: dict[str, Any]) -> None:
    rid = room["id"]
    with client.websocket_connect(f"/api/rooms/{rid}/events") as ws:
        first = ws.receive_json()
        assert first["type"] == "snapshot" and first["state"]["viewer_count"] == 2
        client.post(f"/api/rooms/{rid}/comments", json={"text": "嗨"}, headers=room["viewers"][0])
        ev = ws.receive_json()
        assert ev["type"] == "event" and ev["kind"] == "comment" and ev["data"] == {"text": "嗨"}
        client.post(f"/api/rooms/{rid}/join", json={"name": "New"})
        ev = ws.receive_json()
        assert ev["kind"] == "join" and "_token_sha256" not in ev["data"]


@contextlib.contextmanager
def _sixty_likes(client: TestClient, room: dict[str, Any],
                 query: str = "") -> Iterator[tuple[dict[str, Any], Any]]:
    """An events stream (``query``) opened, then 60 likes pipelined on a viewer's actions
    socket (all in flight together) and all acknowledged: (its first message, the stream)."""
    rid = room["id"]
    token = room["viewers"][0]["Authorization"].split()[1]
    with client.websocket_connect(f"/api/rooms/{rid}/events{query}") as stream, \
            client.websocket_connect(f"/api/rooms/{rid}/actions?token={token}") as actions:
        first = stream.receive_json()
        for ref in range(60):
            actions.send_json({"op": "like", "ref": ref})
        assert all(actions.receive_json()["type"] == "ack" for _ in range(60))
        yield first, stream


def test_events_websocket_batches_a_burst_in_order(client: TestClient,
                                                   room: dict[str, Any]) -> None:
    """A storm must not cost every stream one message per event (see EVENTS_INTERVAL_S)."""
    with _sixty_likes(client, room) as (first, events):
        start = first["state"]["seq"]
        got, messages = [], []
        while len(got) < 60:  # bounded: 60 events were acknowledged, each is sent
            msg = events.receive_json()
            messages.append(msg["type"])
            got += msg["events"] if msg["type"] == "events" else [msg]
    assert [e["seq"] for e in got] == list(range(start + 1, start + 61))
    assert all(e["type"] == "event" and e["kind"] == "like" for e in got)
    assert "events" in messages and len(messages) < 30, messages


def test_state_view_sends_snapshots_not_events(client: TestClient,
                                               room: dict[str, Any]) -> None:
    """What the pages open: the state after changes, a few times a second however busy."""
    with _sixty_likes(client, room, "?view=state") as (first, states):
        assert first["type"] == "snapshot"
        likes = first["state"]["likes"]
        seen = []
        while not seen or seen[-1]["likes"] < likes + 60:  # bounded: 60 likes were acked
            msg = states.receive_json()
            assert msg["type"] == "snapshot", msg
            seen.append(msg["state"])
    assert len(seen) < 10 and seen[-1]["likes"] == likes + 60
    assert [s["seq"] for s in seen] == sorted({s["seq"] for s in seen})  # each a change


def test_state_view_lists_only_the_most_recently_active_viewers(
        client: TestClient, room: dict[str, Any]) -> None:
    rid = room["id"]
    joined = sum(client.post(f"/api/rooms/{rid}/join", json={"name": f"Viewer {i}"}
                             ).status_code == 201 for i in range(30))
    with client.websocket_connect(f"/api/rooms/{rid}/events?view=state") as states:
        state = states.receive_json()["state"]
    everyone = client.get(f"/api/rooms/{rid}").json()
    assert state["viewer_count"] == everyone["viewer_count"] == 2 + joined > 20
    assert len(state["viewers"]) == 20 and len(everyone["viewers"]) == 2 + joined
    newest = sorted(everyone["viewers"], key=lambda v: -v["last_active"])[:20]
    assert {v["id"] for v in state["viewers"]} == {v["id"] for v in newest}


def test_text_cache_keys_by_object_not_by_room_and_seq() -> None:
    """A server started again in one process counts seq from 1 again: no stale text."""
    from arengine.interaction.api import TextCache
    from arengine.state import RoomState

    cache = TextCache(2)
    old, new = RoomState("demo", seq=5, likes=1), RoomState("demo", seq=5, likes=9)
    assert cache.text(old, lambda: "old") == "old"
    assert cache.text(new, lambda: "new") == "new"
    assert cache.text(old, lambda: "again") == "old"  # a hit: encoded once
    cache.text(RoomState("x"), lambda: "x")
    cache.text(RoomState("y"), lambda: "y")
    assert cache.text(old, lambda: "evicted") == "evicted"  # bounded


def test_events_websocket_refuses_an_unknown_view(client: TestClient,
                                                  room: dict[str, Any]) -> None:
    with client.websocket_connect(f"/api/rooms/{room['id']}/events?view=everything") as ws:
        msg = ws.receive_json()
        assert msg["type"] == "error" and msg["status"] == 422 and "view" in msg["detail"]


def test_events_websocket_for_a_missing_room(client: TestClient) -> None:
    with client.websocket_connect("/api/rooms/nope/events") as ws:
        msg = ws.receive_json()
        assert msg["type"] == "error" and msg["status"] == 404


def test_actions_websocket_acks_pipelined_actions(client: TestClient,
                                                  room: dict[str, Any]) -> None:
    rid, host = room["id"], room["host"]
    pid = client.post(f"/api/rooms/{rid}/polls", headers=host, json={
        "question": "Q?", "options": [{"label": "A"}, {"label": "B"}],
        "duration_s": 60}).json()["id"]
    token = room["viewers"][0]["Authorization"].split()[1]
    other = room["viewers"][1]["Authorization"].split()[1]
    with client.websocket_connect(f"/api/rooms/{rid}/actions?token={token}") as ws:
        ws.send_json({"op": "vote", "poll_id": pid, "option": 1, "ref": 1})
        ws.send_json({"op": "like", "count": 2, "ref": 2})
        ws.send_json({"op": "vote", "poll_id": pid, "option": 5, "ref": 3})
        ws.send_json({"op": "dance", "ref": 4})
        ws.send_json({"op": "vote", "poll_id": pid, "option": 0, "ref": 5, "token": other})
        ws.send_text("not json")
        replies = {}
        for _ in range(6):
            m = ws.receive_json()
            replies[m["ref"]] = m
    assert replies[1]["type"] == "ack" and replies[2]["type"] == "ack"
    assert replies[3]["status"] == 422 and "options 0..1" in replies[3]["detail"]
    assert replies[4]["status"] == 422 and "unknown op 'dance'" in replies[4]["detail"]
    assert replies[5]["type"] == "ack"
    assert replies[None]["detail"] == "invalid JSON"
    poll = client.get(f"/api/rooms/{rid}/polls/{pid}").json()
    assert [o["votes"] for o in poll["options"]] == [1, 1]


def test_prometheus_and_openapi(client: TestClient, room: dict[str, Any]) -> None:
    client.post(f"/api/rooms/{room['id']}/likes", json={"count": 2}, headers=room["viewers"][0])
    text = client.get("/metrics").text
    assert f'arengine_room_events_total{{kind="like",room="{room["id"]}"}} 1.0' in text
    assert f'arengine_room_viewers{{room="{room["id"]}"}} 2.0' in text
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/api/rooms", "/api/rooms/{room_id}/join", "/api/rooms/{room_id}/comments",
                 "/api/rooms/{room_id}/polls/{poll_id}/votes", "/api/rooms/{room_id}/shade",
                 "/api/rooms/{room_id}/viewers/me/avatar", "/metrics"):
        assert path in paths, path
    vote = paths["/api/rooms/{room_id}/polls/{poll_id}/votes"]["post"]
    schema = vote["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["option"]
    assert vote["security"] == [{"HTTPBearer": []}]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_oversized_action_bodies_are_refused(client: TestClient, room: dict[str, Any]) -> None:
    r = client.post(f"/api/rooms/{room['id']}/comments", headers=room["viewers"][0],
                    content=b'{"text": "' + b"a" * 5000 + b'"}')
    assert r.status_code == 413
    assert r.json()["detail"]


def test_admin_token_guards_room_creation(db_path: Path) -> None:
    secret = "s3cret-admin-token-0123"
    with TestClient(create_app(api_settings(db_path, open_rooms=False,
                                            admin_token=secret))) as c:
        assert c.post("/api/rooms", json={}).status_code == 401
        r = c.post("/api/rooms", json={}, headers=bearer("wrong"))
        assert r.status_code == 403 and r.json()["detail"] == "wrong admin token"
        assert c.post("/api/rooms", json={}, headers=bearer(secret)).status_code == 201


def test_huge_bodies_are_refused_before_reading(db_path: Path) -> None:
    with TestClient(create_app(api_settings(db_path))) as c:  # the guard is in FastActions
        r = c.put("/api/rooms/x/product", content=b"x" * (400 * 1024))
        assert r.status_code == 413 and "over 300 KB" in r.json()["detail"]


def test_body_validation_errors_read_as_one_line(client: TestClient,
                                                  room: dict[str, Any]) -> None:
    r = client.post(f"/api/rooms/{room['id']}/join", json={"nam": "typo"})
    assert r.status_code == 422
    body = r.json()
    assert "body.name: Field required" in body["detail"]
    assert "body.nam: Extra inputs are not permitted" in body["detail"]
    assert set(body) == {"detail"}  # one error shape everywhere
    r = client.post(f"/api/rooms/{room['id']}/polls", headers=room["host"], json={
        "question": "Q?", "options": [{"label": "A"}, {"label": "B"}], "duration_s": "soon"})
    assert r.status_code == 422 and "body.duration_s" in r.json()["detail"]


def test_heartbeat_and_identified_event_streams(client: TestClient,
                                                room: dict[str, Any]) -> None:
    rid = room["id"]
    r = client.post(f"/api/rooms/{rid}/heartbeat", headers=room["viewers"][0])
    assert r.status_code == 200 and r.json() == {"ok": True, "idle_s": 300.0}
    assert client.post(f"/api/rooms/{rid}/heartbeat").status_code == 401
    hub: RoomHub = client.app.state.hub  # type: ignore[attr-defined]
    vid = room["viewer_ids"][1]
    token = room["viewers"][1]["Authorization"].split()[1]
    with client.websocket_connect(f"/api/rooms/{rid}/events?token={token}") as ws:
        assert ws.receive_json()["type"] == "snapshot"
        assert hub.get(rid).viewers[vid].connections == 1
    for _ in range(100):  # the server notices the close a moment later
        if hub.get(rid).viewers[vid].connections == 0:
            break
        time.sleep(0.01)
    assert hub.get(rid).viewers[vid].connections == 0
    with client.websocket_connect(f"/api/rooms/{rid}/events?token=forged") as ws:
        msg = ws.receive_json()
        assert msg["type"] == "error" and msg["status"] == 401
