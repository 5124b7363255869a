from __future__ import annotations

import pytest

from arengine.bench.glass import summarize_paths


def test_summarize_paths_gives_the_effects_cost() -> None:
    s = summarize_paths({"effects": [100.0 + i for i in range(100)],
                         "passthrough": [80.0 + i for i in range(100)]})
    assert s["status"] == "measured"
    assert s["paths"]["effects"]["count"] == 100
    assert s["difference_ms"]["median"] == pytest.approx(20.0)
    assert s["difference_ms"]["p99"] == pytest.approx(20.0)
