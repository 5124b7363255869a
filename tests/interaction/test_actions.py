"""The actions WebSocket answers every message exactly once, whatever its fields hold.

A ``share`` whose channel was not a string got no answer at all (the task died with a
TypeError), so a client waited forever: property-based tests over the action schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arengine.app import create_app
from arengine.interaction.api import WS_MAX_BATCH
from arengine.settings import Settings

OPS = ["vote", "like", "comment", "share", "follow", "sticker_click", "leave", "", "VOTE"]
FIELDS = ["poll_id", "option", "count", "text", "channel", "sticker_id", "token"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=60),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=8)


@st.composite
def actions(draw: st.DrawFn) -> dict[str, Any]:
    msg: dict[str, Any] = {"op": draw(st.sampled_from(OPS) | json_values)}
    for name in draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=len(FIELDS))):
        if name == "poll_id":
            msg[name] = draw(st.sampled_from(["p1", "p2"]) | json_values)
        elif name == "option":
            msg[name] = draw(st.integers(-1, 3) | json_values)
        else:
            msg[name] = draw(json_values)
    return msg


@pytest.fixture(scope="module")
def socket_room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    db: Path = tmp_path_factory.mktemp("actions") / "rooms.db"
    s = replace(Settings(db=str(db), demo=False, open_rooms=True))
    with TestClient(create_app(s)) as client:
        r = client.post("/api/rooms", json={"room_id": "room1"}).json()
        host = {"Authorization": f"Bearer {r['host_token']}"}
        client.post("/api/rooms/room1/polls", headers=host, json={
            "question": "Which?", "duration_s": 600,
            "options": [{"label": "A"}, {"label": "B"}]})
        token = client.post("/api/rooms/room1/join", json={"name": "Ana"}).json()["viewer_token"]
        with client.websocket_connect(f"/api/rooms/room1/actions?token={token}") as ws:
            yield ws, token


def _one_reply(ws: Any, ref: Any) -> dict[str, Any]:
    reply = ws.receive_json()
    assert reply["type"] in ("ack", "error"), reply
    assert reply["ref"] == ref, (reply, ref)
    if reply["type"] == "ack":
        assert isinstance(reply["seq"], int) and reply["seq"] > 0
    else:
        assert 400 <= reply["status"] < 600 and isinstance(reply["detail"], str)
        assert reply["status"] != 500, reply  # a bug, not bad input
        assert len(reply["detail"]) < 400  # never echoes a long input
    return reply


@pytest.mark.timeout(300)
@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(msg=actions(), ref=json_values)
def test_every_action_gets_exactly_one_reply(socket_room: tuple[Any, str],
                                             msg: dict[str, Any], ref: Any) -> None:
    ws, _ = socket_room
    ws.send_text(json.dumps({**msg, "ref": ref}))
    _one_reply(ws, ref)


@pytest.mark.timeout(120)
@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200) | st.binary(max_size=64).map(lambda b: b.decode("latin-1")))
def test_text_that_is_not_an_action_object_gets_one_error(socket_room: tuple[Any, str],
                                                          text: str) -> None:
    ws, _ = socket_room
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    ws.send_text(text)
    reply = ws.receive_json()
    if isinstance(parsed, list) and 1 <= len(parsed) <= WS_MAX_BATCH \
            and text.lstrip().startswith("["):
        assert reply["type"] == "replies" and len(reply["replies"]) == len(parsed)
        return
    assert reply["type"] in ("ack", "error")
    if not isinstance(parsed, dict):
        assert reply["type"] == "error" and reply["ref"] is None


@pytest.mark.timeout(300)
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.lists(actions() | json_values, min_size=1, max_size=12),
       refs=st.lists(json_values, min_size=12, max_size=12))
def test_a_batch_gets_one_message_with_a_reply_per_action(
        socket_room: tuple[Any, str], batch: list[Any], refs: list[Any]) -> None:
    ws, _ = socket_room
    sent = [{**m, "ref": r} if isinstance(m, dict) else m for m, r in zip(batch, refs,
                                                                          strict=False)]
    ws.send_text(json.dumps(sent))
    reply = ws.receive_json()
    assert reply["type"] == "replies" and len(reply["replies"]) == len(sent), reply
    for one, m in zip(reply["replies"], sent, strict=True):
        assert one["type"] in ("ack", "error") and one.get("status") != 500, one
        assert one["ref"] == (m["ref"] if isinstance(m, dict) else None)


def test_batches_are_bounded_and_answered_in_order(socket_room: tuple[Any, str]) -> None:
    ws, token = socket_room
    batch = [{"op": "like", "ref": f"b{i}", "token": token} for i in range(WS_MAX_BATCH)]
    batch[3] = {"op": "share", "channel": 7, "ref": "bad"}
    ws.send_text(json.dumps(batch))
    replies = ws.receive_json()["replies"]
    assert [r["ref"] for r in replies] == [m["ref"] for m in batch]
    assert replies[3]["status"] == 422 and replies[0]["type"] == "ack"
    seqs = [r["seq"] for r in replies if r["type"] == "ack"]
    assert len(seqs) == WS_MAX_BATCH - 1 and len(set(seqs)) == len(seqs)
    for text in ("[]", json.dumps([{"op": "like"}] * (WS_MAX_BATCH + 1))):
        ws.send_text(text)
        reply = ws.receive_json()
        assert reply["type"] == "error" and reply["status"] == 422
        assert f"1 to {WS_MAX_BATCH} actions" in reply["detail"]
    ws.send_text(json.dumps({"op": "like", "ref": "after"}))  # the socket goes on
    assert _one_reply(ws, "after")["type"] == "ack"


def test_binary_frames_and_acks_with_real_seq(socket_room: tuple[Any, str]) -> None:
    ws, _ = socket_room
    ws.send_bytes(b'{"op": "like"}')
    reply = ws.receive_json()
    assert reply["type"] == "error" and "text message" in reply["detail"]
    seqs = []
    for i in range(3):
        ws.send_text(json.dumps({"op": "like", "count": 1, "ref": f"like-{i}"}))
        seqs.append(_one_reply(ws, f"like-{i}"))
    acked = [r["seq"] for r in seqs if r["type"] == "ack"]
    assert acked and all(s > 0 for s in acked) and acked == sorted(set(acked))
    ws.send_text(json.dumps({"op": "share", "channel": {"not": "a string"}, "ref": "s"}))
    assert _one_reply(ws, "s")["status"] == 422
    ws.send_text(json.dumps({"op": "ping-test", "ref": "last"}))  # nothing extra queued
    assert _one_reply(ws, "last")["status"] == 422
