"""A real Janus (Debian's ``janus``) started by a test, with its own config folder.

Only what arengine needs is on: the VideoRoom plugin and the plain HTTP transport bound to
127.0.0.1 on a free port; no STUN/TURN, no IPv6, no event handlers or loggers. Plugins,
transports, event handlers and loggers are Janus's own, from the folders Debian installs
(every one but the VideoRoom and HTTP is disabled by name). Janus makes its DTLS
certificate itself at start.

Run as a script it is a crowd of aiortc subscribers in one process (``python -m
tests.transport.janus_server subscribe URL ROOM FEED N SECONDS``), so that a test can
measure the server's CPU without the subscribers' decoding in the same process.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import httpx
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from arengine.transport.janus import JanusError, JanusSession

JANUS = "/usr/bin/janus"
PACKAGES = "janus libjs-janus-gateway libjs-webrtc-adapter"
KEEP = {"plugins": "libjanus_videoroom.so", "transports": "libjanus_http.so"}

# The parts of the config that matter, as the README shows them.
JANUS_JCFG = """\
general: {{
    configs_folder = "{dir}"
    plugins_folder = "{lib}/plugins"
    transports_folder = "{lib}/transports"
    events_folder = "{lib}/events"
    loggers_folder = "{lib}/loggers"
    debug_level = 3
    session_timeout = {session_timeout}
}}
media: {{
    ipv6 = false
}}
nat: {{
    ice_ignore_list = "vmnet"
}}
plugins: {{
    disable = "{disable_plugins}"
}}
transports: {{
    disable = "{disable_transports}"
}}
events: {{
    broadcast = false
    disable = "{disable_events}"
}}
loggers: {{
    disable = "{disable_loggers}"
}}
"""
HTTP_JCFG = """\
general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    port = {port}
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_http = false
}}
"""
VIDEOROOM_JCFG = """\
general: {{
    {admin_key}
}}
"""


def janus_lib() -> str | None:
    """Debian's folder of Janus plugins and transports (multiarch: one of /usr/lib/*)."""
    found = sorted(glob.glob("/usr/lib/*/janus/plugins/libjanus_videoroom.so"))
    return str(Path(found[0]).parent.parent) if found else None


def janus_or_fail() -> str:
    """Janus's library folder; missing is a skip locally but a failure under CI=true."""
    lib = janus_lib()
    if shutil.which(JANUS) is None or lib is None:
        msg = f"Janus is not installed (apt-get install {PACKAGES})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return lib


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _others(lib: str, kind: str, keep: str = "") -> str:
    names = sorted(Path(p).name for p in glob.glob(f"{lib}/{kind}/*.so"))
    return ",".join(n for n in names if n != keep)


@dataclass
class JanusServer:
    """One Janus process on 127.0.0.1; :meth:`restart` keeps the port and the folder."""

    folder: Path
    lib: str
    session_timeout: int = 60
    admin_key: str | None = None  # the VideoRoom's: then only its holder creates rooms
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/janus"

    def write_config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        jcfg = self.folder / "janus.jcfg"
        jcfg.write_text(JANUS_JCFG.format(
            dir=self.folder, lib=self.lib, session_timeout=self.session_timeout,
            disable_plugins=_others(self.lib, "plugins", KEEP["plugins"]),
            disable_transports=_others(self.lib, "transports", KEEP["transports"]),
            disable_events=_others(self.lib, "events"),
            disable_loggers=_others(self.lib, "loggers")))
        (self.folder / "janus.transport.http.jcfg").write_text(HTTP_JCFG.format(port=self.port))
        key = f'admin_key = "{self.admin_key}"' if self.admin_key else ""
        (self.folder / "janus.plugin.videoroom.jcfg").write_text(
            VIDEOROOM_JCFG.format(admin_key=key))
        return jcfg

    def start(self, timeout: float = 15.0) -> None:
        jcfg = self.write_config()
        log = open(self.folder / "janus.log", "ab")  # noqa: SIM115 (the process owns it)
        self.proc = subprocess.Popen([JANUS, "-F", str(self.folder), "-C", str(jcfg), "-o"],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"janus exited with {self.proc.returncode}:\n{self.log()}")
            try:
                r = httpx.get(f"{self.url}/info", timeout=1.0)
                if r.status_code == 200 and "janus.plugin.videoroom" in r.json()["plugins"]:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"janus did not answer on {self.url}:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: Janus gone at once, as a crash would leave it."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def cpu_seconds(self) -> float:
        """User + system CPU time Janus has used (from /proc)."""
        assert self.proc is not None
        return proc_cpu_seconds(self.proc.pid)

    def log(self) -> str:
        path = self.folder / "janus.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- an aiortc subscriber through Janus's HTTP API ------------------------------------------


