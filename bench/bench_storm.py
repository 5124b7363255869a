"""Glass to glass while viewers storm the room: does a storm of votes take the host's picture
down? Quiet and storm phases take turns in one run, against one ``arengine serve``.

One aiortc WHIP publisher (:class:`~arengine.bench.glass.CameraClock`, the frame id burned
into the corners) publishes into the demo room of an ``arengine serve`` process with every
effect on; an aiortc WHEP viewer in a process of its own reads each frame's id (as in
``bench_paths.py``). The room has a shade poll, a product card and a like goal, so every
layer draws what the storm changes. A storm process joins ``--viewers`` viewers, then sends
actions at a paced rate over relay sockets (``/api/rooms/demo/actions``, each message with
its viewer's token, many in flight): 80% votes (each viewer always for the same option),
15% likes, 5% comments in several languages, which the comment layer draws. Phases
alternate: quiet, the first rate, quiet, the next rate, ... for ``--rounds`` rounds, so drift
of a shared machine falls on every phase alike.

Per phase kind: glass to glass (publisher hand-off -> WHEP viewer decode) of the frames sent
in it (its first ``--settle`` s left out), frames the room encoded, the server's CPU, and the
storm's offered and acknowledged actions with their ack latency. At the end the poll's tally
and the like count are checked against what the storm saw acknowledged: an acknowledged
vote or like that the room lost would show as ``durable: false``.

Per-address limits are off for the run (every storm viewer is 127.0.0.1 here, where a real
storm comes from many addresses); each viewer stays under its own per-viewer rates.

    python bench/bench_storm.py [--rates 1000,4000] [--phase 8] [--rounds 2]
                                [--viewers 2000] [--size 1280x720] [--out bench/out/storm]

writes ``storm.json`` (every figure) and ``storm.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from arengine.bench.args import compositors, frame_size
from arengine.bench.glass import CameraClock
from arengine.bench.machine import load_average, machine_info
from arengine.bench.report import write_outputs
from arengine.bench.stats import PERCENTILE_METHOD, summarize
from arengine.data import REPO_DIR

if str(REPO_DIR) not in sys.path:  # bench_paths' receivers and bench_sfu's server helpers
    sys.path.insert(0, str(REPO_DIR))

from bench.bench_paths import INCLUDES, ReceiverProcess, camera_in_room, latency_of
from bench.bench_sfu import (
    ROOM,
    ChildProcess,
    ServeProcess,
    machine_cpu,
    room_stats,
    tree_cpu_seconds,
)

OPTIONS = 4
SOCKETS = 8  # relay sockets of the storm process
WINDOW = 64  # actions in flight per socket (the server reads up to its own cap)
COMMENTS = ("这个颜色好看 💄", "¿Viene en mate?", "Is this one long-lasting?", "色号是多少?",
            "Quero esse!", "Warna ini cocok 😍", "ลิปสีนี้สวยมาก", "next shade pls")
BATCH_MAX = 64  # actions per batch message (the server's WS_MAX_BATCH)
MAX_ACTIONS = 2_000_000  # bound on one run's storm, whatever the rates and phases


def op_of(n: int) -> str:
    """The n-th step of the mix: 16 of 20 are votes, 3 likes, 1 a comment."""
    k = n % 20
    return "comment" if k == 0 else "like" if k <= 3 else "vote"


def action_of(n: int, viewers: int) -> tuple[int, str]:
    """Who does the storm's n-th action, and what. Viewer w acts at n = w, w + V, ...; its
    j-th action is the mix's (j + w)-th, so each viewer has the whole mix (were both taken
    from n, 20 | V would leave some viewers commenting only, over their comment limit)."""
    who = n % viewers
    return who, op_of(n // viewers + who)


# -- the storm (its own process) ---------------------------------------------------------------


class PhaseTally:
    """What the storm did in one phase: actions sent, their answers, ack latency."""

    def __init__(self) -> None:
        self.sent = 0
        self.acked = 0
        self.errors: dict[str, int] = {}
        self.ack_ms: list[float] = []

    def report(self, planned: int, seconds: float) -> dict[str, Any]:
        return {"planned": planned, "sent": self.sent, "acked": self.acked,
                "acked_per_s": self.acked / seconds if seconds else 0.0,
                "errors": self.errors,
                "ack_ms": summarize(self.ack_ms).to_dict() if self.ack_ms else None}


class Storm:
    """Paced actions from ``viewers`` (token, option) pairs over ``sockets`` relay sockets,
    each action in its own message or, with ``batch_s``, those due within each tick of it
    together in one (as an edge server relaying many viewers would send them)."""

    def __init__(self, url: str, room: str, poll_id: str, viewers: list[str],
                 phases: list[tuple[float, float, float]], sockets: int = SOCKETS,
                 batch_s: float = 0.0) -> None:
        self.url = url.replace("http://", "ws://", 1) + f"/api/rooms/{room}/actions"
        self.poll_id = poll_id
        self.tokens = viewers
        self.phases = phases
        self.sockets = sockets
        self.batch_s = batch_s
        self.tally = [PhaseTally() for _ in phases]
        self.voters: list[set[int]] = [set() for _ in range(OPTIONS)]  # acked, per option
        self.likes_acked = 0
        self.comments_acked = 0

    async def run(self) -> None:
        await asyncio.gather(*(self._socket(s) for s in range(self.sockets)))

    def _body(self, s: int, ref: int) -> tuple[dict[str, Any], str, int]:
        global_n = ref * self.sockets + s
        who, op = action_of(global_n, len(self.tokens))
        body: dict[str, Any] = {"op": op, "token": self.tokens[who], "ref": ref}
        if op == "vote":
            body.update(poll_id=self.poll_id, option=who % OPTIONS)
        elif op == "comment":
            body["text"] = COMMENTS[global_n % len(COMMENTS)]
        return body, op, who

    def _take(self, reply: dict[str, Any], started: tuple[float, int, str, int]) -> None:
        due, k, op, who = started
        tally = self.tally[k]
        if reply["type"] == "ack":
            tally.acked += 1
            tally.ack_ms.append(1000 * (time.perf_counter() - due))
            if op == "vote":
                self.voters[who % OPTIONS].add(who)
            elif op == "like":
                self.likes_acked += 1
            else:
                self.comments_acked += 1
        else:
            key = f"{op} {reply.get('status')}"
            tally.errors[key] = tally.errors.get(key, 0) + 1

    async def _socket(self, s: int) -> None:
        import websockets

        in_flight: dict[int, tuple[float, int, str, int]] = {}  # ref -> (due, phase, op, who)
        slots = asyncio.Semaphore(WINDOW)
        async with websockets.connect(self.url, max_queue=None) as ws:

            async def read() -> None:
                async for text in ws:
                    msg = json.loads(text)
                    for reply in msg["replies"] if msg["type"] == "replies" else [msg]:
                        self._take(reply, in_flight.pop(reply["ref"]))
                        slots.release()
                    if not in_flight and done.is_set():
                        return

            done = asyncio.Event()
            reader = asyncio.create_task(read())
            ref = 0
            for k, (a, b, rate) in enumerate(self.phases):
                if rate <= 0:
                    continue
                per_socket = rate / self.sockets

                def due_of(n: int) -> float:
                    # socket s sends actions s, s+S, s+2S, ... of the phase, each due at
                    # its index / rate: the sockets interleave, rate x seconds in all
                    return a + (n + s / self.sockets) / per_socket  # noqa: B023

                n = 0
                while ref < MAX_ACTIONS // self.sockets:  # bounded, and by the phase's end
                    due, now = due_of(n), time.perf_counter()
                    if due >= b or now >= b:
                        break
                    # batched: wake at the end of the tick the next action falls in
                    wake = a + math.ceil((due - a) / self.batch_s) * self.batch_s \
                        if self.batch_s else due
                    if wake > now:
                        await asyncio.sleep(wake - now)
                    now = time.perf_counter()
                    batch: list[dict[str, Any]] = []
                    while len(batch) < BATCH_MAX and (due := due_of(n)) <= now and due < b:
                        await slots.acquire()  # the server's pace caps ours: no queue
                        if time.perf_counter() >= b:
                            slots.release()
                            break
                        body, op, who = self._body(s, ref)
                        in_flight[ref] = (due, k, op, who)
                        self.tally[k].sent += 1
                        ref, n = ref + 1, n + 1
                        batch.append(body)
                    if self.batch_s and batch:
                        await ws.send(json.dumps(batch, ensure_ascii=False))
                    else:
                        for body in batch:
                            await ws.send(json.dumps(body, ensure_ascii=False))
            done.set()
            if in_flight:
                await asyncio.wait_for(reader, 30)
            else:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader


def _say(kind: str, body: dict[str, Any]) -> None:
    print(f"{kind} {json.dumps(body)}", flush=True)


def storm_main(argv: list[str]) -> int:
    """Entry of the storm process: ``--storm URL ROOM VIEWERS``. It joins the viewers, says
    ``ready``, reads the poll and the phases as one JSON line, storms, says ``done``."""
    url, room, viewers = argv[0], argv[1], int(argv[2])
    try:
        tokens = []
        with httpx.Client(base_url=url, timeout=30) as http:
            for i in range(viewers):  # bounded: --viewers
                r = http.post(f"/api/rooms/{room}/join", json={"name": f"viewer {i}"})
                r.raise_for_status()
                tokens.append(str(r.json()["viewer_token"]))
        _say("ready", {"viewers": len(tokens)})
        plan = json.loads(sys.stdin.readline())
        phases = [(float(a), float(b), float(r)) for a, b, r in plan["phases"]]
        storm = Storm(url, room, plan["poll_id"], tokens, phases, int(plan["relays"]),
                      float(plan["batch_s"]))
        asyncio.run(storm.run())
    except Exception as e:
        _say("error", {"error": f"{type(e).__name__}: {e}"})
        return 1
    _say("done", {
        "phases": [t.report(int(r * (b - a)), b - a) if r > 0 else None
                   for t, (a, b, r) in zip(storm.tally, phases, strict=True)],
        "voters_per_option": [len(v) for v in storm.voters],
        "likes_acked": storm.likes_acked, "comments_acked": storm.comments_acked})
    return 0


class StormProcess(ChildProcess):
    def __init__(self, url: str, viewers: int) -> None:
        super().__init__([str(Path(__file__).resolve()), "--storm", url, ROOM, str(viewers)])


# -- the viewer pages (their own process): state streams ---------------------------------------


class WatchTally:
    """What the pages received in one phase: snapshots, and how old each was on arrival."""

    def __init__(self) -> None:
        self.snapshots = 0
        self.age_ms: list[float] = []

    def report(self, seconds: float, watchers: int) -> dict[str, Any]:
        return {"snapshots_per_s_per_page": self.snapshots / seconds / max(1, watchers),
                "age_ms": summarize(self.age_ms).to_dict() if self.age_ms else None}


def count_message(msg: dict[str, Any], tally: WatchTally, now: float) -> None:
    """One message of a page's state stream into ``tally`` (snapshots are all it gets)."""
    if msg.get("type") != "snapshot":
        raise RuntimeError(f"a state stream sent {str(msg.get('type'))[:40]!r}")
    tally.snapshots += 1
    if len(tally.age_ms) < 200_000:  # bounded memory
        tally.age_ms.append(1000 * (now - float(msg["state"]["taken_at"])))


