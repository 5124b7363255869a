"""The live compositor in a process of its own (``RoomConfig.compositor = "process"``).

Why: a room's process runs the event loop (HTTP, WebSockets, WebRTC) and the compositor's
threads under one interpreter lock. In a storm of viewer actions, one WebSocket message
each, the loop holds that lock about 220 µs per action; at 1,000 actions a second the
720p30 room fell to 24 fps with its process pinned at one core (``bench/bench_storm.py``,
2 cores). Here the compositor (tracking, gestures, every effect) has an interpreter of its
own, and the room's process keeps only decoding, encoding and the network.

How: a frame crosses in shared memory (one buffer each way, a memfd the child inherits);
over a socket go the frame's timestamp and flags, the room state only when it is a new
snapshot, and back the frame's timings, failed stages, gestures and scene, with a
:class:`Readout` at most every :data:`READOUT_INTERVAL` seconds. One frame is in flight at
a time (the room's slot keeps the newest frame meanwhile), so nothing queues. The process
starts in the background (about 1.2 s here): until it is ready, and while one that died or
stopped answering is started again, frames go out as they came (counted as the stage
``compositor``), never held.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from arengine.effects.base import effect_class
from arengine.pipeline.compositor import Composite, OnError, OnTiming
from arengine.pipeline.config import RoomConfig
from arengine.pipeline.live import LiveCompositor, Readout, RoomCompositor
from arengine.state import RoomState
from arengine.tracking.gestures import GestureEvent
from arengine.types import Scene, StageTiming

logger = logging.getLogger(__name__)

READOUT_INTERVAL = 0.2  # s between readouts sent back (stats, click areas)
ANSWER_TIMEOUT = 5.0  # s one frame may take before the process is deemed stuck
START_TIMEOUT = 120.0  # s for the process to import, load its models and say ready
RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)  # s before each restart in a row
STAGE = "compositor"  # the stage a frame sent out bare is counted under
_NOTHING_SENT = object()
# Each direction's buffer: a 4096x4096 BGR frame. Memory pages are only taken as a frame
# touches them (a 720p frame uses 2.6 MiB of it); a larger frame goes out bare.
BUFFER_BYTES = 4096 * 4096 * 3


@dataclass
class FrameOrder:
    """One frame for the process: where it is, and what to draw it with."""

    shape: tuple[int, ...]
    timestamp: float
    index: int
    host: bool
    track: bool
    new_state: bool  # False: draw with the state sent before (it is not sent again)
    state: RoomState | None
    busy: float | None  # the machine's CPU use, for the tracking pacers, once a second


@dataclass
class FrameDone:
    """The process's answer: the composite is in the output buffer."""

    events: list[GestureEvent]
    scene: Scene  # without its extras (a person mask stays in the process)
    timings: list[StageTiming]
    errors: list[str]
    readout: Readout | None  # at most every READOUT_INTERVAL


