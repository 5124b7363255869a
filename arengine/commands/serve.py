"""``arengine serve``: the real-time server (WHIP in, AR, WHEP out, pages, API)."""

from __future__ import annotations

import argparse
import errno
import logging
import socket
from typing import Any

from arengine.errors import UserError
from arengine.render.backend import add_render_argument

CODECS = ("vp8", "h264")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve", help="run the real-time AR server",
        description="Serve rooms: hosts publish over WHIP (browser page or OBS), viewers "
                    "watch over WHEP with lipstick, stickers and avatars composited live.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="port (default %(default)s)")
    p.add_argument("--db", default="arengine.db", metavar="PATH",
                   help="room event database, created if missing (default %(default)s)")
    p.add_argument("--demo", action=argparse.BooleanOptionalAction, default=True,
                   help="create room 'demo' and play the built-in moving face while no host "
                        "publishes (default on)")
    p.add_argument("--demo-crowd", action=argparse.BooleanOptionalAction, default=True,
                   help="in the demo room, stage a product card, a like goal, shade polls and "
                        "a few viewers tagged '(demo)' so every layer shows at once "
                        "(default on)")
    add_render_argument(p)
    p.add_argument("--codec", choices=CODECS, default="vp8",
                   help="preferred viewer codec; viewers that lack it get the other")
    p.add_argument("--size", default="1280x720", metavar="WxH",
                   help="demo picture size (default %(default)s)")
    p.add_argument("--fps", type=int, default=30, help="demo and encoder frame rate")
    p.add_argument("--bitrate", type=int, default=2000, metavar="KBPS",
                   help="viewer stream bitrate in kbit/s (default %(default)s)")
    p.add_argument("--ingest-bitrate", type=int, default=5000, metavar="KBPS",
                   help="bitrate announced to a publishing host in kbit/s (REMB); it sends "
                        "up to this, less on a lossy link (default %(default)s)")
    p.add_argument("--playout-delay", default="0,0", metavar="MIN,MAX",
                   help="playout delay in ms asked of viewers' players (RTP playout-delay "
                        "extension, where the browser offers it): 0,0 shows each frame once "
                        "decoded; 'browser' leaves the browser's jitter buffer to decide "
                        "(smoother on a jittery network, more latency)")
    p.add_argument("--effects", default=None, metavar="A,B",
                   help="effects in drawing order (default: lipstick,avatars,vote_sticker,"
                        "likes,product)")
    p.add_argument("--no-hands", action="store_true",
                   help="do not run hand tracking (no hand gestures, no hand occlusion)")
    p.add_argument("--ice-server", action="append", default=[], metavar="URL",
                   help="STUN/TURN server for NAT traversal, e.g. stun:stun.example.org:3478 "
                        "(repeatable; default none: host candidates only)")
    p.add_argument("--log-level", default="info",
                   choices=("debug", "info", "warning", "error"))
    p.set_defaults(run=run)


def _playout_delay(text: str) -> tuple[int, int] | None:
    if text.strip().lower() == "browser":
        return None
    try:
        lo, hi = (int(x) for x in text.split(","))
    except ValueError:
        raise UserError(f"--playout-delay must be MIN,MAX in ms (e.g. 0,0) or 'browser', "
                        f"not {text!r}") from None
    if not 0 <= lo <= hi <= 40950:
        raise UserError(f"--playout-delay needs 0 <= MIN <= MAX <= 40950 ms, not {text}")
    return lo, hi


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size must look like 1280x720, not {text!r}") from None
    if not (160 <= w <= 3840 and 120 <= h <= 2160) or w % 2 or h % 2:
        raise UserError(f"--size {text} is out of range (even sizes 160x120 to 3840x2160)")
    return w, h


def _check_port(host: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise UserError(f"--port must be between 1 and 65535, not {port}")
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

    from arengine.effects import effect_names
    from arengine.pipeline import DEFAULT_EFFECTS, RoomConfig
    from arengine.server import ServerOptions, create_server

    size = _size(args.size)
    if not 1 <= args.fps <= 60:
        raise UserError(f"--fps must be between 1 and 60, not {args.fps}")
    if not 100 <= args.bitrate <= 50000:
        raise UserError(f"--bitrate must be between 100 and 50000 kbit/s, not {args.bitrate}")
    if not 300 <= args.ingest_bitrate <= 50000:
        raise UserError("--ingest-bitrate must be between 300 and 50000 kbit/s, "
                        f"not {args.ingest_bitrate}")
    playout = _playout_delay(args.playout_delay)
    effects = DEFAULT_EFFECTS
    if args.effects is not None:
        effects = tuple(e.strip() for e in args.effects.split(",") if e.strip())
        known = effect_names()
        unknown = [e for e in effects if e not in known]
        if unknown:
            raise UserError(f"unknown effect {unknown[0]!r}; known: {', '.join(known)}")
    for url in args.ice_server:
        if not url.startswith(("stun:", "turn:", "turns:")):
            raise UserError(f"--ice-server must be a stun:, turn: or turns: URL, not {url!r}")
    _check_port(args.host, args.port)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    shown = "localhost" if args.host in ("127.0.0.1", "0.0.0.0", "::") else args.host
    base = f"http://{shown}:{args.port}"
    options = ServerOptions(
        db_path=args.db, demo_room="demo" if args.demo else None, codec=args.codec,
        demo_crowd=args.demo and args.demo_crowd,
        room=RoomConfig(effects=effects, track_hands=not args.no_hands, demo=args.demo,
                        demo_size=size, fps=args.fps, bitrate=args.bitrate * 1000,
                        ingest_bitrate=args.ingest_bitrate * 1000,
                        render=args.render),
        public_url=base, ice_servers=args.ice_server, playout_delay=playout)

    def ready(room: str | None, token: str | None) -> None:
        print(f"arengine serving on {base}", flush=True)
        if room is None:
            print(f"  rooms:  {base}/  (create one there or with POST /api/rooms)", flush=True)
            return
        if token is not None:
            print(f"  host:   {base}/host/{room}?token={token}", flush=True)
            print(f"  WHIP:   {base}/whip/{room}  (Bearer token {token})", flush=True)
        else:
            print(f"  host:   {base}/host/{room}  (room exists in {args.db}; use the host "
                  "token printed when it was created)", flush=True)
        print(f"  viewer: {base}/watch/{room}", flush=True)

    try:
        app = create_server(options, ready)
    except OSError as e:
        raise UserError(f"cannot open the database {args.db}: {e}") from None
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                            lifespan="on")
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