def _phase_at(phases: list[tuple[float, float, float]], t: float) -> int | None:
    return next((i for i, (a, b, _) in enumerate(phases) if a <= t < b), None)


async def _watch(url: str, phases: list[tuple[float, float, float]],
                 tallies: list[WatchTally]) -> None:
    """One viewer page's stream, as room.js opens it (``?view=state``)."""
    import websockets

    end = phases[-1][1]
    async with websockets.connect(url, max_queue=None) as ws:
        while (left := end - time.perf_counter()) > 0:  # bounded: the schedule
            try:
                text = await asyncio.wait_for(ws.recv(), left)
            except TimeoutError:
                break
            k = _phase_at(phases, time.perf_counter())
            if k is not None:
                count_message(json.loads(text), tallies[k], time.time())


def watch_main(argv: list[str]) -> int:
    """Entry of the watcher process: ``--watch URL ROOM N``: N events sockets, as N viewer
    pages open; takes the phases as one JSON line (it connects then), says ``done``."""
    url, room, n = argv[0], argv[1], int(argv[2])
    ws_url = url.replace("http://", "ws://", 1) + f"/api/rooms/{room}/events?view=state"
    _say("ready", {"watchers": n})
    plan = json.loads(sys.stdin.readline())
    phases = [(float(a), float(b), float(r)) for a, b, r in plan["phases"]]
    tallies = [WatchTally() for _ in phases]

    async def all_of_them() -> None:
        await asyncio.gather(*(_watch(ws_url, phases, tallies) for _ in range(n)))

    try:
        asyncio.run(all_of_them())
    except Exception as e:
        _say("error", {"error": f"{type(e).__name__}: {e}"})
        return 1
    _say("done", {"phases": [t.report(b - a, n) for t, (a, b, _) in zip(tallies, phases,
                                                                         strict=True)]})
    return 0


