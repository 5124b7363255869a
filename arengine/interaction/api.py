"""HTTP and WebSocket API for rooms (FastAPI).

``build_router(hub, ...)`` gives the routes; the one app that serves them is made by
:func:`arengine.app.create_app`. :class:`FastActions` answers the busiest routes (votes,
likes, comments) before FastAPI's routing, with the same checks and answers.

Auth: host actions need ``Authorization: Bearer <host_token>`` from room creation;
viewer actions need ``Authorization: Bearer <viewer_token>`` from join; creating a room
needs the admin token unless the server runs with open rooms. Every response to a write
is sent only after the event is committed to the store. Every error, from any route, is
``{"detail": "<what is wrong, for a person>"}`` and never repeats a long input.
"""

import asyncio
import contextlib
import heapq
import hmac
import json
import logging
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response, WebSocket
from fastapi import Path as FPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect, WebSocketState

from arengine.interaction.avatar import MAX_UPLOAD_BYTES, to_avatar_png
from arengine.interaction.errors import (
    ForbiddenError,
    InteractionError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    UnauthorizedError,
    shown,
)
from arengine.interaction.events import Event
from arengine.interaction.hub import RoomHub
from arengine.interaction.metrics import room_metrics
from arengine.interaction.polls import (
    MAX_DURATION_S,
    MAX_OPTIONS,
    MIN_DURATION_S,
    MIN_OPTIONS,
    OPTION_MAX_CHARS,
    QUESTION_MAX_CHARS,
)
from arengine.interaction.room import (
    GOAL_MESSAGE_MAX_CHARS,
    LIKE_GOAL_MAX,
    MAX_LIKES_PER_REQUEST,
    PRODUCT_NAME_MAX_CHARS,
    PRODUCT_PRICE_MAX_CHARS,
    ROOM_TITLE_MAX_CHARS,
    URL_MAX_CHARS,
    Room,
    Subscription,
)
from arengine.interaction.text import COMMENT_MAX_CHARS, NAME_MAX_CHARS, check_comment
from arengine.state import RoomState

_M = TypeVar("_M", bound=BaseModel)
logger = logging.getLogger(__name__)
MAX_ACTION_BODY = 4096
MAX_REQUEST_BODY = 300 * 1024  # an avatar (256 KB) plus headroom; larger bodies get 413
WS_MAX_IN_FLIGHT = 256  # un-acknowledged actions per actions socket before we stop reading
WS_MAX_MESSAGE = 4096
# A relay may send up to this many actions as one JSON array, answered by one message:
# per message the transport (parse, framing, a write made holding the interpreter lock)
# cost ~200 us against ~22 us for the vote itself (bench/bench_storm.py, bench_votes.py).
WS_MAX_BATCH = 64
# An events stream sends at most one message per interval, holding what came meanwhile.
# One message per event cost every stream a compressed WebSocket send per event: five
# viewer pages open during a 300 actions/s storm took the server from 59% to 101% of a
# core and the host's glass-to-glass p99 from 49 to 118 ms (bench/bench_storm.py). A lone
# event after a quiet spell still goes at once.
EVENTS_INTERVAL_S = 0.05
# A state stream (?view=state, the pages) sends the room's snapshot at most this often,
# on ticks shared by all its streams: during a storm each page used to fetch the whole
# state ~7 times a second, one encoding per fetch.
STATE_INTERVAL_S = 0.2
STATE_VIEW_VIEWERS = 20  # viewers listed in a state view's snapshot (GET has them all)


