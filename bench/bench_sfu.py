"""arengine's CPU as viewers are added: through a Janus SFU against its own WHEP, in one run.

The claim checked: with an SFU, arengine encodes a room once and forwards the packets to
Janus, so its CPU stays flat whatever the audience, while every WHEP viewer costs arengine
a sender (packetization, SRTP, RTCP) of its own.

``arengine serve`` runs in its own process on the demo room (a real moving face, every
effect, ``--size``) so its CPU time (from /proc) is its alone; Janus (Debian's, started
with a private config by ``tests/transport/janus_server.py``) runs beside it. For each
viewer count the viewers live in a separate process at nice 19, so they take only the CPU
the server and Janus leave: the figure is what arengine needs, not what it got. They are
light: aiortc's decoder factory is replaced (through the checked hook
:func:`arengine.transport.hooks.wrap_decoders`) by one that counts frames and decodes
none. Janus viewers subscribe through Janus's HTTP API (``JanusSubscriber``); WHEP viewers
play ``/whep/demo``. The Janus output is on only for the Janus points, so a WHEP point
carries no forwarding peer. Janus and WHEP points alternate (J W, W J, J W...) so a slow
drift in the machine's load hits both alike.

    python bench/bench_sfu.py [--viewers 1,10,50] [--window 10] [--size 1280x720]
                              [--out bench/out/sfu]

writes ``sfu.json`` (every figure) and ``sfu.md`` (the table).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from arengine.bench.args import frame_size
from arengine.bench.machine import load_average, machine_info
from arengine.data import REPO_DIR
from arengine.transport import hooks

if str(REPO_DIR) not in sys.path:  # the far ends' launch helpers live with the tests
    sys.path.insert(0, str(REPO_DIR))

from tests.transport.janus_server import (
    JANUS,
    PACKAGES,
    JanusServer,
    JanusSubscriber,
    free_port,
    janus_lib,
    proc_cpu_seconds,
)

ROOM = "demo"
JANUS_ROOM = 4242
PATHS = ("janus", "whep")
BATCH = 10  # viewers started at once: 50 handshakes together stall a busy 2-core machine


# -- the server under test ------------------------------------------------------------------


class ServeProcess:
    """``arengine serve`` in a process of its own (so its CPU time is its own), on a free
    loopback port, with its database and log in ``folder``."""

    def __init__(self, folder: Path, flags: list[str]) -> None:
        self.folder = folder
        self.port = free_port()
        self.flags = flags
        self.log_path = folder / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, timeout: float = 120.0) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 (the process owns it)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "arengine", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--db", str(self.folder / "bench.db"),
             "--log-level", "warning", *self.flags],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO_DIR, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"arengine serve exited with {self.proc.returncode}:\n"
                                   f"{self.log()}")
            m = re.search(r"#token=(\S+)", self.log())
            if m:
                self.token = m.group(1)
                return
            time.sleep(0.2)
        raise RuntimeError(f"arengine serve did not start in {timeout:g} s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL if it has not gone within 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return tree_cpu_seconds(self.proc.pid)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def janus_missing() -> str | None:
    """Why Janus cannot run here (None: it can)."""
    if not Path(JANUS).exists() or janus_lib() is None:
        return f"Janus is not installed (apt-get install {PACKAGES})"
    return None


@contextlib.contextmanager
def janus_running(folder: Path) -> Iterator[JanusServer]:
    lib = janus_lib()
    assert lib is not None
    server = JanusServer(folder, lib)
    try:
        server.start()
        yield server
    finally:
        server.kill()


def wait_until(check: Any, timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:g} s")
        time.sleep(every)


def start_output(http: httpx.Client, server: ServeProcess, body: dict[str, Any],
                 timeout: float = 30.0) -> str:
    """Start one of the demo room's outputs through the host API; its id once live."""
    r = http.post(f"{server.url}/api/rooms/{ROOM}/outputs", json=body, headers=server.auth)
    r.raise_for_status()
    oid = str(r.json()["id"])

    def live() -> bool:
        outs = http.get(f"{server.url}/api/rooms/{ROOM}/outputs", headers=server.auth)
        o: dict[str, Any] = next((o for o in outs.json()["outputs"] if o["id"] == oid), {})
        return o.get("state") == "live"

    wait_until(live, timeout, f"the {body['kind']} output to go live")
    return oid


def stop_output(http: httpx.Client, server: ServeProcess, oid: str) -> None:
    with contextlib.suppress(httpx.HTTPError):
        http.delete(f"{server.url}/api/rooms/{ROOM}/outputs/{oid}", headers=server.auth)