class CompositorProcess(RoomCompositor):
    """A :class:`LiveCompositor` run by a child process; same calls, same results.

    The child is a fresh interpreter that imports this module (never a re-import of
    whatever script made the room, as multiprocessing's spawn would do), given its socket
    and the two buffers as inherited file descriptors. ``process`` may be called from one
    thread at a time (the room's effects thread); ``readout`` from any.
    """

    def __init__(self, config: RoomConfig, gestures: bool, on_timing: OnTiming,
                 on_error: OnError, name: str = "room",
                 answer_timeout: float = ANSWER_TIMEOUT) -> None:
        self.config = config
        self.answer_timeout = answer_timeout
        self.gestures = gestures
        self.on_timing = on_timing
        self.on_error = on_error
        self.name = name
        self.state = "idle"  # "starting", "running", "restarting" or "closed"
        self.restarts = 0
        self.frames = 0
        self.bare = 0
        self._conn: Connection | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # one exchange on the pipe at a time
        self._fds: tuple[int, int] | None = None
        self._maps: tuple[mmap.mmap, mmap.mmap] | None = None
        self._sent_state: object = _NOTHING_SENT  # the state the process draws with
        self._busy: float | None = None
        # Until the process's first readout: the layers it will have, each as it starts.
        self._readout = Readout(enabled=_enabled_at_start(config.effects))
        self._starter: threading.Thread | None = None
        self._closed = threading.Event()
        self._too_large: tuple[int, ...] | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start the process in the background; frames pass bare until it is ready."""
        fds = (os.memfd_create(f"arengine-{self.name}-in"),
               os.memfd_create(f"arengine-{self.name}-out"))
        for fd in fds:
            os.ftruncate(fd, BUFFER_BYTES)
        self._fds = fds
        self._maps = (mmap.mmap(fds[0], BUFFER_BYTES), mmap.mmap(fds[1], BUFFER_BYTES))
        self.state = "starting"
        self._start_in(0.0)

    def wait_ready(self, timeout: float) -> bool:
        """Block until the process takes frames (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._closed.is_set():
            if self._conn is not None:
                return True
            time.sleep(0.02)
        return self._conn is not None

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and self._conn is not None else None

    def _start_in(self, delay: float) -> None:
        self._starter = threading.Thread(target=self._start, args=(delay,), daemon=True,
                                         name=f"arengine-compositor-start-{self.name}")
        self._starter.start()

    def _start(self, delay: float) -> None:
        if self._closed.wait(delay) or self._fds is None:
            return
        ours, theirs = socket.socketpair()
        conn = Connection(ours.detach())
        level = logging.getLogger().getEffectiveLevel()
        child = theirs.fileno()
        proc: subprocess.Popen[bytes] | None = None
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(child), *map(str, self._fds)],
                pass_fds=(child, *self._fds), stdin=subprocess.DEVNULL, env=_child_env())
            theirs.close()
            conn.send((self.config, self.gestures, level))
            if not conn.poll(START_TIMEOUT):
                raise TimeoutError(f"not ready after {START_TIMEOUT:.0f} s")
            kind, detail = conn.recv()
            if kind != "ready":
                raise RuntimeError(detail)
        except (OSError, EOFError, TimeoutError, RuntimeError) as e:
            theirs.close()
            logger.error("room %s: the compositor process did not start (%s)", self.name,
                         e or type(e).__name__)
            _stop(proc, conn)
            self._restart_later()
            return
        with self._lock:
            if self._closed.is_set():
                _stop(proc, conn)
                return
            self._conn, self._proc = conn, proc
            self._sent_state = _NOTHING_SENT  # a new process has no state yet
            self.state = "running"
        logger.info("room %s: compositor process %d ready", self.name, proc.pid)

    def _restart_later(self) -> None:
        if self._closed.is_set():
            return
        delay = RESTART_DELAYS[min(self.restarts, len(RESTART_DELAYS) - 1)]
        self.restarts += 1
        self.state = "restarting"
        self._start_in(delay)

    def _lost(self, why: str) -> None:
        """The process died or hung: stop what is left of it and start another."""
        logger.error("room %s: compositor process lost (%s); frames go out without effects "
                     "until it is back", self.name, why)
        conn, proc = self._conn, self._proc
        self._conn, self._proc = None, None
        if conn is not None:
            _stop(proc, conn)
        self._restart_later()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            conn, proc = self._conn, self._proc
            self._conn, self._proc = None, None
            if conn is not None:
                with contextlib.suppress(OSError, ValueError):
                    conn.send("close")
                if proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(5)
                _stop(proc, conn)
            if self._maps is not None:
                for m in self._maps:
                    m.close()
            if self._fds is not None:
                for fd in self._fds:
                    os.close(fd)
            self._maps, self._fds = None, None
            self.state = "closed"
        starter = self._starter
        if starter is not None and starter is not threading.current_thread():
            starter.join(1)

    # -- frames --------------------------------------------------------------------

    def _bare(self, image: np.ndarray, timestamp: float, index: int) -> Composite:
        self.bare += 1
        self.on_error(STAGE)
        h, w = image.shape[:2]
        return Composite(image, Scene.empty(w, h).at(timestamp, index))

    def process(self, image: np.ndarray, timestamp: float, index: int,
                state: RoomState | None, *, host: bool, track: bool) -> Composite:
        if image.nbytes > BUFFER_BYTES or image.dtype != np.uint8:
            if self._too_large != image.shape:
                self._too_large = image.shape
                logger.error("room %s: a %s frame is over the compositor's %d bytes; such "
                             "frames go out without effects", self.name,
                             "x".join(map(str, image.shape)), BUFFER_BYTES)
            return self._bare(image, timestamp, index)
        with self._lock:
            conn, maps = self._conn, self._maps
            if conn is None or maps is None:
                return self._bare(image, timestamp, index)
            inview: np.ndarray = np.ndarray(image.shape, np.uint8, maps[0])
            outview: np.ndarray = np.ndarray(image.shape, np.uint8, maps[1])
            try:
                np.copyto(inview, image)
                new_state = state is not self._sent_state
                conn.send(FrameOrder(image.shape, timestamp, index, host, track, new_state,
                                     state if new_state else None, self._busy))
                self._sent_state, self._busy = state, None
                if not conn.poll(self.answer_timeout):
                    raise TimeoutError(f"no answer in {self.answer_timeout:g} s")
                done = conn.recv()
            except (OSError, EOFError, TimeoutError, ValueError, pickle.PickleError) as e:
                self._lost(str(e) or type(e).__name__)
                return self._bare(image, timestamp, index)
            out = outview.copy()
            del inview, outview  # no view may outlive the maps (close)
        self.frames += 1
        for t in done.timings:
            self.on_timing(t)
        for stage in done.errors:
            self.on_error(stage)
        if done.readout is not None:
            self._readout = done.readout
        return Composite(out, done.scene, done.events)

    def pace(self, busy: float | None) -> None:
        self._busy = busy  # goes with the next frame

    def readout(self, size: tuple[int, int] | None) -> Readout:
        r = self._readout
        r.process = {"state": self.state, "pid": self.pid, "restarts": self.restarts,
                     "frames": self.frames, "bare_frames": self.bare}
        return r


