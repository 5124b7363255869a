"""``arengine tryon``: virtual lipstick on a picture or a video file, offline.

The same tracker and lipstick effect as the live engine, run over a file: pictures are
tracked in image mode (fresh detection), videos in video mode (tracked and smoothed, as
on stream). The output keeps the input's frame rate, timestamps and audio. ``--report``
writes per-frame stage timings and tracking quality figures as JSON, so a try-on run
doubles as a reproducible measurement on a given clip.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TextIO

from arengine.errors import UserError
from arengine.render.backend import add_render_argument, select_backend
from arengine.types import LIPS_INNER, LIPS_OUTER, Frame, StageTiming

STAGES = ("decode", "track", "effect", "encode")
LIP_POINTS = LIPS_OUTER + LIPS_INNER


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "tryon", help="apply virtual lipstick to a picture or video file",
        description="Apply virtual lipstick to every face in a picture (png, jpg) or a video "
                    "(mp4, mov, mkv, webm, mpg, y4m). Videos keep their frame rate, "
                    "timestamps and audio.")
    p.add_argument("input", nargs="?", metavar="INPUT", help="picture or video file")
    p.add_argument("-o", "--output", metavar="OUTPUT",
                   help="output file; its extension picks the format")
    p.add_argument("--shade", default=None, metavar="ID",
                   help="shade id from the catalog (see --list-shades); "
                        "default: the catalog's default shade")
    p.add_argument("--list-shades", action="store_true",
                   help="print the shade catalog and exit")
    p.add_argument("--report", metavar="JSON", help="write timings and tracking figures here")
    p.add_argument("--intensity", type=float, default=1.0,
                   help="lipstick strength from 0 to 1 (default 1)")
    p.add_argument("--no-hands", action="store_true",
                   help="skip hand tracking (hands then do not cover the lipstick)")
    p.add_argument("--character", metavar="NAME", default=None,
                   help="a virtual host character (assets/characters/NAME.json) driven by "
                        "the face in the file; --report then holds its per-frame rig")
    p.add_argument("--mode", choices=("replace", "beside"), default="replace",
                   help="with --character: replace the person (default) or stand beside")
    p.add_argument("--background", choices=("studio", "room", "green"), default="studio",
                   help="with --character in replace mode: the drawn studio (default), the "
                        "room with the person removed, or chroma green")
    add_render_argument(p)
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="progress bar on stderr: auto shows it when stderr is a terminal")
    p.set_defaults(run=run)


def shade_table(out: TextIO) -> None:
    """The catalog as an aligned text table: id, name, line, finish, hex."""
    from arengine.catalog import default_catalog

    rows = [("ID", "NAME", "LINE", "FINISH", "HEX")]
    rows += [(s.id, s.name, s.line, s.finish, s.hex) for s in default_catalog()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _check_paths(src: Path, dst: Path) -> None:
    if not src.exists():
        raise UserError(f"no such file: {src}")
    if src.resolve() == dst.resolve() or (dst.exists() and os.path.samefile(src, dst)):
        raise UserError(f"the output {dst} is the input; choose another output file")
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"output folder does not exist: {parent}")


@contextmanager
def _media_warnings() -> Iterator[None]:
    """Media warnings (audio left out, a broken container) in this command's own format."""
    logger = logging.getLogger("arengine.media")
    handler = logging.StreamHandler()  # writes to sys.stderr as it is at each call
    handler.setFormatter(logging.Formatter("arengine tryon: warning: %(message)s"))
    handler.setLevel(logging.WARNING)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _warn(message: str) -> None:
    print(f"arengine tryon: warning: {message}", file=sys.stderr)


