"""WHIP and WHEP clients: publish a track to, or play a room from, any WHIP/WHEP server.

Used by the tests, the end-to-end benchmark and anyone scripting a stream (a camera-less
host publishing the demo, a headless viewer counting frames).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from urllib.parse import urljoin

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from arengine.transport import hooks


class WhipError(RuntimeError):
    """The server refused an offer; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message.strip()}")
        self.status = status


class _Client:
    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        hooks.allow_rsa_dtls()  # servers with RSA certificates (GStreamer's)
        self.http = http
        self.url = url
        self.pc = RTCPeerConnection()
        self.location: str | None = None
        self.etag: str | None = None
        self._auth: dict[str, str] = {}  # sent again with the DELETE (WHIP: the host token)

    async def _exchange(self, headers: dict[str, str]) -> None:
        self._auth = {k: v for k, v in headers.items() if k.lower() == "authorization"}
        await self.pc.setLocalDescription(await self.pc.createOffer())
        r = await self.http.post(self.url, content=self.pc.localDescription.sdp,
                                 headers={"Content-Type": "application/sdp", **headers})
        if r.status_code != 201:
            await self.pc.close()
            raise WhipError(r.status_code, r.text)
        self.location = urljoin(str(r.url), r.headers["location"])
        self.etag = r.headers.get("etag")
        await self.pc.setRemoteDescription(RTCSessionDescription(r.text, "answer"))

    async def close(self) -> None:
        """DELETE the session resource, then close the peer connection."""
        if self.location is not None:
            with contextlib.suppress(httpx.HTTPError):
                await self.http.delete(self.location, headers=self._auth)
            self.location = None
        await self.pc.close()


def _prefer(pc: RTCPeerConnection, codec: str | None) -> None:
    if codec is None:
        return
    for t in pc.getTransceivers():
        if t.kind == "video":
            caps = RTCRtpSender.getCapabilities("video").codecs
            t.setCodecPreferences([c for c in caps if c.mimeType.lower() in
                                   (f"video/{codec.lower()}", "video/rtx")])


class WhipClient(_Client):
    """Publishes ``track`` to a WHIP endpoint with a bearer token."""

    async def publish(self, track: MediaStreamTrack, token: str | None,
                      codec: str | None = None) -> None:
        self.pc.addTransceiver(track, direction="sendonly")
        _prefer(self.pc, codec)
        await self._exchange({"Authorization": f"Bearer {token}"} if token else {})


class WhepClient(_Client):
    """Plays a WHEP endpoint; decoded frames go to ``on_frame`` as they arrive."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        super().__init__(http, url)
        self.frames = 0
        self.latest: av.VideoFrame | None = None
        self.events: list[str] = []
        self._reader: asyncio.Task[None] | None = None
        self._audio_reader: asyncio.Task[None] | None = None
        self.audio_frames = 0
        self.audio_peak = 0  # loudest sample seen, to tell sound from silence
        self._first = asyncio.Event()

    async def play(self, codec: str | None = None, data_channel: bool = True,
                   on_frame: Callable[[av.VideoFrame], None] | None = None,
                   audio: bool = False) -> None:
        self.pc.addTransceiver("video", direction="recvonly")
        _prefer(self.pc, codec)
        if audio:
            self.pc.addTransceiver("audio", direction="recvonly")
        if data_channel:
            ch = self.pc.createDataChannel("events")
            ch.on("message", self.events.append)

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._audio_reader = asyncio.create_task(self._read_audio(track))
            else:
                self._reader = asyncio.create_task(self._read(track, on_frame))

        await self._exchange({})

    async def _read(self, track: MediaStreamTrack,
                    on_frame: Callable[[av.VideoFrame], None] | None) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    self.frames += 1
                    self.latest = frame
                    self._first.set()
                    if on_frame is not None:
                        on_frame(frame)

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.AudioFrame):
                    self.audio_frames += 1
                    self.audio_peak = max(self.audio_peak,
                                          int(np.abs(frame.to_ndarray()).max(initial=0)))

    async def wait_frames(self, n: int, timeout: float = 20.0) -> av.VideoFrame:
        """Wait until ``n`` more frames arrived; the latest one."""
        target = self.frames + n

        async def until() -> None:
            while self.frames < target:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(until(), timeout)
        assert self.latest is not None
        return self.latest

    async def close(self) -> None:
        for task in (self._reader, self._audio_reader):
            if task is not None:
                task.cancel()
        await super().close()