async def validation_error_response(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 as the one error shape: ``detail`` says what is wrong on one line
    (field and reason, never the input itself).

    Install with ``app.add_exception_handler(RequestValidationError, ...)``.
    """
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    lines = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', '')}"
             for e in errors[:5]]
    if len(errors) > 5:
        lines.append(f"and {len(errors) - 5} more")
    return JSONResponse({"detail": "; ".join(lines) or "invalid request"}, status_code=422)


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


def _shade_ids() -> list[str]:
    from arengine.catalog import default_catalog

    return list(default_catalog().ids())


def _shade_enum(schema: dict[str, Any]) -> None:
    """The catalog's ids in the OpenAPI document, so a client (and schemathesis) knows
    exactly which shade ids are accepted."""
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "string":
            option["enum"] = _shade_ids()


# The limits below are documented in the OpenAPI document (json_schema_extra) and checked
# by the room itself, the one place the rules live, with messages that say what is wrong
# ("comment is 250 characters; the limit is 200"). The text rules beyond lengths (no
# control characters, a visible character, no name posing as the host) are more than JSON
# Schema can say; they answer 422 with a message naming the rule.
ROOM_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{2,39}$"
# What text.py refuses anywhere in a string: control characters and bidi overrides.
PLAIN_TEXT = r"^[^\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]*$"
STICKER_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"


def _doc(**limits: Any) -> dict[str, Any]:
    """JSON Schema keywords for a field's OpenAPI entry (camelCase, as the spec spells them)."""
    return {"".join(w.capitalize() if n else w for n, w in enumerate(k.split("_"))): v
            for k, v in limits.items()}


def _text(shortest: int, longest: int) -> dict[str, Any]:
    return _doc(min_length=shortest, max_length=longest, pattern=PLAIN_TEXT)


class CreateRoom(_Body):
    title: str = Field("", json_schema_extra=_text(0, ROOM_TITLE_MAX_CHARS))
    room_id: str | None = Field(None, description="3-40 of a-z, 0-9 and -; generated if absent",
                                json_schema_extra=_doc(pattern=ROOM_ID_PATTERN))


class Join(_Body):
    name: str = Field(description="display name",
                      json_schema_extra=_text(1, NAME_MAX_CHARS))


class CommentIn(_Body):
    text: str = Field(description="kept exactly as sent",
                      json_schema_extra=_text(1, COMMENT_MAX_CHARS))


class LikeIn(_Body):
    count: int = Field(1, description="likes in this request, e.g. from rapid taps",
                       json_schema_extra=_doc(minimum=1, maximum=MAX_LIKES_PER_REQUEST))


class ShareIn(_Body):
    channel: str | None = Field(None, description="where it was shared, e.g. 'line'",
                                json_schema_extra=_doc(pattern=r"^[a-z0-9][a-z0-9_-]{0,23}$"))


class VoteIn(_Body):
    option: int = Field(description="option index, 0-based",
                        json_schema_extra=_doc(minimum=0, maximum=MAX_OPTIONS - 1))


class PollOptionIn(_Body):
    label: str = Field(json_schema_extra=_text(1, OPTION_MAX_CHARS))
    shade_id: str | None = Field(None, json_schema_extra=_shade_enum,
                                 description="a shade id from GET /api/shades")


class PollIn(_Body):
    question: str = Field(json_schema_extra=_text(1, QUESTION_MAX_CHARS))
    options: list[PollOptionIn] = Field(
        json_schema_extra=_doc(min_items=MIN_OPTIONS, max_items=MAX_OPTIONS))
    duration_s: float = Field(description="seconds", json_schema_extra=_doc(
        minimum=MIN_DURATION_S, maximum=MAX_DURATION_S))
    apply_shade: bool = Field(
        False, description="when the poll closes, put the winning shade on the host "
                           "(every option must name a shade)")


class ShadeIn(_Body):
    shade_id: str | None = Field(json_schema_extra=_shade_enum,
                                 description="a shade id from GET /api/shades, or null")


class EffectIn(_Body):
    enabled: bool | None = None
    settings: dict[str, Any] | None = Field(
        None, description="the effect's own settings, e.g. lipstick intensity (checked "
                          "against the effect)", json_schema_extra=_doc(max_properties=32))


class EffectsIn(_Body):
    effects: dict[str, EffectIn] = Field(json_schema_extra=_doc(min_properties=1))


class ProductIn(_Body):
    name: str = Field(json_schema_extra=_text(1, PRODUCT_NAME_MAX_CHARS))
    price: str = Field(description="formatted for display, e.g. '¥129' or '$19.90'",
                       json_schema_extra=_text(1, PRODUCT_PRICE_MAX_CHARS))
    url: str | None = Field(None, json_schema_extra=_doc(max_length=URL_MAX_CHARS,
                                                         pattern=r"^https?://\S+$"))
    id: str | None = Field(None, json_schema_extra=_doc(pattern=STICKER_ID_PATTERN))


class LikeGoalIn(_Body):
    target: int = Field(json_schema_extra=_doc(minimum=1, maximum=LIKE_GOAL_MAX))
    message: str = Field(json_schema_extra=_text(1, GOAL_MESSAGE_MAX_CHARS))


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
                        authorization: str | None, raw: bytes, client: str | None) -> Event:
    """One vote, like or comment from its raw request parts: the busiest code path,
    shared by the routes and by :class:`FastActions`. ``client`` is the caller's address,
    for the per-address comment limit."""
    room = hub.get(room_id)
    vid = room.viewer_for_token(_bearer_value(authorization))
    if kind == "vote":
        return await room.vote(vid, poll_id or "", _parse(VoteIn, raw).option)
    if kind == "likes":
        return await room.like(vid, _parse(LikeIn, raw).count if raw.strip() else 1)
    text = _parse(CommentIn, raw).text
    hub.client_limiter.check(client, "comment", "comments")
    return await room.comment(vid, text)


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
            client = scope.get("client")
            event = await viewer_action(self.hub, room_id, kind, poll_id, auth, raw,
                                        client[0] if client else None)
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


