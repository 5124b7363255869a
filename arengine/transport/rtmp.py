"""RTMP and RTMPS push: the room's stream as FLV (H.264 + AAC) to a platform's ingest, as
OBS sends it to Douyin, Taobao Live, TikTok LIVE or YouTube.

:class:`RtmpOutput` (kind "rtmp") takes the room's shared H.264 encoder for its settings
(main profile, 2 s keyframes: what platforms ask for), encodes the room audio to AAC, muxes
both into FLV with PyAV's muxer (no re-encoding of the video) and publishes the FLV tags
over RTMP. When the far end drops it reconnects by itself, with backoff (1, 2, 4 ... 30 s);
each new connection starts at a keyframe.

Why the RTMP client is here and not FFmpeg's: PyAV opens an output URL without options,
so FFmpeg's TLS layer gets neither ``tls_verify`` nor a CA file (measured with PyAV 18.1: a
push to ``rtmps://`` with a self-signed certificate succeeds, ``tls_verify=1`` or not), and
its blocking socket would hold the muxer's thread for good when a far end stops reading.
So PyAV writes FLV into memory (:class:`FlvTags`) and :class:`RtmpClient` carries the tags
on a socket with timeouts; RTMPS uses Python's TLS, which checks the chain against the
system's CAs (plus ``--rtmps-ca-file``) and the host name. The resolved address is checked
again at each connect, so a name cannot turn private after the request was accepted.

The stream key is a password: it is only ever sent to the far end. ``describe()``, stats,
logs and error messages show the target as ``rtmp://host:port/app/***``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from arengine.transport.output import (
    EncoderSpec,
    Output,
    OutputPolicy,
    OutputSource,
    WriterThread,
    check_target,
)
from arengine.transport.recording import AvMuxer, Feed, video_size

logger = logging.getLogger(__name__)

DEFAULT_PORTS = {"rtmp": 1935, "rtmps": 443}
# Connect, TLS, handshake and publish to a platform take 0.1-0.5 s; 10 s says "no answer".
CONNECT_TIMEOUT_S = 10.0
# A far end that takes no data for this long is gone: ingest servers read all the time,
# and TCP alone would take minutes to give up on a peer that vanished.
IO_TIMEOUT_S = 10.0
BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_S = 10.0  # a connection that stayed live this long starts the backoff over
OUT_CHUNK = 4096  # what OBS and FFmpeg send: a 128-byte default would cost 1 header/128 B
FLASH_VERSION = "FMLE/3.0 (compatible; FMSc/1.0)"  # what encoders announce; some ingests check
MAX_KEY = 1024
MAX_URL = 2048

# RTMP message types
SET_CHUNK_SIZE, ABORT, ACK, USER_CONTROL, WINDOW_ACK, PEER_BW = 1, 2, 3, 4, 5, 6
AUDIO, VIDEO, DATA_AMF0, COMMAND_AMF0 = 8, 9, 18, 20
PING_REQUEST, PING_RESPONSE = 6, 7
# Chunk streams: protocol control, commands, then one per kind of media.
CS_CONTROL, CS_COMMAND, CS_AUDIO, CS_DATA, CS_VIDEO, CS_STREAM = 2, 3, 4, 5, 6, 8


class RtmpError(Exception):
    """The far end refused or dropped the push; the message is for the host (no key)."""


# -- the target ------------------------------------------------------------------------

@dataclass(frozen=True)
class RtmpTarget:
    """Where to publish: the server (``tc_url``: scheme, host, port, app) and the key."""

    scheme: str
    host: str
    port: int
    app: str
    key: str
    tc_url: str

    @property
    def tls(self) -> bool:
        return self.scheme == "rtmps"

    @property
    def masked(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/{self.app}/***"

    def hide(self, text: str) -> str:
        """``text`` with the key (and its name before any '?') replaced by ***."""
        for secret in (self.key, self.key.split("?")[0]):
            if len(secret) >= 3:
                text = text.replace(secret, "***")
        return text


def parse_target(url: str, stream_key: str | None = None) -> RtmpTarget:
    """The target of a platform's server URL and stream key, or of a URL whose last path
    segment is the key. ValueError in words, never quoting the key."""
    url = url.strip()
    if len(url) > MAX_URL:
        raise ValueError(f"the URL is longer than {MAX_URL} characters")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        raise ValueError("the URL must start with rtmp:// or rtmps://")
    netloc, _, path = rest.partition("/")
    if "@" in netloc:
        raise ValueError("the URL may not hold a user name or password; the platform's "
                         "stream key goes in stream_key")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError("the URL may not hold spaces or control characters")
    try:
        parts = urlsplit(f"//{netloc}")
        host = parts.hostname or ""
        given = parts.port
    except ValueError:
        given = 0
    if given == 0:
        raise ValueError("the URL's port must be a number from 1 to 65535")
    port = given or DEFAULT_PORTS[scheme]
    if not host:
        raise ValueError("the URL has no host name")
    path = path.strip("/")
    if stream_key is not None:
        key = stream_key.strip()
        if not key or len(key) > MAX_KEY or any(c.isspace() or ord(c) < 32 for c in key):
            raise ValueError(f"stream_key must be 1 to {MAX_KEY} characters, without "
                             "spaces")
        app = path
    else:
        app, _, key = path.rpartition("/")
        if not key or not app:
            raise ValueError("the URL needs the platform's application path and the stream "
                             "key (rtmp://host/app/KEY), or the key in stream_key")
    if not app:
        raise ValueError("the URL needs the application path the platform gives (e.g. "
                         "rtmp://host/live)")
    shown = f"[{host}]" if ":" in host else host
    port_part = f":{given}" if given else ""
    return RtmpTarget(scheme, host, port, app, key, f"{scheme}://{shown}{port_part}/{app}")


class RtmpIn(BaseModel):
    """Push the room's stream to a platform over RTMP(S), as OBS does."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["rtmp"]
    # Lengths are checked by parse_target, in words that never quote the key.
    url: str = Field(description="the platform's server URL (rtmp:// or rtmps://), or that "
                     "URL with the stream key as its last path segment",
                     json_schema_extra={"maxLength": MAX_URL})
    stream_key: str | None = Field(None, description="appended as the last path segment",
                                   json_schema_extra={"maxLength": MAX_KEY})
    bitrate_kbps: int = Field(4000, ge=300, le=20000)
    keyframe_interval_s: float = Field(2.0, ge=0.5, le=10.0,
                                       description="platforms ask for 2 s")
    profile: Literal["baseline", "main", "high"] = "main"
    audio_bitrate_kbps: int = Field(128, ge=32, le=320)

    @model_validator(mode="after")
    def _target(self) -> RtmpIn:
        parse_target(self.url, self.stream_key)
        return self


