"""The compositor in a process of its own: the same pictures as on the room's thread, and a
process that dies, hangs or is orphaned never holds a frame or outlives the room."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from arengine.demo import DemoSource
from arengine.effects.chain import EffectChain
from arengine.pipeline import RoomConfig, RoomPipeline
from arengine.pipeline.compositor_process import STAGE, CompositorProcess
from arengine.pipeline.live import LiveCompositor
from arengine.state import LikeGoalView, PollOptionView, PollView, ProductView, RoomState
from arengine.types import StageTiming

# No tracking: what is drawn then depends on the frames and the state only, so the two
# compositors must agree to the pixel.
CONFIG = RoomConfig(demo_size=(320, 180), fps=15, track_faces=False, track_hands=False,
                    gestures=False, effects=("lipstick", "vote_sticker", "likes", "product"))
POLL = PollView("p1", "Which shade next?", (PollOptionView("Plum", 3, "velvet-plum", "#6b2140"),
                                            PollOptionView("Ruby", 1, "velvet-ruby", "#9b111e")),
                opened_at=0.0, closes_at=1e12)
STATES = [RoomState("r", seq=1, shade_id="velvet-plum"),
          RoomState("r", seq=2, shade_id="velvet-plum", poll=POLL,
                    like_goal=LikeGoalView(500, 120, "500 likes: a giveaway"),
                    product=ProductView("lip-07", "Velvet Plum", "$19.90"))]


class Recorder:
    def __init__(self) -> None:
        self.timings: list[StageTiming] = []
        self.errors: list[str] = []


def started(config: RoomConfig = CONFIG, **kw: object) -> tuple[CompositorProcess, Recorder]:
    rec = Recorder()
    proc = CompositorProcess(config, False, rec.timings.append, rec.errors.append, "t",
                             **kw)  # type: ignore[arg-type]
    proc.start()
    assert proc.wait_ready(60), "the compositor process never became ready"
    return proc, rec


def frames(n: int) -> list[np.ndarray]:
    demo = DemoSource(320, 180, fps=15)
    return [demo.frame_at(i / 15) for i in range(n)]


def test_the_process_draws_what_the_thread_draws() -> None:
    rec = Recorder()
    thread = LiveCompositor(CONFIG, False, rec.timings.append, rec.errors.append)
    thread.start()
    proc, prec = started()
    try:
        for i, image in enumerate(frames(12)):
            state = STATES[i // 6]  # a new snapshot halfway: the poll and card appear
            a = thread.process(image.copy(), i / 15, i, state, host=True, track=True)
            b = proc.process(image.copy(), i / 15, i, state, host=True, track=True)
            assert np.array_equal(a.image, b.image), f"frame {i} differs"
            assert b.scene.timestamp == i / 15 and b.scene.frame_index == i
        assert not np.array_equal(b.image, image)  # the layers did draw
        time.sleep(0.25)  # the next answer carries a readout
        proc.process(image.copy(), 1.0, 12, state, host=True, track=True)
        assert proc.readout((320, 180)).click_regions == thread.click_regions((320, 180))
        assert proc.readout((320, 180)).click_regions  # the product card
        assert proc.readout(None).enabled == thread.readout(None).enabled
        assert {"effects", "effect:lipstick", "effect:vote_sticker"} <= \
            {t.stage for t in prec.timings}
        assert prec.errors == []
        assert proc.readout(None).process == {"state": "running", "pid": proc.pid,
                                               "restarts": 0, "frames": 13, "bare_frames": 0}
    finally:
        thread.close()
        proc.close()


def test_until_the_process_is_ready_frames_go_out_bare_and_counted() -> None:
    rec = Recorder()
    proc = CompositorProcess(CONFIG, False, rec.timings.append, rec.errors.append, "t")
    image = frames(1)[0]
    try:
        out = proc.process(image.copy(), 0.0, 0, STATES[1], host=True, track=True)  # not started
        assert np.array_equal(out.image, image) and rec.errors == [STAGE]
        assert proc.readout(None).process["bare_frames"] == 1  # type: ignore[index]
        # Before the process's first readout, the layers it will have (the host console
        # lists them meanwhile); a virtual host starts off.
        assert proc.readout(None).enabled == {n: True for n in CONFIG.effects}
        later = CompositorProcess(replace(CONFIG, effects=("virtual_host", "lipstick", "nope")),
                                  False, rec.timings.append, rec.errors.append)
        assert later.readout(None).enabled == {"virtual_host": False, "lipstick": True}
    finally:
        proc.close()


def test_a_killed_process_is_replaced_and_no_frame_waits_for_it(caplog) -> None:
    caplog.set_level(logging.ERROR)
    proc, rec = started()
    image = frames(1)[0]
    try:
        proc.process(image.copy(), 0.0, 0, STATES[1], host=True, track=True)
        first = proc.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        time.sleep(0.2)
        t0 = time.monotonic()
        out = proc.process(image.copy(), 0.1, 1, STATES[1], host=True, track=True)
        assert time.monotonic() - t0 < 1.0  # the pipe's end shows at once
        assert np.array_equal(out.image, image) and rec.errors == [STAGE]
        assert "compositor process lost" in caplog.text
        assert proc.wait_ready(60) and proc.pid not in (None, first)
        again = proc.process(image.copy(), 0.2, 2, STATES[1], host=True, track=True)
        assert not np.array_equal(again.image, image)  # drawn again, state sent again
        assert proc.readout(None).process["restarts"] == 1  # type: ignore[index]
    finally:
        proc.close()


def test_a_hung_process_is_replaced_after_the_answer_timeout(caplog) -> None:
    caplog.set_level(logging.ERROR)
    proc, rec = started(answer_timeout=0.5)
    image = frames(1)[0]
    try:
        stuck = proc.pid
        assert stuck is not None
        os.kill(stuck, signal.SIGSTOP)
        t0 = time.monotonic()
        out = proc.process(image.copy(), 0.0, 0, STATES[0], host=True, track=True)
        assert 0.4 < time.monotonic() - t0 < 2.0
        assert np.array_equal(out.image, image) and rec.errors == [STAGE]
        assert "no answer in 0.5 s" in caplog.text
        assert proc.wait_ready(60) and proc.pid != stuck
        with pytest.raises(ProcessLookupError):  # the stopped one was killed and reaped
            os.kill(stuck, 0)
    finally:
        proc.close()


def test_close_ends_the_process() -> None:
    proc, _ = started()
    pid = proc.pid
    assert pid is not None
    proc.close()
    assert proc.state == "closed" and proc.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    image = frames(1)[0]  # a late frame after close goes out bare, no error raised
    assert np.array_equal(proc.process(image.copy(), 0.0, 0, None, host=True,
                                       track=True).image, image)


def test_the_process_ends_with_the_room_process_that_started_it() -> None:
    """A room's process killed outright (no close) leaves no compositor behind."""
    script = (
        "import os, sys\n"
        "from arengine.pipeline.compositor_process import CompositorProcess\n"
        "from arengine.pipeline import RoomConfig\n"
        "p = CompositorProcess(RoomConfig(track_faces=False, track_hands=False, effects=()),"
        " False, print, print)\n"
        "p.start()\n"
        "assert p.wait_ready(60)\n"
        "print(p.pid, flush=True)\n"
        "os._exit(0)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    child = int(out.stdout.split()[-1])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the compositor process outlived the process that started it")


