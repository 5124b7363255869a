"""``arengine bench compare A.json B.json``: ratios between two runs, regressions flagged.

Noise rule: a figure counts as a regression only when B is worse than A by more than
``threshold`` (10 % by default) AND by more than the runs' own noise for that series: the
larger of the two runs' p95 - median spread for the median, and of their p99 - median
spread for the tail quantiles (p95, p99), which wobble by about their own width from run
to run. A 12 % slower median on a series whose p95 sits 40 % above its median is noise;
the same 12 % on a tight series is not.
Improvements are flagged the same way, so a suspiciously fast run is visible too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_THRESHOLD = 0.10
QUANTILES = ("median", "p95", "p99")


@dataclass(frozen=True)
class Row:
    """One figure of both runs. ``ratio`` is B / A (> 1: B is slower)."""

    series: str
    quantile: str
    a: float
    b: float
    noise: float
    flag: str  # "regression", "improvement" or ""

    @property
    def ratio(self) -> float:
        return self.b / self.a if self.a > 0 else float("inf") if self.b > 0 else 1.0


def _series(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Every latency summary in a report, by a stable name."""
    out: dict[str, dict[str, float]] = {}
    for p in report.get("stages") or []:
        r = p["resolution"]
        for stage, s in p["stages"].items():
            out[f"{r} {stage}"] = s
        out[f"{r} total"] = p["total"]
        out[f"{r} engine-added (replay)"] = p["realtime"]["engine_added"]
    load = report.get("load") or {}
    for p in load.get("points", []):
        if p.get("latency"):
            out[f"load {p['rooms']} room(s) x {p['viewers']} viewer(s)"] = p["latency"]
    glass = report.get("glass") or {}
    for name, s in (glass.get("paths") or {}).items():
        out[f"glass {name}"] = s
    soak = report.get("soak") or {}
    if soak.get("latency"):
        out["soak"] = soak["latency"]
    return out


def compare(a: dict[str, Any], b: dict[str, Any],
            threshold: float = DEFAULT_THRESHOLD) -> list[Row]:
    """Rows for every series both runs have, in A's order."""
    if threshold < 0:
        raise ValueError("threshold must be >= 0")
    sa, sb = _series(a), _series(b)
    rows = []
    for name, x in sa.items():
        y = sb.get(name)
        if y is None:
            continue
        body = max(x["p95"] - x["median"], y["p95"] - y["median"], 0.0)
        tail = max(x["p99"] - x["median"], y["p99"] - y["median"], body)
        for q in QUANTILES:
            noise = body if q == "median" else tail
            va, vb = float(x[q]), float(y[q])
            diff = vb - va
            flag = ""
            if abs(diff) > threshold * max(va, 1e-9) and abs(diff) > noise:
                flag = "regression" if diff > 0 else "improvement"
            rows.append(Row(name, q, va, vb, noise, flag))
    return rows


def table(a: dict[str, Any], b: dict[str, Any], rows: list[Row], a_name: str = "A",
          b_name: str = "B", threshold: float = DEFAULT_THRESHOLD) -> str:
    """The comparison as Markdown: machines first, then one row per figure."""
    def machine(r: dict[str, Any]) -> str:
        m = r["machine"]
        gpu = ", ".join(g["name"] for g in m.get("gpus", [])) or "no GPU"
        return (f"{m['cpu']}, {m['cores_usable']} cores, {gpu}, load "
                f"{m.get('load_average_at_start')}, {r['suite']} suite, {r['started_at']}")

    lines = [f"A: {a_name} ({machine(a)})", f"B: {b_name} ({machine(b)})", "",
             f"Regression: B worse than A by > {threshold:.0%} and by more than the noise "
             "(larger p95-median spread of the two runs for medians, p99-median for tails).",
             "", "| series | quantile | A ms | B ms | B/A | noise ms | flag |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        flag = {"regression": "**REGRESSION**", "improvement": "improvement"}.get(r.flag, "")
        lines.append(f"| {r.series} | {r.quantile} | {r.a:.2f} | {r.b:.2f} | {r.ratio:.2f} | "
                     f"{r.noise:.2f} | {flag} |")
    missing = sorted(set(_series(a)) ^ set(_series(b)))
    if missing:
        lines += ["", "Only in one run: " + ", ".join(missing)]
    n = sum(1 for r in rows if r.flag == "regression")
    lines += ["", f"{n} regression(s) beyond noise." if n else "No regression beyond noise."]
    return "\n".join(lines)