class ErrorBody(BaseModel):
    """The one error shape of every route."""

    detail: str = Field(description="what is wrong, in words for a person")


_ERROR_TEXT = {
    400: "bad request", 401: "a token is missing or unknown",
    403: "the token does not allow this", 404: "no such room, poll, viewer or sticker",
    409: "the room's state forbids it now (poll closed, already following...)",
    413: "request body too large", 415: "unsupported content type",
    422: "invalid input: the detail names the field",
    429: "rate limited: retry after the Retry-After header's seconds",
    503: "the server is busy or full, or the event store failed",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all with :class:`ErrorBody`."""
    out: dict[int | str, dict[str, Any]] = {}
    for c in codes:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _ERROR_TEXT[c]}
        if c in (429, 503):
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                                "description": "seconds to wait"}}
        out[c] = entry
    return out


# Every route can answer these: body limits (FastActions), rate limits, a failed store.
COMMON = (400, 413, 422, 429, 503)
ROOM = (404, *COMMON)
VIEWER = (401, 404, 409, *COMMON)
HOST = (401, 403, 404, 409, *COMMON)


class Ack(BaseModel):
    ok: bool
    seq: int = Field(description="the event's sequence number in the room's log")
    ts: float


class Joined(BaseModel):
    viewer_id: str
    viewer_token: str = Field(description="keep it: it is your identity in this room")


class RoomCreated(BaseModel):
    room_id: str
    host_token: str = Field(description="shown once; only its hash is stored")
    state: dict[str, Any]


class RoomSummary(BaseModel):
    room_id: str
    title: str
    viewers: int = Field(description="viewers present in the room")
    created_at: float
    status: str = Field(description="what viewers see: live, reconnecting, demo, offline, idle")
    watching: int = Field(description="viewers playing the video now")


class RoomPage(BaseModel):
    rooms: list[RoomSummary]
    next: str | None = Field(description="pass as ?after= for the next page; null at the end")


class Heartbeat(BaseModel):
    ok: bool
    idle_s: float | None


class AvatarStored(Ack):
    avatar_url: str
    bytes: int


MediaStatus = Callable[[str], tuple[str, int]]  # room id -> (status, watching)
# A bearer token that may be left out (join: a previous viewer token to come back as).
_OPTIONAL_AUTH: dict[str, Any] = {"security": [{}, {"HTTPBearer": []}]}
PAGE_MAX = 100


def client_of(request: Request | WebSocket) -> str | None:
    """The client's address (the proxy's X-Forwarded-For only where the server trusts it,
    see the ``trust_proxy`` setting)."""
    return request.client.host if request.client is not None else None


def build_router(hub: RoomHub, *, admin_token: str | None,
                 media_status: MediaStatus | None = None) -> APIRouter:
    """All room routes for ``hub``.

    With ``admin_token``, creating a room needs ``Authorization: Bearer <admin_token>``;
    None lets anyone create rooms (the ``open_rooms`` setting, for demos on a private
    network). ``media_status`` tells the rooms list what each room's video shows.
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

    @r.post("/api/rooms", status_code=201, tags=["rooms"], response_model=RoomCreated,
            responses=errors(401, 403, 409, *COMMON),
            openapi_extra=None if admin_token is not None else _OPTIONAL_AUTH)
    async def create_room(body: CreateRoom, creds: Credentials,
                          request: Request) -> dict[str, Any]:
        """Create a room; the host token is returned once and never shown again."""
        if admin_token is not None:
            given = _token(creds)
            if not given:
                raise UnauthorizedError("creating a room needs the admin token "
                                        "(Authorization: Bearer)")
            if not hmac.compare_digest(given.encode(), admin_token.encode()):
                raise ForbiddenError("wrong admin token")
        hub.client_limiter.check(client_of(request), "room", "new rooms")
        room, token = await hub.create_room(body.title, body.room_id)
        return {"room_id": room.id, "host_token": token, "state": state_to_json(room.snapshot())}

    @r.get("/api/rooms", tags=["rooms"], response_model=RoomPage, responses=errors(*COMMON))
    async def list_rooms(limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
                         after: Annotated[str | None, Query(max_length=40)] = None
                         ) -> dict[str, Any]:
        """Rooms by id, a page at a time (``next`` is the cursor of the next page)."""
        rooms, cursor = hub.page(limit, after)
        out = []
        for rm in rooms:
            status, watching = media_status(rm.id) if media_status else ("idle", 0)
            out.append({"room_id": rm.id, "title": rm.title, "viewers": rm.present,
                        "created_at": rm.created_at, "status": status, "watching": watching})
        return {"rooms": out, "next": cursor}

    @r.get(api, tags=["rooms"], responses=errors(*ROOM))
    async def read_room(room: RoomDep) -> dict[str, Any]:
        return state_to_json(room.snapshot())

    @r.get("/api/shades", tags=["rooms"], responses=errors(*COMMON))
    async def shades() -> dict[str, Any]:
        from arengine.catalog import default_catalog

        cat = default_catalog()
        return {"shades": [{"id": s.id, "name": s.name, "hex": s.hex}
                           for s in (cat.get(i) for i in cat.ids())]}

    # viewers

    @r.post(api + "/join", status_code=201, tags=["viewers"], response_model=Joined,
            responses=errors(*VIEWER), openapi_extra=_OPTIONAL_AUTH)
    async def join(room: RoomDep, body: Join, creds: Credentials,
                   request: Request) -> dict[str, Any]:
        """Join as a new viewer, or rejoin with a previous viewer token."""
        token = _token(creds)
        if not token:  # a new identity: limited per address (a rejoin mints nothing)
            hub.client_limiter.check(client_of(request), "join", "new viewers")
        vid, token = await room.join(body.name, token)
        return {"viewer_id": vid, "viewer_token": token}

    @r.post(api + "/leave", tags=["viewers"], responses=errors(*VIEWER))
    async def leave(viewer: ViewerDep) -> dict[str, bool]:
        room, vid = viewer
        await room.leave(vid)
        return {"ok": True}

    # The three busiest routes parse their own body and skip dependency injection: on a
    # small server FastAPI's per-request machinery costs more than the action itself.
    # The OpenAPI document still describes their body and auth (see _lean). The app
    # also puts FastActions in front, which answers them before routing.

    @r.post(api + "/comments", status_code=201, tags=["viewers"],
            response_model=None, openapi_extra=_lean(CommentIn), responses=_acked(VIEWER))
    async def comment(request: Request, room_id: str) -> Response:
        event = await viewer_action(hub, room_id, "comments", None,
                                    request.headers.get("authorization"),
                                    await _read_limited(request, MAX_ACTION_BODY),
                                    client_of(request))
        return Response(_ack_bytes(event), 201, media_type="application/json")

    @r.post(api + "/likes", status_code=201, tags=["viewers"],
            response_model=None, openapi_extra=_lean(LikeIn, required=False),
            responses=_acked(VIEWER))
    async def like(request: Request, room_id: str) -> Response:
        event = await viewer_action(hub, room_id, "likes", None,
                                    request.headers.get("authorization"),
                                    await _read_limited(request, MAX_ACTION_BODY),
                                    client_of(request))
        return Response(_ack_bytes(event), 201, media_type="application/json")

    @r.post(api + "/shares", status_code=201, tags=["viewers"], response_model=Ack,
            responses=errors(*VIEWER))
    async def share(viewer: ViewerDep, body: ShareIn | None = None) -> dict[str, Any]:
        room, vid = viewer
        return _ack(await room.share(vid, body.channel if body else None))

    @r.post(api + "/heartbeat", tags=["viewers"], response_model=Heartbeat,
            responses=errors(*VIEWER))
    async def heartbeat(viewer: ViewerDep) -> dict[str, Any]:
        """Still watching: viewers silent for ``idle_s`` seconds (no request, no heartbeat,
        no event stream opened with their token) are marked as left; a heartbeat or any
        action from a viewer marked as left brings them back."""
        room, vid = viewer
        await room.heartbeat(vid)
        return {"ok": True, "idle_s": hub.idle_s}

    @r.post(api + "/follows", status_code=201, tags=["viewers"], response_model=Ack,
            responses=errors(*VIEWER))
    async def follow(viewer: ViewerDep) -> dict[str, Any]:
        room, vid = viewer
        return _ack(await room.follow(vid))

    @r.post(api + "/stickers/{sticker_id}/clicks", status_code=201, tags=["viewers"],
            response_model=Ack, responses=errors(*VIEWER))
    async def sticker_click(viewer: ViewerDep,
                            sticker_id: Annotated[str, FPath(max_length=40)]) -> dict[str, Any]:
        room, vid = viewer
        return _ack(await room.sticker_click(vid, sticker_id))

    @r.post(api + "/polls/{poll_id}/votes", status_code=201, tags=["polls"],
            response_model=None, openapi_extra=_lean(VoteIn), responses=_acked(VIEWER))
    async def vote(request: Request, room_id: str, poll_id: str) -> Response:
        """Vote, or move your vote; each viewer has one ballot per poll."""
        event = await viewer_action(hub, room_id, "vote", poll_id,
                                    request.headers.get("authorization"),
                                    await _read_limited(request, MAX_ACTION_BODY),
                                    client_of(request))
        return Response(_ack_bytes(event), 201, media_type="application/json")

    @r.put(api + "/viewers/me/avatar", tags=["viewers"], response_model=AvatarStored,
           responses=errors(*VIEWER, 415),
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
           responses={200: {"content": {"image/png": {"schema": {
               "type": "string", "format": "binary"}}}}, **errors(*ROOM)})
    async def avatar(room: RoomDep, viewer_id: str) -> Response:
        v = room.viewer(viewer_id)
        if v.avatar is None:
            raise NotFoundError(f"viewer {shown(viewer_id)} has no avatar")
        return Response(v.avatar, media_type="image/png",
                        headers={"Cache-Control": "public, max-age=60"})

    # polls (host)

    @r.post(api + "/polls", status_code=201, tags=["polls"], responses=errors(*HOST))
    async def open_poll(room: HostRoom, body: PollIn) -> dict[str, Any]:
        poll = await room.open_poll(body.question, [(o.label, o.shade_id) for o in body.options],
                                    body.duration_s, body.apply_shade)
        return poll.to_json()

    @r.get(api + "/polls/{poll_id}", tags=["polls"], responses=errors(*ROOM))
    async def read_poll(room: RoomDep, poll_id: str) -> dict[str, Any]:
        return room.poll(poll_id).to_json()

    @r.post(api + "/polls/{poll_id}/close", tags=["polls"], responses=errors(*HOST))
    async def close_poll(room: HostRoom, poll_id: str) -> dict[str, Any]:
        return (await room.close_poll(poll_id)).to_json()

    @r.get(api + "/polls/{poll_id}/ballots", tags=["polls"], responses=errors(*HOST))
    async def ballots(room: HostRoom, poll_id: str) -> dict[str, Any]:
        """Each viewer's current choice (host only), for audits."""
        return {"poll_id": poll_id, "ballots": dict(room.poll(poll_id).ballots)}

    # room settings (host)

    @r.put(api + "/shade", tags=["host"], response_model=Ack, responses=errors(*HOST))
    async def set_shade(room: HostRoom, body: ShadeIn) -> dict[str, Any]:
        return _ack(await room.set_shade(body.shade_id))

    @r.put(api + "/effects", tags=["host"], response_model=Ack, responses=errors(*HOST))
    async def set_effects(room: HostRoom, body: EffectsIn) -> dict[str, Any]:
        """Turn effects on or off and change their settings, e.g.
        ``{"effects": {"lipstick": {"settings": {"intensity": 0.5}}}}``; the settings
        reach the effect on the next frame."""
        effects = {k: v.model_dump(exclude_none=True) for k, v in body.effects.items()}
        return _ack(await room.set_effects(effects))

    @r.put(api + "/product", tags=["host"], response_model=Ack, responses=errors(*HOST))
    async def set_product(room: HostRoom, body: ProductIn) -> dict[str, Any]:
        return _ack(await room.set_product(body.name, body.price, body.url, body.id))

    @r.delete(api + "/product", tags=["host"], response_model=Ack, responses=errors(*HOST))
    async def clear_product(room: HostRoom) -> dict[str, Any]:
        return _ack(await room.clear_product())

    @r.put(api + "/like-goal", tags=["host"], response_model=Ack, responses=errors(*HOST))
    async def set_like_goal(room: HostRoom, body: LikeGoalIn) -> dict[str, Any]:
        return _ack(await room.set_like_goal(body.target, body.message))

    # metrics

    @r.get(api + "/metrics", tags=["metrics"], description=_metrics_doc(),
           responses=errors(*ROOM))
    async def metrics(room: RoomDep,
                      bucket_s: Annotated[float, Query(ge=1, le=3600)] = 60.0
                      ) -> dict[str, Any]:
        """Interaction rate, per-minute activity, votes over time (see metrics.py)."""
        return room_metrics(room, bucket_s)

    # websockets

    @r.websocket(api + "/events")
    async def events(ws: WebSocket, room_id: str, token: str = "", view: str = "events"
                     ) -> None:
        """Room events as JSON, after a first ``{"type": "snapshot"}`` message.

        Events whose ``seq`` is at most the snapshot's ``seq`` are already in it. Each
        message is one event (``{"type": "event", ...}``) or, when several came within
        ``EVENTS_INTERVAL_S`` of the last message, ``{"type": "events", "events": [...]}``
        holding them in order. A client that falls behind gets ``{"type": "dropped",
        "count": n}`` instead of the oldest events it missed (fetch
        ``GET /api/rooms/{room_id}`` to resynchronise). With ``?token=<viewer_token>`` the
        viewer counts as present while the stream is open.

        With ``?view=state`` (what the pages use) it sends no events: a new
        ``{"type": "snapshot"}`` after changes instead, at most one per
        ``STATE_INTERVAL_S``, the same text for every stream of the room, listing the
        ``STATE_VIEW_VIEWERS`` most recently active viewers (``viewer_count`` counts all).
        """
        if view not in ("events", "state"):
            await _reject(ws, InvalidInputError("view must be 'events' or 'state'"))
            return
        await stream_events(hub, ws, room_id, token=token or None, states=view == "state")

    @r.websocket(api + "/actions")
    async def actions(ws: WebSocket, room_id: str, token: str = "") -> None:
        """Viewer actions over one socket, each acknowledged once durable."""
        await serve_actions(hub, ws, room_id, token)

    return r