class _Timer:
    """Collects per-frame stage durations around the processing code, not inside it."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.clock_resolution_ns = int(time.get_clock_info("perf_counter").resolution * 1e9)

    @staticmethod
    def now() -> int:
        return time.perf_counter_ns()

    def summary(self) -> dict[str, Any]:
        from arengine.bench.stats import summarize

        out: dict[str, Any] = {}
        keys = [*STAGES, "track_face", "track_hands", "virtual_host", "segment", "total"]
        for k in keys:
            values = [r[f"{k}_ms"] for r in self.rows if r.get(f"{k}_ms") is not None]
            if values:
                s = summarize(values)
                out[k] = {"median_ms": round(s.median, 3), "p95_ms": round(s.p95, 3),
                          "p99_ms": round(s.p99, 3), "mean_ms": round(s.mean, 3),
                          "max_ms": round(s.max, 3)}
        return out


def _ms(a: int, b: int) -> float:
    return round((b - a) / 1e6, 3)


def _timed_frames(frames: Iterator[Frame]) -> Iterator[tuple[Frame, int, int]]:
    """Each frame with the perf_counter_ns before and after decoding it."""
    while True:
        t0 = time.perf_counter_ns()
        try:
            frame = next(frames)
        except StopIteration:
            return
        yield frame, t0, time.perf_counter_ns()


def run(args: argparse.Namespace) -> int:
    if args.list_shades:
        try:
            shade_table(sys.stdout)
            sys.stdout.flush()
        except BrokenPipeError:  # e.g. piped into head
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if not args.input or not args.output:
        raise UserError("give an INPUT file and -o OUTPUT (or --list-shades)")
    if not 0.0 <= args.intensity <= 1.0:
        raise UserError(f"--intensity must be between 0 and 1, got {args.intensity}")

    from arengine.catalog import default_catalog
    from arengine.effects.lipstick import DEFAULT_SHADE

    shade = default_catalog().get(args.shade or DEFAULT_SHADE)  # unknown: UserError
    if getattr(args, "character", None) is not None:
        _check_character(args.character)
    src, dst = Path(args.input), Path(args.output)
    _check_paths(src, dst)
    report_path = Path(args.report) if args.report else None
    if report_path is not None:
        rp = report_path.parent if str(report_path.parent) else Path(".")
        if not rp.is_dir():
            raise UserError(f"report folder does not exist: {rp}")

    with _media_warnings():
        return _run(args, src, dst, shade, report_path)


def _check_character(name: str) -> None:
    """An unknown or broken character is one line for the user (exit 2)."""
    from arengine.render.character import CharacterError, character_names, load_character

    known = character_names()
    if name not in known:
        raise UserError(f"unknown character {name[:40]!r}; known: {', '.join(known) or '(none)'}")
    try:
        load_character(name)
    except CharacterError as e:
        raise UserError(str(e)) from None


def _run(args: argparse.Namespace, src: Path, dst: Path, shade: Any,
         report_path: Path | None) -> int:
    from arengine.effects.lipstick import LipstickEffect
    from arengine.media import VideoInput, open_input, open_output

    source = open_input(src)
    try:
        sink = open_output(dst, source)
    except BaseException:
        source.close()
        raise
    try:
        result = _process(args, source, sink, shade, LipstickEffect)
    except BaseException:
        _close_quietly(sink)
        source.close()
        dst.unlink(missing_ok=True)  # never leave half a file behind
        raise
    source.close()

    is_video = isinstance(source, VideoInput)
    frames, with_face = result["frames"], result["frames_with_face"]
    if frames == 0:
        dst.unlink(missing_ok=True)
        raise UserError(f"no frame of {src} could be decoded")
    if with_face == 0:
        what = "picture" if not is_video else "video"
        _warn(f"no face found in the {what} {src}; the output shows it unchanged")
        if not is_video and _same_format(src, dst):
            shutil.copyfile(src, dst)  # byte for byte: no second JPEG generation
    damage = _damage(source, src)
    if damage:
        _warn(damage)
    if report_path is not None:
        _write_report(report_path, result)
    audio = result["output"].get("audio")
    extra = f", audio {audio}" if audio and audio != "none" else ""
    host = result.get("virtual_host")
    if host:
        extra += f", virtual host {host['character']} ({host['mode']})"
    print(f"wrote {dst}: {frames} frame(s), {with_face} with a face, shade {shade.id}{extra}")
    return 0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _damage(source: Any, src: Path) -> str | None:
    """What the input lacked, in one line, or None for a complete file.

    A truncated file decodes cleanly up to where it stops, so its corrupt-frame count
    alone (often 1) hides that most of the video may be gone: the frames missing against
    the container's promise, and the time it stops at, say how much.
    """
    corrupt, missing, expected = (source.corrupt_frames, source.frames_missing,
                                  source.frames_expected)
    skipped = f"{_plural(corrupt, 'corrupt frame')} skipped" if corrupt else None
    if source.ends_early:
        text = (f"the video {src} ends early: {missing} of {expected} frames missing "
                f"(stops at {source.ends_at or 0.0:.1f} s of {source.info.duration:.1f} s)")
        return f"{text}; {skipped}" if skipped else text
    if missing:
        lost = f"{missing} of {expected} frames of {src} missing"
        return f"{lost}; {skipped}" if skipped else f"{lost} (not decodable)"
    if skipped:
        return f"{skipped} in {src}"
    return None


def _same_format(a: Path, b: Path) -> bool:
    alias = {".jpeg": ".jpg", ".tiff": ".tif"}
    ea, eb = a.suffix.lower(), b.suffix.lower()
    return alias.get(ea, ea) == alias.get(eb, eb)


def _close_quietly(sink: Any) -> None:
    with suppress(Exception):  # the original error is the one worth reporting
        sink.close()


def _progress(args: argparse.Namespace, total: int | None, is_video: bool) -> Any:
    from tqdm import tqdm

    if args.progress == "never" or not is_video:
        disable: bool | None = True
    elif args.progress == "always":
        disable = False
    else:
        disable = not sys.stderr.isatty()
    return tqdm(total=total, unit="frame", file=sys.stderr, disable=disable,
                dynamic_ncols=True, desc="tryon", smoothing=0.1)


def _process(args: argparse.Namespace, source: Any, sink: Any, shade: Any,
             effect_cls: Any) -> dict[str, Any]:
    from arengine.effects.chain import EffectChain
    from arengine.media import VideoInput
    from arengine.pipeline.compositor import Compositor, InlineTracking
    from arengine.tracking import JitterMeter

    is_video = isinstance(source, VideoInput)
    backend = select_backend(getattr(args, "render", "cpu"))
    effect = effect_cls(shade=shade, intensity=args.intensity,
                        backend=None if backend.name == "cpu" else backend)
    timer = _Timer()
    jitter = JitterMeter(LIP_POINTS)
    fps = float(source.info.fps) if source.info.fps else 25.0
    frames = with_face = 0
    bar = _progress(args, source.info.frames, is_video)
    t_start = time.perf_counter_ns()
    stage_ms: dict[str, float] = {}

    def on_timing(t: StageTiming) -> None:
        stage_ms[t.stage] = stage_ms.get(t.stage, 0.0) + t.duration_ms

    host = _virtual_host(args, shade)
    effects: dict[str, Any] = {"lipstick": effect}
    if host is not None:
        effects = {"virtual_host": host, **effects}
    chain = EffectChain(effects=effects, backend=backend)
    if host is not None:
        chain.enabled["virtual_host"] = True  # off by default in a room; asked for here
    # The compositor the live room runs, with every frame tracked before it is drawn.
    compositor = Compositor(
        chain, InlineTracking("video" if is_video else "image", hands=not args.no_hands),
        on_timing=on_timing)
    try:
        with bar:
            for frame, t0, t1 in _timed_frames(source.frames()):
                ts = frame.time if frame.time is not None else frame.index / fps
                stage_ms.clear()
                t2 = timer.now()
                out = compositor.process(frame.image, ts, frame.index)
                t5 = timer.now()
                scene = out.scene
                sink.write(frame.replace(out.image))
                t6 = timer.now()
                if len(scene.faces):
                    with_face += 1
                    jitter.update(scene.faces.track_id, scene.faces.raw, scene.faces.points)
                face_ms, hands_ms = stage_ms.get("track_face", 0.0), stage_ms.get("track_hands")
                timer.rows.append({
                    "index": frame.index, "pts": frame.pts, "faces": len(scene.faces),
                    "hands": len(scene.hands), "decode_ms": _ms(t0, t1),
                    "track_ms": round(face_ms + (hands_ms or 0.0), 3),
                    "track_face_ms": round(face_ms, 3),
                    "track_hands_ms": None if hands_ms is None else round(hands_ms, 3),
                    "effect_ms": round(stage_ms.get("effects", 0.0), 3),
                    "encode_ms": _ms(t5, t6), "total_ms": _ms(t0, t6),
                    "composite_ms": _ms(t2, t5),
                    # How far each painted lip is from its shade in the face's light.
                    "colour": [r.to_dict() for r in getattr(effect, "last_readout", [])]})
                if host is not None:
                    vh = host.report()
                    timer.rows[-1].update(
                        virtual_host_ms=round(stage_ms.get("effect:virtual_host", 0.0), 3),
                        segment_ms=round(stage_ms["segment"], 3) if "segment" in stage_ms
                        else None,
                        rig=vh["rig"], character_box=vh["box"],
                        background=vh["background"])
                frames += 1
                bar.update(1)
            t_encode = timer.now()
            sink.close()
            flush_ms = _ms(t_encode, timer.now())
    finally:
        compositor.close()
    wall_s = (time.perf_counter_ns() - t_start) / 1e9
    out_info: dict[str, Any] = {"path": str(sink.path), "kind": sink.kind,
                                "frames": sink.frames_written}
    if is_video:
        out_info.update(audio=sink.audio, codec=sink.stream.codec_context.name,
                        fps=float(source.info.fps) if source.info.fps else None,
                        width=sink.width, height=sink.height)
    return {
        "tool": "arengine tryon",
        "shade": shade.id,
        "mode": "video" if is_video else "image",
        "hands": not args.no_hands,
        "render": dict(backend.status),
        "clock": {"name": "time.perf_counter_ns",
                  "resolution_ns": timer.clock_resolution_ns},
        "input": source.info.to_dict(),
        "output": out_info,
        "frames": frames,
        "frames_with_face": with_face,
        "face_share": round(with_face / frames, 4) if frames else 0.0,
        "skipped_corrupt_frames": source.corrupt_frames,
        # Against the container's promise; None where it states no length.
        "frames_expected": source.frames_expected,
        "frames_missing": source.frames_missing,
        "ends_early": source.ends_early,
        "ends_at_s": None if source.ends_at is None else round(source.ends_at, 3),
        "jitter_px": {
            "metric": "mean |second difference| of lip landmark x,y between consecutive "
                      "frames of the same face track",
            "landmarks": len(LIP_POINTS), "samples": jitter.samples,
            "raw": None if jitter.raw is None else round(jitter.raw, 4),
            "smoothed": None if jitter.smoothed is None else round(jitter.smoothed, 4)},
        "wall_s": round(wall_s, 3),
        "throughput_fps": round(frames / wall_s, 2) if wall_s > 0 else None,
        "encoder_flush_ms": flush_ms,
        "summary": timer.summary(),
        "colour": colour_summary(timer.rows),
        "virtual_host": None if host is None else {
            "character": host.character_name, "mode": host.mode,
            "background": host.background, "calibrated": host.solver.calibrated,
            "reactions": [{"reaction": k, "at_s": round(t, 3)}
                          for k, t in host.life.reactions]},
        "per_frame": timer.rows,
    }


def colour_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The colour readout over a run: CIEDE2000 between each painted lip (mean CIELAB,
    highlights left out) and its shade as worn in the light measured on that face, per
    shade (frames still fading are left out: their target is in between)."""
    import numpy as np

    per: dict[str, list[float]] = {}
    for row in rows:
        for r in row.get("colour", []):
            if r["shade"] is not None and not r["fading"]:
                per.setdefault(r["shade"], []).append(float(r["delta_e00"]))
    shades: dict[str, Any] = {}
    for shade_id, values in per.items():
        v = np.array(values)
        shades[shade_id] = {"faces": len(v), "median": round(float(np.median(v)), 2),
                            "p95": round(float(np.percentile(v, 95)), 2),
                            "max": round(float(v.max()), 2)}
    return {"metric": "CIEDE2000 (kL=kC=kH=1) of the rendered lip's mean CIELAB against the "
                      "shade's CIELAB under the light measured on the skin around the mouth",
            "shades": shades}


def _virtual_host(args: argparse.Namespace, shade: Any) -> Any:
    """The virtual host effect for ``--character`` (None without), its lips in the shade."""
    name = getattr(args, "character", None)
    if name is None:
        return None
    from arengine.effects.virtual_host import VirtualHost
    from arengine.state import RoomState

    host = VirtualHost(character=name, mode=args.mode, background=args.background,
                       idle_talk=False)
    host.set_state(RoomState("tryon", shade_id=shade.id, shade_hex=shade.hex))
    return host


def _write_report(path: Path, report: dict[str, Any]) -> None:
    try:
        path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write the report {path}: {e.strerror or e}") from None