class WatcherProcess(ChildProcess):
    def __init__(self, url: str, watchers: int) -> None:
        super().__init__([str(Path(__file__).resolve()), "--watch", url, ROOM, str(watchers)])


# -- the run ------------------------------------------------------------------------------------


def schedule(t0: float, rates: list[float], rounds: int, phase_s: float
             ) -> list[tuple[float, float, float]]:
    """(start, end, rate) of each phase from ``t0``: quiet, rate 1, quiet, rate 2, ..."""
    phases: list[tuple[float, float, float]] = []
    t = t0
    for _ in range(rounds):
        for rate in rates:
            for r in (0.0, rate):
                phases.append((t, t + phase_s, r))
                t += phase_s
    return phases


def _set_up_room(http: httpx.Client, server: ServeProcess) -> str:
    """A shade poll (open for the whole run), a product card and a like goal; the poll id."""
    shades = http.get(f"{server.url}/api/shades").json()["shades"][:OPTIONS]
    r = http.post(f"{server.url}/api/rooms/{ROOM}/polls", headers=server.auth, json={
        "question": "Which shade next?", "duration_s": 1800,
        "options": [{"label": s["name"][:24], "shade_id": s["id"]} for s in shades]})
    r.raise_for_status()
    http.put(f"{server.url}/api/rooms/{ROOM}/product", headers=server.auth,
             json={"name": "Velvet Plum lipstick", "price": "¥129"}).raise_for_status()
    http.put(f"{server.url}/api/rooms/{ROOM}/like-goal", headers=server.auth,
             json={"target": 100_000_000, "message": "a free lipstick!"}).raise_for_status()
    return str(r.json()["id"])


