"""Publishing a room into a Janus VideoRoom, so the fan-out to a large audience runs on an SFU.

:class:`JanusOutput` is an output of kind "janus": it publishes the room's processed stream
into the operator's Janus (``--janus``, the HTTP API as the server reaches it) through
Janus's HTTP API: create a session, attach the VideoRoom plugin, join as a publisher, send
an offer and read the answer from the event long-poll. The aiortc peer offers send-only
video, audio and a data channel: the video is the room's shared VP8 viewer encoder's
packets, forwarded (no encode here; Janus's keyframe requests reach that encoder), the
audio the room's shared Opus packets, and the data channel carries the same ``media``
events WHEP viewers get (status, size, the product card's click regions), which the
VideoRoom relays to every subscriber that opened a channel of its own.

Who may do what in the Janus room (the VideoRoom's own controls, read in
``janus_videoroom.c`` 1.1.2):

- arengine creates the room on first use with a ``secret`` (needed to edit, kick, record
  or destroy) and an ``allowed`` list holding one publish token: Janus checks that list
  when a *publisher* joins and never for subscribers, so viewers subscribe with no
  arengine token while strangers can neither publish into the room nor destroy it.
- No ``pin``: Janus asks a pin of subscribers as well, so it would have to be handed to
  every viewer and would guard nothing. No ``require_pvtid``: it would make each viewer
  join as a publisher first. The room is ``is_private`` (not listed) and not permanent.
- A room that already exists is used only if this server holds its secret (an earlier run
  with the same secret); it then gets the same access list. A room with another secret is
  refused, with the reason in the output's stats, rather than published into unguarded.

The secret comes from the ``--janus`` URL's password (``http://:SECRET@host:8088/janus``),
which can then also be the VideoRoom's ``admin_key`` (locking room creation to this
server); without one, from the server's key file (``policy.janus_secret``). Either way it
survives restarts, so a room left behind by a crash is still this server's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import av
import httpx
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from pydantic import BaseModel, ConfigDict, Field

from arengine.transport import hooks
from arengine.transport.encoder import PacketQueue
from arengine.transport.output import Output, OutputPolicy, OutputSource
from arengine.transport.session import send_json

logger = logging.getLogger(__name__)

VIDEOROOM = "janus.plugin.videoroom"
# Janus closes a session after session_timeout (60 s by default) without a request. Each
# long poll counts as one when it arrives, but Janus holds it up to 30 s, so a keepalive
# every 25 s keeps a session alive under any timeout above that (janus.js sends them at
# the same period).
KEEPALIVE_S = 25.0
LONG_POLL_S = 40.0  # Janus answers a long poll within 30 s (an event, or a keepalive)
REQUEST_S = 10.0
CONNECT_S = 20.0  # ICE + DTLS with Janus on a LAN take well under a second
# Waits between reconnection attempts; a Janus restart here takes about a second to answer
# again, so the first tries come quickly, then back off to one every 8 s.
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)
STABLE_S = 30.0  # a connection that lived this long starts the backoff over
# The room's cap for a publisher: the viewers' encoder sends 2 Mbit/s, plus Opus (64 kbit/s),
# RTP/SRTP overhead and keyframe bursts.
ROOM_BITRATE = 2_500_000
ROOM_PUBLISHERS = 32  # one feed per arengine room publishing here; the access list guards it
# A publisher's data channel reaches only subscribers whose channel is already open, so the
# latest event is sent again every second: a late viewer lays out the product card within a
# second, for about 300 bytes a second per subscriber.
EVENT_REPEAT_S = 1.0

# VideoRoom error codes (janus_videoroom.c)
NO_SUCH_ROOM = 426
ROOM_EXISTS = 427
UNAUTHORIZED = 433
ID_EXISTS = 436
NO_SUCH_SESSION = 458  # Janus core


class JanusError(RuntimeError):
    """Janus refused a request; ``code`` is its error code (0: not Janus's own)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"Janus {code}: {reason}" if code else reason)
        self.code = code


def _plain_url(url: str) -> str:
    """``url`` without its user name and password (they are never sent or shown)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def public_url(policy: OutputPolicy) -> str | None:
    """The Janus API as viewers' browsers reach it (never with a password)."""
    url = policy.janus_public_url or policy.janus_url
    return None if url is None else _plain_url(url)


# -- Janus's HTTP API ---------------------------------------------------------------------


class JanusSession:
    """One Janus session over the HTTP API: requests, the event long-poll, keepalives.

    Synchronous plugin requests (``exists``, ``create``, ``kick``...) answer in the POST's
    reply; asynchronous ones (``join``, ``publish``, ``start``) are acknowledged, and their
    answer comes on the long-poll with the same transaction. Every other event goes to
    :attr:`events`. When the session dies (Janus gone, a timeout, "No such session"),
    :attr:`gone` is set with the reason in :attr:`error`.
    """

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = _plain_url(url)
        self.id: int | None = None
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(256)
        self.gone = asyncio.Event()
        self.error: str | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def _post(self, path: str, body: dict[str, Any],
                    transaction: str | None = None) -> dict[str, Any]:
        body = {**body, "transaction": transaction or secrets.token_hex(8)}
        r = await self.http.post(self.url + path, json=body, timeout=REQUEST_S)
        r.raise_for_status()
        reply: dict[str, Any] = r.json()
        if reply.get("janus") == "error":
            err = reply.get("error") or {}
            code = int(err.get("code", 0))
            if code == NO_SUCH_SESSION:
                self._die(f"Janus lost the session ({err.get('reason')})")
            raise JanusError(code, str(err.get("reason", "error")))
        return reply

    async def create(self) -> int:
        reply = await self._post("", {"janus": "create"})
        self.id = int(reply["data"]["id"])
        self._tasks = [asyncio.create_task(self._poll(), name=f"janus-poll-{self.id}"),
                       asyncio.create_task(self._keepalive(), name=f"janus-ka-{self.id}")]
        return self.id

    async def attach(self, plugin: str) -> int:
        reply = await self._post(f"/{self.id}", {"janus": "attach", "plugin": plugin})
        return int(reply["data"]["id"])

    async def request(self, handle: int, body: dict[str, Any]) -> dict[str, Any]:
        """A synchronous plugin request; the plugin's answer (JanusError if it refused)."""
        reply = await self._post(f"/{self.id}/{handle}", {"janus": "message", "body": body})
        return _plugin_data(reply)

    async def message(self, handle: int, body: dict[str, Any],
                      jsep: dict[str, Any] | None = None,
                      timeout: float = REQUEST_S) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """An asynchronous plugin request: the plugin's answer and its JSEP, if any."""
        transaction = secrets.token_hex(8)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = future
        msg: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        try:
            reply = await self._post(f"/{self.id}/{handle}", msg, transaction)
            if reply.get("janus") == "success":  # answered at once
                return _plugin_data(reply), reply.get("jsep")
            event = await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(transaction, None)
        return _plugin_data(event), event.get("jsep")

    async def destroy(self) -> None:
        """End the session at Janus (best effort) and stop polling."""
        for t in self._tasks:
            t.cancel()
        if self.id is not None and not self.gone.is_set():
            with contextlib.suppress(httpx.HTTPError, JanusError, ValueError):
                await self._post(f"/{self.id}", {"janus": "destroy"})
        self._die("session destroyed")

    def _die(self, reason: str) -> None:
        if not self.gone.is_set():
            self.error = reason
            self.gone.set()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(JanusError(0, reason))

    async def _poll(self) -> None:
        try:
            while True:
                r = await self.http.get(f"{self.url}/{self.id}",
                                        params={"maxev": 10, "rid": int(time.time() * 1000)},
                                        timeout=LONG_POLL_S)
                r.raise_for_status()
                body = r.json()
                for event in body if isinstance(body, list) else [body]:
                    self._dispatch(event)
        except asyncio.CancelledError:
            raise
        except (httpx.HTTPError, ValueError) as e:
            self._die(f"Janus went away ({_reason(e)})")

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("janus")
        if kind == "keepalive":
            return
        if kind == "timeout":
            self._die("Janus timed the session out")
            return
        if kind == "error" and (event.get("error") or {}).get("code") == NO_SUCH_SESSION:
            self._die("Janus lost the session")
            return
        future = self._waiting.get(str(event.get("transaction")))
        if kind == "event" and future is not None and not future.done():
            future.set_result(event)
            return
        with contextlib.suppress(asyncio.QueueFull):  # nobody reading: newest are lost
            self.events.put_nowait(event)

    async def _keepalive(self) -> None:
        try:
            while True:
                await asyncio.sleep(KEEPALIVE_S)
                await self._post(f"/{self.id}", {"janus": "keepalive"})
        except asyncio.CancelledError:
            raise
        except (httpx.HTTPError, JanusError, ValueError) as e:
            self._die(f"Janus keepalive failed ({_reason(e)})")


def _plugin_data(reply: dict[str, Any]) -> dict[str, Any]:
    data = (reply.get("plugindata") or {}).get("data")
    if not isinstance(data, dict):
        raise JanusError(0, f"unexpected Janus reply: {str(reply)[:200]}")
    if data.get("error_code"):
        raise JanusError(int(data["error_code"]), str(data.get("error", "refused")))
    return data


def _reason(e: BaseException) -> str:
    text = str(e).strip()
    return text[:200] if text else type(e).__name__


# -- who may do what in the room ---------------------------------------------------------


@dataclass
class JanusAccess:
    """The secret and publish token of this server's Janus rooms (see the module text).

    One per app, shared by every Janus output, so the outputs of several rooms publish into
    one Janus room together; ``users`` counts them, and the room is destroyed when the last
    one stops if it made the room and the secret was made for this run only.
    """

    master: str
    stable: bool  # from the --janus URL's password: the same after a restart
    users: dict[int, int] = field(default_factory=dict)
    created: set[int] = field(default_factory=set)  # rooms this app made

    @classmethod
    def from_url(cls, url: str, fallback: str | None = None) -> JanusAccess:
        """The URL's password, else ``fallback`` (the key file's), else one for this run."""
        parts = urlsplit(url)
        given = parts.password or parts.username or fallback
        if given:
            return cls(given, True)
        return cls(secrets.token_urlsafe(32), False)

    def _derive(self, purpose: str) -> str:
        digest = hmac.new(self.master.encode(), purpose.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def secret(self, room: int) -> str:
        """The room's ``secret`` (edit, kick, destroy)."""
        return self._derive(f"janus-room-secret:{room}")

    def token(self, room: int) -> str:
        """The one token in the room's ``allowed`` list: only its holder may publish."""
        return self._derive(f"janus-publish:{room}")

    @property
    def admin_key(self) -> str | None:
        """Sent with ``create``: the VideoRoom's ``admin_key`` when the operator set it."""
        return self.master if self.stable else None


class JanusIn(BaseModel):
    """Publish the room into the operator's Janus VideoRoom (``--janus``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["janus"]
    display: str | None = Field(None, min_length=1, max_length=64,
                                pattern=r"^[^\x00-\x1f\x7f]+$",
                                description="the publisher's name in the Janus room")


def janus_unavailable(policy: OutputPolicy) -> str | None:
    """Why this server cannot publish to an SFU (None: it can)."""
    if policy.janus_url:
        return None
    return ("this server has no SFU: start it with --janus URL (the Janus HTTP API, e.g. "
            "http://127.0.0.1:8088/janus)")


def janus_maker() -> Callable[[JanusIn, OutputPolicy], JanusOutput]:
    """The "janus" output kind's ``make``: one :class:`JanusAccess` for every output made."""
    access: dict[str, JanusAccess] = {}

    def make(body: JanusIn, policy: OutputPolicy) -> JanusOutput:
        url = policy.janus_url
        if not url:
            raise ValueError(janus_unavailable(policy))
        if url not in access:
            access[url] = JanusAccess.from_url(url, policy.janus_secret)
        return JanusOutput(policy, access[url], body.display)

    return make


# -- the output ----------------------------------------------------------------------------


class ForwardedVideo(MediaStreamTrack):
    """A send-only track of a shared encoder's packets: aiortc only packetizes them."""

    kind = "video"

    def __init__(self, packets: PacketQueue, on_packet: Callable[[av.Packet], None]) -> None:
        super().__init__()
        self.packets = packets
        self._on_packet = on_packet

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        try:
            packet, _ = await self.packets.get()
        except MediaStreamError:
            self.stop()
            raise
        self._on_packet(packet)
        return packet


class JanusOutput(Output):
    """Publishes a room into a Janus VideoRoom and keeps it there (reconnecting)."""

    kind = "janus"

    def __init__(self, policy: OutputPolicy, access: JanusAccess,
                 display: str | None = None) -> None:
        super().__init__()
        if not policy.janus_url:
            raise ValueError("this server has no SFU (--janus)")
        self.url = _plain_url(policy.janus_url)
        self.public_url = public_url(policy) or self.url
        self.room = policy.janus_room
        self.access = access
        self.display = display
        # The publisher's id in the room, kept across reconnections, so that a viewer that
        # lost the feed subscribes again to the same id. Below 2**53: exact in JavaScript.
        self.feed = secrets.randbelow(2**53 - 1) + 1
        self._channel: RTCDataChannel | None = None
        self._event: dict[str, Any] | None = None
        self._was_live = False
        self._packets: PacketQueue | None = None
        self._dropped_before = 0
        self.told = False  # the latest media event was sent (MediaServer's bookkeeping)

    def describe(self) -> dict[str, Any]:
        return {"janus_room": self.room, "feed": self.feed}

    def watch_info(self) -> dict[str, Any]:
        """Where viewers watch this output: public, no session id or secret."""
        return {"janus": self.public_url, "room": self.room, "feed": self.feed,
                "state": self.state}

    # -- events to the data channel ------------------------------------------------------

    def send_event(self, event: dict[str, Any]) -> bool:
        """Send a media event on the publisher's data channel (Janus relays it)."""
        self._event = event
        return self._send(event)

    def _send(self, event: dict[str, Any]) -> bool:
        return send_json(self._channel, event, f"janus {self.id}")

    async def _repeat_events(self) -> None:
        while True:
            await asyncio.sleep(EVENT_REPEAT_S)
            if self._event is not None:
                self._send(self._event)

    # -- the connection ------------------------------------------------------------------

    async def run(self, source: OutputSource) -> None:
        self.access.users[self.room] = self.access.users.get(self.room, 0) + 1
        attempt = 0
        try:
            async with httpx.AsyncClient(trust_env=False) as http:
                try:
                    while True:
                        self.set_state("reconnecting" if self._was_live or attempt
                                       else "connecting")
                        began = time.monotonic()
                        try:
                            await self._publish(http, source)
                        except (JanusError, httpx.HTTPError, OSError, TimeoutError,
                                ValueError) as e:
                            self.last_error = _reason(e)
                            logger.info("janus %s: %s", self.id, self.last_error)
                        except Exception as e:  # say it in the stats, and try again
                            self.last_error = f"{type(e).__name__}: {_reason(e)}"
                            logger.warning("janus %s: connection failed", self.id,
                                           exc_info=True)
                        if time.monotonic() - began > STABLE_S:
                            attempt = 0
                        self.set_state("reconnecting")
                        await asyncio.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
                        attempt += 1
                finally:
                    await self._leave(http)
        finally:
            self.access.users[self.room] -= 1

    async def _publish(self, http: httpx.AsyncClient, source: OutputSource) -> None:
        """One connection: returns (or raises) when it ended, with the reason recorded."""
        session = JanusSession(http, self.url)
        pc: RTCPeerConnection | None = None
        packets: PacketQueue | None = None
        audio = None
        tasks: list[asyncio.Task[None]] = []
        try:
            await session.create()
            handle = await session.attach(VIDEOROOM)
            await self._ensure_room(session, handle)

            packets = self._packets = source.video(source.viewer_spec("vp8"))
            self._dropped_before = self.dropped
            video = ForwardedVideo(packets, self._sent)
            audio = source.audio_opus()
            hooks.allow_rsa_dtls()
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # Janus: host candidates
            vt = pc.addTransceiver(video, direction="sendonly")
            caps = RTCRtpSender.getCapabilities("video").codecs
            vt.setCodecPreferences([c for c in caps if c.mimeType.lower() in
                                    ("video/vp8", "video/rtx")])
            pc.addTransceiver(audio, direction="sendonly")
            channel = pc.createDataChannel("events")
            # Janus's PLI/FIR (a subscriber joined or lost packets) reach the shared encoder.
            hooks.route_keyframe_requests(vt.sender, packets.request_keyframe)
            broken = asyncio.Event()
            why: list[str] = []

            def lost(reason: str) -> None:
                if not broken.is_set():
                    why.append(reason)
                    broken.set()

            @pc.on("connectionstatechange")
            def on_state() -> None:
                assert pc is not None
                if pc.connectionState in ("failed", "closed"):
                    lost(f"WebRTC connection to Janus {pc.connectionState}")

            await pc.setLocalDescription(await pc.createOffer())
            await self._join(session, handle)
            _, jsep = await session.message(
                handle, {"request": "publish", **({"display": self.display}
                                                  if self.display else {})},
                {"type": "offer", "sdp": pc.localDescription.sdp})
            if jsep is None or jsep.get("type") != "answer":
                raise JanusError(0, "Janus sent no answer to the offer")
            await pc.setRemoteDescription(RTCSessionDescription(jsep["sdp"], "answer"))

            tasks.append(asyncio.create_task(self._watch(session, handle, lost)))
            deadline = time.monotonic() + CONNECT_S
            while pc.connectionState != "connected":
                if broken.is_set() or time.monotonic() > deadline:
                    raise TimeoutError(why[0] if why else
                                       f"no WebRTC connection to Janus in {CONNECT_S:g} s")
                await asyncio.sleep(0.05)
            self._channel = channel
            self.told = False
            if self._was_live:
                self.reconnects += 1
            self._was_live = True
            self.last_error = None
            self.set_state("live")
            logger.info("janus %s: publishing to room %s as feed %s", self.id, self.room,
                        self.feed)
            tasks.append(asyncio.create_task(self._repeat_events()))
            await broken.wait()
            self.last_error = why[0]
        finally:
            self._channel = None
            for t in tasks:
                t.cancel()
            if pc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pc.close(), 5)
            if packets is not None:
                source.release_video(packets)
            if audio is not None:
                source.release_audio_opus(audio)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.destroy(), 3)

    async def _watch(self, session: JanusSession, handle: int,
                     lost: Callable[[str], None]) -> None:
        """Sets ``lost`` when Janus ends the session or this publisher."""
        gone = asyncio.create_task(session.gone.wait())
        try:
            while True:
                get = asyncio.create_task(session.events.get())
                done, _ = await asyncio.wait({gone, get}, return_when=asyncio.FIRST_COMPLETED)
                if gone in done:
                    get.cancel()
                    lost(session.error or "Janus session ended")
                    return
                event = get.result()
                kind = event.get("janus")
                if event.get("sender") not in (None, handle):
                    continue
                if kind in ("hangup", "detached"):
                    lost(f"Janus hung up ({event.get('reason', kind)})")
                    return
                data = (event.get("plugindata") or {}).get("data") or {}
                if data.get("videoroom") == "destroyed" or data.get("leaving") == "ok" or \
                        data.get("unpublished") == "ok" or data.get("kicked") == self.feed:
                    lost(f"Janus room {self.room}: the publisher was removed")
                    return
        finally:
            gone.cancel()

    async def _ensure_room(self, session: JanusSession, handle: int) -> None:
        """Create the room, or make sure this server holds the existing one's secret."""
        secret, token = self.access.secret(self.room), self.access.token(self.room)
        exists = (await session.request(handle, {"request": "exists", "room": self.room}))
        if not exists.get("exists"):
            create: dict[str, Any] = {
                "request": "create", "room": self.room, "description": "arengine",
                "permanent": False, "is_private": True, "secret": secret,
                "allowed": [token], "publishers": ROOM_PUBLISHERS,
                "bitrate": ROOM_BITRATE, "bitrate_cap": True, "fir_freq": 0,
                "videocodec": "vp8,h264", "audiocodec": "opus", "lock_record": True}
            if self.access.admin_key:
                create["admin_key"] = self.access.admin_key
            try:
                await session.request(handle, create)
                self.access.created.add(self.room)
                logger.info("janus: created room %s", self.room)
                return
            except JanusError as e:
                if e.code != ROOM_EXISTS:  # made meanwhile (another output): check it below
                    raise
        try:
            # Succeeds only with the room's secret (or on a room without one, which then
            # gets this secret): only then is the room this server's to guard.
            await session.request(handle, {"request": "edit", "room": self.room,
                                           "secret": secret, "new_secret": secret,
                                           "new_is_private": True})
            for action in ("add", "enable"):
                await session.request(handle, {"request": "allowed", "room": self.room,
                                               "secret": secret, "action": action,
                                               "allowed": [token]})
        except JanusError as e:
            if e.code == UNAUTHORIZED:
                raise JanusError(e.code, f"Janus room {self.room} exists with a secret this "
                                 "server does not hold; remove it from Janus (or restart "
                                 "Janus), or choose another room with --janus-room") from None
            raise

    async def _join(self, session: JanusSession, handle: int) -> None:
        join: dict[str, Any] = {"request": "join", "ptype": "publisher", "room": self.room,
                                "id": self.feed, "token": self.access.token(self.room)}
        if self.display:
            join["display"] = self.display
        try:
            await session.message(handle, join)
        except JanusError as e:
            if e.code != ID_EXISTS:
                raise
            # This output's previous connection, not yet timed out at Janus: remove it.
            await session.request(handle, {"request": "kick", "room": self.room,
                                           "secret": self.access.secret(self.room),
                                           "id": self.feed})
            await session.message(handle, join)

    def _sent(self, packet: av.Packet) -> None:
        self.frames += 1
        self.video_rate.add(packet.size)
        if self._packets is not None:
            self.dropped = self._dropped_before + self._packets.dropped

    async def _leave(self, http: httpx.AsyncClient) -> None:
        """After the last output of a room made for this run only: destroy that room."""
        if self.access.stable or self.room not in self.access.created or \
                self.access.users.get(self.room, 0) > 1:
            return
        self.access.created.discard(self.room)
        session = JanusSession(http, self.url)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._destroy_room(session), 3)

    async def _destroy_room(self, session: JanusSession) -> None:
        try:
            await session.create()
            handle = await session.attach(VIDEOROOM)
            await session.request(handle, {"request": "destroy", "room": self.room,
                                           "secret": self.access.secret(self.room)})
        finally:
            await session.destroy()
