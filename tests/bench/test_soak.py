from __future__ import annotations

import pytest

from arengine.bench.soak import soak


@pytest.mark.slow
def test_short_soak_reports_drift_and_memory() -> None:
    r = soak(minutes=0.08)  # ~5 s: the mechanics, not a real soak
    assert r["processed"] > 0
    assert len(r["samples_ms"]) == len(r["samples_t_s"]) == r["processed"]
    assert r["rss_start_mb"] > 50  # MediaPipe and friends are loaded
    assert r["rss_samples"], "RSS is sampled every second"
    assert isinstance(r["drift_ms_per_min"], float)
    assert isinstance(r["rss_growth_mb_per_min"], float)
    assert r["first_p50_ms"] is not None