def tls_context(policy: OutputPolicy) -> ssl.SSLContext:
    """Python's default client context (the system CAs, the host name checked), plus the
    operator's ``rtmps_ca_file``. ValueError when that file cannot be read."""
    context = ssl.create_default_context()
    if policy.rtmps_ca_file:
        try:
            context.load_verify_locations(cafile=policy.rtmps_ca_file)
        except (OSError, ssl.SSLError) as e:
            raise ValueError(f"the server's RTMPS CA file cannot be read: {e}") from None
    return context


def make_rtmp(body: RtmpIn, policy: OutputPolicy) -> RtmpOutput:
    """An RTMP push (ValueError in words: a bad URL, a private target)."""
    target = parse_target(body.url, body.stream_key)
    check_target(target.host, target.port, policy)
    return RtmpOutput(target, policy, bitrate=body.bitrate_kbps * 1000,
                      keyframe_interval=body.keyframe_interval_s, profile=body.profile,
                      audio_bitrate=body.audio_bitrate_kbps * 1000)


# -- AMF0 ------------------------------------------------------------------------------

def amf_encode(*values: Any) -> bytes:
    """AMF0 of numbers, booleans, strings, None and dicts (objects): what commands hold."""
    out = bytearray()
    for v in values:
        if isinstance(v, bool):
            out += b"\x01" + (b"\x01" if v else b"\x00")
        elif isinstance(v, int | float):
            out += b"\x00" + struct.pack(">d", float(v))
        elif isinstance(v, str):
            data = v.encode()
            out += (b"\x02" + struct.pack(">H", len(data)) if len(data) < 0x10000 else
                    b"\x0c" + struct.pack(">I", len(data))) + data
        elif v is None:
            out += b"\x05"
        elif isinstance(v, dict):
            out += b"\x03"
            for k, item in v.items():
                name = str(k).encode()
                out += struct.pack(">H", len(name)) + name + amf_encode(item)
            out += b"\x00\x00\x09"
        else:
            raise TypeError(f"no AMF0 for {type(v).__name__}")
    return bytes(out)