def room_stats(http: httpx.Client, server: ServeProcess) -> dict[str, Any]:
    r = http.get(f"{server.url}/api/rooms/{ROOM}/stats", headers=server.auth)
    r.raise_for_status()
    return dict(r.json())


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its descendants (nginx's workers), from
    /proc; a process that has gone counts nothing."""
    total, todo, seen = 0.0, [pid], set[int]()
    while todo and len(seen) < 256:  # bounded: a benchmark's far end has a few processes
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            total += proc_cpu_seconds(p)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / tick, sum(fields) / tick


# -- the light viewers (their own process) -------------------------------------------------------


class CountingDecoder:
    """Stands in for aiortc's decoder in the bench viewers: counts frames, decodes nothing,
    so 50 viewers cost the machine little beside the server being measured."""

    def __init__(self) -> None:
        self.frames = 0

    def decode(self, encoded_frame: Any) -> list[Any]:
        self.frames += 1
        return []


def count_instead_of_decoding() -> list[CountingDecoder]:
    """Make every decoder aiortc builds from here on a :class:`CountingDecoder`; the list
    fills with the video ones (one per receiving viewer) as their first frames come."""
    video: list[CountingDecoder] = []

    def wrap(codec: Any, decoder: Any) -> CountingDecoder:
        counting = CountingDecoder()
        if str(getattr(codec, "mimeType", "")).lower().startswith("video/"):
            video.append(counting)
        return counting

    hooks.wrap_decoders(wrap)
    return video


def _say(kind: str, body: dict[str, Any]) -> None:
    print(f"{kind} {json.dumps(body)}", flush=True)


async def _viewers(path: str, url: str, n: int, room: int, feed: int,
                   ready_timeout: float) -> None:
    """n viewers of one path; then, per line on stdin: ``start``, ``stop`` (report), EOF
    (close them all)."""
    decoders = count_instead_of_decoding()
    peers: list[Any] = []
    failed: list[str] = []
    async with httpx.AsyncClient(timeout=40) as http:
        try:
            for first in range(0, n, BATCH):
                made: list[Any] = []
                for _ in range(min(BATCH, n - first)):
                    if path == "janus":
                        made.append(JanusSubscriber(http, url, room, feed))
                    else:
                        from arengine.transport.client import WhepClient

                        made.append(WhepClient(http, f"{url}/whep/{ROOM}"))
                peers.extend(made)
                starts = [p.start() if path == "janus" else
                          p.play("vp8", data_channel=False) for p in made]
                for r in await asyncio.gather(*starts, return_exceptions=True):
                    if isinstance(r, BaseException):
                        failed.append(f"{type(r).__name__}: {r}")
            deadline = time.monotonic() + ready_timeout
            while sum(d.frames > 0 for d in decoders) < n - len(failed) and \
                    time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            _say("ready", {"viewers": n, "failed": failed,
                           "receiving": sum(d.frames > 0 for d in decoders)})
            if (await asyncio.to_thread(sys.stdin.readline)).strip() != "start":
                return  # the parent is gone or gave up: close everything
            t0 = time.perf_counter()
            before = {id(d): d.frames for d in decoders}
            if (await asyncio.to_thread(sys.stdin.readline)).strip() != "stop":
                return
            t1 = time.perf_counter()
            frames = [d.frames - before.get(id(d), 0) for d in decoders]
            frames += [0] * max(0, n - len(frames))  # viewers that never got a frame
            _say("counts", {"seconds": t1 - t0, "frames": frames})
            await asyncio.to_thread(sys.stdin.readline)  # EOF: the parent is done
        finally:
            for p in peers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(p.close(), 10)


def viewer_main(argv: list[str]) -> int:
    """Entry of the viewer process (``bench_sfu.py --viewer-process PATH URL N ROOM FEED``)."""
    path, url, n_s, room_s, feed_s = argv
    # Linux sets priority per thread; threads aiortc starts later inherit it.
    os.setpriority(os.PRIO_PROCESS, 0, 19)
    n = int(n_s)
    asyncio.run(_viewers(path, url, n, int(room_s), int(feed_s), 60.0 + 2.0 * n))
    return 0


class ChildProcess:
    """A helper process of a benchmark that talks in lines (``KIND JSON`` out, commands
    in): its stdout read by a thread, so every wait has a timeout; its stderr kept in a
    file, whose end goes into the error when it fails."""

    def __init__(self, argv: list[str]) -> None:
        self.name = " ".join(argv[1:3])
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, text=True, cwd=REPO_DIR, start_new_session=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)  # EOF: the process is gone

    def _stderr_tail(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            self._stderr.seek(0)
            return self._stderr.read().decode(errors="replace")[-2000:]
        return ""

    def expect(self, kind: str, timeout: float) -> dict[str, Any]:
        """The next ``kind`` line's JSON; an ``error`` line, EOF or the timeout raise."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if line is None:
                break
            head, _, body = line.partition(" ")
            if head == kind:
                return dict(json.loads(body))
            if head == "error":
                raise RuntimeError(f"{self.name}: {json.loads(body).get('error')}")
        raise RuntimeError(f"no '{kind}' from {self.name} within {timeout:g} s (exit status "
                           f"{self.proc.poll()}):\n{self._stderr_tail()}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        """EOF on stdin (it closes its peers and exits), then SIGKILL after 30 s."""
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._stderr.close()


class ViewerProcess(ChildProcess):
    """n light viewers of one path in their own process (see :func:`viewer_main`)."""

    def __init__(self, path: str, url: str, n: int, room: int = 0, feed: int = 0) -> None:
        super().__init__([str(Path(__file__).resolve()), "--viewer-process", path, url,
                          str(n), str(room), str(feed)])


# -- one point -------------------------------------------------------------------------------


def measure_point(http: httpx.Client, server: ServeProcess, janus: JanusServer, path: str,
                  n: int, window: float, settle: float) -> dict[str, Any]:
    """arengine's, Janus's and the viewers' CPU over ``window`` s with ``n`` viewers."""
    oid = None
    viewers: ViewerProcess | None = None
    row: dict[str, Any] = {"path": path, "viewers": n}
    try:
        if path == "janus":
            oid = start_output(http, server, {"kind": "janus"})
            sfu = http.get(f"{server.url}/api/rooms/{ROOM}/sfu").json()
            room, feed = int(sfu["room"]), int(sfu["feed"])
        else:
            room = feed = 0
        if n:
            url = janus.url if path == "janus" else server.url
            viewers = ViewerProcess(path, url, n, room, feed)
            ready = viewers.expect("ready", 90.0 + 3.0 * n)
            row["failed_to_connect"] = ready["failed"]
        time.sleep(settle)  # handshakes and the first keyframes out of the window
        stats0 = room_stats(http, server)
        a0, j0, m0 = server.cpu_seconds(), janus.cpu_seconds(), machine_cpu()
        v0 = proc_cpu_seconds(viewers.pid()) if viewers else 0.0
        t0 = time.monotonic()
        if viewers:
            viewers.send("start")
        time.sleep(window)
        if viewers:
            viewers.send("stop")
        a1, j1, m1 = server.cpu_seconds(), janus.cpu_seconds(), machine_cpu()
        v1 = proc_cpu_seconds(viewers.pid()) if viewers else 0.0
        wall = time.monotonic() - t0
        stats1 = room_stats(http, server)
        counts: dict[str, Any] = viewers.expect("counts", 30.0) if viewers else \
            {"frames": [], "seconds": 1.0}
    finally:
        if viewers is not None:
            viewers.close()
        if oid is not None:
            stop_output(http, server, oid)
    fps = [f / counts["seconds"] for f in counts["frames"]]
    encoders = {}
    for codec, e in stats1.get("encoders", {}).items():
        before = stats0.get("encoders", {}).get(codec, {}).get("frames", 0)
        encoders[codec] = {"fps": (e["frames"] - before) / wall,
                           "subscribers": e["subscribers"], "bitrate_kbps": e["bitrate_kbps"]}
    cores = os.cpu_count() or 1
    row.update({
        "window_s": wall,
        "arengine_cpu_percent": 100 * (a1 - a0) / wall,
        "janus_cpu_percent": 100 * (j1 - j0) / wall,
        "viewer_process_cpu_percent": 100 * (v1 - v0) / wall,
        "machine_cpu_percent": 100 * (m1[0] - m0[0]) / max(1e-9, m1[1] - m0[1]) * cores,
        "machine_capacity_percent": 100.0 * cores,
        "encoders_running": len(encoders),
        "encoders": encoders,
        "outputs": [{"kind": o["kind"], "state": o["state"], "fps": o["fps"],
                     "bitrate_kbps": o["bitrate_kbps"]} for o in stats1.get("outputs", [])],
        "server_fps": stats1.get("fps", {}),
        # Tracking is paced by how busy the machine is (viewers included), so arengine's
        # CPU can fall as viewers are added for that reason alone: these show it.
        "tracked_fps": {name: (t["processed"] - stats0.get("tracking", {}).get(
            name, {}).get("processed", 0)) / wall
            for name, t in (stats1.get("tracking") or {}).items()},
        "machine_busy_seen_by_arengine": stats1.get("machine_busy"),
        "arengine_viewers": stats1.get("viewers"),
        "viewers_receiving": sum(f > 0 for f in counts["frames"]),
        "fps_per_viewer": ({"min": min(fps), "median": statistics.median(fps),
                            "mean": statistics.fmean(fps)} if fps else None),
    })
    return row


def slope(rows: list[dict[str, Any]], key: str) -> float | None:
    """Least-squares CPU % per extra viewer over the rows (None with one point)."""
    xs = [float(r["viewers"]) for r in rows]
    if len(set(xs)) < 2:
        return None
    ys = [float(r[key]) for r in rows]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / \
        sum((x - mx) ** 2 for x in xs)


def summarize_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in PATHS:
        mine = sorted((r for r in rows if r["path"] == path), key=lambda r: r["viewers"])
        if not mine:
            continue
        out[path] = {
            "arengine_cpu_percent_per_extra_viewer": slope(mine, "arengine_cpu_percent"),
            "janus_cpu_percent_per_extra_viewer": slope(mine, "janus_cpu_percent"),
            "arengine_cpu_percent_at": {str(r["viewers"]): r["arengine_cpu_percent"]
                                        for r in mine},
        }
    j = out.get("janus", {}).get("arengine_cpu_percent_per_extra_viewer")
    w = out.get("whep", {}).get("arengine_cpu_percent_per_extra_viewer")
    span = max((r["viewers"] for r in rows), default=0) - \
        min((r["viewers"] for r in rows), default=0)
    if j is not None and w is not None:
        # A few viewers' difference is inside the noise of a shared machine: judge the
        # claim only over a span of ten viewers or more.
        out["claim"] = {
            "rule": "over a span of at least 10 viewers, arengine's CPU per extra viewer "
                    "through Janus is under a quarter of what each extra WHEP viewer costs "
                    "it, and WHEP's is positive",
            "holds": bool(w > 0 and j < 0.25 * w) if span >= 10 else None,
            "viewer_span": span, "janus_per_viewer": j, "whep_per_viewer": w}
    return out


# -- report ------------------------------------------------------------------------------------


def _f(v: Any, fmt: str = ".0f") -> str:
    return "–" if v is None else format(v, fmt)


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [f"# arengine's CPU per viewer: through Janus vs its own WHEP ({s['size']}, "
             f"{s['fps']} fps demo, every effect)", "",
             "CPU in % of one core over each window; viewers in their own process at "
             "nice 19, counting frames without decoding. arengine paces its tracking by "
             "how busy the machine is, so compare the tracked fps too.", "",
             "| viewers | path | arengine CPU % | Janus CPU % | viewer process CPU % "
             "| machine CPU % | encoders | encoded fps | output fps | fps per viewer "
             "(min / median) | receiving | face / hands tracked fps |",
             "|---:|---|---:|---:|---:|---:|---|---:|---:|---|---:|---|"]
    for r in report["points"]:
        enc = ", ".join(f"{c} ({e['subscribers']} sub.)" for c, e in r["encoders"].items())
        efps = " / ".join(f"{e['fps']:.1f}" for e in r["encoders"].values()) or "–"
        ofps = " / ".join(f"{o['fps']:.1f}" for o in r["outputs"]) or "–"
        v = r["fps_per_viewer"]
        vfps = f"{v['min']:.1f} / {v['median']:.1f}" if v else "–"
        tr = r.get("tracked_fps", {})
        tracked = " / ".join(_f(tr.get(k), ".1f") for k in ("track_face", "track_hands"))
        lines.append(f"| {r['viewers']} | {r['path']} | {r['arengine_cpu_percent']:.0f} | "
                     f"{r['janus_cpu_percent']:.1f} | {r['viewer_process_cpu_percent']:.0f} | "
                     f"{r['machine_cpu_percent']:.0f} of {r['machine_capacity_percent']:.0f}"
                     f" | {enc or 'none'} | {efps} | {ofps} | {vfps} | "
                     f"{r['viewers_receiving']}/{r['viewers']} | {tracked} |")
    summary = report["summary"]
    lines.append("")
    for path in PATHS:
        if path in summary:
            p = summary[path]
            lines.append(f"- {path}: arengine "
                         f"{_f(p['arengine_cpu_percent_per_extra_viewer'], '+.2f')} % of a "
                         f"core per extra viewer, Janus "
                         f"{_f(p['janus_cpu_percent_per_extra_viewer'], '+.2f')} %")
    if "claim" in summary:
        c = summary["claim"]
        verdict = {True: "holds", False: "does not hold", None: "not judged"}[c["holds"]]
        lines.append(f"- claim ({c['rule']}): **{verdict}** in this run")
    la = report.get("load_average", {})
    lines += ["", f"Load average before / after: {la.get('before')} / {la.get('after')}"]
    return "\n".join(lines) + "\n"


def _counts(ap: argparse.ArgumentParser, text: str) -> tuple[int, ...]:
    try:
        counts = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        counts = ()
    if not counts or counts[0] < 0 or counts[-1] > 200:
        ap.error("--viewers takes a comma list of counts 0..200, e.g. 1,10,50")
    return counts


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--viewer-process"]:
        return viewer_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--viewers", default="1,10,50", help="viewer counts (default 1,10,50)")
    ap.add_argument("--window", type=float, default=10.0,
                    help="measured seconds per point (default 10)")
    ap.add_argument("--size", default="1280x720", help="demo picture size (default 1280x720)")
    ap.add_argument("--fps", type=int, default=30, help="demo frame rate (default 30)")
    ap.add_argument("--warmup", type=float, default=10.0,
                    help="seconds the server runs before the first point (models load, "
                         "tracking settles; default 10)")
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds between the viewers receiving and the window (default 3)")
    ap.add_argument("--demo-crowd", action=argparse.BooleanOptionalAction, default=True,
                    help="stage the demo room's product card, polls and viewers so every "
                         "layer draws (default on)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/sfu"))
    args = ap.parse_args(argv)
    counts = _counts(ap, args.viewers)
    w, h = frame_size(ap, args.size, smallest=(160, 120))
    if not 1 <= args.window <= 600:
        ap.error("--window must be between 1 and 600 s")
    if not 0 <= args.warmup <= 600 or not 0 <= args.settle <= 60:
        ap.error("--warmup takes 0..600 s and --settle 0..60 s")
    if not 1 <= args.fps <= 60:
        ap.error("--fps takes 1..60")
    missing = janus_missing()
    if missing:
        print(f"bench_sfu: {missing}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so the finally blocks kill the children

    points: list[dict[str, Any]] = []
    report: dict[str, Any] = {
        "benchmark": "sfu", "machine": machine_info(),
        "settings": {"viewers": list(counts), "window_s": args.window, "size": f"{w}x{h}",
                     "fps": args.fps, "warmup_s": args.warmup, "settle_s": args.settle,
                     "demo_crowd": args.demo_crowd, "janus_room": JANUS_ROOM},
        "method": "arengine serve (own process, demo room, every effect) publishes through "
                  "the host API's janus output into Janus 1.1 (Debian, VideoRoom, HTTP API) "
                  "for the janus points and is watched on /whep/demo for the whep points; "
                  "aiortc viewers in one separate process at nice 19, decoders replaced by "
                  "frame counters; CPU time of each process from /proc over the window, in "
                  "% of one core",
        "load_average": {"before": load_average()},
        "points": points}
    with tempfile.TemporaryDirectory(prefix="arengine-sfu-") as tmp, \
            janus_running(Path(tmp) / "janus") as janus:
        flags = ["--janus", janus.url, "--janus-room", str(JANUS_ROOM), "--size", f"{w}x{h}",
                 "--fps", str(args.fps), "--limit-sessions", str(max(counts) + 10),
                 "--max-viewers", str(max(counts) + 10), "--output-kinds", "janus",
                 "--demo-crowd" if args.demo_crowd else "--no-demo-crowd"]
        server = ServeProcess(Path(tmp) / "arengine", flags)
        try:
            server.start()
            with httpx.Client(timeout=30) as http:
                wait_until(lambda: room_stats(http, server).get("status") not in
                           (None, "idle"), 60, "the demo room to run")
                time.sleep(args.warmup)
                for i, n in enumerate(counts):
                    order = PATHS if i % 2 == 0 else PATHS[::-1]
                    for path in order:
                        print(f"bench_sfu: {n} viewer(s) through {path} ...", flush=True)
                        row = measure_point(http, server, janus, path, n, args.window,
                                            args.settle)
                        print(f"  arengine {row['arengine_cpu_percent']:.0f} %, Janus "
                              f"{row['janus_cpu_percent']:.1f} %, receiving "
                              f"{row['viewers_receiving']}/{n}", flush=True)
                        points.append(row)
        finally:
            server.stop()
    report["load_average"]["after"] = load_average()
    report["summary"] = summarize_rows(points)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sfu.json").write_text(json.dumps(report, indent=2))
    md = markdown(report)
    (args.out / "sfu.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
