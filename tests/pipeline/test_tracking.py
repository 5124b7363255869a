"""TrackingWorker: results per frame size, errors that do not stop it, lower OS priority."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from arengine.pipeline.tracking import TrackingWorker, TrackRequest


def _wait(cond: Callable[[], object], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def _priority_worker(nice: int) -> tuple[TrackingWorker[int], list[int]]:
    seen: list[int] = []

    def infer(model: object, req: TrackRequest) -> int:
        prio = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        seen.append(prio)
        return prio

    return TrackingWorker("probe", object, infer, nice=nice), seen


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX priorities")
@pytest.mark.parametrize("nice", [0, 5])
def test_worker_thread_runs_at_the_asked_lower_priority(nice: int) -> None:
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    worker, seen = _priority_worker(nice)
    try:
        worker.submit(np.zeros((8, 8, 3), np.uint8), 0.0, 0)
        _wait(lambda: seen)
        assert seen[0] == min(19, base + nice)
        assert worker.latest(8, 8) == seen[0]
        assert worker.latest(16, 8) is None  # a result is only for frames of its size
        # Only the worker's thread was lowered: the frame path keeps its priority.
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base
        assert os.getpriority(os.PRIO_PROCESS, 0) == base
    finally:
        worker.close()


def test_worker_keeps_going_after_an_inference_error() -> None:
    errors: list[str] = []

    def infer(model: object, req: TrackRequest) -> int:
        if req.frame_index == 0:
            raise RuntimeError("bad frame")
        return req.frame_index

    worker: TrackingWorker[int] = TrackingWorker("flaky", object, infer,
                                                 on_error=errors.append)
    try:
        worker.submit(np.zeros((4, 4, 3), np.uint8), 0.0, 0)
        _wait(lambda: errors)
        worker.submit(np.zeros((4, 4, 3), np.uint8), 0.033, 1)
        _wait(lambda: worker.latest(4, 4) == 1)
        assert errors == ["flaky"] and worker.processed == 1
    finally:
        worker.close()


@pytest.mark.parametrize("found, most", [(False, 4), (True, None)])
def test_worker_searches_slower_while_it_finds_nothing(found: bool, most: int | None) -> None:
    calls: list[float] = []

    def infer(model: object, req: TrackRequest) -> int:
        calls.append(time.monotonic())
        return int(found)

    worker: TrackingWorker[int] = TrackingWorker(
        "hands", object, infer, min_interval=0.0, idle_interval=0.2,
        is_idle=lambda n: n == 0)
    try:
        end = time.monotonic() + 0.5
        i = 0
        while time.monotonic() < end:  # a 200 fps source
            worker.submit(np.zeros((4, 4, 3), np.uint8), i / 200, i)
            i += 1
            time.sleep(0.005)
    finally:
        worker.close()
    if most is not None:  # nothing found: one call, then one every 0.2 s
        assert 2 <= len(calls) <= most
        assert min(np.diff(calls)) >= 0.19
    else:  # found: it keeps up with the source
        assert len(calls) >= 20


def test_idle_interval_needs_its_test() -> None:
    with pytest.raises(ValueError, match="go together"):
        TrackingWorker("x", object, lambda m, r: 0, idle_interval=0.2)
