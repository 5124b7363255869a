"""bench/bench_rooms.py: a short real run writes both layouts, judged, side by side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_rooms_bench_compares_one_process_with_one_per_room(tmp_path: Path,
                                                            data_dir: Path) -> None:
    r = subprocess.run([sys.executable, "bench/bench_rooms.py", "--rooms", "1,2", "--repeat",
                        "1", "--seconds", "2", "--out", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "ARENGINE_DATA": str(data_dir)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "rooms.json").read_text())
    layouts = {(p["rooms"], p["processes"], p["compositor"]) for p in res["points"]}
    assert layouts == {(1, 1, "thread"), (2, 1, "thread"), (2, 1, "process"), (2, 2, "thread")}
    for p in res["points"]:
        assert p["processed"] > 0 and p["ok"] == (p["dropped"] == 0
                                                  and p["latency"]["p99"] <= 33.0)
    md = (tmp_path / "rooms.md").read_text()
    assert "| 2 | 2 | thread | 1 |" in md and "| 2 | 1 | thread | 1 |" in md
    assert "| 2 | 1 | process | 1 |" in md


def test_bad_arguments_exit_2_with_one_line() -> None:
    r = subprocess.run([sys.executable, "bench/bench_rooms.py", "--rooms", "one"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--rooms takes whole numbers" in r.stderr and "Traceback" not in r.stderr
