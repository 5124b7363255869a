"""Glass to glass: camera picture to viewer's screen, through the real server and browser.

The measurement itself is the server's browser loopback harness (``bench/bench_e2e.py``):
a fake camera burns frame ids (:mod:`arengine.bench.frameid`) into a canvas, publishes it
over WHIP, the engine processes it, a WHEP viewer in the same browser reads the ids back
and the time between drawing and seeing each id is one sample. Both ends share one clock,
so no clock sync is needed. All effects on and pass-through run side by side in one run,
so the difference is what the effects cost, on the same machine load.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from arengine.bench.stats import summarize
from arengine.data import REPO_DIR

HARNESS = REPO_DIR / "bench" / "bench_e2e.py"


def _load_harness() -> Any:
    spec = importlib.util.spec_from_file_location("arengine_bench_e2e", HARNESS)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HARNESS.name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summarize_paths(samples: dict[str, list[float]]) -> dict[str, Any]:
    """Percentiles per path and the effects-minus-pass-through difference."""
    paths = {k: summarize(v).to_dict() for k, v in samples.items() if v}
    out: dict[str, Any] = {"status": "measured", "paths": paths}
    if "effects" in paths and "passthrough" in paths:
        out["difference_ms"] = {q: paths["effects"][q] - paths["passthrough"][q]
                                for q in ("median", "p95", "p99")}
    return out


def run_glass(seconds: float, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the loopback harness when it is there; otherwise say why nothing was measured."""
    if not HARNESS.is_file():
        return {"status": "not measured",
                "reason": "the browser loopback harness (bench/bench_e2e.py) is not in "
                          "this checkout"}
    try:
        harness = _load_harness()
    except Exception as e:
        return {"status": "not measured", "reason": f"the harness failed to load: {e}"}
    measure = getattr(harness, "measure", None)
    if not callable(measure):
        return {"status": "not measured",
                "reason": "bench/bench_e2e.py has no measure(seconds) -> samples function"}
    if progress is not None:
        progress(f"glass to glass: {seconds:g} s per path through the browser loopback")
    try:
        samples = measure(seconds)
    except Exception as e:
        return {"status": "not measured", "reason": f"the harness failed: {e}"}
    return summarize_paths(samples)
