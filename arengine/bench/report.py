"""The benchmark's outputs: one JSON with every figure, a Markdown summary, PNG plots.

The JSON is the record (``compare`` reads it); the Markdown is what a person reads first;
the plots show what percentiles hide (a bimodal distribution, a slow drift).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = "arengine-bench/1"


@dataclass(frozen=True)
class Verdict:
    """One figure held against its target."""

    name: str
    value: float | None
    target: float | None
    unit: str
    status: str  # "PASS", "FAIL", "NOT MEASURED" or "INFO" (shown, not judged)
    note: str = ""
    op: str = "<="  # how value must compare with target

    def line(self) -> str:
        v = "n/a" if self.value is None else f"{self.value:.1f} {self.unit}".rstrip()
        t = "" if self.target is None else \
            f" (target {self.op} {self.target:g} {self.unit})".replace(" )", ")")
        n = f" - {self.note}" if self.note else ""
        return f"{self.status}: {self.name} = {v}{t}{n}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "target": self.target,
                "unit": self.unit, "status": self.status, "note": self.note, "op": self.op}


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def write_outputs(out: Path, name: str, report: dict[str, Any], table: str) -> str:
    """A benchmark script's ``<name>.json`` (every figure) and ``<name>.md`` (``table``)
    in ``out``, made if missing; returns ``table`` to print."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{name}.md").write_text(table)
    return table


def load_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not an arengine bench report (schema {SCHEMA})")
    return data


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    """A short human summary: verdicts first, then one table per suite."""
    m = report["machine"]
    lines = [f"# arengine bench ({report['suite']} suite)", "",
             f"Run {report['started_at']} on {m['cpu']} ({m['cores_usable']} cores"
             + (f", GPU: {', '.join(g['name'] for g in m['gpus'])}" if m["gpus"] else
                ", no NVIDIA GPU") + f"); load average at start {m['load_average_at_start']}"
             + (f", at end {report['load_average_at_end']}" if report.get("load_average_at_end")
                else "") + (f"; took {report['wall_s']:.0f} s" if report.get("wall_s") else "")
             + ".",
             f"Clock: {m['clock']['function']} ({m['clock']['implementation']}, measured step "
             f"{m['clock']['measured_step_ns']} ns). Percentiles: {report['percentile_method']}.",
             ""]
    for note in report.get("notes", []):
        lines.append(f"- {note}")
    lines += ["", "## Targets", ""]
    lines += [f"- {v['status']}: {Verdict(**v).line().split(': ', 1)[1]}"
              for v in report["verdicts"]]
    lines += ["", f"Result: **{'all targets met' if report['met'] else 'targets NOT met'}**", ""]

    stages = report.get("stages") or []
    if stages:
        lines += ["## Stage latency (ms per frame, back to back)", "",
                  "| resolution | frames | stage | median | p95 | p99 | max | where |",
                  "|---|---:|---|---:|---:|---:|---:|---|"]
        for p in stages:
            for name, s in [*p["stages"].items(), ("total", p["total"])]:
                where = p["where"].get(name.removeprefix("effect:"), "")
                lines.append(f"| {p['resolution']} | {p['frames']} | {name} | "
                             f"{_fmt(s['median'])} | {_fmt(s['p95'])} | {_fmt(s['p99'])} | "
                             f"{_fmt(s['max'])} | {where} |")
        lines += ["", "## Real-time replay at the source rate (newest frame wins)", "",
                  "| resolution | fps in | achieved fps | dropped | engine-added p50 | p95 | "
                  "p99 | face found | lipstick ok |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for p in stages:
            r, c = p["realtime"], p["checks"]
            e = r["engine_added"]
            lines.append(
                f"| {p['resolution']} | {p['fps_target']:g} | {r['achieved_fps']:.1f} | "
                f"{r['dropped']} ({100 * r['dropped_share']:.0f}%) | {_fmt(e['median'])} | "
                f"{_fmt(e['p95'])} | {_fmt(e['p99'])} | {100 * c['face_found_share']:.0f}% | "
                f"{c['lipstick_moved_toward_shade']}/{c['lipstick_checked']} |")
        lines.append("")

    load = report.get("load")
    if load:
        layout = "a process per room" if load.get("processes") else "threads in one process"
        lines += [f"## Load (rooms at 720p30, real-time paced, {layout})", "",
                  "| rooms | viewers/room | frames | dropped | p50 | p95 | p99 | ok |",
                  "|---:|---:|---:|---:|---:|---:|---:|---|"]
        for p in load["points"]:
            s = p["latency"]
            lines.append(f"| {p['rooms']} | {p['viewers']} | {p['processed']} | "
                         f"{p['dropped']} | {_fmt(s['median'] if s else None)} | "
                         f"{_fmt(s['p95'] if s else None)} | {_fmt(s['p99'] if s else None)} | "
                         f"{'yes' if p['ok'] else 'no'} |")
        best = load.get("largest_ok")
        lines += ["", "Largest load within target with no frame dropped: "
                  + (f"{best['rooms']} room(s) x {best['viewers']} viewer(s)" if best
                     else "none (even one room drops frames or misses the target)"), ""]

    glass = report.get("glass")
    if glass:
        lines += ["## Glass to glass", ""]
        if glass.get("status") != "measured":
            lines += [f"Not measured: {glass.get('reason', '')}", ""]
        else:
            if glass.get("method"):
                lines += [f"Method: {glass['method']}.", ""]
            share = glass.get("frames_received_share", {})
            lines += ["| path | frames | received | p50 | p95 | p99 |",
                      "|---|---:|---:|---:|---:|---:|"]
            for name, s in glass["paths"].items():
                got = f"{100 * share[name]:.0f}%" if name in share else "-"
                lines.append(f"| {name} | {s['count']} | {got} | {_fmt(s['median'])} | "
                             f"{_fmt(s['p95'])} | {_fmt(s['p99'])} |")
            d = glass.get("difference_ms", {})
            lines += ["", f"Effects add p50 {_fmt(d.get('median'))} ms, p95 "
                      f"{_fmt(d.get('p95'))} ms, p99 {_fmt(d.get('p99'))} ms.", ""]

    soak = report.get("soak")
    if soak:
        lines += ["## Soak", "",
                  f"{soak['minutes']:g} min at {soak['resolution']}: {soak['processed']} frames, "
                  f"{soak['dropped']} dropped; latency drift {soak['drift_ms_per_min']:+.2f} "
                  f"ms/min (p50 first minute {_fmt(soak['first_p50_ms'])} ms, last "
                  f"{_fmt(soak['last_p50_ms'])} ms); RSS {soak['rss_start_mb']:.0f} -> "
                  f"{soak['rss_end_mb']:.0f} MiB ({soak['rss_growth_mb_per_min']:+.2f} "
                  "MiB/min).", ""]
    if report.get("plots"):
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in report["plots"]] + [""]
    return "\n".join(lines)