def durability(http: httpx.Client, server: ServeProcess, poll_id: str,
               storm: dict[str, Any], likes_before: int) -> dict[str, Any]:
    """The room's tally against the storm's acknowledged votes and likes."""
    poll = http.get(f"{server.url}/api/rooms/{ROOM}/polls/{poll_id}").json()
    votes = [int(o["votes"]) for o in poll["options"]]
    likes = int(http.get(f"{server.url}/api/rooms/{ROOM}").json()["likes"]) - likes_before
    return {"poll_votes_per_option": votes, "acked_voters_per_option": storm["voters_per_option"],
            "likes_counted": likes, "likes_acked": storm["likes_acked"],
            "durable": votes == storm["voters_per_option"] and likes == storm["likes_acked"]}


async def run(args: argparse.Namespace, compositor: str) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    w, h = args.size
    samples: list[tuple[float, float, dict[str, Any], tuple[float, float]]] = []
    with tempfile.TemporaryDirectory(prefix="arengine-storm-") as tmp, \
            httpx.Client(timeout=30) as sync_http:
        flags = ["--size", f"{w}x{h}", "--fps", str(args.fps), "--no-demo-crowd",
                 "--limit-joins", "off", "--limit-comments", "off", "--output-kinds", "none",
                 "--compositor", compositor]
        server = ServeProcess(Path(tmp) / "arengine", flags)
        camera = CameraClock(w, h, args.fps)
        receiver: ReceiverProcess | None = None
        storm: StormProcess | None = None
        watchers: WatcherProcess | None = None
        watched: dict[str, Any] | None = None
        async with camera_in_room(server, camera, sync_http):
            try:
                poll_id = await asyncio.to_thread(_set_up_room, sync_http, server)
                likes_before = int(sync_http.get(f"{server.url}/api/rooms/{ROOM}")
                                   .json()["likes"])
                storm = StormProcess(server.url, args.viewers)
                await asyncio.to_thread(storm.expect, "ready", 60 + args.viewers / 20)
                if args.watchers:
                    watchers = WatcherProcess(server.url, args.watchers)
                    await asyncio.to_thread(watchers.expect, "ready", 60.0)
                receiver = ReceiverProcess("whep", server.url)
                ready = await asyncio.to_thread(receiver.expect, "ready", 120.0)
                await asyncio.sleep(args.warmup)
                t0 = time.perf_counter() + 1.0
                phases = schedule(t0, args.rates, args.rounds, args.phase)
                plan = json.dumps({"poll_id": poll_id, "phases": phases,
                                   "relays": args.relays,
                                   "batch_s": args.batch_ms / 1000})
                storm.send(plan)
                if watchers is not None:
                    watchers.send(plan)
                pid = server.proc.pid if server.proc else 0
                clients = [c.pid() for c in (storm, watchers, receiver) if c is not None]
                clients_cpu0 = sum(tree_cpu_seconds(c) for c in clients), time.process_time()
                for a, _end, _rate in phases:  # bounded: the schedule
                    await asyncio.sleep(max(0.0, a - time.perf_counter()))
                    stats = await asyncio.to_thread(room_stats, sync_http, server)
                    samples.append((a, tree_cpu_seconds(pid), stats, machine_cpu()))
                await asyncio.sleep(max(0.0, phases[-1][1] - time.perf_counter()))
                stats = await asyncio.to_thread(room_stats, sync_http, server)
                samples.append((phases[-1][1], tree_cpu_seconds(pid), stats, machine_cpu()))
                clients_cpu = (sum(tree_cpu_seconds(c) for c in clients) - clients_cpu0[0],
                               time.process_time() - clients_cpu0[1])
                stormed = await asyncio.to_thread(storm.expect, "done", 90.0)
                if watchers is not None:
                    watched = await asyncio.to_thread(watchers.expect, "done", 90.0)
                receiver.send("stop")
                seen = await asyncio.to_thread(receiver.expect, "seen", 60.0)
                durable = await asyncio.to_thread(durability, sync_http, server, poll_id,
                                                  stormed, likes_before)
            finally:
                for child in (receiver, storm, watchers):
                    if child is not None:
                        child.close()
    wall = phases[-1][1] - phases[0][0]
    return {"compositor": compositor, "received_size": ready["size"],
            **summarize_phases(dict(camera.sent), seen, phases, samples, stormed, args.settle,
                               watched, args.watchers),
            "durability": durable,
            "clients_cpu_percent": {
                "method": "CPU time over all phases from /proc, % of one core: the storm, "
                          "watcher and WHEP viewer processes, and the publisher (this "
                          "process); they share the machine with the server",
                "storm_watchers_viewer": 100 * clients_cpu[0] / wall,
                "publisher": 100 * clients_cpu[1] / wall}}


