"""Crash safety: kill -9 a real server during a vote storm; every acknowledged vote survives.

The server is a separate uvicorn process on a temp database. Several clients vote
concurrently over keep-alive HTTP, each viewer moving their ballot round after round.
Mid-storm the server gets SIGKILL. After a restart on the same file:

* every viewer whose vote was acknowledged has a ballot, equal to their last
  acknowledged choice or to the one request that was in flight when the server died;
* tallies equal the ballots (no vote counted twice), and the number of vote events in
  the log lies between the acknowledged votes and acknowledged + in-flight.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LOAD_SERVER_ENV

OPTIONS = 4
VIEWERS = 240
CLIENTS = 8
KILL_AFTER_ACKS = 1500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(db: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, **LOAD_SERVER_ENV, "ARENGINE_DB": str(db)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "arengine.app:from_env",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--no-access-log"], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/rooms", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start")


def call(port: int, method: str, path: str, body: Any = None,
         token: str | None = None) -> dict[str, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return dict(json.loads(r.read()))


class Ledger:
    """What the clients know: acknowledged choices and the request in flight, per viewer."""

    def __init__(self) -> None:
        self.acked: dict[str, list[int]] = {}
        self.in_flight: dict[str, int] = {}
        self.acks = 0
        self.killed = asyncio.Event()


async def client(port: int, path: str, viewers: list[tuple[str, str]], ledger: Ledger,
                 server: subprocess.Popen[bytes]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for rnd in range(1000):
            for k, (vid, token) in enumerate(viewers):
                option = (rnd + k) % OPTIONS
                body = json.dumps({"option": option}).encode()
                ledger.in_flight[vid] = option
                writer.write(
                    f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                    .encode() + body)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                await reader.readexactly(length)
                assert head.startswith(b"HTTP/1.1 201"), head
                del ledger.in_flight[vid]
                ledger.acked.setdefault(vid, []).append(option)
                ledger.acks += 1
                if ledger.acks >= KILL_AFTER_ACKS and not ledger.killed.is_set():
                    ledger.killed.set()
                    os.kill(server.pid, signal.SIGKILL)
    except (ConnectionError, asyncio.IncompleteReadError, OSError):
        assert ledger.killed.is_set(), "connection failed before the server was killed"
    finally:
        writer.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_kill_9_mid_storm_loses_no_acknowledged_vote(tmp_path: Path) -> None:
    db = tmp_path / "rooms.db"
    port = free_port()
    server = start(db, port)
    try:
        created = call(port, "POST", "/api/rooms", {"title": "storm"})
        rid, host = created["room_id"], created["host_token"]
        poll = call(port, "POST", f"/api/rooms/{rid}/polls", {
            "question": "Which?", "duration_s": 1800,
            "options": [{"label": f"o{i}"} for i in range(OPTIONS)]}, host)
        viewers = []
        for i in range(VIEWERS):
            j = call(port, "POST", f"/api/rooms/{rid}/join", {"name": f"viewer {i}"})
            viewers.append((j["viewer_id"], j["viewer_token"]))
        ledger = Ledger()
        path = f"/api/rooms/{rid}/polls/{poll['id']}/votes"

        async def storm() -> None:
            await asyncio.gather(*(client(port, path, viewers[c::CLIENTS], ledger, server)
                                   for c in range(CLIENTS)))

        asyncio.run(storm())
        server.wait(timeout=10)
        assert server.returncode == -signal.SIGKILL
        assert ledger.acks >= KILL_AFTER_ACKS
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    server = start(db, port)
    try:
        ballots = call(port, "GET", f"/api/rooms/{rid}/polls/{poll['id']}/ballots",
                       token=host)["ballots"]
        after = call(port, "GET", f"/api/rooms/{rid}/polls/{poll['id']}")
        metrics = call(port, "GET", f"/api/rooms/{rid}/metrics")
    finally:
        server.terminate()
        server.wait(timeout=30)

    for vid, choices in ledger.acked.items():
        allowed = {choices[-1]}
        if vid in ledger.in_flight:
            allowed.add(ledger.in_flight[vid])
        assert ballots.get(vid) in allowed, (vid, choices, ballots.get(vid))
    for vid in set(ballots) - set(ledger.acked):
        assert ballots[vid] == ledger.in_flight.get(vid)  # only an unacked first vote
    tallies = Counter(ballots.values())
    assert [o["votes"] for o in after["options"]] == [tallies[i] for i in range(OPTIONS)]
    assert after["total_votes"] == len(ballots)
    assert ledger.acks <= metrics["votes"] <= ledger.acks + len(ledger.in_flight)