def _acked(codes: tuple[int, ...]) -> dict[int | str, dict[str, Any]]:
    """Responses of a route that answers with raw ack bytes (see :func:`_ack_bytes`)."""
    return {201: {"description": "stored", "content": {"application/json": {
        "schema": Ack.model_json_schema()}}}, **errors(*codes)}


async def _reject(ws: WebSocket, e: InteractionError) -> None:
    await ws.accept()
    await ws.send_json({"type": "error", "status": e.status, "detail": e.message})
    await ws.close(code=4000 + e.status)


async def stream_events(hub: RoomHub, ws: WebSocket, room_id: str,
                        maxsize: int = 256, token: str | None = None,
                        states: bool = False) -> None:
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
        first = room.snapshot()
        await ws.send_text(_snapshot_text(first, page=states))
        if states:
            await _stream_states(ws, room, sub, reader, first)
            return
        reported = 0
        loop = asyncio.get_running_loop()
        last_sent = -math.inf
        while (event := await _next_event(sub, reader)) is not None:
            # At most one message per EVENTS_INTERVAL_S: what came meanwhile goes together.
            batch = [event]
            wait = last_sent + EVENTS_INTERVAL_S - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            while len(batch) < maxsize and (more := sub.get_nowait()) is not None:
                batch.append(more)
            if sub.dropped > reported:
                hub.dropped_total.labels(room_id).inc(sub.dropped - reported)
                await ws.send_json({"type": "dropped", "count": sub.dropped - reported})
                reported = sub.dropped
            await ws.send_text(wire_batch(batch))
            last_sent = loop.time()
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