def _encoded(stats: dict[str, Any]) -> int:
    return int(sum(e.get("frames", 0) for e in (stats.get("encoders") or {}).values()))


def summarize_phases(sent: dict[int, float], seen: dict[str, Any],
                     phases: list[tuple[float, float, float]],
                     samples: list[tuple[float, float, dict[str, Any], tuple[float, float]]],
                     stormed: dict[str, Any], settle: float,
                     watched: dict[str, Any] | None = None, watchers: int = 0
                     ) -> dict[str, Any]:
    """One row per phase kind (quiet, then each rate), every round of it pooled."""
    cores = os.cpu_count() or 1
    kinds: dict[float, dict[str, Any]] = {}
    for k, (a, b, rate) in enumerate(phases):
        row = kinds.setdefault(rate, {"windows": [], "seconds": 0.0, "cpu_s": 0.0,
                                      "encoded": 0, "busy": 0.0, "total": 0.0, "storm": [],
                                      "watch": []})
        row["windows"].append((a + settle, b))
        row["seconds"] += b - a
        (_, cpu0, st0, m0), (_, cpu1, st1, m1) = samples[k], samples[k + 1]
        row["cpu_s"] += cpu1 - cpu0
        row["encoded"] += _encoded(st1) - _encoded(st0)
        row["busy"] += m1[0] - m0[0]
        row["total"] += m1[1] - m0[1]
        if stormed["phases"][k] is not None:
            row["storm"].append(stormed["phases"][k])
        if watched is not None:
            row["watch"].append(watched["phases"][k])
    rows = []
    for rate, row in sorted(kinds.items()):
        picked = {i: t for i, t in sent.items() if any(a <= t < b for a, b in row["windows"])}
        lat = latency_of(picked, seen, -math.inf, math.inf, 1000.0)
        storm = row["storm"]
        acked = sum(s["acked"] for s in storm)
        errors: dict[str, int] = {}
        for s in storm:
            for key, n in s["errors"].items():
                errors[key] = errors.get(key, 0) + n
        ack_p = [s["ack_ms"] for s in storm if s["ack_ms"]]
        machine = 100 * cores * row["busy"] / max(1e-9, row["total"])
        rows.append({
            "offered_per_s": rate, "phases": len(row["windows"]), "seconds": row["seconds"],
            "glass_to_glass_ms": lat["summary"], "frames_sent": lat["frames_sent"],
            "frames_seen": lat["frames_seen"], "received_share": lat["received_share"],
            "encoded_fps": row["encoded"] / row["seconds"],
            "arengine_cpu_percent": 100 * row["cpu_s"] / row["seconds"],
            "machine_cpu_percent": machine, "machine_capacity_percent": 100.0 * cores,
            "saturated": machine > 0.9 * 100 * cores,
            "storm": None if not storm else {
                "sent": sum(s["sent"] for s in storm), "acked": acked,
                "acked_per_s": acked / row["seconds"], "errors": errors,
                # per-phase p50/p99 of the ack time; the worst phase of the kind is shown
                "ack_ms_p50": max(p["median"] for p in ack_p) if ack_p else None,
                "ack_ms_p99": max(p["p99"] for p in ack_p) if ack_p else None},
            "watchers": _watch_row(row["watch"], watchers)})
    return {"rows": rows, "comments_acked": stormed["comments_acked"]}


