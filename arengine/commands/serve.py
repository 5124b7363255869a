"""``arengine serve``: the real-time server (WHIP in, AR, WHEP out, pages, API).

Its flags are the settings table (:mod:`arengine.settings`); each flag wins over its
``ARENGINE_*`` environment variable.
"""

from __future__ import annotations

import argparse
import errno
import logging
import socket
from typing import Any

from arengine.errors import UserError


def add_parser(subparsers: Any) -> None:
    from arengine.settings import add_arguments

    p = subparsers.add_parser(
        "serve", help="run the real-time AR server",
        description="Serve rooms: hosts publish over WHIP (browser page, OBS or any WHIP "
                    "client), viewers watch over WHEP with lipstick, stickers and avatars "
                    "composited live. Every flag can also be set by the environment "
                    "variable shown; a flag wins.")
    add_arguments(p)
    p.set_defaults(run=run)


def _check_port(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"cannot listen on {host!r}: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UserError(f"port {port} on {host} is already in use; "
                                f"pick another with --port") from None
            raise UserError(f"cannot listen on {host}:{port}: {e.strerror}") from None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from arengine.app import Ready, create_app
    from arengine.settings import Settings

    settings = Settings.from_args(args)
    _check_port(settings.host, settings.port)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    base = settings.public_url

    def ready(info: Ready) -> None:
        print(f"arengine serving on {base}", flush=True)
        # Tokens travel in the #fragment: browsers never send it to a server or put it
        # in a Referer, and the pages move it out of the address bar at once.
        if info.admin_token is not None:
            print(f"  rooms:  {base}/#admin={info.admin_token}  (admin token: creates rooms)",
                  flush=True)
        else:
            print(f"  rooms:  {base}/  (open rooms: anyone may create one)", flush=True)
        if info.demo_room is None:
            return
        room = info.demo_room
        print(f"  host:   {base}/host/{room}#token={info.host_token}", flush=True)
        print(f"  WHIP:   {base}/whip/{room}  (Bearer token {info.host_token})", flush=True)
        print(f"  viewer: {base}/watch/{room}", flush=True)

    try:
        app = create_app(settings, on_ready=ready)
    except OSError as e:
        raise UserError(f"cannot open the database {settings.db}: {e.strerror or e}") \
            from None
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                            lifespan="on", proxy_headers=settings.trust_proxy,
                            forwarded_allow_ips="127.0.0.1")
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
