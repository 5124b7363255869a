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


@pytest.mark.slow
def test_aiortc_loopback_reads_ids_on_both_paths() -> None:
    from arengine.bench.glass import loopback

    r = loopback(seconds=3.0, warmup=1.0)
    assert r["status"] == "measured"
    for path in ("effects", "passthrough"):
        s = r["paths"][path]
        assert s["count"] > 0
        # Real latency through two encoders and two decoders is never below a few ms, and
        # a frame id read back wrongly would give nonsense (negative or huge) values.
        assert 1.0 < s["median"] < 10_000
    assert set(r["difference_ms"]) == {"median", "p95", "p99"}