class JanusSubscriber:
    """Watches one feed of a VideoRoom: Janus offers, this peer answers with ``start``.

    It opens a data channel of its own, since the VideoRoom relays a publisher's channel
    only to subscribers that have one.
    """

    def __init__(self, http: httpx.AsyncClient, url: str, room: int, feed: int) -> None:
        self.session = JanusSession(http, url)
        self.room = room
        self.feed = feed
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames = 0
        self.latest: av.VideoFrame | None = None
        self.events: list[dict[str, object]] = []
        self.handle = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, timeout: float = 20.0) -> None:
        await self.session.create()
        self.handle = await self.session.attach("janus.plugin.videoroom")
        data, jsep = await self.session.message(self.handle, {
            "request": "join", "ptype": "subscriber", "room": self.room,
            "streams": [{"feed": self.feed}]}, timeout=timeout)
        if data.get("videoroom") != "attached" or jsep is None:
            raise JanusError(0, f"no offer from Janus: {data}")

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self._tasks.append(asyncio.create_task(self._read(track)))

        @self.pc.on("datachannel")
        def on_datachannel(channel: object) -> None:  # Janus's own channel, if it opens one
            channel.on("message", self._event)  # type: ignore[attr-defined]

        await self.pc.setRemoteDescription(RTCSessionDescription(jsep["sdp"], "offer"))
        ch = self.pc.createDataChannel("JanusDataChannel")
        ch.on("message", self._event)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        data, _ = await self.session.message(
            self.handle, {"request": "start", "room": self.room},
            {"type": "answer", "sdp": self.pc.localDescription.sdp}, timeout=timeout)
        if data.get("started") != "ok":
            raise JanusError(0, f"subscription not started: {data}")

    def _event(self, message: object) -> None:
        with contextlib.suppress(ValueError, TypeError):
            event = json.loads(message)  # type: ignore[arg-type]
            if isinstance(event, dict):
                self.events.append(event)

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    self.frames += 1
                    self.latest = frame

    async def wait_frames(self, n: int, timeout: float = 20.0) -> av.VideoFrame:
        target = self.frames + n
        deadline = time.monotonic() + timeout
        while self.frames < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.frames - target + n} of {n} frames in {timeout} s")
            await asyncio.sleep(0.02)
        assert self.latest is not None
        return self.latest

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            await self.session.destroy()
        await self.pc.close()


async def _crowd(url: str, room: int, feed: int, n: int, seconds: float) -> None:
    async with httpx.AsyncClient(timeout=40) as http:
        subs = [JanusSubscriber(http, url, room, feed) for _ in range(n)]
        await asyncio.gather(*(s.start() for s in subs))
        await asyncio.gather(*(s.wait_frames(5, 30) for s in subs))
        print("ready", flush=True)
        start = [s.frames for s in subs]
        await asyncio.sleep(seconds)
        fps = [(s.frames - f0) / seconds for s, f0 in zip(subs, start, strict=True)]
        print(json.dumps({"fps": fps}), flush=True)
        sys.stdin.read()  # held until the test is done measuring
        await asyncio.gather(*(s.close() for s in subs))


if __name__ == "__main__" and sys.argv[1:2] == ["subscribe"]:
    url, room_s, feed_s, n_s, seconds_s = sys.argv[2:7]
    asyncio.run(_crowd(url, int(room_s), int(feed_s), int(n_s), float(seconds_s)))
