"""The app's pages (rooms list, host console, viewer page), their files, and the headers
that keep other people's script off them.

Pages are static HTML: every user string (room ids and titles, names, comments, product
names) reaches them through the API as data and is set as text by the page's own script,
never parsed as HTML. On top of that every response carries a Content-Security-Policy
that runs script only from this origin's /static files (no inline script, no eval, no
third party), so even a string that slipped into markup could not run. Before these, a
crafted /watch/<room> link ran script on the app's origin and could read the viewer and
host tokens.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WEB_DIR = Path(__file__).resolve().parent

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "font-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
# Script the SFU viewer needs, from Debian's packages (read at request time, never copied
# into the app): Janus's own client (libjs-janus-gateway) and the WebRTC adapter it expects.
VENDOR_SCRIPTS = {
    "janus.js": (Path("/usr/share/javascript/janus-gateway/janus.js"), "libjs-janus-gateway"),
    "adapter.js": (Path("/usr/share/javascript/webrtc-adapter/adapter.js"),
                   "libjs-webrtc-adapter"),
}
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(self), microphone=(self), geolocation=()"),
)


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _page(name: str, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse((WEB_DIR / "templates" / name).read_text(encoding="utf-8"),
                        headers={"Cache-Control": "no-store", **(headers or {})})


def origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL (no user name or password), else None."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def sfu_policy(janus_origin: str) -> str:
    """The page policy with one more place to connect to: the SFU's API (janus.js talks to
    it with fetch); script still comes only from this origin."""
    return CONTENT_SECURITY_POLICY.replace("connect-src 'self'",
                                           f"connect-src 'self' {janus_origin}")


def not_found_page(what: str) -> HTMLResponse:
    """A 404 page naming what was asked for, escaped and cut short."""
    shown = what if len(what) <= 40 else what[:40] + "…"
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>Not found · arengine</title>"
        f"<h1>No room “{html.escape(shown)}”</h1><p><a href=\"/\">All rooms</a></p>",
        404, headers={"Cache-Control": "no-store"})


def add_pages(app: FastAPI, exists: Callable[[str], bool]) -> None:
    """The landing page, host console, viewer page and their static files."""
    static_dir = (WEB_DIR / "static").resolve()

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return _page("index.html")

    @app.get("/host/{room}", include_in_schema=False)
    async def host(room: str) -> Response:
        return _page("host.html") if exists(room) else not_found_page(room)

    @app.get("/watch/{room}", include_in_schema=False)
    async def watch(room: str, request: Request) -> Response:
        """The viewer page; ``?via=sfu`` plays the room through the SFU (Janus) instead of
        WHEP, and its policy lets the page reach that SFU's API, and no other."""
        if not exists(room):
            return not_found_page(room)
        headers = {}
        if request.query_params.get("via") == "sfu":
            settings = getattr(app.state, "settings", None)
            janus = origin(getattr(settings, "janus_public_url", None) or
                           getattr(settings, "janus_url", None))
            if janus is not None:
                headers["Content-Security-Policy"] = sfu_policy(janus)
        return _page("watch.html", headers)

    @app.get("/static/vendor/{name}", include_in_schema=False)
    async def vendor(name: str) -> Response:
        found = VENDOR_SCRIPTS.get(name)
        if found is None:
            return PlainTextResponse("not found", 404)
        path, package = found
        if not path.is_file():
            return PlainTextResponse(f"{name} is not installed on this server "
                                     f"(apt-get install {package})", 404)
        return FileResponse(path, media_type="text/javascript",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        path = (static_dir / name).resolve()
        if path.parent != static_dir or not path.is_file():
            return PlainTextResponse("not found", 404)
        return FileResponse(path, headers={"Cache-Control": "no-cache"})