def plots(report: dict[str, Any], out: Path) -> list[str]:
    """Write the PNG plots next to the report; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target_g2g = report["targets"].get("glass_p99_ms")
    target_engine = report["targets"].get("engine_p99_ms")
    names: list[str] = []
    stages = report.get("stages") or []
    if stages:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        data = [p["samples_ms"]["engine_added"] for p in stages]
        ax.boxplot(data, whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
        ax.set_xticks(range(1, len(stages) + 1), [p["resolution"] for p in stages])
        if target_g2g:
            ax.axhline(target_g2g, color="red", ls="--",
                       label=f"{target_g2g:g} ms glass-to-glass target")
        if target_engine:
            ax.axhline(target_engine, color="orange", ls=":",
                       label=f"{target_engine:g} ms engine-added p99 target")
        ax.set_yscale("log")
        ax.set_ylabel("engine-added latency, ms (log)")
        ax.set_title("Latency per resolution (box: quartiles, whiskers: p1-p99)")
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "latency_by_resolution.png", dpi=110)
        plt.close(fig)
        names.append("latency_by_resolution.png")

        fig, ax = plt.subplots(figsize=(8, 4.5))
        stage_names: list[str] = []
        for p in stages:
            for s in p["stages"]:
                if s not in stage_names:
                    stage_names.append(s)
        # Pipeline order: input, tracking, effects, then encode on top.
        stage_names.sort(key=lambda s: (s == "encode", s.startswith("effect:")))
        bottom = [0.0] * len(stages)
        for s in stage_names:
            vals = [p["stages"].get(s, {}).get("median", 0.0) for p in stages]
            ax.bar([p["resolution"] for p in stages], vals, bottom=bottom, label=s)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        if target_engine:
            ax.axhline(target_engine, color="orange", ls=":", label=f"{target_engine:g} ms")
        ax.set_ylabel("median ms per frame")
        ax.set_title("Stage breakdown (medians, stacked)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "stage_breakdown.png", dpi=110)
        plt.close(fig)
        names.append("stage_breakdown.png")

    soak = report.get("soak")
    if stages or soak:
        rows = int(bool(stages)) + int(bool(soak))
        fig, axes = plt.subplots(rows, 1, figsize=(8, 4.0 * rows), squeeze=False)
        k = 0
        if stages:
            ax = axes[k][0]
            k += 1
            for p in stages:
                ax.plot(p["samples_ms"]["total"], lw=0.7, label=p["resolution"])
            ax.set_xlabel("timed frame")
            ax.set_ylabel("ms per frame (log)")
            ax.set_yscale("log")
            ax.set_title("Stage pipeline, frame by frame (back to back)")
            ax.legend(fontsize=8)
        if soak:
            ax = axes[k][0]
            ax.plot(soak["samples_t_s"], soak["samples_ms"], lw=0.5, color="tab:blue",
                    label="latency")
            ax.set_xlabel("seconds")
            ax.set_ylabel("server latency, ms", color="tab:blue")
            ax.set_title(f"Soak: {soak['drift_ms_per_min']:+.2f} ms/min, RSS "
                         f"{soak['rss_growth_mb_per_min']:+.2f} MiB/min")
            if soak.get("rss_samples"):
                ax2 = ax.twinx()
                ax2.plot([t for t, _ in soak["rss_samples"]],
                         [v for _, v in soak["rss_samples"]], color="tab:red", lw=1.0)
                ax2.set_ylabel("RSS, MiB", color="tab:red")
        fig.tight_layout()
        fig.savefig(out / "latency_over_time.png", dpi=110)
        plt.close(fig)
        names.append("latency_over_time.png")
    return names
