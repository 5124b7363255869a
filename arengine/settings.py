"""The server's settings: one object, from command-line flags over environment variables.

Every setting has one row in :data:`OPTIONS` (flag, environment variable, parser, help),
so ``arengine serve --help``, the environment, the README's settings table and the app
factory can never disagree: ``arengine serve`` builds its flags from the table, the
uvicorn factory reads the same table from the environment, and a test checks the README
table against :func:`settings_table`. A bad value is a :class:`~arengine.errors.UserError`
naming the flag or variable it came from.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from arengine.errors import UserError
from arengine.interaction.ratelimit import Rate, RateLimits
from arengine.pipeline.room import RoomConfig

Synchronous = Literal["FULL", "NORMAL"]
Codec = Literal["vp8", "h264"]

# Lowest strength of an operator-chosen token: 16 characters of a URL-safe alphabet are
# ~95 bits, beyond online guessing at any rate limit a server allows.
MIN_TOKEN_CHARS = 16


OUTPUT_KINDS = ("rtmp", "record", "janus")
JOIN_RATE = Rate(burst=30, per_second=30 / 60)
ROOM_RATE = Rate(burst=5, per_second=5 / 3600)
COMMENT_RATE = Rate(burst=20, per_second=2.0)


@dataclass(frozen=True)
class Limits:
    """What one client (IP address) or one room may do; None switches a rate off.

    The defaults let a family or an office behind one address watch and chat normally
    (mobile carriers put many viewers behind one address too) while a script gets 429s
    within seconds: one fuzzing client made 5,270 rooms and 2,000 viewer tokens in 5 s
    before these existed.
    """

    joins: Rate | None = JOIN_RATE  # new viewers per address
    rooms: Rate | None = ROOM_RATE  # rooms made per address
    comments: Rate | None = COMMENT_RATE  # per address, across all its viewers
    sessions_per_client: int = 20  # WHEP/WHIP sessions open at once per address
    viewers_per_room: int = 200  # WHEP sessions per room (one box serves ~10-30 at full rate)
    max_rooms: int = 1000
    connect_timeout_s: float = 30.0  # a WebRTC session not connected by then is closed
    viewer_idle_s: float = 300.0  # a viewer unseen this long counts as left
    viewer: RateLimits = field(default_factory=RateLimits)  # per viewer token


@dataclass(frozen=True)
class Settings:
    """Everything ``arengine serve`` (and so every test and benchmark) configures."""

    host: str = "127.0.0.1"
    port: int = 8080
    db: str = "arengine.db"
    db_sync: Synchronous = "FULL"
    # Needed to create rooms unless open_rooms. None: made once and kept in the key file
    # beside the database (see arengine/keys.py), printed at start.
    admin_token: str | None = None
    open_rooms: bool = False
    trust_proxy: bool = False
    demo: bool = True
    demo_crowd: bool = True
    demo_shade: str | None = "velvet-ruby"
    codec: Codec = "vp8"
    room: RoomConfig = field(default_factory=lambda: RoomConfig(render="auto"))
    playout_delay: tuple[int, int] | None = (0, 0)
    ice_servers: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    log_level: str = "info"
    outputs: tuple[str, ...] = ()  # outputs of the demo room at start (see --output)
    output_kinds: tuple[str, ...] = OUTPUT_KINDS  # the kinds hosts may start
    record_dir: str | None = None  # recordings go here; None: recording is off
    janus_url: str | None = None  # the SFU's HTTP API, e.g. http://127.0.0.1:8088/janus
    janus_room: int = 1234
    janus_public_url: str | None = None  # Janus as viewers' browsers reach it
    rtmps_ca_file: str | None = None  # extra CA certificates for RTMPS targets
    allow_private_outputs: bool = False

    @property
    def keys_path(self) -> str:
        """The server's key file: beside the database, never inside it."""
        base, ext = os.path.splitext(self.db)
        return (base if ext else self.db) + ".keys"

    @property
    def public_url(self) -> str:
        shown = "localhost" if self.host in ("127.0.0.1", "0.0.0.0", "::") else self.host
        return f"http://{shown}:{self.port}"

    def with_room(self, **changes: Any) -> Settings:
        return replace(self, room=replace(self.room, **changes))

    def with_limits(self, **changes: Any) -> Settings:
        return replace(self, limits=replace(self.limits, **changes))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``ARENGINE_*`` variables (the uvicorn factory's way in)."""
        return cls.from_sources({}, os.environ if env is None else env)

    @classmethod
    def from_args(cls, args: argparse.Namespace,
                  env: Mapping[str, str] | None = None) -> Settings:
        """Settings from parsed flags (see :func:`add_arguments`), over the environment."""
        given = {o.name: getattr(args, o.name) for o in OPTIONS
                 if getattr(args, o.name, None) is not None}
        return cls.from_sources(given, os.environ if env is None else env)

    @classmethod
    def from_sources(cls, flags: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
        values: dict[str, Any] = {}
        for o in OPTIONS:
            if o.name in flags:
                raw, where = flags[o.name], o.flag
            elif o.env in env:
                raw, where = env[o.env], o.env
            else:
                continue
            try:
                values[o.name] = o.parse(raw)
            except ValueError as e:
                raise UserError(f"{where}: {e}") from None
        return _build(values)


def _build(values: dict[str, Any]) -> Settings:
    top: dict[str, Any] = {}
    room: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    viewer: dict[str, Rate] = {}
    for name, value in values.items():
        o = _BY_NAME[name]
        group, _, attr = o.target.rpartition(".")
        {"": top, "room": room, "limits": limits, "limits.viewer": viewer}[group][attr] = value
    s = Settings(**top)
    if "demo" in top:
        room.setdefault("demo", top["demo"])
    if viewer:
        limits["viewer"] = replace(s.limits.viewer, **viewer)
    if s.admin_token is not None and len(s.admin_token) < MIN_TOKEN_CHARS:
        raise UserError(f"ARENGINE_ADMIN_TOKEN must be at least {MIN_TOKEN_CHARS} characters")
    return replace(s, room=replace(s.room, **room), limits=replace(s.limits, **limits))


# ----------------------------------------------------------------------------- parsers


def _int(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ValueError(f"must be a whole number, not {str(raw)[:40]!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}, not {value}")
        return value
    return parse


def _seconds(lo: float, hi: float) -> Callable[[Any], float]:
    def parse(raw: Any) -> float:
        try:
            value = float(str(raw).strip())
        except ValueError:
            raise ValueError(f"must be a number of seconds, not {str(raw)[:40]!r}") from None
        if not math.isfinite(value) or not lo <= value <= hi:
            raise ValueError(f"must be between {lo:g} and {hi:g} seconds, not {raw}")
        return value
    return parse


def _choice(*names: str, upper: bool = False) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = str(raw).strip()
        value = value.upper() if upper else value.lower()
        if value not in names:
            raise ValueError(f"must be one of {', '.join(names)}, not {str(raw)[:40]!r}")
        return value
    return parse


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"must be true or false (1/0, yes/no, on/off), not {str(raw)[:40]!r}")


def _text(raw: Any) -> str:
    value = str(raw).strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _token(raw: Any) -> str:
    value = str(raw).strip()
    if len(value) < MIN_TOKEN_CHARS:
        raise ValueError(f"must be at least {MIN_TOKEN_CHARS} characters")
    return value


def _size(raw: Any) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in str(raw).lower().split("x"))
    except ValueError:
        raise ValueError(f"must look like 1280x720, not {str(raw)[:40]!r}") from None
    if not (160 <= w <= 3840 and 120 <= h <= 2160) or w % 2 or h % 2:
        raise ValueError(f"{raw} is out of range (even sizes 160x120 to 3840x2160)")
    return w, h


def _kbps(lo: int, hi: int) -> Callable[[Any], int]:
    ints = _int(lo, hi)

    def parse(raw: Any) -> int:
        try:
            return ints(raw) * 1000
        except ValueError as e:
            raise ValueError(f"{e} kbit/s") from None
    return parse


def _playout(raw: Any) -> tuple[int, int] | None:
    text = str(raw).strip().lower()
    if text == "browser":
        return None
    try:
        lo, hi = (int(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"must be MIN,MAX in ms (e.g. 0,0) or 'browser', "
                         f"not {str(raw)[:40]!r}") from None
    if not 0 <= lo <= hi <= 40950:
        raise ValueError(f"needs 0 <= MIN <= MAX <= 40950 ms, not {raw}")
    return lo, hi


def _effects(raw: Any) -> tuple[str, ...]:
    from arengine.effects import effect_names

    names = tuple(e.strip() for e in str(raw).split(",") if e.strip())
    known = effect_names()
    for e in names:
        if e not in known:
            raise ValueError(f"unknown effect {e[:40]!r}; known: {', '.join(known)}")
    return names


def _ice(raw: Any) -> tuple[str, ...]:
    urls = list(raw) if isinstance(raw, list | tuple) else \
        [u.strip() for u in str(raw).split(",") if u.strip()]
    for url in urls:
        if not url.startswith(("stun:", "turn:", "turns:")):
            raise ValueError(f"must be a stun:, turn: or turns: URL, not {url[:60]!r}")
    return tuple(urls)


def output_request(target: str) -> dict[str, Any]:
    """The output request for one ``--output`` value."""
    t = target.strip()
    if t.lower().startswith(("rtmp://", "rtmps://")):
        return {"kind": "rtmp", "url": t}
    if t.lower().startswith("record:") and t[7:].strip():
        return {"kind": "record", "file": t[7:].strip()}
    if t.lower() == "janus":
        return {"kind": "janus"}
    raise ValueError(f"must be an rtmp:// or rtmps:// URL, record:FILE or janus, "
                     f"not {t[:40]!r}")


def _outputs(raw: Any) -> tuple[str, ...]:
    items = list(raw) if isinstance(raw, list | tuple) else \
        [u.strip() for u in str(raw).split(",") if u.strip()]
    for item in items:
        output_request(item)
    return tuple(items)


def _output_kinds(raw: Any) -> tuple[str, ...]:
    text = str(raw).strip().lower()
    if text == "none":
        return ()
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    for k in kinds:
        if k not in OUTPUT_KINDS:
            raise ValueError(f"unknown output kind {k[:20]!r}; known: {', '.join(OUTPUT_KINDS)}")
    return kinds


def _http_url(raw: Any) -> str:
    text = str(raw).strip().rstrip("/")
    if not text.lower().startswith(("http://", "https://")):
        raise ValueError(f"must be an http:// or https:// URL, not {text[:40]!r}")
    return text


def _rate(raw: Any) -> Rate | None:
    text = str(raw).strip().lower()
    if text == "off":
        return None
    try:
        count_s, _, period_s = text.partition("/")
        count, period = int(count_s), float(period_s)
    except ValueError:
        raise ValueError(f"must be COUNT/SECONDS (e.g. 30/60) or 'off', "
                         f"not {str(raw)[:40]!r}") from None
    if count < 1 or not math.isfinite(period) or period <= 0:
        raise ValueError(f"needs COUNT >= 1 and SECONDS > 0, not {raw}")
    return Rate(burst=count, per_second=count / period)


def _shade(raw: Any) -> str | None:
    text = str(raw).strip()
    if text.lower() in ("", "none"):
        return None
    from arengine.catalog import default_catalog

    try:
        default_catalog().get(text)
    except KeyError:
        raise ValueError(f"unknown shade {text[:40]!r}; see arengine tryon --list-shades") \
            from None
    return text


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Option:
    """One setting: its flag, environment variable, parser and help."""

    name: str  # argparse dest
    target: str  # attribute path in Settings ("port", "room.fps", "limits.joins")
    flag: str
    env: str
    parse: Callable[[Any], Any]
    help: str
    metavar: str | None = None
    boolean: bool = False
    repeat: bool = False
    flag_ok: bool = True  # False: environment only (secrets stay out of `ps`)

    @property
    def default(self) -> Any:
        obj: Any = Settings()
        for part in self.target.split("."):
            obj = getattr(obj, part)
        return obj


def _fmt_default(o: Option) -> str:
    d = o.default
    if o.name == "admin_token":
        return "made once, kept in the key file"
    if isinstance(d, bool):
        return "on" if d else "off"
    if isinstance(d, Rate):
        period = d.burst / d.per_second
        return f"{d.burst:g}/{period:g}"
    if o.name == "output":
        return "none"
    if d is None:
        return "off" if "limit" in o.name or "record" in o.name else "none"
    if o.target in ("room.bitrate", "room.ingest_bitrate"):
        return str(d // 1000)
    if isinstance(d, float):
        return f"{d:g}"
    if isinstance(d, tuple):
        if o.name == "size":
            return f"{d[0]}x{d[1]}"
        return ",".join(str(x) for x in d) if d else "none"
    return str(d)


OPTIONS: tuple[Option, ...] = (
    Option("host", "host", "--host", "ARENGINE_HOST", _text, "address to listen on"),
    Option("port", "port", "--port", "ARENGINE_PORT", _int(1, 65535), "port to listen on"),
    Option("db", "db", "--db", "ARENGINE_DB", _text,
           "room event database (SQLite), created if missing; the key file sits beside it",
           "PATH"),
    Option("db_sync", "db_sync", "--db-sync", "ARENGINE_DB_SYNC",
           _choice("FULL", "NORMAL", upper=True),
           "FULL: every acknowledged event survives power loss; NORMAL: faster, may lose "
           "the last commits on power loss (never on a crash)"),
    Option("admin_token", "admin_token", "--admin-token", "ARENGINE_ADMIN_TOKEN", _token,
           f"token needed to create rooms (at least {MIN_TOKEN_CHARS} characters)",
           flag_ok=False),
    Option("open_rooms", "open_rooms", "--open-rooms", "ARENGINE_OPEN_ROOMS", _bool,
           "let anyone create rooms, without the admin token (demos on a private network)",
           boolean=True),
    Option("trust_proxy", "trust_proxy", "--trust-proxy", "ARENGINE_TRUST_PROXY", _bool,
           "behind a reverse proxy on 127.0.0.1: take the client address from its "
           "X-Forwarded-For (per-client limits need the real address)", boolean=True),
    Option("demo", "demo", "--demo", "ARENGINE_DEMO", _bool,
           "create room 'demo' and play the built-in moving face while no host publishes",
           boolean=True),
    Option("demo_crowd", "demo_crowd", "--demo-crowd", "ARENGINE_DEMO_CROWD", _bool,
           "in the demo room, stage a product card, a like goal, shade polls and a few "
           "viewers tagged '(demo)' so every layer shows at once", boolean=True),
    Option("demo_shade", "demo_shade", "--demo-shade", "ARENGINE_DEMO_SHADE", _shade,
           "shade on the demo face from the first frame ('none': bare lips)", "ID"),
    Option("render", "room.render", "--render", "ARENGINE_RENDER", _choice("auto", "cpu", "gl"),
           "where effects composite: auto (a GPU if one has a driver, else CPU), cpu, gl"),
    Option("compositor", "room.compositor", "--compositor", "ARENGINE_COMPOSITOR",
           _choice("thread", "process"),
           "where each room's tracking and effects run: thread (in the server's process) "
           "or process (a process per room, sharing no interpreter lock with viewers' "
           "actions; see Sizing)"),
    Option("codec", "codec", "--codec", "ARENGINE_CODEC", _choice("vp8", "h264"),
           "preferred viewer codec; viewers that lack it get the other"),
    Option("size", "room.demo_size", "--size", "ARENGINE_SIZE", _size, "demo picture size",
           "WxH"),
    Option("fps", "room.fps", "--fps", "ARENGINE_FPS", _int(1, 60),
           "demo and encoder frame rate"),
    Option("bitrate", "room.bitrate", "--bitrate", "ARENGINE_BITRATE", _kbps(100, 50000),
           "viewer stream bitrate, kbit/s", "KBPS"),
    Option("ingest_bitrate", "room.ingest_bitrate", "--ingest-bitrate",
           "ARENGINE_INGEST_BITRATE", _kbps(300, 50000),
           "bitrate announced to a publishing host (REMB), kbit/s; it sends up to this, "
           "less on a lossy link", "KBPS"),
    Option("playout_delay", "playout_delay", "--playout-delay", "ARENGINE_PLAYOUT_DELAY",
           _playout, "playout delay asked of viewers' players (RTP playout-delay "
           "extension), ms: 0,0 shows each frame once decoded; 'browser' leaves it to the "
           "browser's jitter buffer", "MIN,MAX"),
    Option("effects", "room.effects", "--effects", "ARENGINE_EFFECTS", _effects,
           "effects in drawing order", "A,B"),
    Option("hands", "room.track_hands", "--hands", "ARENGINE_HANDS", _bool,
           "hand tracking (hand gestures, hands in front of the lips)", boolean=True),
    Option("ice_server", "ice_servers", "--ice-server", "ARENGINE_ICE_SERVERS", _ice,
           "STUN/TURN server for NAT traversal, e.g. stun:stun.example.org:3478 "
           "(repeat the flag, or comma-separate in the variable); default: host "
           "candidates only", "URL", repeat=True),
    Option("limit_joins", "limits.joins", "--limit-joins", "ARENGINE_LIMIT_JOINS", _rate,
           "new viewers one client address may join, COUNT/SECONDS or off", "N/S"),
    Option("limit_rooms", "limits.rooms", "--limit-rooms", "ARENGINE_LIMIT_ROOMS", _rate,
           "rooms one client address may create, COUNT/SECONDS or off", "N/S"),
    Option("limit_comments", "limits.comments", "--limit-comments", "ARENGINE_LIMIT_COMMENTS",
           _rate, "comments from one client address across all its viewer tokens, "
           "COUNT/SECONDS or off", "N/S"),
    Option("limit_sessions", "limits.sessions_per_client", "--limit-sessions",
           "ARENGINE_LIMIT_SESSIONS", _int(1, 100000),
           "WebRTC sessions (WHEP viewers, WHIP hosts) one client address may hold at once",
           "N"),
    Option("max_viewers", "limits.viewers_per_room", "--max-viewers", "ARENGINE_MAX_VIEWERS",
           _int(1, 100000), "WHEP viewers per room; more get 503 with Retry-After", "N"),
    Option("max_rooms", "limits.max_rooms", "--max-rooms", "ARENGINE_MAX_ROOMS",
           _int(1, 10_000_000), "rooms on this server", "N"),
    Option("connect_timeout", "limits.connect_timeout_s", "--connect-timeout",
           "ARENGINE_CONNECT_TIMEOUT", _seconds(1, 600),
           "seconds a WHEP/WHIP session may take to connect before it is closed", "S"),
    Option("viewer_idle", "limits.viewer_idle_s", "--viewer-idle", "ARENGINE_VIEWER_IDLE",
           _seconds(5, 86400), "seconds after which a viewer with no open page, request or "
           "heartbeat counts as left (the viewer page stays present while it plays)", "S"),
    Option("output", "outputs", "--output", "ARENGINE_OUTPUTS", _outputs,
           "an output of the demo room from the start: an rtmp:// or rtmps:// URL with the "
           "stream key (a platform's server URL + '/' + key), 'record:FILE' or 'janus' "
           "(repeat the flag, or comma-separate in the variable, which keeps stream keys "
           "out of the process list)", "TARGET", repeat=True),
    Option("output_kinds", "output_kinds", "--output-kinds", "ARENGINE_OUTPUT_KINDS",
           _output_kinds, "the kinds of output hosts may start, of rtmp, record, janus "
           "(e.g. rtmp to allow pushes only; none: no outputs besides WHEP)", "A,B"),
    Option("record_dir", "record_dir", "--record-dir", "ARENGINE_RECORD_DIR", _text,
           "folder for recordings (mp4/mkv, by file name only); default: recording off",
           "DIR"),
    Option("janus", "janus_url", "--janus", "ARENGINE_JANUS_URL", _http_url,
           "the Janus SFU's HTTP API (e.g. http://127.0.0.1:8088/janus) rooms publish to "
           "for large audiences", "URL"),
    Option("janus_room", "janus_room", "--janus-room", "ARENGINE_JANUS_ROOM",
           _int(1, 2**31 - 1), "the Janus VideoRoom room to publish into", "N"),
    Option("janus_public_url", "janus_public_url", "--janus-public-url",
           "ARENGINE_JANUS_PUBLIC_URL", _http_url,
           "the Janus API as viewers' browsers reach it (default: the --janus URL)", "URL"),
    Option("rtmps_ca_file", "rtmps_ca_file", "--rtmps-ca-file", "ARENGINE_RTMPS_CA_FILE",
           _text, "CA certificates (PEM) that RTMPS targets may be signed by, besides the "
           "system's; RTMPS always verifies the platform's certificate", "PEM"),
    Option("allow_private_outputs", "allow_private_outputs", "--allow-private-outputs",
           "ARENGINE_ALLOW_PRIVATE_OUTPUTS", _bool,
           "let outputs push to private and loopback addresses (a LAN set-up); off, a "
           "host can push only to public addresses", boolean=True),
    Option("log_level", "log_level", "--log-level", "ARENGINE_LOG_LEVEL",
           _choice("debug", "info", "warning", "error"), "server log level"),
)
_BY_NAME = {o.name: o for o in OPTIONS}
assert {f.name for f in fields(Settings)} >= {o.target.split(".")[0] for o in OPTIONS}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of :data:`OPTIONS`; each defaults to None so the environment shows
    through where no flag is given."""
    for o in OPTIONS:
        if not o.flag_ok:
            continue
        env_note = f" [{o.env}; default {_fmt_default(o)}]"
        if o.boolean:
            parser.add_argument(o.flag, dest=o.name, action=argparse.BooleanOptionalAction,
                                default=None, help=o.help + env_note)
        elif o.repeat:
            parser.add_argument(o.flag, dest=o.name, action="append", default=None,
                                metavar=o.metavar, help=o.help + env_note)
        else:
            parser.add_argument(o.flag, dest=o.name, default=None, metavar=o.metavar,
                                help=o.help + env_note)


def settings_table() -> str:
    """The README's settings table (a test keeps the README equal to this)."""
    rows = ["| flag | environment | default | what it sets |", "|---|---|---|---|"]
    for o in OPTIONS:
        flag = f"`{o.flag}`" + (f" / `--no-{o.flag[2:]}`" if o.boolean else "")
        if not o.flag_ok:
            flag = "(environment only)"
        rows.append(f"| {flag} | `{o.env}` | {_fmt_default(o)} | {o.help} |")
    return "\n".join(rows)


__all__ = ["OPTIONS", "Limits", "Option", "Settings", "add_arguments",
           "settings_table"]
