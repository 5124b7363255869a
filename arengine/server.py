"""The real-time server: WHIP in, AR pipeline, WHEP out, pages, stats and metrics.

:class:`MediaServer` owns the media side of every room (a :class:`RoomPipeline` each) and
the WebRTC sessions; it asks the interaction layer's hub only three things: whether a room
exists, whether a host token is right, and the room's current :class:`RoomState`.
:func:`create_server` puts it together with the interaction API and the web pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiortc import RTCConfiguration, RTCIceServer
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from arengine.interaction.errors import NotFoundError
from arengine.interaction.state import RoomState
from arengine.pipeline import RoomConfig, RoomPipeline, StatsObserver
from arengine.tracking.gestures import GestureEvent
from arengine.transport.audio import RoomAudio
from arengine.transport.encoder import CODECS, Codec
from arengine.transport.sdp import OfferError, inspect_offer
from arengine.transport.session import PeerSession
from arengine.transport.whep import WhepSession, choose_codec
from arengine.transport.whip import WhipSession

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Location, ETag, Link, Accept-Post, Allow",
}


class Hub(Protocol):
    """What the media side needs from the interaction layer's room hub."""

    def get(self, room_id: str) -> Any: ...

    def verify_host(self, room_id: str, token: str) -> bool: ...


def _problem(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A plain-text error that WHIP/WHEP clients (OBS, browsers) show as is."""
    return PlainTextResponse(message + "\n", status, headers={**CORS_HEADERS, **(headers or {})})


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
    """

    def __init__(self, hub: Hub, config: RoomConfig | None = None, codec: Codec = "vp8",
                 observer: StatsObserver | None = None,
                 ice_servers: list[str] | None = None,
                 switch_interval: float | None = SWITCH_INTERVAL,
                 playout_delay: tuple[int, int] | None = (0, 0)) -> None:
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}")
        # No ICE servers unless asked for: host candidates serve a LAN or a server with a
        # public address, and the server contacts no third party (aiortc's default is a
        # public STUN server).
        self.rtc_config = RTCConfiguration(
            iceServers=[RTCIceServer(u) for u in (ice_servers or [])])
        self.hub = hub
        self.config = config or RoomConfig()
        self.codec: Codec = codec
        self.observer = observer or StatsObserver()
        self.pipelines: dict[str, RoomPipeline] = {}
        self.room_configs: dict[str, RoomConfig] = {}  # per-room overrides of ``config``
        self.audio: dict[str, RoomAudio] = {}
        self.publishers: dict[str, WhipSession] = {}
        self.sessions: dict[str, PeerSession] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._events_task: asyncio.Task[None] | None = None
        self.switch_interval = switch_interval
        self.playout_delay = playout_delay  # asked of viewers' players, see playout.py
        self._saved_switch_interval: float | None = None

    # -- rooms -----------------------------------------------------------------------

    def room_exists(self, room: str) -> bool:
        try:
            return self.hub.get(room) is not None
        except (LookupError, NotFoundError):
            return False

    def _state(self, room: str) -> RoomState | None:
        try:
            r = self.hub.get(room)
        except (LookupError, NotFoundError):
            return None
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
        if action == "like_burst" and hasattr(r, "like_burst"):
            await r.like_burst(10)
        elif action == "close_poll" and hasattr(r, "close_poll"):
            await r.close_poll()
        elif action.startswith("pick_option_") and hasattr(r, "host_vote"):
            await r.host_vote(int(action.rsplit("_", 1)[1]) - 1)
        else:
            logger.info("room %s: no handler for gesture action %r", room, action)

    def room_audio(self, room: str) -> RoomAudio:
        a = self.audio.get(room)
        if a is None:
            a = self.audio[room] = RoomAudio(room)
        return a

    def viewers(self, room: str) -> list[WhepSession]:
        return [s for s in self.sessions.values()
                if isinstance(s, WhepSession) and s.room == room and not s.closed]

    async def start(self) -> None:
        if self.switch_interval is not None:
            self._saved_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(self.switch_interval)
        self._events_task = asyncio.create_task(self._send_events())

    async def close(self) -> None:
        if self._saved_switch_interval is not None:
            sys.setswitchinterval(self._saved_switch_interval)
            self._saved_switch_interval = None
        if self._events_task is not None:
            self._events_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._events_task
        for s in list(self.sessions.values()):
            await s.close()
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
                viewers = self.viewers(room)
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

    # -- WHIP ----------------------------------------------------------------------------

    async def publish(self, room: str, request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/sdp":
            return _problem(415, "WHIP offers must be sent as Content-Type: application/sdp",
                            {"Accept-Post": "application/sdp"})
        if not self.room_exists(room):
            return _problem(404, f"no room {room!r}")
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _problem(401, "a host token is required: Authorization: Bearer <token>",
                            {"WWW-Authenticate": 'Bearer realm="arengine"'})
        if not self.hub.verify_host(room, token.strip()):
            return _problem(401, "wrong host token for this room",
                            {"WWW-Authenticate": 'Bearer realm="arengine", error="invalid_token"'})
        offer = await _read_sdp(request)
        if isinstance(offer, Response):
            return offer
        try:
            inspect_offer(offer, "send")
        except OfferError as e:
            return _problem(e.status, str(e))
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
            session = WhipSession(room, self.rtc_config,
                                  ingest_bitrate=pipeline.config.ingest_bitrate)
            try:
                answer = await session.answer(offer)
            except Exception as e:
                await session.close()
                return _problem(400, f"cannot use this offer: {e}")
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
                self.sessions.pop(s.id, None)
                if self.publishers.get(room) is s:
                    del self.publishers[room]
                await pipeline.detach_host(track)
                if host_audio is not None:
                    audio.detach(host_audio)

            session.on_closed(on_closed)
            self.publishers[room] = session
            self.sessions[session.id] = session
        return Response(answer, 201, media_type="application/sdp", headers={
            **CORS_HEADERS, "Location": f"/whip/{room}/{session.id}", "ETag": session.etag})

    # -- WHEP ----------------------------------------------------------------------------

    async def play(self, room: str, request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/sdp":
            return _problem(415, "WHEP offers must be sent as Content-Type: application/sdp",
                            {"Accept-Post": "application/sdp"})
        if not self.room_exists(room):
            return _problem(404, f"no room {room!r}")
        offer = await _read_sdp(request)
        if isinstance(offer, Response):
            return offer
        try:
            info = inspect_offer(offer, "recv")
            codec = choose_codec(info.video_codecs, self.codec)
        except OfferError as e:
            return _problem(e.status, str(e))
        pipeline = await self.pipeline(room)
        track = pipeline.subscribe(codec)
        audio = self.room_audio(room).subscribe() if info.has_audio else None
        session = WhepSession(room, track, codec, self.rtc_config, audio=audio,
                              playout_delay=self.playout_delay)

        async def on_closed(s: PeerSession) -> None:
            self.sessions.pop(s.id, None)
            await pipeline.unsubscribe(track)
            if audio is not None:
                self.room_audio(room).unsubscribe(audio)

        session.on_closed(on_closed)
        try:
            answer = await session.answer(offer)
        except Exception as e:
            await session.close()
            return _problem(400, f"cannot use this offer: {e}")
        self.sessions[session.id] = session
        return Response(answer, 201, media_type="application/sdp", headers={
            **CORS_HEADERS, "Location": f"/whep/{room}/{session.id}", "ETag": session.etag})

    async def end(self, kind: str, room: str, session_id: str) -> Response:
        s = self.sessions.get(session_id)
        if s is None or s.room != room or s.kind != kind:
            return _problem(404, "no such session")
        await s.close()
        return Response(status_code=200, headers=CORS_HEADERS)

    def router(self) -> APIRouter:
        r = APIRouter()
        allow_resource = {"Allow": "DELETE, OPTIONS"}

        def options(methods: str) -> Response:
            return Response(status_code=204, headers={
                **CORS_HEADERS, "Accept-Post": "application/sdp", "Allow": methods,
                "Access-Control-Allow-Methods": methods,
                "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
                "Access-Control-Max-Age": "86400"})

        @r.options("/whip/{room}")
        @r.options("/whep/{room}")
        async def endpoint_options() -> Response:
            return options("POST, OPTIONS")

        @r.options("/whip/{room}/{session_id}")
        @r.options("/whep/{room}/{session_id}")
        async def resource_options() -> Response:
            return options("DELETE, OPTIONS")

        @r.post("/whip/{room}")
        async def whip(room: str, request: Request) -> Response:
            return await self.publish(room, request)

        @r.post("/whep/{room}")
        async def whep(room: str, request: Request) -> Response:
            return await self.play(room, request)

        @r.delete("/whip/{room}/{session_id}")
        async def whip_delete(room: str, session_id: str) -> Response:
            return await self.end("whip", room, session_id)

        @r.delete("/whep/{room}/{session_id}")
        async def whep_delete(room: str, session_id: str) -> Response:
            return await self.end("whep", room, session_id)

        @r.patch("/whip/{room}/{session_id}")
        @r.patch("/whep/{room}/{session_id}")
        async def patch(session_id: str) -> Response:
            # RFC 9725 4.3: a session that supports neither trickle ICE nor ICE restarts
            # answers PATCH with 405; candidates all travel in the offer and answer.
            if session_id not in self.sessions:
                return _problem(404, "no such session")
            return _problem(405, "trickle ICE and ICE restarts are not supported; "
                                 "send all candidates in the offer", allow_resource)

        @r.get("/api/rooms/{room}/stats")
        async def stats(room: str) -> Response:
            if not self.room_exists(room):
                return _problem(404, f"no room {room!r}")
            p = self.pipelines.get(room)
            body: dict[str, Any] = p.stats() if p is not None else {
                "room": room, "status": "idle", "viewers": 0, "stages": {}, "fps": {}}
            pub = self.publishers.get(room)
            body["publisher"] = None if pub is None else {
                "session": pub.id, "state": pub.state, "since": pub.created}
            body["time"] = time.time()
            return JSONResponse(body)

        @r.get("/api/rooms/{room}/regions")
        async def regions(room: str) -> Response:
            p = self.pipelines.get(room)
            if not self.room_exists(room):
                return _problem(404, f"no room {room!r}")
            size = list(p.size) if p is not None and p.size else None
            return JSONResponse({"size": size, "regions": p.click_regions() if p else []})

        return r


async def _read_sdp(request: Request) -> str | Response:
    body = await request.body()
    if len(body) > 64 * 1024:
        return _problem(413, "SDP offer too large")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return _problem(400, "the SDP offer is not UTF-8 text")


def _page(name: str) -> HTMLResponse:
    return HTMLResponse((WEB_DIR / "templates" / name).read_text(encoding="utf-8"),
                        headers={"Cache-Control": "no-store"})


def add_pages(app: FastAPI, media: MediaServer) -> None:
    """The landing page, host console, viewer page and their static files."""

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return _page("index.html")

    @app.get("/host/{room}", include_in_schema=False)
    async def host(room: str) -> Response:
        if not media.room_exists(room):
            return HTMLResponse(f"<h1>No room {room!r}</h1>", 404)
        return _page("host.html")

    @app.get("/watch/{room}", include_in_schema=False)
    async def watch(room: str) -> Response:
        if not media.room_exists(room):
            return HTMLResponse(f"<h1>No room {room!r}</h1>", 404)
        return _page("watch.html")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        path = (WEB_DIR / "static" / name).resolve()
        if path.parent != (WEB_DIR / "static").resolve() or not path.is_file():
            return PlainTextResponse("not found", 404)
        return FileResponse(path, headers={"Cache-Control": "no-cache"})


def add_metrics(app: FastAPI, hub: Hub) -> None:
    """Prometheus text of the default registry plus the hub's own registry, if it has one."""
    if any(getattr(r, "path", None) == "/metrics" for r in app.routes):
        return

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body = generate_latest(REGISTRY)
        extra = getattr(hub, "registry", None)
        if extra is not None and extra is not REGISTRY:
            body += generate_latest(extra)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def build_app(hub: Hub, media: MediaServer, app: FastAPI | None = None) -> FastAPI:
    """Mount the media routes, pages and metrics on ``app`` (a new one by default)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await media.start()
        try:
            yield
        finally:
            await media.close()

    if app is None:
        app = FastAPI(title="arengine", lifespan=lifespan)
    else:
        previous = app.router.lifespan_context

        @asynccontextmanager
        async def chained(a: FastAPI) -> AsyncIterator[None]:
            async with previous(a), lifespan(a):
                yield

        app.router.lifespan_context = chained
    app.state.media = media
    app.include_router(media.router())
    add_pages(app, media)
    add_metrics(app, hub)
    return app


@dataclass
class ServerOptions:
    """Everything ``arengine serve`` configures."""

    db_path: str = "arengine.db"
    demo_room: str | None = "demo"
    demo_shade: str | None = "velvet-ruby"
    demo_crowd: bool = False  # labelled demo viewers, votes and likes in the demo room
    codec: Codec = "vp8"
    room: RoomConfig = field(default_factory=RoomConfig)
    public_url: str = "http://127.0.0.1:8080"
    ice_servers: list[str] = field(default_factory=list)  # stun:/turn: URLs
    playout_delay: tuple[int, int] | None = (0, 0)  # viewers' min/max playout delay, ms


def create_server(options: ServerOptions,
                  on_ready: Callable[[str | None, str | None], None] | None = None
                  ) -> FastAPI:
    """The whole app: interaction API under /api, media, pages, stats and metrics.

    The demo room is created at start-up (when missing); ``on_ready(room, host_token)`` is
    told its host token, or None when the room already existed in the database (``room``
    is None when there is no demo room).
    """
    from arengine.demo_crowd import DemoCrowd, stage_demo_room
    from arengine.interaction.api import build_router
    from arengine.interaction.hub import RoomHub

    hub = RoomHub.open(options.db_path)
    media = MediaServer(hub, options.room, options.codec, ice_servers=options.ice_servers,
                        playout_delay=options.playout_delay)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        hub.start()
        token: str | None = None
        crowd: DemoCrowd | None = None
        if options.demo_room is not None:
            if options.demo_room in hub.rooms:
                demo = hub.get(options.demo_room)
                token = await hub.rotate_host_token(options.demo_room)
            else:
                demo, token = await hub.create_room("arengine demo", options.demo_room)
                if options.demo_shade:  # lipstick on from the first frame
                    await demo.set_shade(options.demo_shade)
            if options.demo_crowd:
                await stage_demo_room(demo, options.demo_shade)
                crowd = DemoCrowd(demo)
                crowd.start()
            await media.pipeline(options.demo_room)
        await media.start()
        if on_ready is not None:
            on_ready(options.demo_room, token)
        try:
            yield
        finally:
            if crowd is not None:
                await crowd.stop()
            await media.close()
            await hub.close()

    app = FastAPI(title="arengine", lifespan=lifespan)
    app.state.hub = hub
    app.state.media = media
    add_metrics(app, hub)  # before the interaction routes: one /metrics with both registries
    app.include_router(build_router(hub))
    app.include_router(media.router())
    add_pages(app, media)

    @app.get("/api/media/rooms", include_in_schema=False)
    async def rooms() -> JSONResponse:
        out = []
        for rid, room in sorted(hub.rooms.items()):
            p = media.pipelines.get(rid)
            out.append({"id": rid, "title": getattr(room, "title", ""),
                        "status": p.status if p else "idle",
                        "viewers": p.viewer_count if p else 0,
                        "watch": f"/watch/{rid}", "host": f"/host/{rid}"})
        return JSONResponse({"rooms": out})

    return app