async def _next_event(sub: Subscription, reader: asyncio.Task[None]) -> Event | None:
    """The feed's next event, or None once the client has gone (``reader`` ended)."""
    if reader.done():
        return None
    getter = asyncio.ensure_future(sub.get())
    await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
    if not getter.done():
        getter.cancel()
        return None
    return getter.result()


async def _stream_states(ws: WebSocket, room: Room, sub: Subscription,
                         reader: asyncio.Task[None], sent: RoomState) -> None:
    """Snapshots after changes, on a tick shared by every stream (so one encoding serves
    them all): a page needs the state, not each of a storm's events."""
    loop = asyncio.get_running_loop()
    while await _next_event(sub, reader) is not None:
        now = loop.time()
        await asyncio.sleep((math.floor(now / STATE_INTERVAL_S) + 1) * STATE_INTERVAL_S - now)
        while sub.get_nowait() is not None:  # bounded: the feed holds maxsize at most
            pass
        snap = room.snapshot()  # a new object after every change, the same one until then
        if snap is not sent:
            await ws.send_text(_snapshot_text(snap, page=True))
            sent = snap


class TextCache:
    """JSON text of objects that many streams send, encoded once each.

    Keyed by the object itself (its ``id``, with the object kept alive while cached, so the
    id cannot be reused): a room id and seq are not unique in one process, as a server
    started again, or a room made again under the same id, counts seq from 1 again.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[int, tuple[object, str]] = OrderedDict()

    def text(self, obj: object, encode: Callable[[], str]) -> str:
        hit = self._items.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        text = encode()
        self._items[id(obj)] = (obj, text)
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return text


_SNAPSHOTS = TextCache(64)  # a room's snapshot object lives until its next change
_PAGE_SNAPSHOTS = TextCache(64)
_EVENTS = TextCache(4096)


def _snapshot_text(state: RoomState, page: bool = False) -> str:
    """A snapshot message, encoded once however many streams send it. A page's (the state
    view's) lists only the ``STATE_VIEW_VIEWERS`` most recently active viewers: the pages
    show counts, not the list, and 500 viewers made each snapshot ~85 KB, compressed once
    per page five times a second."""
    if not page:
        return _SNAPSHOTS.text(state, lambda: json.dumps(
            {"type": "snapshot", "state": state_to_json(state)}, ensure_ascii=False))

    def encode() -> str:
        recent = heapq.nlargest(STATE_VIEW_VIEWERS, state.viewers, key=lambda v: v.last_active)
        return json.dumps({"type": "snapshot", "state": state_to_json(
            replace(state, viewers=tuple(recent)))}, ensure_ascii=False)

    return _PAGE_SNAPSHOTS.text(state, encode)


def _wire_text(event: Event) -> str:
    """An event's JSON text, encoded once however many subscribers receive it."""
    return _EVENTS.text(event, lambda: json.dumps({"type": "event", **event.to_json()},
                                                  ensure_ascii=False))