def _watch_row(phases: list[dict[str, Any]], watchers: int) -> dict[str, Any] | None:
    """The pages' phases of one kind pooled: snapshots per page, worst ages on arrival."""
    if not phases:
        return None
    ages = [p["age_ms"] for p in phases if p["age_ms"]]
    return {"pages": watchers,
            "snapshots_per_s_per_page": sum(p["snapshots_per_s_per_page"]
                                            for p in phases) / len(phases),
            "age_ms_p50": max(a["median"] for a in ages) if ages else None,
            "age_ms_p99": max(a["p99"] for a in ages) if ages else None}


# -- report -------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    """The comparison of the runs (if more than one), then each run's tables."""
    s = report["settings"]
    runs = report["runs"]
    lines = [f"# Glass to glass during a storm ({s['size']} at {s['fps']} fps, every effect, "
             f"{s['viewers']} storm viewers over {s['relays']} relays"
             + (f" batching every {s['batch_ms']:g} ms" if s["batch_ms"] else "")
             + f", {s['rounds']} rounds of {s['phase_s']:g} s phases)", ""]
    if len(runs) > 1:
        lines += ["Side by side, one run after the other (encoded fps; glass to glass p50 / "
                  "p99 ms; arengine CPU % of one core, its compositor processes included):",
                  "", "| compositor | " + " | ".join(
                      str(r["offered_per_s"] or "quiet") for r in runs[0]["rows"]) + " |",
                  "|---|" + "---:|" * len(runs[0]["rows"])]
        for run in runs:
            cells = []
            for r in run["rows"]:
                g = r["glass_to_glass_ms"]
                lat = f"{g['median']:.0f} / {g['p99']:.0f}" if g else "–"
                cells.append(f"{r['encoded_fps']:.1f}; {lat}; {r['arengine_cpu_percent']:.0f}")
            lines.append(f"| {run['compositor']} | " + " | ".join(cells) + " |")
        lines.append("")
    for run in runs:
        lines += run_markdown(run, s, len(runs) > 1)
    lines += [f"Load average after: {report['load_average_after']}"]
    return "\n".join(lines) + "\n"


