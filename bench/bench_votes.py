"""Acknowledged votes per second against a real uvicorn server on loopback.

Every counted vote got its success answer, which the server sends only after the vote
is committed to SQLite (WAL), so this measures durable throughput, not queueing.
Two transports are compared in one run, against the same server process:

* ``http``: several keep-alive HTTP/1.1 connections, one request in flight on each;
* ``ws``: viewer action sockets (``/api/rooms/{id}/actions``) with many votes in flight.

The load generator is a minimal asyncio client (raw HTTP/1.1; the ``websockets``
library) in its own processes, sharing the machine's cores with the server, so the
numbers are a lower bound for a dedicated server. Each phase is bounded in votes and
in seconds.

    python bench/bench_votes.py --seconds 8 --out bench/out
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any


def _installed(module: str) -> bool:
    """uvicorn picks httptools and uvloop when installed ('auto'); say which ran."""
    import importlib.util

    return importlib.util.find_spec(module) is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(base: str, method: str, path: str, body: Any = None,
            token: str | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return dict(json.loads(r.read()))


def start_server(db: Path, port: int, http: str, sync: str) -> subprocess.Popen[bytes]:
    # The app users run, from the environment; no demo room (no video), rooms open and
    # no per-address limits, since every load client of this benchmark is 127.0.0.1.
    env = {**os.environ, "ARENGINE_DB": str(db), "ARENGINE_DB_SYNC": sync,
           "ARENGINE_DEMO": "0", "ARENGINE_OPEN_ROOMS": "1", "ARENGINE_LIMIT_JOINS": "off",
           "ARENGINE_LIMIT_ROOMS": "off", "ARENGINE_LIMIT_COMMENTS": "off"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory",
         "arengine.app:from_env", "--host", "127.0.0.1",
         "--port", str(port), "--http", http, "--log-level", "warning", "--no-access-log"],
        env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/rooms", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start within 30 s")


# ------------------------------------------------------------------ load clients


async def _http_client(port: int, path: str, tokens: list[str], stop_at: float,
                       max_votes: int, options: int) -> tuple[int, int, list[float]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ok = errors = 0
    lat: list[float] = []
    i = 0
    while time.monotonic() < stop_at and ok + errors < max_votes:
        token = tokens[i % len(tokens)]
        body = b'{"option":%d}' % (i % options)
        i += 1
        req = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        t0 = time.perf_counter()
        writer.write(req)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        lat.append(time.perf_counter() - t0)
        if head.startswith(b"HTTP/1.1 201"):
            ok += 1
        else:
            errors += 1
    writer.close()
    return ok, errors, lat


async def _ws_client(port: int, path: str, tokens: list[str], stop_at: float, max_votes: int,
                     window: int, poll_id: str, options: int
                     ) -> tuple[int, int, list[float]]:
    import websockets

    ok = errors = 0
    lat: list[float] = []
    sent: dict[int, float] = {}
    # A relay socket: each message carries its viewer's token, as an edge server would.
    async with websockets.connect(f"ws://127.0.0.1:{port}{path}", max_queue=None) as ws:
        ref = 0

        async def send_more() -> None:
            nonlocal ref
            while (len(sent) < window and time.monotonic() < stop_at
                   and ref < max_votes):
                sent[ref] = time.perf_counter()
                await ws.send(json.dumps({"op": "vote", "poll_id": poll_id,
                                          "token": tokens[ref % len(tokens)],
                                          "option": ref % options, "ref": ref}))
                ref += 1

        await send_more()
        while sent:
            msg = json.loads(await ws.recv())
            t0 = sent.pop(msg["ref"], None)
            if t0 is not None:
                lat.append(time.perf_counter() - t0)
            if msg["type"] == "ack":
                ok += 1
            else:
                errors += 1
            await send_more()
    return ok, errors, lat


def _client_process(kind: str, port: int, room: str, poll_id: str, tokens: list[str],
                    conns: int, window: int, seconds: float, max_votes: int, options: int,
                    start_at: float, q: Any) -> None:
    async def main() -> tuple[int, int, list[float], float]:
        delay = start_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        t0 = time.monotonic()
        stop_at = t0 + seconds
        per = max(1, max_votes // conns)
        if kind == "http":
            path = f"/api/rooms/{room}/polls/{poll_id}/votes"
            coros = [_http_client(port, path, tokens[c::conns], stop_at, per, options)
                     for c in range(conns)]
        else:
            path = f"/api/rooms/{room}/actions"
            coros = [_ws_client(port, path, tokens[c::conns], stop_at, per, window, poll_id,
                                options)
                     for c in range(conns)]
        results = await asyncio.gather(*coros)
        lat = [x for r in results for x in r[2]]
        return (sum(r[0] for r in results), sum(r[1] for r in results), lat,
                time.monotonic() - t0)

    q.put(asyncio.run(main()))


def run_phase(kind: str, port: int, room: str, poll_id: str, tokens: list[str],
              processes: int, conns: int, window: int, seconds: float, max_votes: int,
              options: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start_at = time.time() + 1.5  # all client processes start together
    procs = [ctx.Process(target=_client_process, args=(
        kind, port, room, poll_id, tokens[p::processes], conns, window, seconds,
        max_votes // processes, options, start_at, q)) for p in range(processes)]
    for p in procs:
        p.start()
    results = [q.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    acked = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    lat = sorted(x for r in results for x in r[2])
    wall = max(r[3] for r in results)  # until the last answer of the slowest process
    return {
        "transport": kind, "client_processes": processes, "connections_per_process": conns,
        "in_flight_per_connection": 1 if kind == "http" else window,
        "acked_votes": acked, "errors": errors, "seconds": round(wall, 3),
        "acked_votes_per_s": round(acked / wall, 1) if wall else 0.0,
        "latency_ms_p50": round(1000 * statistics.median(lat), 2) if lat else None,
        "latency_ms_p99": round(1000 * lat[int(0.99 * (len(lat) - 1))], 2) if lat else None,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def run_in_process(db: Path, viewers: int, seconds: float, max_votes: int, sync: str,
                   concurrency: int = 256) -> dict[str, Any]:
    """The ceiling without HTTP: RoomHub.vote from many coroutines, same store settings."""
    from arengine.interaction.errors import RateLimitedError
    from arengine.interaction.hub import RoomHub

    refused = 0

    async def go() -> tuple[int, float, list[float]]:
        hub = RoomHub.open(db, synchronous=sync)  # type: ignore[arg-type]
        room, _ = await hub.create_room("bench")
        poll = await room.open_poll("Which?", [(s, None) for s in "ABCD"], 1800)
        ids = [(await room.join(f"v{i}"))[0] for i in range(viewers)]
        acked = 0
        lat: list[float] = []
        t0 = time.monotonic()
        stop_at = t0 + seconds

        async def worker(k: int) -> None:
            nonlocal acked, refused
            i = k
            while time.monotonic() < stop_at and acked < max_votes:
                t = time.perf_counter()
                try:
                    await room.vote(ids[i % len(ids)], poll.id, i % 4)
                except RateLimitedError:  # a viewer over 5 votes/s: refused, as over HTTP
                    refused += 1
                    await asyncio.sleep(0)
                else:
                    lat.append(time.perf_counter() - t)
                    acked += 1
                i += concurrency

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        wall = time.monotonic() - t0
        await hub.close()
        return acked, wall, sorted(lat)

    acked, wall, lat = asyncio.run(go())
    return {
        "transport": "in-process", "client_processes": 0, "connections_per_process": 1,
        "in_flight_per_connection": concurrency, "acked_votes": acked, "errors": 0,
        "refused": refused,
        "seconds": round(wall, 3), "acked_votes_per_s": round(acked / wall, 1),
        "latency_ms_p50": round(1000 * statistics.median(lat), 2) if lat else None,
        "latency_ms_p99": round(1000 * lat[int(0.99 * (len(lat) - 1))], 2) if lat else None,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="per phase (max 60)")
    ap.add_argument("--max-votes", type=int, default=200_000, help="per phase")
    ap.add_argument("--viewers", type=int, default=4000,
                    help="enough that no viewer passes the vote rate limit (5/s)")
    ap.add_argument("--http-connections", type=int, default=32, help="per client process")
    ap.add_argument("--ws-connections", type=int, default=8, help="per client process")
    ap.add_argument("--ws-window", type=int, default=128)
    ap.add_argument("--client-processes", type=int, default=1)
    ap.add_argument("--http-parser", default="auto", choices=["auto", "h11", "httptools"])
    ap.add_argument("--sync", default="FULL", choices=["FULL", "NORMAL"])
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    args = ap.parse_args()
    if not 0 < args.seconds <= 60 or args.max_votes < 1 or args.viewers < 10:
        ap.error("need 0 < --seconds <= 60, --max-votes >= 1, --viewers >= 10")

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        server = start_server(db, port, args.http_parser, args.sync)
        try:
            base = f"http://127.0.0.1:{port}"
            created = request(base, "POST", "/api/rooms", {"title": "bench"})
            room, host = created["room_id"], created["host_token"]
            poll = request(base, "POST", f"/api/rooms/{room}/polls", {
                "question": "Which shade?", "duration_s": 1800,
                "options": [{"label": s} for s in ("Ruby", "Nude", "Coral", "Plum")]}, host)
            tokens = [request(base, "POST", f"/api/rooms/{room}/join",
                              {"name": f"viewer {i}"})["viewer_token"]
                      for i in range(args.viewers)]
            phases = []
            for kind in ("http", "ws"):
                conns = args.http_connections if kind == "http" else args.ws_connections
                phases.append(run_phase(kind, port, room, poll["id"], tokens,
                                        args.client_processes, conns, args.ws_window,
                                        args.seconds, args.max_votes, 4))
                print(json.dumps(phases[-1]), flush=True)
            final = request(base, "GET", f"/api/rooms/{room}/metrics")
            votes_logged = final["votes"]
        finally:
            server.terminate()
            server.wait(timeout=30)
        acked = sum(p["acked_votes"] for p in phases)
        phases.append(run_in_process(Path(tmp) / "inproc.db", args.viewers, args.seconds,
                                     args.max_votes, args.sync))
        print(json.dumps(phases[-1]), flush=True)

    result = {
        "benchmark": "acknowledged votes per second (durable before ack)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "note": "client and server share cores"},
        "server": {"http_parser": args.http_parser, "sqlite_synchronous": args.sync,
                   "journal_mode": "WAL", "httptools": _installed("httptools"),
                   "uvloop": _installed("uvloop")},
        "viewers": args.viewers, "phases": phases,
        "server_votes_in_log": votes_logged, "server_acked_total": acked,
        "log_has_every_ack": votes_logged >= acked,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_votes.json").write_text(json.dumps(result, indent=2))
    rows = ["| transport | connections | in flight/conn | acked votes | refused | votes/s "
            "| p50 ms | p99 ms | load avg |", "|---|---|---|---|---|---|---|---|---|"]
    for p in phases:
        rows.append(f"| {p['transport']} | {p['client_processes'] * p['connections_per_process']}"
                    f" | {p['in_flight_per_connection']} | {p['acked_votes']} | {p['errors']} "
                    f"| {p['acked_votes_per_s']:.0f} | {p['latency_ms_p50']} "
                    f"| {p['latency_ms_p99']} | {p['load_avg_1m']} |")
    md = (f"# Acknowledged votes per second\n\n{os.cpu_count()} CPUs shared by client and "
          f"server; SQLite WAL, synchronous={args.sync}; HTTP parser {args.http_parser} "
          f"(httptools installed: {_installed('httptools')}, uvloop: {_installed('uvloop')}).\n"
          f"Every vote counted was committed before its answer was sent. `in-process` calls "
          f"RoomHub directly (no HTTP): the ceiling of the room logic and the store.\n"
          f"`load avg` is the machine's 1-minute load when the phase ended (other work "
          f"included).\n\n"
          + "\n".join(rows) + "\n")
    (args.out / "bench_votes.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