def test_a_frame_over_the_buffer_goes_out_bare_with_one_log_line(caplog, monkeypatch) -> None:
    caplog.set_level(logging.ERROR)
    monkeypatch.setattr("arengine.pipeline.compositor_process.BUFFER_BYTES", 100)
    rec = Recorder()
    proc = CompositorProcess(CONFIG, False, rec.timings.append, rec.errors.append, "t")
    image = frames(1)[0]
    try:
        for i in range(3):
            out = proc.process(image.copy(), 0.0, i, None, host=True, track=True)
            assert np.array_equal(out.image, image)
        assert rec.errors == [STAGE] * 3
        assert caplog.text.count("over the compositor's 100 bytes") == 1
    finally:
        proc.close()


def test_a_room_with_a_compositor_process_encodes_drawn_frames() -> None:
    async def main() -> None:
        room = RoomPipeline("r", replace(CONFIG, compositor="process"),
                            state=lambda: STATES[1])
        await room.start()
        try:
            packets = room.subscribe_packets(room.viewer_spec("vp8"))
            assert await asyncio.to_thread(room.compositor.wait_ready, 60)  # type: ignore
            for _ in range(100):
                stats = room.stats()
                if stats["compositor"].get("frames", 0) >= 10 and room.click_regions():
                    break
                await asyncio.sleep(0.05)
            assert stats["compositor"]["where"] == "process"
            assert stats["compositor"]["state"] == "running"
            assert stats["effects"] == {n: True for n in CONFIG.effects}
            assert "effect:product" in stats["stages"]
            assert room.click_regions() and room.click_regions()[0]["layer"] == "product"
            assert packets is not None
            with pytest.raises(RuntimeError, match="compositor process"):
                room.effects  # noqa: B018 (the chain is in the other process)
        finally:
            await room.close()
        assert room.compositor.readout(None).process["state"] == "closed"  # type: ignore

    asyncio.run(main())


def test_a_process_room_refuses_an_effect_chain_of_this_process() -> None:
    with pytest.raises(ValueError, match="compositor='thread'"):
        RoomPipeline("r", replace(CONFIG, compositor="process"), effects=EffectChain(()))
