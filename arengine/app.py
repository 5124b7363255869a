"""The app factory: the one way the ASGI app is made.

``arengine serve``, ``uvicorn --factory arengine.app:from_env``, every test and every
benchmark call :func:`create_app` with a :class:`~arengine.settings.Settings`, so what is
tested and measured is what users run. Before, the app was built four ways and the one
users ran had the fewest settings (an admin token and the database settings were ignored
by ``serve``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from arengine.effects import check_settings, effect_names
from arengine.interaction.api import FastActions, build_router, validation_error_response
from arengine.interaction.hub import RoomHub
from arengine.keys import ServerKeys
from arengine.server import MediaServer, OutputKind
from arengine.settings import OUTPUT_KINDS, Settings, output_request
from arengine.transport.output import OutputPolicy
from arengine.web.pages import SecurityHeaders, add_pages

logger = logging.getLogger(__name__)
VERSION = "0.1.0"


@dataclass(frozen=True)
class Ready:
    """What the server tells its operator once it serves."""

    demo_room: str | None
    host_token: str | None  # the demo room's (stable across restarts, see keys.py)
    admin_token: str | None  # None when anyone may create rooms


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time,
               on_ready: Callable[[Ready], None] | None = None) -> FastAPI:
    """The whole app: interaction API, WHIP/WHEP and media stats, pages, Prometheus.

    ``clock`` is for tests that move time by hand (poll deadlines, rate limits). The
    database and the key file are opened here; rooms are replayed from the log.
    """
    keys = ServerKeys(settings.keys_path)
    admin = None if settings.open_rooms else (settings.admin_token or keys.token("admin"))
    limits = settings.limits
    hub = RoomHub.open(settings.db, settings.db_sync, clock=clock, limits=limits.viewer,
                       effect_names=effect_names, check_effect_settings=check_settings,
                       client_rates={"join": limits.joins, "room": limits.rooms,
                                     "comment": limits.comments},
                       max_rooms=limits.max_rooms, idle_s=limits.viewer_idle_s)
    policy = OutputPolicy(allow_private=settings.allow_private_outputs,
                          record_dir=settings.record_dir, janus_url=settings.janus_url,
                          janus_room=settings.janus_room,
                          janus_public_url=settings.janus_public_url,
                          janus_secret=keys.token("janus-rooms"),
                          rtmps_ca_file=settings.rtmps_ca_file)
    media = MediaServer(hub, settings.room, settings.codec, ice_servers=settings.ice_servers,
                        playout_delay=settings.playout_delay,
                        connect_timeout=limits.connect_timeout_s,
                        viewers_per_room=limits.viewers_per_room,
                        sessions_per_client=limits.sessions_per_client,
                        output_kinds=output_kinds(settings.output_kinds),
                        output_policy=policy)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from arengine.demo_crowd import DemoCrowd, stage_demo_room

        hub.start()
        crowd: DemoCrowd | None = None
        demo = "demo" if settings.demo else None
        token: str | None = None
        if demo is not None:
            token = keys.token(f"host:{demo}")
            if demo in hub.rooms:
                room = hub.get(demo)
                if not room.verify_host(token):
                    await hub.rotate_host_token(demo, token)
            else:
                room, _ = await hub.create_room("arengine demo", demo, host_token=token)
                if settings.demo_shade:  # lipstick on from the first frame
                    await room.set_shade(settings.demo_shade)
            if settings.demo_crowd:
                await stage_demo_room(room, settings.demo_shade)
                crowd = DemoCrowd(room)
                crowd.start()
            await media.pipeline(demo)
            for target in settings.outputs:  # checked by Settings; a far end may be down
                try:
                    await media.add_output(demo, output_request(target))
                except ValueError as e:
                    logger.error("output %s not started: %s", target.split("://")[0], e)
        await media.start()
        if on_ready is not None:
            on_ready(Ready(demo, token, admin))
        try:
            yield
        finally:
            if crowd is not None:
                await crowd.stop()
            await media.close()
            await hub.close()

    # No /docs or /redoc: FastAPI's pages load their script from a CDN, and nothing here
    # downloads at run time. The OpenAPI document is at /openapi.json.
    app = FastAPI(title="arengine", version=VERSION, lifespan=lifespan, docs_url=None,
                  redoc_url=None, description=_description())
    app.state.settings = settings
    app.state.hub = hub
    app.state.media = media
    app.add_exception_handler(RequestValidationError, validation_error_response)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _server_error)

    @app.get("/metrics", tags=["metrics"], response_class=Response, responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def metrics() -> Response:
        """Prometheus: the media registry and the hub's rooms registry."""
        hub.refresh_gauges()
        body = generate_latest(REGISTRY) + generate_latest(hub.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.include_router(build_router(hub, admin_token=admin, media_status=media.media_status))
    app.include_router(media.router())
    add_pages(app, media.room_exists)
    app.add_middleware(FastActions, hub=hub)  # answers votes, likes, comments first
    app.add_middleware(SecurityHeaders)
    return app


def client_for(app: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """An HTTP client calling ``app`` in process as if from ``address`` (no socket)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40000)),
                             base_url="http://arengine.local")


@asynccontextmanager
async def running(app: FastAPI, client: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """``app`` started (its lifespan run once) in this event loop, with a
    :func:`client_for` it: how tests and benchmarks drive the server without a socket."""
    async with app.router.lifespan_context(app), client_for(app, client) as http:
        yield http


def output_kinds(enabled: tuple[str, ...] = OUTPUT_KINDS) -> tuple[OutputKind, ...]:
    """The kinds of output a host may start on this server (of RTMP push, SFU, recording)."""
    from arengine.transport.janus import JanusIn, janus_maker, janus_unavailable
    from arengine.transport.recording import RecordIn, make_recording, recording_unavailable
    from arengine.transport.rtmp import RtmpIn, make_rtmp

    kinds = (OutputKind("janus", JanusIn, janus_maker(), janus_unavailable),
             OutputKind("rtmp", RtmpIn, make_rtmp),
             OutputKind("record", RecordIn, make_recording, recording_unavailable))
    return tuple(k for k in kinds if k.name in enabled)


def from_env() -> FastAPI:
    """``uvicorn --factory arengine.app:from_env``: settings from ``ARENGINE_*``."""
    return create_app(Settings.from_env())


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's 404/405 in the one error shape; a 405 lists every method the path
    has (Starlette names only the first route's), as RFC 9110 asks of Allow."""
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request.app, request.url.path))
        path = request.url.path
        if path.startswith(("/whip/", "/whep/")) and path.count("/") == 3:
            # RFC 9725 4.3: no trickle ICE, no ICE restart: PATCH is 405.
            detail = ("trickle ICE and ICE restarts are not supported; send all candidates "
                      "in the offer")
        else:
            detail = f"{request.method} is not allowed here; use {headers['Allow']}"
    return JSONResponse({"detail": detail}, exc.status_code, headers=headers)


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods ``path`` answers: from the OpenAPI document (the API's truth) and the
    app's own page routes."""
    table = getattr(app.state, "allowed_methods", None)
    if table is None:
        table = []
        for template, ops in app.openapi().get("paths", {}).items():
            pattern = re.escape(template)
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", pattern)
            table.append((re.compile(f"^{pattern}$"),
                          {m.upper() for m in ops if m.upper() in _METHODS}))
        for route in app.router.routes:
            path_regex = getattr(route, "path_regex", None)
            methods = getattr(route, "methods", None)
            if path_regex is not None and methods:
                table.append((path_regex, set(methods)))
        app.state.allowed_methods = table
    allowed: set[str] = set()
    for regex, methods in table:
        if regex.match(path):
            allowed |= methods
    allowed.discard("HEAD")
    return sorted(allowed)


_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "the server failed on this request; it has been logged"},
                        500)


def _description() -> str:
    from arengine.interaction import api

    return (api.__doc__ or "").strip()
