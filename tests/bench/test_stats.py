from __future__ import annotations

import numpy as np
import pytest

from arengine.bench.stats import clock_resolution_ns, percentile, slope, summarize


@pytest.mark.parametrize("q", [0, 1, 5, 25, 50, 75, 90, 95, 99, 99.9, 100])
@pytest.mark.parametrize("n", [1, 2, 3, 10, 299, 300, 1001])
def test_percentile_matches_numpy_linear(q: float, n: int) -> None:
    rng = np.random.default_rng(n)
    data = rng.lognormal(3.0, 0.5, n)  # latency-like: long right tail
    assert percentile(data, q) == pytest.approx(np.percentile(data, q, method="linear"),
                                                rel=1e-12, abs=1e-12)


def test_percentile_known_values() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([4, 3, 2, 1], 0) == 1
    assert percentile([4, 3, 2, 1], 100) == 4
    # p99 of 1..100 lies 0.01 of the way from 99 to 100 (rank 98.01 of 0..99)
    assert percentile(range(1, 101), 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    assert percentile([5, 5, 5], 95) == 5


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)
    with pytest.raises(ValueError, match="finite"):
        percentile([1.0, float("nan")], 50)
    with pytest.raises(ValueError, match="finite"):
        percentile([1.0, float("inf")], 50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], -1)


def test_summary_fields() -> None:
    data = np.arange(1, 301, dtype=float)
    s = summarize(data)
    assert s.count == 300
    assert s.min == 1 and s.max == 300
    assert s.median == pytest.approx(np.median(data))
    assert s.p95 == pytest.approx(np.percentile(data, 95))
    assert s.p99 == pytest.approx(np.percentile(data, 99))
    assert s.mean == pytest.approx(150.5)
    assert s.std == pytest.approx(np.std(data, ddof=1))
    assert s.spread == pytest.approx(s.p95 - s.median)
    assert type(s).from_dict(s.to_dict()) == s
    one = summarize([3.0])
    assert (one.std, one.median, one.p99) == (0.0, 3.0, 3.0)


def test_slope() -> None:
    x = np.arange(100, dtype=float)
    assert slope(x, 2.5 * x + 7) == pytest.approx(2.5)
    assert slope(x, np.full(100, 4.0)) == pytest.approx(0.0)
    assert slope([1.0], [2.0]) == 0.0
    assert slope([1.0, 1.0], [2.0, 3.0]) == 0.0
    with pytest.raises(ValueError):
        slope([1.0, 2.0], [1.0])


def test_clock_resolution_is_sub_millisecond() -> None:
    # perf_counter_ns on Linux steps in tens of nanoseconds; a millisecond step would
    # make every per-stage figure in the report meaningless.
    assert 0 < clock_resolution_ns() < 1_000_000