def amf_decode(data: bytes) -> list[Any]:
    """The values of an AMF0 payload (what servers send in replies)."""
    values: list[Any] = []
    pos = 0
    while pos < len(data):
        value, pos = _amf_value(data, pos)
        values.append(value)
    return values


def _amf_value(data: bytes, pos: int) -> tuple[Any, int]:
    marker = data[pos]
    pos += 1
    if marker == 0x00:
        return struct.unpack_from(">d", data, pos)[0], pos + 8
    if marker == 0x01:
        return data[pos] != 0, pos + 1
    if marker == 0x02:
        n = struct.unpack_from(">H", data, pos)[0]
        return data[pos + 2:pos + 2 + n].decode(errors="replace"), pos + 2 + n
    if marker == 0x0C:
        n = struct.unpack_from(">I", data, pos)[0]
        return data[pos + 4:pos + 4 + n].decode(errors="replace"), pos + 4 + n
    if marker in (0x05, 0x06):  # null, undefined
        return None, pos
    if marker in (0x03, 0x08):  # object, ECMA array (a count, then as an object)
        if marker == 0x08:
            pos += 4
        obj: dict[str, Any] = {}
        while pos + 3 <= len(data):
            n = struct.unpack_from(">H", data, pos)[0]
            if n == 0 and data[pos + 2] == 0x09:
                return obj, pos + 3
            name = data[pos + 2:pos + 2 + n].decode(errors="replace")
            obj[name], pos = _amf_value(data, pos + 2 + n)
        return obj, pos
    if marker == 0x0A:  # strict array
        count = struct.unpack_from(">I", data, pos)[0]
        pos += 4
        items = []
        for _ in range(count):
            item, pos = _amf_value(data, pos)
            items.append(item)
        return items, pos
    if marker == 0x0B:  # date: a number and a time zone
        return struct.unpack_from(">d", data, pos)[0], pos + 10
    raise RtmpError(f"the server sent AMF0 this client cannot read (type {marker})")


# -- the RTMP client ---------------------------------------------------------------------

@dataclass
class _InChunks:
    """What the reader remembers of one incoming chunk stream."""

    timestamp: int = 0
    delta: int = 0
    length: int = 0
    type: int = 0
    stream: int = 0
    extended: bool = False
    body: bytearray | None = None


