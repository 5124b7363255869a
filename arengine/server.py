"""The media side of the server: WHIP in, a pipeline per room, WHEP out, media stats.

:class:`MediaServer` owns every room's :class:`RoomPipeline` and the WebRTC sessions. It
asks the interaction layer's :class:`RoomHub` only whether a room exists, whether a host
token is right, and the room's current :class:`RoomState`. The ASGI app around it is made
by :func:`arengine.app.create_app`, the only place that makes one.

Who may do what: publishing, ending or changing a WHIP session and reading a room's
detailed stats need the room's host token; anyone may play a room over WHEP, and a WHEP
session can be ended only through its resource URL, which carries 256 random bits and is
told to that viewer alone. No public answer carries a session id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from arengine.interaction.api import errors
from arengine.interaction.errors import shown
from arengine.interaction.hub import RoomHub
from arengine.pipeline import RoomConfig, RoomPipeline, StatsObserver
from arengine.pipeline.outputs import OutputLimitError, RoomOutputs
from arengine.state import RoomState
from arengine.tracking.gestures import GestureEvent
from arengine.transport.audio import RoomAudio
from arengine.transport.encoder import CODECS, Codec
from arengine.transport.hooks import verify_hooks
from arengine.transport.janus import JanusOutput
from arengine.transport.output import Output, OutputPolicy
from arengine.transport.sdp import OfferError, inspect_offer
from arengine.transport.session import PeerSession
from arengine.transport.whep import WhepSession, choose_codec
from arengine.transport.whip import WhipSession

logger = logging.getLogger(__name__)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Location, ETag, Link, Accept-Post, Allow",
}
MAX_SDP_BYTES = 64 * 1024


def _problem(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The one error shape (``{"detail": ...}``), with the CORS headers WHIP/WHEP
    clients in other origins need to read it."""
    return JSONResponse({"detail": message}, status,
                        headers={**CORS_HEADERS, **(headers or {})})


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass(frozen=True)
class OutputKind:
    """One kind of output the host may start: its request body and how to make it."""

    name: str
    body: type[BaseModel]
    make: Callable[[Any, OutputPolicy], Output]
    # Why this server, as its operator set it up, cannot make this kind (None: it can), e.g.
    # no --janus: a well-formed request then gets 409, not 422.
    unavailable: Callable[[OutputPolicy], str | None] | None = None


class OutputUnavailable(ValueError):
    """The server is not set up for this kind of output (see OutputKind.unavailable)."""


# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
# A frame crosses several threads (decoder, effects, encoder, the event loop with aiortc's
# RTP code), and C code such as the VP8 encoder gives up the GIL and takes it back several
# times a frame: with one busy Python thread beside it, a 6 ms 720p encode measured 32-50 ms
# at 5 ms, 12 ms at 1 ms and 6-7 ms at 0.5 ms. The server runs at 0.5 ms.
SWITCH_INTERVAL = 0.0005


