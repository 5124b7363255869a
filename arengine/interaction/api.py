"""HTTP and WebSocket API for rooms (FastAPI).

``build_router(hub)`` gives the routes to mount in a larger app (all under ``/api``
plus ``/metrics`` for Prometheus); ``create_app(db_path)`` is a standalone server.

Auth: host actions need ``Authorization: Bearer <host_token>`` from room creation;
viewer actions need ``Authorization: Bearer <viewer_token>`` from join. Every response
to a write is sent only after the event is committed to the store.
"""

import asyncio
import contextlib
import hmac
import json
import math
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response, WebSocket
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect, WebSocketState

from arengine.interaction.avatar import MAX_UPLOAD_BYTES, to_avatar_png
from arengine.interaction.errors import (
    ForbiddenError,
    InteractionError,
    InvalidInputError,
    PayloadTooLargeError,
    RateLimitedError,
    UnauthorizedError,
)
from arengine.interaction.events import Event
from arengine.interaction.hub import RoomHub
from arengine.interaction.metrics import room_metrics
from arengine.interaction.polls import MAX_DURATION_S, MAX_OPTIONS, MIN_DURATION_S, MIN_OPTIONS
from arengine.interaction.room import Room
from arengine.interaction.state import RoomState
from arengine.interaction.store import Synchronous

_M = TypeVar("_M", bound=BaseModel)
MAX_ACTION_BODY = 4096
MAX_REQUEST_BODY = 300 * 1024  # an avatar (256 KB) plus headroom; larger bodies get 413
WS_MAX_IN_FLIGHT = 256  # un-acknowledged actions per actions socket before we stop reading
WS_MAX_MESSAGE = 4096