class RtmpClient:
    """A blocking RTMP publisher (one connection, one stream) for a writer thread.

    :meth:`connect` does TCP (and TLS), the handshake, ``connect``, ``createStream`` and
    ``publish``; :meth:`send` sends one FLV tag as a message and answers what the server
    asked meanwhile (pings, acknowledgements) without waiting for it. :meth:`abort` may be
    called from another thread: it shuts the socket, so a blocked send returns at once.
    """

    def __init__(self, target: RtmpTarget, policy: OutputPolicy,
                 tls: ssl.SSLContext | None, connect_timeout: float = CONNECT_TIMEOUT_S,
                 io_timeout: float = IO_TIMEOUT_S) -> None:
        self.target = target
        self.policy = policy
        self.tls = tls
        self.connect_timeout = connect_timeout
        self.io_timeout = io_timeout
        self.sock: socket.socket | None = None
        self.stream_id = 0
        self.publishing = False
        self.sent_bytes = 0
        self.aborted = False
        self._in = bytearray()
        self._in_chunk = 128
        self._chunks: dict[int, _InChunks] = {}
        self._received = 0
        self._acked = 0
        self._window = 0
        self._txn = 0

    # -- connecting ------------------------------------------------------------------

    def connect(self) -> None:
        deadline = time.monotonic() + self.connect_timeout
        self.sock = self._open(deadline)
        self._handshake(deadline)
        self._send(CS_CONTROL, SET_CHUNK_SIZE, 0, 0, struct.pack(">I", OUT_CHUNK))
        t = self.target
        self._command(0, "connect", {"app": t.app, "type": "nonprivate",
                                     "flashVer": FLASH_VERSION, "swfUrl": t.tc_url,
                                     "tcUrl": t.tc_url})
        reply = self._reply(self._txn, deadline)
        if reply[0] != "_result":
            raise RtmpError(f"the server refused the connection: {self._status(reply)}")
        self._command(0, "releaseStream", None, t.key)
        self._command(0, "FCPublish", None, t.key)
        self._command(0, "createStream", None)
        reply = self._reply(self._txn, deadline)
        if reply[0] != "_result" or len(reply) < 4 or not isinstance(reply[3], float):
            raise RtmpError(f"the server did not open a stream: {self._status(reply)}")
        self.stream_id = int(reply[3])
        self._command(self.stream_id, "publish", None, t.key, "live")
        while True:
            msg = self._next(deadline)
            if msg[0] != "onStatus":
                continue
            info = msg[3] if len(msg) > 3 and isinstance(msg[3], dict) else {}
            code = str(info.get("code", ""))
            if code == "NetStream.Publish.Start":
                break
            if info.get("level") == "error" or code.startswith("NetStream.Publish."):
                raise RtmpError(f"the server refused the stream key: {self._status(msg)}")
        assert self.sock is not None
        self.sock.settimeout(self.io_timeout)
        self.publishing = True

    def _open(self, deadline: float) -> socket.socket:
        t = self.target
        where = f"{t.host}:{t.port}"
        try:
            infos = socket.getaddrinfo(t.host, t.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as e:
            raise RtmpError(f"cannot resolve {t.host!r}: {e}") from None
        last: str = "no address"
        for family, kind, proto, _, address in infos:
            try:
                check_target(str(address[0]), t.port, self.policy)  # public, still?
            except ValueError as e:
                last = str(e)
                continue
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                sock.connect(address)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.tls is not None:
                    sock = self.tls.wrap_socket(sock, server_hostname=t.host)
                return sock
            except ssl.SSLCertVerificationError as e:
                sock.close()
                raise RtmpError(f"the certificate of {where} was not accepted: "
                                f"{(e.verify_message or e.reason or '').rstrip('.')}") from None
            except ssl.SSLError as e:
                sock.close()
                raise RtmpError(f"TLS with {where} failed: {e.reason or e}") from None
            except TimeoutError:
                sock.close()
                last = f"no answer from {where} within {self.connect_timeout:g} s"
            except ConnectionRefusedError:
                sock.close()
                last = f"{where} refused the connection (nothing listens there)"
            except OSError as e:
                sock.close()
                last = f"cannot connect to {where}: {(e.strerror or str(e)).lower()}"
        raise RtmpError(last)

    def _handshake(self, deadline: float) -> None:
        """The RTMP specification's plain handshake (C0 C1, S0 S1 S2, C2); Flash's later
        digest variant is not sent (tested against nginx-rtmp, which takes both)."""
        c1 = struct.pack(">II", 0, 0) + os.urandom(1528)
        self._sendall(b"\x03" + c1)
        s0s1 = self._recv_exact(1 + 1536, deadline)
        if s0s1[0] != 3:
            raise RtmpError(f"{self.target.host}:{self.target.port} is not an RTMP server "
                            "(its handshake was not RTMP's)")
        self._sendall(s0s1[1:])  # C2 echoes S1
        self._recv_exact(1536, deadline)  # S2 (an echo of C1; servers differ in its times)

    # -- sending ---------------------------------------------------------------------

    def send(self, tag_type: int, timestamp: int, payload: bytes) -> None:
        """One FLV tag (audio, video or script data) as a message of the stream."""
        if tag_type == DATA_AMF0:
            payload = amf_encode("@setDataFrame") + payload
            chunk_stream = CS_DATA
        else:
            chunk_stream = CS_VIDEO if tag_type == VIDEO else CS_AUDIO
        self._send(chunk_stream, tag_type, timestamp, self.stream_id, payload)
        self.poll()

    def _command(self, stream: int, name: str, *args: Any) -> None:
        self._txn += 1
        self._send(CS_STREAM if stream else CS_COMMAND, COMMAND_AMF0, 0, stream,
                   amf_encode(name, self._txn, *args))

    def _send(self, chunk_stream: int, kind: int, timestamp: int, stream: int,
              payload: bytes) -> None:
        ts = timestamp & 0xFFFFFFFF
        extended = ts >= 0xFFFFFF
        ext = struct.pack(">I", ts) if extended else b""
        out = bytearray(struct.pack(">B", chunk_stream))
        out += min(ts, 0xFFFFFF).to_bytes(3, "big") + len(payload).to_bytes(3, "big")
        out += bytes([kind]) + struct.pack("<I", stream) + ext
        continuation = struct.pack(">B", 0xC0 | chunk_stream) + ext
        for i in range(0, max(len(payload), 1), OUT_CHUNK):
            if i:
                out += continuation
            out += payload[i:i + OUT_CHUNK]
        self._sendall(bytes(out))

    def _sendall(self, data: bytes) -> None:
        if self.aborted or self.sock is None:
            raise RtmpError("the connection was closed")
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise RtmpError(f"the server took no data for {self.io_timeout:g} s") from None
        except OSError as e:
            raise RtmpError(self._lost(e)) from None
        self.sent_bytes += len(data)

    def _lost(self, e: OSError) -> str:
        if self.aborted:
            return "the connection was closed"
        words = (e.strerror or type(e).__name__).lower()
        return f"the connection to {self.target.host}:{self.target.port} was lost ({words})"

    # -- receiving -------------------------------------------------------------------

    def poll(self) -> None:
        """Read and answer what the server sent, without waiting."""
        sock = self.sock
        if sock is None:
            return
        while True:
            pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
            if not pending and not select.select([sock], [], [], 0)[0]:
                return
            self._read_some()
            while (msg := self._message()) is not None:
                self._handle(*msg)

    def _read_some(self, deadline: float | None = None) -> None:
        assert self.sock is not None
        if deadline is not None:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            wait = self.connect_timeout if deadline is not None else self.io_timeout
            raise RtmpError(f"no answer from {self.target.host}:{self.target.port} within "
                            f"{wait:g} s") from None
        except OSError as e:
            raise RtmpError(self._lost(e)) from None
        if not data:
            raise RtmpError(f"{self.target.host}:{self.target.port} closed the connection")
        self._in += data
        self._received += len(data)
        if self._window and self._received - self._acked >= self._window:
            self._acked = self._received
            self._send(CS_CONTROL, ACK, 0, 0, struct.pack(">I", self._received & 0xFFFFFFFF))

    def _recv_exact(self, n: int, deadline: float) -> bytes:
        while len(self._in) < n:
            self._read_some(deadline)
        data = bytes(self._in[:n])
        del self._in[:n]
        return data

    def _message(self) -> tuple[int, int, bytes] | None:
        """The next whole message in what was read (type, stream, payload), or None."""
        while True:
            buf = self._in
            if not buf:
                return None
            fmt, cs = buf[0] >> 6, buf[0] & 0x3F
            pos = 1
            if cs == 0:
                if len(buf) < 2:
                    return None
                cs, pos = 64 + buf[1], 2
            elif cs == 1:
                if len(buf) < 3:
                    return None
                cs, pos = 64 + buf[1] + 256 * buf[2], 3
            header = (11, 7, 3, 0)[fmt]
            if len(buf) < pos + header:
                return None
            st = self._chunks.setdefault(cs, _InChunks())
            field = int.from_bytes(buf[pos:pos + 3], "big") if fmt < 3 else 0
            extended = field == 0xFFFFFF if fmt < 3 else st.extended
            end = pos + header + (4 if extended else 0)
            if len(buf) < end:
                return None
            new = st.body is None or fmt < 3  # fmt 3 continues a message, or repeats one
            length, kind = st.length, st.type
            if fmt <= 1:
                length = int.from_bytes(buf[pos + 3:pos + 6], "big")
                kind = buf[pos + 6]
            taken = 0 if new or st.body is None else len(st.body)
            piece = min(self._in_chunk, length - taken)
            if len(buf) < end + piece:
                return None
            value = int.from_bytes(buf[end - 4:end], "big") if extended else field
            if new:
                if fmt == 0:
                    st.timestamp = value
                    st.stream = int.from_bytes(buf[pos + 7:pos + 11], "little")
                elif fmt in (1, 2):
                    st.delta = value
                    st.timestamp += value
                else:
                    st.timestamp += st.delta
                st.length, st.type, st.extended = length, kind, extended
            body = bytearray() if new or st.body is None else st.body
            body += buf[end:end + piece]
            st.body = body
            del buf[:end + piece]
            if len(body) >= st.length:
                st.body = None
                return st.type, st.stream, bytes(body)

    def _handle(self, kind: int, stream: int, body: bytes) -> list[Any] | None:
        """Act on a protocol message; a command's values are returned to the caller."""
        if kind == SET_CHUNK_SIZE and len(body) >= 4:
            self._in_chunk = max(1, struct.unpack(">I", body[:4])[0] & 0x7FFFFFFF)
        elif kind == ABORT and len(body) >= 4:
            self._chunks.pop(struct.unpack(">I", body[:4])[0], None)
        elif kind == WINDOW_ACK and len(body) >= 4:
            self._window = struct.unpack(">I", body[:4])[0]
        elif kind == USER_CONTROL and len(body) >= 6 and \
                struct.unpack(">H", body[:2])[0] == PING_REQUEST:
            self._send(CS_CONTROL, USER_CONTROL, 0, 0,
                       struct.pack(">H", PING_RESPONSE) + body[2:6])
        elif kind == COMMAND_AMF0:
            values = amf_decode(body)
            if values and values[0] == "onStatus" and len(values) > 3 and \
                    isinstance(values[3], dict) and values[3].get("level") == "error" and \
                    self.publishing:
                raise RtmpError(f"the server stopped the stream: {self._status(values)}")
            if values and values[0] == "close":
                raise RtmpError("the server closed the stream")
            return values
        return None

    def _next(self, deadline: float) -> list[Any]:
        """The next command the server sends (control messages answered on the way)."""
        while True:
            msg = self._message()
            if msg is None:
                self._read_some(deadline)
                continue
            values = self._handle(*msg)
            if values:
                return values

    def _reply(self, txn: int, deadline: float) -> list[Any]:
        while True:
            values = self._next(deadline)
            if values[0] in ("_result", "_error") and len(values) > 1 and values[1] == txn:
                return values

    def _status(self, values: list[Any]) -> str:
        info = next((v for v in values[2:] if isinstance(v, dict)), {})
        text = " ".join(str(info.get(k, "")) for k in ("code", "description")).strip()
        return self.target.hide(text[:200] or "no reason given")

    # -- closing ---------------------------------------------------------------------

    def close(self) -> None:
        """End the stream politely (FCUnpublish, deleteStream), then the connection."""
        sock, self.sock = self.sock, None
        if sock is None:
            return
        try:
            if self.stream_id and not self.aborted:
                self.sock = sock
                sock.settimeout(1.0)
                self._command(0, "FCUnpublish", None, self.target.key)
                self._command(0, "deleteStream", None, float(self.stream_id))
        except (RtmpError, OSError):
            pass
        finally:
            self.sock = None
            with contextlib.suppress(OSError):
                sock.close()

    def abort(self) -> None:
        """From any thread: stop at once (a blocked send or read fails now)."""
        self.aborted = True
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class FlvTags:
    """A write-only file for PyAV's FLV muxer that cuts its output into tags and hands
    each to ``send(type, timestamp_ms, payload)``. The file header is dropped: RTMP
    carries tags, not files."""

    def __init__(self, send: Callable[[int, int, bytes], None]) -> None:
        self._send = send
        self._buf = bytearray()
        self._header = 13  # "FLV", version, flags, header size, first previous-tag size
        self.closed = False

    def write(self, data: bytes) -> int:
        if self.closed:
            return len(data)
        self._buf += data
        if self._header:
            n = min(self._header, len(self._buf))
            del self._buf[:n]
            self._header -= n
        while len(self._buf) >= 11:
            size = int.from_bytes(self._buf[1:4], "big")
            if len(self._buf) < 11 + size + 4:
                break
            kind = self._buf[0] & 0x1F
            ts = int.from_bytes(self._buf[4:7], "big") | self._buf[7] << 24
            payload = bytes(self._buf[11:11 + size])
            del self._buf[:11 + size + 4]
            self._send(kind, ts, payload)
        return len(data)


# -- the output ---------------------------------------------------------------------------

class _Session:
    """One connection's work on the writer thread: connect, mux, send, close."""

    def __init__(self, output: RtmpOutput) -> None:
        self.output = output
        self.client = RtmpClient(output.target, output.policy, output.tls,
                                 output.connect_timeout, output.io_timeout)
        self.muxer: AvMuxer | None = None
        self.sink = FlvTags(self._tag)
        self.video_sent = 0
        self.error: RtmpError | None = None  # what broke, as the client said it

    def _tag(self, kind: int, ts: int, payload: bytes) -> None:
        try:
            self.client.send(kind, ts, payload)
        except RtmpError as e:  # PyAV hands on what its file raised; keep the words here
            self.error = e
            raise
        if kind == VIDEO and len(payload) > 1 and payload[1] == 1:  # a frame, not a header
            self.video_sent += 1
            self.output.frames += 1
            self.output.video_rate.add(len(payload))

    def write(self, item: tuple[Any, ...]) -> None:
        if self.client.aborted:
            raise RtmpError("the connection was closed")
        if item[0] == "open":
            self.client.connect()
        elif item[0] == "v":
            if self.muxer is None:
                if not item[3]:
                    return
                self.muxer = AvMuxer(self.sink, "flv", video_size(item[1]),
                                     self.output.fps, self.output.audio_bitrate,
                                     {"flvflags": "no_duration_filesize",
                                      "flush_packets": "1"})
            self.muxer.write_video(item[1], item[2], item[3])
        elif item[0] == "a":
            if self.muxer is not None:
                self.muxer.write_audio(item[1], item[2])
        elif item[0] == "close":
            self.close()
        self.client.poll()

    def close(self) -> None:
        muxer, self.muxer = self.muxer, None
        try:
            if muxer is not None:
                muxer.close()
        except Exception:  # the trailer needs a live connection; the stream ends anyway
            pass
        finally:
            self.sink.closed = True
            self.client.close()

    def on_error(self, error: BaseException) -> None:
        self.sink.closed = True
        with contextlib.suppress(Exception):
            self.client.close()


class RtmpOutput(Output):
    """A push of the room's stream to one RTMP(S) target; reconnects by itself."""

    kind = "rtmp"

    def __init__(self, target: RtmpTarget, policy: OutputPolicy, bitrate: int = 4_000_000,
                 keyframe_interval: float = 2.0, profile: str = "main",
                 audio_bitrate: int = 128_000) -> None:
        super().__init__()
        self.target = target
        self.policy = policy
        self.tls = tls_context(policy) if target.tls else None
        self.bitrate = bitrate
        self.keyframe_interval = keyframe_interval
        self.profile = profile
        self.audio_bitrate = audio_bitrate
        self.connect_timeout = CONNECT_TIMEOUT_S
        self.io_timeout = IO_TIMEOUT_S
        self.fps = 30  # the room's, once it runs
        self.retry_in: float | None = None

    def describe(self) -> dict[str, Any]:
        return {"target": self.target.masked,
                "video": f"h264 {self.profile} {self.bitrate // 1000} kbit/s, keyframe "
                         f"every {self.keyframe_interval:g} s",
                "audio": f"aac {self.audio_bitrate // 1000} kbit/s",
                "retry_in_s": self.retry_in}

    async def run(self, source: OutputSource) -> None:
        self.fps = source.fps
        spec = EncoderSpec("h264", self.bitrate, source.fps, self.keyframe_interval,
                           self.profile)
        self.set_state("connecting")
        backoff = BACKOFF_START_S
        dropped = 0
        while True:
            session = _Session(self)
            writer = WriterThread(f"rtmp-{self.id}", session.write, session.on_error)
            feed = Feed(source, spec)
            writer.put(("open",))
            self.retry_in = None
            live_since: float | None = None
            try:
                while writer.failed is None:
                    await feed.step(writer)
                    self.dropped = dropped + feed.dropped
                    if session.video_sent and live_since is None:
                        live_since = time.monotonic()
                        self.retry_in = None
                        self.set_state("live")
                        logger.info("output %s: live to %s", self.id, self.target.masked)
            finally:
                dropped += feed.dropped
                feed.close()
                await asyncio.to_thread(self._finish, session, writer)
            if live_since is not None and time.monotonic() - live_since >= STABLE_S:
                backoff = BACKOFF_START_S
            words = self.target.hide(_words(session.error or writer.failed))
            self.last_error = words
            self.retry_in = backoff
            self.set_state("reconnecting")
            logger.warning("output %s (%s): %s; retrying in %g s", self.id,
                           self.target.masked, words, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            self.reconnects += 1

    @staticmethod
    def _finish(session: _Session, writer: WriterThread) -> None:
        """End a session: what is queued goes out (briefly), then the connection closes."""
        if writer.failed is None and writer.put(("close",)):
            writer.close(timeout=2.0)
        session.client.abort()
        writer.close(timeout=1.0)


def _words(error: BaseException | None) -> str:
    if isinstance(error, RtmpError):
        return str(error)
    if error is None:
        return "the connection ended"
    return f"{type(error).__name__}: {error}"