def run_markdown(report: dict[str, Any], s: dict[str, Any], titled: bool) -> list[str]:
    """One run's tables (the compositor in its title when there are several runs)."""
    lines = ([f"## Compositor: {report['compositor']}", ""] if titled else []) + [
             "| storm, actions/s | acked/s | ack p50 / p99 ms | refused | g2g p50 | p95 | p99 "
             "| max | frames seen / sent | encoded fps | arengine CPU % |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        st, g = r["storm"], r["glass_to_glass_ms"]
        cells = " | ".join(f"{g[k]:.0f}" for k in ("median", "p95", "p99", "max")) if g \
            else "– | – | – | –"
        if st is None:
            storm = "quiet | – | – | –"
        else:
            ack = (f"{st['ack_ms_p50']:.0f} / {st['ack_ms_p99']:.0f}"
                   if st["ack_ms_p50"] is not None else "–")
            storm = (f"{r['offered_per_s']:g} | {st['acked_per_s']:.0f} | {ack} | "
                     f"{sum(st['errors'].values())}")
        lines.append(f"| {storm} | {cells} | {r['frames_seen']} / {r['frames_sent']} | "
                     f"{r['encoded_fps']:.1f} | {r['arengine_cpu_percent']:.0f}"
                     + (" (machine saturated)" if r["saturated"] else "") + " |")
    watched = [r for r in report["rows"] if r.get("watchers")]
    if watched:
        lines += ["", f"Viewer pages ({s['watchers']}, each with the room's state stream, as "
                      f"room.js opens it):", "",
                  "| storm, actions/s | snapshots/s per page | snapshot age p50 / p99 ms |",
                  "|---|---:|---:|"]
        for r in watched:
            wt = r["watchers"]
            age = (f"{wt['age_ms_p50']:.0f} / {wt['age_ms_p99']:.0f}"
                   if wt["age_ms_p50"] is not None else "–")
            lines.append(f"| {r['offered_per_s'] or 'quiet'} | "
                         f"{wt['snapshots_per_s_per_page']:.1f} | {age} |")
    cpu = report.get("clients_cpu_percent")
    if cpu:
        lines += ["", f"Load generators on the same machine, % of one core: storm + "
                      f"watchers + WHEP viewer {cpu['storm_watchers_viewer']:.0f}, publisher "
                      f"{cpu['publisher']:.0f}."]
    d = report["durability"]
    lines += ["", f"Durable: **{'yes' if d['durable'] else 'NO'}**: poll votes per option "
                  f"{d['poll_votes_per_option']} for acknowledged voters "
                  f"{d['acked_voters_per_option']}; likes counted {d['likes_counted']} for "
                  f"{d['likes_acked']} acknowledged; {report['comments_acked']} comments "
                  f"acknowledged.", "",
              f"Glass to glass includes: {INCLUDES['whep']}. The storm's mix: 80% votes, "
              f"15% likes, 5% comments, over {s['relays']} relay sockets with up to "
              f"{WINDOW} actions in flight each, "
              + (f"those due within each {s['batch_ms']:g} ms sent as one batch message"
                 if s["batch_ms"] else "one message per action")
              + "; ack times run from when each action was due; refused = answered with "
                "an error (the JSON has each op and status). The room's compositor: "
              + ("in a process of its own." if report["compositor"] == "process"
                 else "on the server's effects thread."), ""]
    return lines


def _rates(ap: argparse.ArgumentParser, text: str) -> list[float]:
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        rates = []
    if not rates or any(not 1 <= r <= 100_000 for r in rates) or len(rates) > 6:
        ap.error("--rates takes 1 to 6 comma-separated actions per second, each 1..100000")
    return rates


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--storm"]:
        return storm_main(argv[1:])
    if argv[:1] == ["--watch"]:
        return watch_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="1000,4000",
                    help="storm rates to compare with quiet, actions/s (default 1000,4000)")
    ap.add_argument("--phase", type=float, default=8.0, help="seconds per phase (default 8)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of all phases (default 2)")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds at each phase's start left out of its latency (default 1)")
    ap.add_argument("--viewers", type=int, default=2000,
                    help="viewers the storm acts for (default 2000)")
    ap.add_argument("--relays", type=int, default=SOCKETS,
                    help=f"relay sockets the storm comes over (default {SOCKETS})")
    ap.add_argument("--batch-ms", type=float, default=0.0,
                    help="each relay sends the actions due within each tick of this many ms "
                         "as one batch message, as an edge server would (default 0: one "
                         "message per action)")
    ap.add_argument("--watchers", type=int, default=20,
                    help="viewer pages open, each with the room's state stream (default 20)")
    ap.add_argument("--size", default="1280x720", help="camera size (default 1280x720)")
    ap.add_argument("--fps", type=int, default=30, help="camera frame rate (default 30)")
    ap.add_argument("--warmup", type=float, default=5.0,
                    help="seconds after the viewer's first frame before the first phase")
    ap.add_argument("--compositor", default="thread",
                    help="where the room's compositor runs, one run each in this order: "
                         "thread, process or both as thread,process (default thread)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/storm"))
    args = ap.parse_args(argv)
    args.compositor = compositors(ap, args.compositor)
    args.rates = _rates(ap, args.rates)
    if not 2 <= args.phase <= 300:
        ap.error("--phase takes 2..300 s")
    if not 1 <= args.rounds <= 20:
        ap.error("--rounds takes 1..20")
    if not 0 <= args.settle < args.phase:
        ap.error("--settle takes 0 s up to less than --phase")
    if not 10 <= args.viewers <= 20_000:
        ap.error("--viewers takes 10..20000")
    if not 1 <= args.relays <= 64:
        ap.error("--relays takes 1..64")
    if not 0 <= args.batch_ms <= 1000:
        ap.error("--batch-ms takes 0..1000")
    if not 0 <= args.watchers <= 1000:
        ap.error("--watchers takes 0..1000")
    if not 0 <= args.warmup <= 600:
        ap.error("--warmup takes 0..600 s")
    if not 5 <= args.fps <= 60:
        ap.error("--fps takes 5..60")
    args.size = frame_size(ap, args.size)
    # Each viewer's share must stay under its own vote limit (5/s), or the limit, not the
    # server, is what the run measures.
    if max(args.rates) * 0.8 / args.viewers > 4.0:
        ap.error(f"--rates up to {max(args.rates):g}/s needs at least "
                 f"{math.ceil(max(args.rates) * 0.8 / 4.0)} --viewers (each votes under "
                 f"5/s)")
    runs = []
    try:
        for compositor in args.compositor:  # bounded: at most two
            runs.append(asyncio.run(run(args, compositor)))
    except asyncio.CancelledError:
        print("bench_storm: stopped by SIGTERM (every child closed)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except (RuntimeError, TimeoutError, httpx.HTTPError) as e:
        print(f"bench_storm: {e}", file=sys.stderr)
        return 1
    report: dict[str, Any] = {
        "benchmark": "storm", "machine": machine_info(),
        "settings": {"rates": args.rates, "phase_s": args.phase, "rounds": args.rounds,
                     "settle_s": args.settle, "viewers": args.viewers,
                     "watchers": args.watchers, "relays": args.relays,
                     "batch_ms": args.batch_ms,
                     "size": "{}x{}".format(*args.size), "fps": args.fps,
                     "warmup_s": args.warmup, "in_flight": WINDOW,
                     "mix": {"vote": 0.8, "like": 0.15, "comment": 0.05},
                     "compositors": args.compositor},
        "clock": "time.perf_counter (CLOCK_MONOTONIC) in every process",
        "percentiles": PERCENTILE_METHOD, "load_average_after": load_average(),
        "runs": runs}
    print(write_outputs(args.out, "storm", report, markdown(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
