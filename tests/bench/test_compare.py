from __future__ import annotations

import copy
from typing import Any

import pytest

from arengine.bench.compare import compare, table


def _summary(median: float, p95: float, p99: float) -> dict[str, float]:
    return {"count": 300, "mean": median, "min": median / 2, "median": median, "p95": p95,
            "p99": p99, "max": p99 * 1.1, "std": 1.0}


def _report(decode: tuple[float, float, float], encode: tuple[float, float, float]
            ) -> dict[str, Any]:
    total = tuple(a + b for a, b in zip(decode, encode, strict=True))
    return {
        "schema": "arengine-bench/1", "suite": "full", "started_at": "2026-01-01T00:00:00",
        "machine": {"cpu": "Test CPU", "cores_usable": 2, "gpus": [],
                    "load_average_at_start": [0.1, 0.1, 0.1]},
        "stages": [{"resolution": "720p",
                    "stages": {"decode": _summary(*decode), "encode": _summary(*encode)},
                    "total": _summary(*total),
                    "realtime": {"engine_added": _summary(*total)}}],
        "load": {"points": [{"rooms": 1, "viewers": 1, "latency": _summary(*total)}]},
        "glass": None, "soak": None,
    }


def _row(rows, series: str, q: str):
    return next(r for r in rows if r.series == series and r.quantile == q)


def test_ratios_and_flags() -> None:
    a = _report(decode=(2.0, 2.2, 2.5), encode=(10.0, 11.0, 12.0))
    b = _report(decode=(2.1, 2.3, 2.6), encode=(14.0, 15.0, 16.0))
    rows = compare(a, b)
    enc = _row(rows, "720p encode", "median")
    assert enc.ratio == pytest.approx(1.4)
    assert enc.flag == "regression"  # +40 %, far beyond its 1 ms spread
    dec = _row(rows, "720p decode", "median")
    assert dec.ratio == pytest.approx(1.05)
    assert dec.flag == ""  # +5 % is under the 10 % threshold
    assert _row(rows, "720p total", "p99").flag == "regression"
    assert _row(rows, "load 1 room(s) x 1 viewer(s)", "median").flag == "regression"


def test_change_within_the_runs_own_spread_is_noise() -> None:
    # +20 % median, but p95 sits 50 % above the median in these runs: noise.
    a = _report(decode=(10.0, 15.0, 20.0), encode=(10.0, 11.0, 12.0))
    b = _report(decode=(12.0, 17.0, 21.0), encode=(10.0, 11.0, 12.0))
    rows = compare(a, b)
    assert _row(rows, "720p decode", "median").flag == ""
    assert _row(rows, "720p decode", "median").noise == pytest.approx(5.0)


def test_improvement_is_flagged_and_identical_runs_are_clean() -> None:
    a = _report(decode=(2.0, 2.2, 2.5), encode=(10.0, 11.0, 12.0))
    b = _report(decode=(2.0, 2.2, 2.5), encode=(5.0, 5.5, 6.0))
    assert _row(compare(a, b), "720p encode", "median").flag == "improvement"
    assert all(r.flag == "" and r.ratio == 1.0 for r in compare(a, copy.deepcopy(a)))


def test_threshold_is_configurable() -> None:
    a = _report(decode=(2.0, 2.01, 2.02), encode=(10.0, 10.01, 10.02))
    b = _report(decode=(2.1, 2.11, 2.12), encode=(10.0, 10.01, 10.02))  # +5 %
    assert _row(compare(a, b), "720p decode", "median").flag == ""
    assert _row(compare(a, b, threshold=0.02), "720p decode", "median").flag == "regression"
    with pytest.raises(ValueError):
        compare(a, b, threshold=-1)


def test_table_lists_machines_rows_and_missing_series() -> None:
    a = _report(decode=(2.0, 2.2, 2.5), encode=(10.0, 11.0, 12.0))
    b = copy.deepcopy(a)
    b["stages"][0]["stages"]["encode"] = _summary(20.0, 21.0, 22.0)
    b["stages"][0]["stages"]["effect:lipstick"] = _summary(1.0, 1.1, 1.2)
    text = table(a, b, compare(a, b), "a.json", "b.json")
    assert "Test CPU" in text
    assert "| 720p encode | median | 10.00 | 20.00 | 2.00 |" in text
    assert "**REGRESSION**" in text
    assert "Only in one run: 720p effect:lipstick" in text
    assert "regression(s) beyond noise" in text


def test_tails_are_judged_against_the_tail_spread() -> None:
    # p99 +30 % but these runs' p99 sits 10 ms above the median: a 3 ms move is noise,
    # while the same relative move of a tight median is flagged.
    a = _report(decode=(10.0, 11.0, 20.0), encode=(10.0, 11.0, 12.0))
    b = _report(decode=(13.0, 11.5, 23.0), encode=(10.0, 11.0, 12.0))
    rows = compare(a, b)
    assert _row(rows, "720p decode", "p99").flag == ""
    assert _row(rows, "720p decode", "p99").noise == pytest.approx(10.0)
    assert _row(rows, "720p decode", "median").flag == "regression"