def _enabled_at_start(names: tuple[str, ...]) -> dict[str, bool]:
    enabled = {}
    for name in names:
        try:
            enabled[name] = effect_class(name).enabled_by_default
        except ValueError:
            continue  # the process's chain leaves it out too, with a log line
    return enabled


# The child imports this module as itself (``-m`` would load it twice: once as __main__,
# whose classes would not be the ones the room pickles).
_CHILD = "import sys; from arengine.pipeline.compositor_process import main; main(sys.argv[1:])"


def _child_env() -> dict[str, str]:
    """The room's environment, with this copy of arengine first on the child's path."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return env


def _stop(proc: subprocess.Popen[bytes] | None, conn: Connection) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(2)
    conn.close()


# -- the child -------------------------------------------------------------------------


def serve(conn: Connection, inbuf: mmap.mmap, outbuf: mmap.mmap) -> None:
    """The compositor process: its settings, then frames from ``conn`` until "close" or
    the pipe's end (the room's process closed it, or is gone)."""
    config, gestures, log_level = conn.recv()
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    timings: deque[StageTiming] = deque()
    errors: deque[str] = deque()
    try:
        live = LiveCompositor(config, gestures, timings.append, errors.append)
        live.start()
    except Exception as e:  # a clear line in the room's log, then the room retries
        logger.exception("compositor process could not start")
        conn.send(("failed", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", os.getpid()))
    state: RoomState | None = None
    readout_at = 0.0
    try:
        while isinstance(order := conn.recv(), FrameOrder):
            if order.new_state:
                state = order.state
            if order.busy is not None:
                live.pace(order.busy)
            events, scene = _one_frame(live, inbuf, outbuf, order, state)
            now = time.monotonic()
            readout = None
            if now - readout_at >= READOUT_INTERVAL:
                readout_at = now
                readout = live.readout((order.shape[1], order.shape[0]))
            conn.send(FrameDone(events, scene, _drain(timings), _drain(errors), readout))
    except (EOFError, OSError):
        pass
    finally:
        live.close()


def _one_frame(live: LiveCompositor, inbuf: mmap.mmap, outbuf: mmap.mmap, order: FrameOrder,
               state: RoomState | None) -> tuple[list[GestureEvent], Scene]:
    """Composite the order's frame into the output buffer."""
    # A copy: tracking threads read the frame after it is answered.
    image: np.ndarray = np.ndarray(order.shape, np.uint8, inbuf).copy()
    out = live.process(image, order.timestamp, order.index, state, host=order.host,
                       track=order.track)
    np.copyto(np.ndarray(order.shape, np.uint8, outbuf), out.image)
    s = out.scene  # its extras (a person mask) stay here
    return out.events, Scene(s.width, s.height, s.faces, s.hands, s.timestamp, s.frame_index)


def _drain(items: deque[Any]) -> list[Any]:
    out = []
    while items:
        out.append(items.popleft())
    return out


def main(argv: list[str]) -> None:
    conn_fd, in_fd, out_fd = map(int, argv)
    serve(Connection(conn_fd), mmap.mmap(in_fd, BUFFER_BYTES), mmap.mmap(out_fd, BUFFER_BYTES))