class MediaServer:
    """Media pipelines and WebRTC sessions of all rooms.

    While started it sets the interpreter's GIL switch interval (``switch_interval``,
    restored on close; None leaves it alone), see :data:`SWITCH_INTERVAL`.

    ``connect_timeout`` bounds how long a session may take to connect: 40 WHEP offers
    whose clients never completed ICE stayed "connecting" for over 10 minutes and took the
    server from 8% to 55-70% of a core before sessions were closed at this deadline.
    """

    def __init__(self, hub: RoomHub, config: RoomConfig | None = None, codec: Codec = "vp8",
                 observer: StatsObserver | None = None,
                 ice_servers: tuple[str, ...] | list[str] = (),
                 switch_interval: float | None = SWITCH_INTERVAL,
                 playout_delay: tuple[int, int] | None = (0, 0),
                 connect_timeout: float = 30.0, viewers_per_room: int = 200,
                 sessions_per_client: int = 20,
                 output_kinds: tuple[OutputKind, ...] = (),
                 output_policy: OutputPolicy | None = None) -> None:
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}")
        # No ICE servers unless asked for: host candidates serve a LAN or a server with a
        # public address, and the server contacts no third party (aiortc's default is a
        # public STUN server).
        self.rtc_config = RTCConfiguration(iceServers=[RTCIceServer(u) for u in ice_servers])
        self.hub = hub
        self.config = config or RoomConfig()
        self.codec: Codec = codec
        self.observer = observer or StatsObserver()
        self.pipelines: dict[str, RoomPipeline] = {}
        self.room_configs: dict[str, RoomConfig] = {}  # per-room overrides of ``config``
        self.audio: dict[str, RoomAudio] = {}
        self.outputs: dict[str, RoomOutputs] = {}  # rooms with outputs besides WHEP
        self.output_kinds = {k.name: k for k in output_kinds}
        self.output_policy = output_policy or OutputPolicy()
        self.publishers: dict[str, WhipSession] = {}
        self.sessions: dict[str, PeerSession] = {}
        self.clients: dict[str, str | None] = {}  # session id -> client address
        self.connect_timeout = connect_timeout
        self.viewers_per_room = viewers_per_room
        self.sessions_per_client = sessions_per_client
        self._locks: dict[str, asyncio.Lock] = {}
        self._events_task: asyncio.Task[None] | None = None
        self._watchdogs: set[asyncio.Task[None]] = set()
        self.switch_interval = switch_interval
        self.playout_delay = playout_delay  # asked of viewers' players, see playout.py
        self._saved_switch_interval: float | None = None

    # -- rooms -----------------------------------------------------------------------

    def room_exists(self, room: str) -> bool:
        return room in self.hub.rooms

    def _state(self, room: str) -> RoomState | None:
        r = self.hub.rooms.get(room)
        return None if r is None else r.snapshot()

    async def pipeline(self, room: str) -> RoomPipeline:
        """The room's pipeline, started on first use."""
        p = self.pipelines.get(room)
        if p is None:
            config = self.room_configs.get(room, self.config)

            async def on_gesture(event: GestureEvent) -> None:
                await self.gesture_action(room, event)

            p = RoomPipeline(room, config, self.observer, lambda: self._state(room),
                             on_gesture=on_gesture)
            self.pipelines[room] = p
            await p.start()
        return p

    async def gesture_action(self, room: str, event: GestureEvent) -> None:
        """Carry out a host gesture's action on the room (likes, vote, close the poll)."""
        r = self.hub.get(room)
        action = event.action
        if action == "like_burst":
            await r.like_burst(10)
        elif action == "close_poll":
            await r.close_poll()
        elif action.startswith("pick_option_"):
            await r.host_vote(int(action.rsplit("_", 1)[1]) - 1)
        else:
            logger.info("room %s: no handler for gesture action %r", room, action)

    def room_audio(self, room: str) -> RoomAudio:
        a = self.audio.get(room)
        if a is None:
            a = self.audio[room] = RoomAudio(room)
        return a

    def viewers(self, room: str) -> list[WhepSession]:
        """The room's WHEP sessions, connected or still connecting."""
        return [s for s in self.sessions.values()
                if isinstance(s, WhepSession) and s.room == room and not s.closed]

    def watching(self, room: str) -> int:
        """Viewers whose connection is up: only these count as watching."""
        return sum(1 for s in self.viewers(room) if s.state == "connected")

    def media_status(self, room: str) -> tuple[str, int]:
        """(what the room's video shows, viewers watching it), for the rooms list."""
        p = self.pipelines.get(room)
        return (p.status if p is not None else "idle"), self.watching(room)

    async def start(self) -> None:
        verify_hooks()  # every reach into aiortc's private parts still fits (clear error)
        if self.switch_interval is not None:
            self._saved_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(self.switch_interval)
        self._events_task = asyncio.create_task(self._send_events())

    async def close(self) -> None:
        if self._saved_switch_interval is not None:
            sys.setswitchinterval(self._saved_switch_interval)
            self._saved_switch_interval = None
        tasks = [t for t in (self._events_task, *self._watchdogs) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for s in list(self.sessions.values()):
            await s.close()
        for o in list(self.outputs.values()):
            await o.close()
        self.outputs.clear()
        for p in list(self.pipelines.values()):
            await p.close()
        self.pipelines.clear()
        for a in list(self.audio.values()):
            await a.close()
        self.audio.clear()

    async def _send_events(self) -> None:
        """Tells each viewer's data channel the room status and the clickable regions."""
        last: dict[str, Any] = {}
        while True:
            await asyncio.sleep(0.25)
            for room, p in list(self.pipelines.items()):
                # WHEP viewers, and SFU publishers (Janus relays to their subscribers)
                viewers: list[WhepSession | JanusOutput] = [*self.viewers(room),
                                                            *self.sfu_outputs(room)]
                if not viewers:
                    continue
                event = {"type": "media", "status": p.status,
                         "size": list(p.size) if p.size else None,
                         "regions": p.click_regions()}
                changed = event != last.get(room)
                last[room] = event
                for v in viewers:
                    if changed or not v.told:
                        v.told = v.send_event(event)

    # -- sessions ----------------------------------------------------------------------

    def _client_sessions(self, client: str | None) -> int:
        return sum(1 for sid, c in self.clients.items() if c == client and client)

    def _admit(self, client: str | None) -> Response | None:
        """429 when ``client`` already holds its share of sessions."""
        if client and self._client_sessions(client) >= self.sessions_per_client:
            return _problem(429, f"your address already has {self.sessions_per_client} "
                                 "open sessions; close one first",
                            {"Retry-After": str(max(1, math.ceil(self.connect_timeout)))})
        return None

    def _track(self, session: PeerSession, client: str | None) -> None:
        """Register a new session; close it if it has not connected in time."""
        self.sessions[session.id] = session
        self.clients[session.id] = client
        connected = asyncio.Event()

        @session.pc.on("connectionstatechange")
        def on_state() -> None:
            if session.pc.connectionState == "connected":
                connected.set()

        async def watchdog() -> None:
            # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow the cancel of
            # a server closing at that moment.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.connect_timeout):
                    await connected.wait()
                return
            if not session.closed:
                logger.info("%s session in room %s did not connect within %g s; closed",
                            session.kind, session.room, self.connect_timeout)
                self.observer.on_count(session.room, f"timeout:{session.kind}")
                await session.close()

        task = asyncio.create_task(watchdog(), name=f"connect-{session.kind}")
        self._watchdogs.add(task)
        task.add_done_callback(self._watchdogs.discard)

    def _forget(self, session: PeerSession) -> None:
        self.sessions.pop(session.id, None)
        self.clients.pop(session.id, None)

    # -- WHIP ----------------------------------------------------------------------------

    def _check_host(self, room: str, request: Request) -> Response | None:
        """401 unless the request carries the room's host token."""
        token = _bearer(request)
        if token is None:
            return _problem(401, "a host token is required: Authorization: Bearer <token>",
                            {"WWW-Authenticate": 'Bearer realm="arengine"'})
        if not self.hub.verify_host(room, token):
            return _problem(401, "wrong host token for this room",
                            {"WWW-Authenticate": 'Bearer realm="arengine", error="invalid_token"'})
        return None

    async def publish(self, room: str, request: Request) -> Response:
        if _bearer(request) is None:
            return _problem(401, "a host token is required: Authorization: Bearer <token>",
                            {"WWW-Authenticate": 'Bearer realm="arengine"'})
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/sdp":
            return _problem(415, "WHIP offers must be sent as Content-Type: application/sdp",
                            {"Accept-Post": "application/sdp"})
        if not self.room_exists(room):
            return _problem(404, f"no room {shown(room)}")
        denied = self._check_host(room, request)
        if denied is not None:
            return denied
        offer = await _read_sdp(request)
        if isinstance(offer, Response):
            return offer
        try:
            inspect_offer(offer, "send")
        except OfferError as e:
            return _problem(e.status, str(e))
        client = _client(request)
        lock = self._locks.setdefault(room, asyncio.Lock())
        async with lock:
            pipeline = await self.pipeline(room)
            old = self.publishers.get(room)
            if old is not None and not old.closed:
                if pipeline.host_live:
                    return _problem(409, "a host is already publishing to this room; "
                                         "DELETE its session first")
                logger.info("room %s: replacing a stalled publisher", room)
                await old.close()
            full = self._admit(client)
            if full is not None:
                return full
            session = WhipSession(room, self.rtc_config,
                                  ingest_bitrate=pipeline.config.ingest_bitrate)
            try:
                answer = await session.answer(offer)
            except Exception as e:
                await session.close()
                return _problem(400, f"cannot use this offer: {_reason(e)}")
            if not session.video.done():
                await session.close()
                return _problem(422, "the offer has no video track")
            track = session.video.result()
            pipeline.attach_host(track)
            audio = self.room_audio(room)
            host_audio = session.audio
            if host_audio is not None:
                audio.attach(host_audio)

            async def on_closed(s: PeerSession) -> None:
                self._forget(s)
                if self.publishers.get(room) is s:
                    del self.publishers[room]
                await pipeline.detach_host(track)
                if host_audio is not None:
                    audio.detach(host_audio)

            session.on_closed(on_closed)
            self.publishers[room] = session
            self._track(session, client)
        return Response(answer, 201, media_type="application/sdp", headers={
            **CORS_HEADERS, "Location": f"/whip/{room}/{session.id}", "ETag": session.etag})

    # -- WHEP ----------------------------------------------------------------------------

    async def play(self, room: str, request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/sdp":
            return _problem(415, "WHEP offers must be sent as Content-Type: application/sdp",
                            {"Accept-Post": "application/sdp"})
        if not self.room_exists(room):
            return _problem(404, f"no room {shown(room)}")
        offer = await _read_sdp(request)
        if isinstance(offer, Response):
            return offer
        try:
            info = inspect_offer(offer, "recv")
            codec = choose_codec(info.video_codecs, self.codec)
        except OfferError as e:
            return _problem(e.status, str(e))
        if len(self.viewers(room)) >= self.viewers_per_room:
            return _problem(503, f"this room is full ({self.viewers_per_room} viewers); "
                                 "try again later", {"Retry-After": "30"})
        client = _client(request)
        full = self._admit(client)
        if full is not None:
            return full
        pipeline = await self.pipeline(room)
        track = pipeline.subscribe(codec)
        audio = self.room_audio(room).subscribe() if info.has_audio else None
        session = WhepSession(room, track, codec, self.rtc_config, audio=audio,
                              playout_delay=self.playout_delay)

        async def on_closed(s: PeerSession) -> None:
            self._forget(s)
            await pipeline.unsubscribe(track)
            if audio is not None:
                self.room_audio(room).unsubscribe(audio)

        session.on_closed(on_closed)
        try:
            answer = await session.answer(offer)
        except Exception as e:
            await session.close()
            return _problem(400, f"cannot use this offer: {_reason(e)}")
        self._track(session, client)
        return Response(answer, 201, media_type="application/sdp", headers={
            **CORS_HEADERS, "Location": f"/whep/{room}/{session.id}", "ETag": session.etag})

    def _session(self, kind: str, room: str, session_id: str,
                 request: Request) -> PeerSession | Response:
        """The session behind a resource URL, if the caller may act on it."""
        s = self.sessions.get(session_id)
        if s is None or s.room != room or s.kind != kind:
            return _problem(404, "no such session")
        if kind == "whip":  # the host's stream: only the host may end or change it
            denied = self._check_host(room, request)
            if denied is not None:
                return denied
        return s

    async def end(self, kind: str, room: str, session_id: str, request: Request) -> Response:
        s = self._session(kind, room, session_id, request)
        if isinstance(s, Response):
            return s
        await s.close()
        return Response(status_code=200, headers=CORS_HEADERS)

    # -- stats -------------------------------------------------------------------------

    def stats(self, room: str) -> dict[str, Any]:
        """A room's detailed media stats (host only): stages, drops, encoders, tracking."""
        p = self.pipelines.get(room)
        body: dict[str, Any] = p.stats() if p is not None else {
            "room": room, "status": "idle", "stages": {}, "fps": {}}
        body["viewers"] = self.watching(room)
        body["connecting"] = len(self.viewers(room)) - body["viewers"]
        pub = self.publishers.get(room)
        body["publisher"] = None if pub is None else {"state": pub.state,
                                                      "since": pub.created}
        outputs = self.outputs.get(room)
        body["outputs"] = outputs.stats() if outputs is not None else []
        body["time"] = time.time()
        return body

    def status(self, room: str) -> dict[str, Any]:
        """What anyone may know of a room's video: what it shows and how many watch."""
        p = self.pipelines.get(room)
        return {"room": room, "status": p.status if p is not None else "idle",
                "viewers": self.watching(room),
                "size": list(p.size) if p is not None and p.size else None}

    # -- outputs -------------------------------------------------------------------------

    def sfu_outputs(self, room: str) -> list[JanusOutput]:
        """The room's outputs that publish it into an SFU (Janus)."""
        o = self.outputs.get(room)
        return [] if o is None else [x for x in o.outputs.values()
                                     if isinstance(x, JanusOutput)]

    def sfu_info(self, room: str) -> dict[str, Any] | None:
        """Where viewers watch the room through the SFU (public: no session id, no secret)."""
        outputs = self.sfu_outputs(room)
        return outputs[0].watch_info() if outputs else None

    async def room_outputs(self, room: str) -> RoomOutputs:
        o = self.outputs.get(room)
        if o is None:
            o = self.outputs[room] = RoomOutputs(await self.pipeline(room),
                                                 self.room_audio(room))
        return o

    async def add_output(self, room: str, body: dict[str, Any]) -> Output:
        """Make and start an output from a host's request (ValueError: say why not)."""
        kind = body.get("kind") if isinstance(body, dict) else None
        spec = self.output_kinds.get(kind) if isinstance(kind, str) else None
        if spec is None:
            known = ", ".join(sorted(self.output_kinds)) or "none on this server"
            raise ValueError(f"kind must be one of: {known}")
        why = spec.unavailable(self.output_policy) if spec.unavailable else None
        if why:  # whatever the body says: this server is not set up for the kind
            raise OutputUnavailable(why)
        try:
            request = spec.body.model_validate(body)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "body"
            raise ValueError(f"{where}: {first['msg']}") from None
        output = spec.make(request, self.output_policy)
        return (await self.room_outputs(room)).add(output)

    def router(self) -> APIRouter:
        return media_router(self)


def _client(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def _reason(e: Exception) -> str:
    """An exception as a short reason for a person (never a repr of an object)."""
    text = str(e).strip()
    return text[:200] if text and " object at 0x" not in text else type(e).__name__


def _host_room(media: MediaServer, room: str, request: Request) -> Response | None:
    """404 for an unknown room, 401 without its host token, else None."""
    if not media.room_exists(room):
        return _problem(404, f"no room {shown(room)}")
    return media._check_host(room, request)


async def _read_sdp(request: Request) -> str | Response:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_SDP_BYTES:
        return _problem(413, f"SDP offer over {MAX_SDP_BYTES // 1024} KB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_SDP_BYTES:
            return _problem(413, f"SDP offer over {MAX_SDP_BYTES // 1024} KB")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return _problem(400, "the SDP offer is not UTF-8 text")


# ------------------------------------------------------------------------------- routes

_SDP_BODY = {"requestBody": {"required": True, "content": {
    "application/sdp": {"schema": {"type": "string"}}}}}
_CREATED = {"description": "the SDP answer; Location is the session's resource URL",
            "content": {"application/sdp": {"schema": {"type": "string"}}},
            "headers": {"Location": {"schema": {"type": "string"}},
                        "ETag": {"schema": {"type": "string"}}}}
_NO_CONTENT = {"description": "CORS preflight", "headers": {
    "Allow": {"schema": {"type": "string"}}, "Accept-Post": {"schema": {"type": "string"}}}}
_HOST_AUTH: dict[str, Any] = {"security": [{"HTTPBearer": []}]}
_SFU_INFO = {"type": "object", "required": ["janus", "room", "feed", "state"], "properties": {
    "janus": {"type": "string", "description": "Janus's HTTP API as browsers reach it"},
    "room": {"type": "integer"}, "feed": {"type": "integer"},
    "state": {"type": "string", "description": "the publisher: live, reconnecting..."}}}


def media_router(media: MediaServer) -> APIRouter:
    """WHIP/WHEP endpoints (RFC 9725 and the WHEP draft) and the media stats."""
    r = APIRouter()

    def options(methods: str) -> Response:
        return Response(status_code=204, headers={
            **CORS_HEADERS, "Accept-Post": "application/sdp", "Allow": methods,
            "Access-Control-Allow-Methods": methods,
            "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
            "Access-Control-Max-Age": "86400"})

    @r.options("/whip/{room}", tags=["media"], status_code=204,
               responses={204: _NO_CONTENT})
    async def whip_options(room: str) -> Response:
        return options("POST, OPTIONS")

    @r.options("/whep/{room}", tags=["media"], status_code=204,
               responses={204: _NO_CONTENT})
    async def whep_options(room: str) -> Response:
        return options("POST, OPTIONS")

    @r.options("/whip/{room}/{session_id}", tags=["media"], status_code=204,
               responses={204: _NO_CONTENT})
    async def whip_resource_options(room: str, session_id: str) -> Response:
        return options("DELETE, OPTIONS")

    @r.options("/whep/{room}/{session_id}", tags=["media"], status_code=204,
               responses={204: _NO_CONTENT})
    async def whep_resource_options(room: str, session_id: str) -> Response:
        return options("DELETE, OPTIONS")

    @r.post("/whip/{room}", tags=["media"], status_code=201, response_class=Response,
            openapi_extra={**_SDP_BODY, **_HOST_AUTH},
            responses={201: _CREATED, **errors(400, 401, 404, 409, 413, 415, 422, 429)})
    async def whip(room: str, request: Request) -> Response:
        """Publish the room's input (WHIP): an SDP offer in, the answer out."""
        return await media.publish(room, request)

    @r.post("/whep/{room}", tags=["media"], status_code=201, response_class=Response,
            openapi_extra=_SDP_BODY,
            responses={201: _CREATED, **errors(400, 404, 413, 415, 422, 429, 503)})
    async def whep(room: str, request: Request) -> Response:
        """Play the room's processed video (WHEP): an SDP offer in, the answer out."""
        return await media.play(room, request)

    @r.delete("/whip/{room}/{session_id}", tags=["media"], response_class=Response,
              openapi_extra=_HOST_AUTH,
              responses={200: {"description": "ended"}, **errors(401, 404)})
    async def whip_delete(room: str, session_id: str, request: Request) -> Response:
        """End the host's session (needs the host token, as OBS sends it)."""
        return await media.end("whip", room, session_id, request)

    @r.delete("/whep/{room}/{session_id}", tags=["media"], response_class=Response,
              responses={200: {"description": "ended"}, **errors(404)})
    async def whep_delete(room: str, session_id: str, request: Request) -> Response:
        """End a viewer's session; the resource URL itself is the viewer's secret."""
        return await media.end("whep", room, session_id, request)

    @r.get("/api/rooms/{room}/stats", tags=["media"], openapi_extra=_HOST_AUTH,
           responses=errors(401, 404))
    async def stats(room: str, request: Request) -> Response:
        """The room's detailed media stats (host token): stages, fps, drops, encoders."""
        if not media.room_exists(room):
            return _problem(404, f"no room {shown(room)}")
        denied = media._check_host(room, request)
        if denied is not None:
            return denied
        return JSONResponse(media.stats(room))

    def output_body() -> dict[str, Any]:
        schemas = [k.body.model_json_schema() for k in media.output_kinds.values()]
        schema: dict[str, Any] = {"oneOf": schemas} if schemas else {"type": "object"}
        return {"requestBody": {"required": True,
                                "content": {"application/json": {"schema": schema}}},
                **_HOST_AUTH}

    @r.get("/api/rooms/{room}/outputs", tags=["outputs"], openapi_extra=_HOST_AUTH,
           responses=errors(401, 404))
    async def list_outputs(room: str, request: Request) -> Response:
        """The room's outputs (RTMP pushes, SFU, recordings) with their stats."""
        denied = _host_room(media, room, request)
        if denied is not None:
            return denied
        o = media.outputs.get(room)
        return JSONResponse({"outputs": o.stats() if o is not None else [],
                             "kinds": sorted(media.output_kinds)})

    @r.post("/api/rooms/{room}/outputs", tags=["outputs"], status_code=201,
            openapi_extra=output_body(), responses=errors(400, 401, 404, 413, 422, 409))
    async def add_output(room: str, request: Request) -> Response:
        """Start an output: push to a platform over RTMP(S), publish to the SFU, record."""
        denied = _host_room(media, room, request)
        if denied is not None:
            return denied
        raw = await request.body()
        if len(raw) > 8192:
            return _problem(413, "request body over 8 KB")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _problem(400, "the body is not JSON")
        try:
            output = await media.add_output(room, body)
        except ValueError as e:
            status = 409 if isinstance(e, OutputUnavailable | OutputLimitError) else 422
            return _problem(status, str(e))
        return JSONResponse(output.stats(), 201, headers={
            "Location": f"/api/rooms/{room}/outputs/{output.id}"})

    @r.delete("/api/rooms/{room}/outputs/{output_id}", tags=["outputs"],
              openapi_extra=_HOST_AUTH, responses=errors(401, 404))
    async def remove_output(room: str, output_id: str, request: Request) -> Response:
        """Stop an output."""
        denied = _host_room(media, room, request)
        if denied is not None:
            return denied
        o = media.outputs.get(room)
        if o is None or not await o.remove(output_id):
            return _problem(404, "no such output")
        return JSONResponse({"ok": True})

    @r.get("/api/rooms/{room}/status", tags=["media"], responses=errors(404))
    async def status(room: str) -> Response:
        """What the room's video shows now (live, reconnecting, demo...) and who watches."""
        if not media.room_exists(room):
            return _problem(404, f"no room {shown(room)}")
        return JSONResponse(media.status(room))

    @r.get("/api/rooms/{room}/sfu", tags=["media"], responses={
        200: {"description": "the SFU's public API URL, the Janus room and the room's feed",
              "content": {"application/json": {"schema": _SFU_INFO}}}, **errors(404)})
    async def sfu(room: str) -> Response:
        """Where to watch the room through the SFU (Janus VideoRoom), for large audiences:
        404 when the room is not published to one. Votes and likes still go to this API."""
        if not media.room_exists(room):
            return _problem(404, f"no room {shown(room)}")
        info = media.sfu_info(room)
        if info is None:
            return _problem(404, f"room {shown(room)} is not on an SFU; watch it over WHEP")
        return JSONResponse(info)

    @r.get("/api/rooms/{room}/regions", tags=["media"], responses=errors(404))
    async def regions(room: str) -> Response:
        """Clickable regions of the picture (the product card), 0..1 of the frame."""
        p = media.pipelines.get(room)
        if not media.room_exists(room):
            return _problem(404, f"no room {shown(room)}")
        size = list(p.size) if p is not None and p.size else None
        return JSONResponse({"size": size, "regions": p.click_regions() if p else []})

    return r