def wire_batch(events: list[Event]) -> str:
    """One message for ``events``: the event itself, or ``{"type": "events", ...}``."""
    if len(events) == 1:
        return _wire_text(events[0])
    return '{"type":"events","events":[' + ",".join(_wire_text(e) for e in events) + "]}"


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) what an events client sends, to notice when it goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await ws.receive_text()


_OPS = ("vote", "like", "comment", "share", "follow", "sticker_click")


async def serve_actions(hub: RoomHub, ws: WebSocket, room_id: str, token: str) -> None:
    """Pipelined viewer actions: ``{"op": "vote", "poll_id": "p1", "option": 0, "ref": 7}``.

    Answers ``{"type": "ack", "ref": 7, "seq": ...}`` or ``{"type": "error", "ref": 7,
    "status": 409, "detail": ...}``. Many actions may be in flight on one socket (so
    they share commits); past ``WS_MAX_IN_FLIGHT`` the server stops reading until some
    are acknowledged, so a fast client can not queue unbounded work.

    Open it with ``?token=<viewer_token>`` for one viewer, or without a token to relay
    many viewers' actions (e.g. from an edge server): then every message carries its
    own ``"token"``, checked like an Authorization header. A relay may also send a JSON
    array of up to ``WS_MAX_BATCH`` actions as one message: they run together, each
    takes an in-flight slot, and one ``{"type": "replies", "replies": [...]}`` answers
    them, in their order.
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

    async def answer(msg: object) -> dict[str, Any]:
        ref = msg.get("ref") if isinstance(msg, dict) else None
        try:
            if not isinstance(msg, dict):
                raise InvalidInputError("each action must be a JSON object")
            own = msg.get("token")
            vid = room.viewer_for_token(own if isinstance(own, str) else None) \
                if own is not None or socket_vid is None else socket_vid
            event = await _dispatch(hub, room, vid, msg, client)
            reply: dict[str, Any] = {"type": "ack", "ref": ref, "seq": event.seq}
        except InteractionError as e:
            reply = {"type": "error", "ref": ref, "status": e.status, "detail": e.message}
            if isinstance(e, RateLimitedError):
                reply["retry_after"] = e.retry_after
        except Exception:  # a bug must still answer, or the client waits forever
            op = msg.get("op") if isinstance(msg, dict) else None
            logger.exception("room %s: action %s failed", room.id, shown(op))
            reply = {"type": "error", "ref": ref, "status": 500,
                     "detail": "the server could not do this action"}
        finally:
            slots.release()
        return reply

    async def act(msg: dict[str, Any]) -> None:
        await out.put(await answer(msg))

    async def act_all(batch: list[Any]) -> None:
        replies = await asyncio.gather(*(answer(m) for m in batch))
        await out.put({"type": "replies", "replies": list(replies)})

    async def writer() -> None:
        while (item := await out.get()) is not None:
            await ws.send_text(json.dumps(item, ensure_ascii=False))

    client = client_of(ws)
    send_task = asyncio.create_task(writer())
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            try:
                if text is None:
                    raise InvalidInputError("send each action as a JSON text message")
                batched = text.lstrip()[:1] == "["
                limit = WS_MAX_MESSAGE * (WS_MAX_BATCH if batched else 1)
                if len(text) > limit:
                    raise InvalidInputError(f"message over {limit} characters")
                msg = json.loads(text)
                if batched and (not isinstance(msg, list)
                                or not 1 <= len(msg) <= WS_MAX_BATCH):
                    raise InvalidInputError(
                        f"a batch is a JSON array of 1 to {WS_MAX_BATCH} actions")
                if not batched and not isinstance(msg, dict):
                    raise InvalidInputError("each message must be a JSON object")
            except (ValueError, InvalidInputError) as e:
                detail = e.message if isinstance(e, InvalidInputError) else "invalid JSON"
                await out.put({"type": "error", "ref": None, "status": 422, "detail": detail})
                continue
            for _ in range(len(msg) if batched else 1):  # bounded: WS_MAX_BATCH
                await slots.acquire()
            task = asyncio.create_task(act_all(msg) if batched else act(msg))
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


async def _dispatch(hub: RoomHub, room: Room, vid: str, msg: dict[str, Any],
                    client: str | None) -> Event:
    """One action message; every field is checked for its type by the room's methods."""
    op = msg.get("op")
    if op == "vote":
        poll_id = msg.get("poll_id")
        if not isinstance(poll_id, str):
            raise InvalidInputError("vote needs poll_id (string) and option (integer)")
        return await room.vote(vid, poll_id, msg.get("option"))  # type: ignore[arg-type]
    if op == "like":
        return await room.like(vid, msg.get("count", 1))
    if op == "comment":
        text = msg.get("text")
        check_comment(text)  # type: ignore[arg-type]
        hub.client_limiter.check(client, "comment", "comments")
        return await room.comment(vid, text)  # type: ignore[arg-type]
    if op == "share":
        return await room.share(vid, msg.get("channel"))
    if op == "follow":
        return await room.follow(vid)
    if op == "sticker_click":
        return await room.sticker_click(vid, msg.get("sticker_id"))  # type: ignore[arg-type]
    raise InvalidInputError(f"unknown op {shown(op)}; one of: {', '.join(_OPS)}")