async def validation_error_response(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, with a one-line ``detail`` first and the full list kept in ``errors``.

    Install with ``app.add_exception_handler(RequestValidationError, ...)``.
    """
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    lines = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', '')}"
             for e in errors]
    return JSONResponse({"detail": "; ".join(lines) or "invalid request",
                         "errors": jsonable_encoder(errors)}, status_code=422)


def error_response(e: InteractionError) -> JSONResponse:
    headers = {}
    if isinstance(e, RateLimitedError):
        headers["Retry-After"] = str(max(1, math.ceil(e.retry_after)))
    return JSONResponse({"detail": e.message}, status_code=e.status, headers=headers)


class _Route(APIRoute):
    """Turns :class:`InteractionError` into a JSON error, on this router only."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except InteractionError as e:
                return error_response(e)

        return handle


# ------------------------------------------------------------------ request bodies


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CreateRoom(_Body):
    title: str = Field("", max_length=120)
    room_id: str | None = Field(None, description="3-40 of a-z, 0-9 and -; generated if absent")


class Join(_Body):
    name: str = Field(description="display name, 1-40 characters")


class CommentIn(_Body):
    text: str = Field(description="1-200 characters, kept exactly; no control characters")


class LikeIn(_Body):
    count: int = Field(1, description="likes in this request (1-50), e.g. from rapid taps")


class ShareIn(_Body):
    channel: str | None = Field(None, description="where it was shared, e.g. 'line'")


class VoteIn(_Body):
    option: int = Field(description="option index, 0-based")


class PollOptionIn(_Body):
    label: str
    shade_id: str | None = Field(None, description="a shade id from GET /api/shades")


class PollIn(_Body):
    question: str
    options: list[PollOptionIn] = Field(
        description=f"{MIN_OPTIONS} to {MAX_OPTIONS} options")
    duration_s: float = Field(description=f"{MIN_DURATION_S:g} to {MAX_DURATION_S:g} s")
    apply_shade: bool = Field(
        False, description="when the poll closes, put the winning shade on the host")


class ShadeIn(_Body):
    shade_id: str | None = Field(description="a shade id from GET /api/shades, or null")


class EffectIn(_Body):
    enabled: bool | None = None
    settings: dict[str, Any] | None = None


class EffectsIn(_Body):
    effects: dict[str, EffectIn]


class ProductIn(_Body):
    name: str
    price: str = Field(description="formatted for display, e.g. '¥129' or '$19.90'")
    url: str | None = None
    id: str | None = None


class LikeGoalIn(_Body):
    target: int
    message: str


# ------------------------------------------------------------------- serialising


def state_to_json(state: RoomState) -> dict[str, Any]:
    """A :class:`RoomState` as JSON; avatars become URLs instead of bytes."""
    base = f"/api/rooms/{state.room_id}/viewers"
    poll = state.poll
    return {
        "room_id": state.room_id, "title": state.title, "seq": state.seq,
        "taken_at": state.taken_at,
        "viewers": [{"id": v.id, "name": v.name, "last_comment": v.last_comment,
                     "last_active": v.last_active, "joined_at": v.joined_at,
                     "avatar_url": f"{base}/{v.id}/avatar.png" if v.avatar else None}
                    for v in state.viewers],
        "viewer_count": state.viewer_count, "peak_viewers": state.peak_viewers,
        "poll": None if poll is None else {
            "id": poll.id, "question": poll.question, "opened_at": poll.opened_at,
            "closes_at": poll.closes_at, "closed": poll.closed, "winner": poll.winner,
            "total_votes": poll.total_votes,
            "options": [{"label": o.label, "votes": o.votes, "shade_id": o.shade_id,
                         "swatch_hex": o.swatch_hex} for o in poll.options]},
        "likes": state.likes, "recent_likes": list(state.recent_likes),
        "like_goal": None if state.like_goal is None else {
            "target": state.like_goal.target, "count": state.like_goal.count,
            "message": state.like_goal.message, "reached": state.like_goal.reached},
        "product": None if state.product is None else {
            "id": state.product.id, "name": state.product.name,
            "price": state.product.price, "url": state.product.url},
        "shade_id": state.shade_id, "shade_hex": state.shade_hex,
        "effects": {k: {"enabled": v, "settings": state.effect_settings.get(k, {})}
                    for k, v in state.effects.items()},
        "recent_comments": [{"viewer_id": c.viewer_id, "name": c.name, "text": c.text,
                             "ts": c.ts} for c in state.recent_comments],
        "follows": state.follows, "shares": state.shares,
        "interaction_rate": state.interaction_rate,
    }


def _ack(event: Event) -> dict[str, Any]:
    return {"ok": True, "seq": event.seq, "ts": event.ts}


# ------------------------------------------------------------------------ router


def _lean(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    """OpenAPI for a route that reads its own JSON body and bearer token."""
    return {"requestBody": {"required": required, "content": {
                "application/json": {"schema": model.model_json_schema()}}},
            "security": [{"HTTPBearer": []}]}


def _parse(model: type[_M], raw: bytes) -> _M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "body"
        raise InvalidInputError(f"{where}: {first['msg']}") from None


def _bearer_value(value: str | None) -> str | None:
    scheme, _, token = (value or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _metrics_doc() -> str:
    from arengine.interaction import metrics

    return (metrics.__doc__ or "").split("\n", 2)[-1].strip()


def _ack_bytes(event: Event) -> bytes:
    return b'{"ok":true,"seq":%d,"ts":%r}' % (event.seq, event.ts)


async def viewer_action(hub: RoomHub, room_id: str, kind: str, poll_id: str | None,
                        authorization: str | None, raw: bytes) -> Event:
    """One vote, like or comment from its raw request parts: the busiest code path,
    shared by the routes and by :class:`FastActions`."""
    room = hub.get(room_id)
    vid = room.viewer_for_token(_bearer_value(authorization))
    if kind == "vote":
        return await room.vote(vid, poll_id or "", _parse(VoteIn, raw).option)
    if kind == "likes":
        return await room.like(vid, _parse(LikeIn, raw).count if raw.strip() else 1)
    return await room.comment(vid, _parse(CommentIn, raw).text)


_FAST_PATH = re.compile(r"^/api/rooms/([^/]+)/(?:polls/([^/]+)/(votes)|(likes|comments))$")


class FastActions:
    """ASGI middleware answering votes, likes and comments without FastAPI's routing.

    Same checks, same answers as the routes (both call :func:`viewer_action`); it only
    skips route matching and dependency injection, which cost more than the action
    itself on a small server. Everything else passes through to the app.
    """

    def __init__(self, app: ASGIApp, hub: RoomHub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        m = None
        if scope["type"] == "http":
            for k, v in scope["headers"]:
                if k == b"content-length" and v.isdigit() and int(v) > MAX_REQUEST_BODY:
                    await _send_error(send, PayloadTooLargeError(
                        f"request body over {MAX_REQUEST_BODY // 1024} KB"))
                    return
            if scope["method"] == "POST":
                m = _FAST_PATH.match(scope["path"])
        if m is None:
            await self.app(scope, receive, send)
            return
        room_id, poll_id, vote, other = m.groups()
        headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
        status = 201
        try:
            auth = None
            for k, v in scope["headers"]:
                if k == b"authorization":
                    auth = v.decode("latin-1")
            raw = b""
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                raw += message.get("body", b"")
                more = message.get("more_body", False)
                if len(raw) > MAX_ACTION_BODY:
                    raise PayloadTooLargeError(f"body over {MAX_ACTION_BODY} bytes")
            kind = "vote" if vote else other
            event = await viewer_action(self.hub, room_id, kind, poll_id, auth, raw)
            body = _ack_bytes(event)
        except InteractionError as e:
            await _send_error(send, e)
            return
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, e: InteractionError) -> None:
    body = json.dumps({"detail": e.message}, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if isinstance(e, RateLimitedError):
        headers.append((b"retry-after", str(max(1, math.ceil(e.retry_after))).encode()))
    await send({"type": "http.response.start", "status": e.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_limited(request: Request, limit: int = 4096) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading it all."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise PayloadTooLargeError(f"body over {limit} bytes")
    return bytes(data)


_bearer = HTTPBearer(auto_error=False, description="host token or viewer token")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _token(creds: HTTPAuthorizationCredentials | None) -> str | None:
    return creds.credentials if creds is not None else None


def build_router(hub: RoomHub, admin_token: str | None = None) -> APIRouter:
    """All room routes for ``hub``; mount with ``app.include_router(build_router(hub))``.

    With ``admin_token`` set, creating a room needs ``Authorization: Bearer <admin_token>``
    (anyone may create rooms otherwise, which suits demos and local use only).
    """
    r = APIRouter(route_class=_Route)
    api = "/api/rooms/{room_id}"

    def room_of(room_id: str) -> Room:
        return hub.get(room_id)

    def host_room(room_id: str, creds: Credentials) -> Room:
        room = hub.get(room_id)
        room.require_host(_token(creds))
        return room

    def viewer_of(room_id: str, creds: Credentials) -> tuple[Room, str]:
        room = hub.get(room_id)
        return room, room.viewer_for_token(_token(creds))

    RoomDep = Annotated[Room, Depends(room_of)]
    HostRoom = Annotated[Room, Depends(host_room)]
    ViewerDep = Annotated[tuple[Room, str], Depends(viewer_of)]

    @r.post("/api/rooms", status_code=201, tags=["rooms"])
    async def create_room(body: CreateRoom, creds: Credentials) -> dict[str, Any]:
        """Create a room; the host token is returned once and never shown again."""
        if admin_token is not None:
            given = _token(creds)
            if not given:
                raise UnauthorizedError("creating a room needs the admin token "
                                        "(Authorization: Bearer)")
            if not hmac.compare_digest(given.encode(), admin_token.encode()):
                raise ForbiddenError("wrong admin token")
        room, token = await hub.create_room(body.title, body.room_id)
        return {"room_id": room.id, "host_token": token, "state": state_to_json(room.snapshot())}

    @r.get("/api/rooms", tags=["rooms"])
    async def list_rooms() -> dict[str, Any]:
        return {"rooms": [{"room_id": rm.id, "title": rm.title, "viewers": rm.present,
                           "created_at": rm.created_at} for rm in hub.rooms.values()]}

    @r.get(api, tags=["rooms"])
    async def read_room(room: RoomDep) -> dict[str, Any]:
        return state_to_json(room.snapshot())

    @r.get("/api/shades", tags=["rooms"])
    async def shades() -> dict[str, Any]:
        from arengine.effects.shades import default_catalog

        cat = default_catalog()
        return {"shades": [{"id": s.id, "name": s.name, "hex": s.hex}
                           for s in (cat.get(i) for i in cat.ids())]}

    # viewers

    @r.post(api + "/join", status_code=201, tags=["viewers"])
    async def join(room: RoomDep, body: Join, creds: Credentials) -> dict[str, Any]:
        """Join as a new viewer, or rejoin with a previous viewer token."""
        vid, token = await room.join(body.name, _token(creds))
        return {"viewer_id": vid, "viewer_token": token}

    @r.post(api + "/leave", tags=["viewers"])
    async def leave(viewer: ViewerDep) -> dict[str, Any]:
        room, vid = viewer
        await room.leave(vid)
        return {"ok": True}

    # The three busiest routes parse their own body and skip dependency injection: on a
    # small server FastAPI's per-request machinery costs more than the action itself.
    # The OpenAPI document still describes their body and auth (see _lean). create_app
    # also puts FastActions in front, which answers them before routing.

    @r.post(api + "/comments", status_code=201, tags=["viewers"],
            response_model=None, openapi_extra=_lean(CommentIn))
    async def comment(request: Request, room_id: str) -> Response:
        event = await viewer_action(hub, room_id, "comments", None,
                                    request.headers.get("authorization"),
                                    await _read_limited(request, MAX_ACTION_BODY))
        return Response(_ack_bytes(event), 201, media_type="application/json")

    @r.post(api + "/likes", status_code=201, tags=["viewers"],
            response_model=None, openapi_extra=_lean(LikeIn, required=False))
    async def like(request: Request, room_id: str) -> Response:
        event = await viewer_action(hub, room_id, "likes", None,
                                    request.headers.get("authorization"),
                                    await _read_limited(request, MAX_ACTION_BODY))
        return Response(_ack_bytes(event), 201, media_type="application/json")

    @r.post(api + "/shares", status_code=201, tags=["viewers"])
    async def share(viewer: ViewerDep, body: ShareIn | None = None) -> dict[str, Any]:
        room, vid = viewer
        return _ack(await room.share(vid, body.channel if body else None))

    @r.post(api + "/heartbeat", tags=["viewers"])
    async def heartbeat(viewer: ViewerDep) -> dict[str, Any]:
        """Still watching: viewers silent for ``idle_s`` seconds (no request, no heartbeat,
        no event stream opened with their token) are marked as left."""
        room, vid = viewer
        room.touch(vid)
        return {"ok": True, "idle_s": hub.idle_s}

    @r.post(api + "/follows", status_code=201, tags=["viewers"])
    async def follow(viewer: ViewerDep) -> dict[str, Any]:
        room, vid = viewer
        return _ack(await room.follow(vid))

    @r.post(api + "/stickers/{sticker_id}/clicks", status_code=201, tags=["viewers"])
    async def sticker_click(viewer: ViewerDep, sticker_id: str) -> dict[str, Any]:
        room, vid = viewer
        return _ack(await room.sticker_click(vid, sticker_id))

    @r.post(api + "/polls/{poll_id}/votes", status_code=201, tags=["polls"],
            response_model=None, openapi_extra=_lean(VoteIn))
    async def vote(request: Request, room_id: str, poll_id: str) -> Response:
        """Vote, or move your vote; each viewer has one ballot per poll."""
        event = await viewer_action(hub, room_id, "vote", poll_id,
                                    request.headers.get("authorization"),
                                    await _read_limited(request, MAX_ACTION_BODY))
        return Response(_ack_bytes(event), 201, media_type="application/json")

    @r.put(api + "/viewers/me/avatar", tags=["viewers"],
           openapi_extra={"requestBody": {"required": True, "content": {
               m: {"schema": {"type": "string", "format": "binary"}}
               for m in ("image/png", "image/jpeg", "image/webp")}}})
    async def upload_avatar(viewer: ViewerDep, request: Request) -> dict[str, Any]:
        """Upload an avatar (PNG/JPEG/WebP, at most 256 KB); stored as a 96x96 PNG."""
        room, vid = viewer
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
            raise PayloadTooLargeError(
                f"avatar is {declared} bytes; the limit is {MAX_UPLOAD_BYTES // 1024} KB")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_UPLOAD_BYTES:
                raise PayloadTooLargeError(
                    f"avatar is over the limit of {MAX_UPLOAD_BYTES // 1024} KB")
        png = await asyncio.to_thread(to_avatar_png, bytes(data))
        event = await room.set_avatar(vid, png)
        return {**_ack(event), "avatar_url": f"/api/rooms/{room.id}/viewers/{vid}/avatar.png",
                "bytes": len(png)}

    @r.get(api + "/viewers/{viewer_id}/avatar.png", tags=["viewers"],
           response_class=Response,
           responses={200: {"content": {"image/png": {}}}})
    async def avatar(room: RoomDep, viewer_id: str) -> Response:
        v = room.viewer(viewer_id)
        if v.avatar is None:
            return JSONResponse({"detail": f"viewer {viewer_id!r} has no avatar"}, 404)
        return Response(v.avatar, media_type="image/png",
                        headers={"Cache-Control": "public, max-age=60"})

    # polls (host)

    @r.post(api + "/polls", status_code=201, tags=["polls"])
    async def open_poll(room: HostRoom, body: PollIn) -> dict[str, Any]:
        poll = await room.open_poll(body.question, [(o.label, o.shade_id) for o in body.options],
                                    body.duration_s, body.apply_shade)
        return poll.to_json()

    @r.get(api + "/polls/{poll_id}", tags=["polls"])
    async def read_poll(room: RoomDep, poll_id: str) -> dict[str, Any]:
        return room.poll(poll_id).to_json()

    @r.post(api + "/polls/{poll_id}/close", tags=["polls"])
    async def close_poll(room: HostRoom, poll_id: str) -> dict[str, Any]:
        return (await room.close_poll(poll_id)).to_json()

    @r.get(api + "/polls/{poll_id}/ballots", tags=["polls"])
    async def ballots(room: HostRoom, poll_id: str) -> dict[str, Any]:
        """Each viewer's current choice (host only), for audits."""
        return {"poll_id": poll_id, "ballots": dict(room.poll(poll_id).ballots)}

    # room settings (host)

    @r.put(api + "/shade", tags=["host"])
    async def set_shade(room: HostRoom, body: ShadeIn) -> dict[str, Any]:
        return _ack(await room.set_shade(body.shade_id))

    @r.put(api + "/effects", tags=["host"])
    async def set_effects(room: HostRoom, body: EffectsIn) -> dict[str, Any]:
        effects = {k: v.model_dump(exclude_none=True) for k, v in body.effects.items()}
        return _ack(await room.set_effects(effects))

    @r.put(api + "/product", tags=["host"])
    async def set_product(room: HostRoom, body: ProductIn) -> dict[str, Any]:
        return _ack(await room.set_product(body.name, body.price, body.url, body.id))

    @r.delete(api + "/product", tags=["host"])
    async def clear_product(room: HostRoom) -> dict[str, Any]:
        return _ack(await room.clear_product())

    @r.put(api + "/like-goal", tags=["host"])
    async def set_like_goal(room: HostRoom, body: LikeGoalIn) -> dict[str, Any]:
        return _ack(await room.set_like_goal(body.target, body.message))

    # metrics

    @r.get(api + "/metrics", tags=["metrics"], description=_metrics_doc())
    async def metrics(room: RoomDep,
                      bucket_s: Annotated[float, Query(ge=1, le=3600)] = 60.0
                      ) -> dict[str, Any]:
        """Interaction rate, per-minute activity, votes over time (see metrics.py)."""
        return room_metrics(room, bucket_s)

    @r.get("/metrics", tags=["metrics"], response_class=Response,
           responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    async def prometheus() -> Response:
        hub.refresh_gauges()
        return Response(generate_latest(hub.registry), media_type=CONTENT_TYPE_LATEST)

    # websockets

    @r.websocket(api + "/events")
    async def events(ws: WebSocket, room_id: str, token: str = "") -> None:
        """Room events as JSON, after a first ``{"type": "snapshot"}`` message.

        Events whose ``seq`` is at most the snapshot's ``seq`` are already in it. A client
        that falls behind gets ``{"type": "dropped", "count": n}`` instead of the oldest
        events it missed (fetch ``GET /api/rooms/{room_id}`` to resynchronise). With
        ``?token=<viewer_token>`` the viewer counts as present while the stream is open.
        """
        await stream_events(hub, ws, room_id, token=token or None)

    @r.websocket(api + "/actions")
    async def actions(ws: WebSocket, room_id: str, token: str = "") -> None:
        """Viewer actions over one socket, each acknowledged once durable."""
        await serve_actions(hub, ws, room_id, token)

    return r


async def _reject(ws: WebSocket, e: InteractionError) -> None:
    await ws.accept()
    await ws.send_json({"type": "error", "status": e.status, "detail": e.message})
    await ws.close(code=4000 + e.status)


async def stream_events(hub: RoomHub, ws: WebSocket, room_id: str,
                        maxsize: int = 256, token: str | None = None) -> None:
    try:
        room = hub.get(room_id)
        vid = room.viewer_for_token(token) if token else None
    except InteractionError as e:
        await _reject(ws, e)
        return
    await ws.accept()
    if vid is not None:
        room.connect(vid)
    sub = room.subscribe(maxsize)
    reader = asyncio.create_task(_drain(ws))
    try:
        await ws.send_json({"type": "snapshot", "state": state_to_json(room.snapshot())})
        reported = 0
        while not reader.done():
            getter = asyncio.ensure_future(sub.get())
            await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                break
            if sub.dropped > reported:
                hub.dropped_total.labels(room_id).inc(sub.dropped - reported)
                await ws.send_json({"type": "dropped", "count": sub.dropped - reported})
                reported = sub.dropped
            await ws.send_text(_wire_text(getter.result()))
    except (WebSocketDisconnect, RuntimeError, StopAsyncIteration):
        pass
    finally:
        sub.close()
        reader.cancel()
        if vid is not None:
            room.disconnect(vid)
        if ws.application_state != WebSocketState.DISCONNECTED:
            # The client may already be gone: closing then raises, and that is fine.
            with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
                await ws.close()


_WIRE_CACHE: OrderedDict[tuple[str, int], str] = OrderedDict()
_WIRE_CACHE_SIZE = 4096


def _wire_text(event: Event) -> str:
    """An event's JSON text, encoded once however many subscribers receive it."""
    key = (event.room_id, event.seq)
    text = _WIRE_CACHE.get(key)
    if text is None:
        text = json.dumps({"type": "event", **event.to_json()}, ensure_ascii=False)
        _WIRE_CACHE[key] = text
        if len(_WIRE_CACHE) > _WIRE_CACHE_SIZE:
            _WIRE_CACHE.popitem(last=False)
    return text


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) what an events client sends, to notice when it goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await ws.receive_text()


_OPS = ("vote", "like", "comment", "share", "follow", "sticker_click", "leave")


async def serve_actions(hub: RoomHub, ws: WebSocket, room_id: str, token: str) -> None:
    """Pipelined viewer actions: ``{"op": "vote", "poll_id": "p1", "option": 0, "ref": 7}``.

    Answers ``{"type": "ack", "ref": 7, "seq": ...}`` or ``{"type": "error", "ref": 7,
    "status": 409, "detail": ...}``. Many actions may be in flight on one socket (so
    they share commits); past ``WS_MAX_IN_FLIGHT`` the server stops reading until some
    are acknowledged, so a fast client can not queue unbounded work.

    Open it with ``?token=<viewer_token>`` for one viewer, or without a token to relay
    many viewers' actions (e.g. from an edge server): then every message carries its
    own ``"token"``, checked like an Authorization header.
    """
    try:
        room = hub.get(room_id)
        socket_vid = room.viewer_for_token(token) if token else None
    except InteractionError as e:
        await _reject(ws, e)
        return
    await ws.accept()
    slots = asyncio.Semaphore(WS_MAX_IN_FLIGHT)
    out: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(WS_MAX_IN_FLIGHT + 1)
    tasks: set[asyncio.Task[None]] = set()

    async def act(msg: dict[str, Any]) -> None:
        ref = msg.get("ref")
        try:
            own = msg.get("token")
            vid = room.viewer_for_token(own if isinstance(own, str) else None) \
                if own is not None or socket_vid is None else socket_vid
            event = await _dispatch(room, vid, msg)
            reply: dict[str, Any] = {"type": "ack", "ref": ref, "seq": event.seq}
        except InteractionError as e:
            reply = {"type": "error", "ref": ref, "status": e.status, "detail": e.message}
            if isinstance(e, RateLimitedError):
                reply["retry_after"] = e.retry_after
        finally:
            slots.release()
        await out.put(reply)

    async def writer() -> None:
        while (item := await out.get()) is not None:
            await ws.send_text(json.dumps(item, ensure_ascii=False))

    send_task = asyncio.create_task(writer())
    try:
        while True:
            text = await ws.receive_text()
            await slots.acquire()
            try:
                if len(text) > WS_MAX_MESSAGE:
                    raise InvalidInputError(f"message over {WS_MAX_MESSAGE} characters")
                msg = json.loads(text)
                if not isinstance(msg, dict):
                    raise InvalidInputError("each message must be a JSON object")
            except (ValueError, InvalidInputError) as e:
                slots.release()
                detail = e.message if isinstance(e, InvalidInputError) else "invalid JSON"
                await out.put({"type": "error", "ref": None, "status": 422, "detail": detail})
                continue
            task = asyncio.create_task(act(msg))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(asyncio.QueueFull):
            out.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(send_task, 5)
        send_task.cancel()


async def _dispatch(room: Room, vid: str, msg: dict[str, Any]) -> Event:
    op = msg.get("op")
    if op == "vote":
        poll_id = msg.get("poll_id")
        if not isinstance(poll_id, str):
            raise InvalidInputError("vote needs poll_id (string) and option (integer)")
        return await room.vote(vid, poll_id, msg.get("option"))  # type: ignore[arg-type]
    if op == "like":
        return await room.like(vid, msg.get("count", 1))
    if op == "comment":
        return await room.comment(vid, msg.get("text"))  # type: ignore[arg-type]
    if op == "share":
        return await room.share(vid, msg.get("channel"))
    if op == "follow":
        return await room.follow(vid)
    if op == "sticker_click":
        return await room.sticker_click(vid, msg.get("sticker_id"))  # type: ignore[arg-type]
    raise InvalidInputError(f"unknown op {op!r}; one of: {', '.join(_OPS[:-1])}")


def create_app(db_path: str | Path, *, synchronous: Synchronous = "FULL",
               hub: RoomHub | None = None, fast_actions: bool = True,
               admin_token: str | None = None) -> FastAPI:
    """A standalone FastAPI app serving one hub (opened on ``db_path``).

    ``fast_actions`` puts :class:`FastActions` in front of the routes (same answers,
    less overhead); an app that mounts ``build_router`` can add it the same way.
    """
    the_hub = hub if hub is not None else RoomHub.open(db_path, synchronous=synchronous)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        the_hub.start()
        yield
        await the_hub.close()

    app = FastAPI(title="arengine rooms", version="0.1.0", lifespan=lifespan,
                  description=__doc__)
    app.state.hub = the_hub
    app.include_router(build_router(the_hub, admin_token=admin_token))
    app.add_exception_handler(RequestValidationError, validation_error_response)
    if fast_actions:
        app.add_middleware(FastActions, hub=the_hub)
    return app


def app_from_env() -> ASGIApp:
    """``uvicorn --factory arengine.interaction.api:app_from_env``.

    :class:`FastActions` wraps the whole FastAPI app here, so the busiest requests
    skip FastAPI's own per-request work too.

    Environment: ``ARENGINE_DB`` (database file), ``ARENGINE_DB_SYNC`` (FULL or NORMAL),
    ``ARENGINE_ADMIN_TOKEN`` (if set, needed to create rooms).
    """
    import os

    path = os.environ.get("ARENGINE_DB", "arengine-rooms.db")
    sync = os.environ.get("ARENGINE_DB_SYNC", "FULL").upper()
    if sync not in ("FULL", "NORMAL"):
        raise ValueError("ARENGINE_DB_SYNC must be FULL or NORMAL")
    app = create_app(path, synchronous=sync,  # type: ignore[arg-type]
                     admin_token=os.environ.get("ARENGINE_ADMIN_TOKEN") or None,
                     fast_actions=False)
    return FastActions(app, app.state.hub)
