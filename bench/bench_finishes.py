"""What each lipstick finish does to real lips, in pictures and numbers.

For the still faces and frames of the 720p clip (and one GRID talker, small and in warm
light) it renders one catalog product of every finish and writes, per face, a sheet of
crops large enough to judge (input | matte | satin | sheer | gloss | shimmer | metallic |
liner | ombre), plus a sheet of the shade following the light (the same face made darker
and brighter) and one of the highlight moving with the head. The numbers, per face and
finish, compare each product with the same product as a matte (same colour, same
opacity), so they show what the finish adds:

* ``peak``: the 99th percentile of the L* the finish adds on the lips;
* ``half_area``: the share of the lips where it adds at least half of that (the lobe's
  size), ``area3``: where it adds at least 3 L*;
* ``centroid_u``/``centroid_v``: where the half-peak area sits in the mouth's frame (u
  along the mouth, -1 and 1 at the corners; v across, positive below the middle line) and
  ``lower_share``: how much of it is on the lower lip;
* metallic: ``hue_error`` (degrees) and ``chroma_ratio`` of the highlight against the
  shade as worn in the measured light; shimmer: ``sparkle`` (share of lip pixels a flake
  lifts 6 L* above their surroundings) and ``relit`` (share of the lit flakes that change
  when the head turns by 10 degrees); liner: ``feather`` (distance over which the liner
  fades from 90 % to 10 % of its darkening, in liner widths); ombre: ``inner_share`` (lip
  share where the inner colour dominates) and the two ends' distance to their colours;
* every face: ``light`` (skin ring Lab and gains), the lip L* before and after, its spread
  before and after, and the colour readout (CIEDE2000 to the shade in that light).

Writes ``finishes.json``, ``finishes.md`` and the PNG sheets to ``--out``.

    python bench/bench_finishes.py --out bench/results/finishes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from arengine.catalog import Shade, default_catalog
from arengine.data import shared_data_dir
from arengine.effects.lipstick import (
    LipParams,
    LipstickEffect,
    lip_coordinates,
    lip_geometry,
    prepare_lips,
)
from arengine.tracking import FaceTracker
from arengine.types import FaceLandmarks, Scene

PRODUCTS = {"matte": "velvet-ruby", "satin": "silk-cherry", "sheer": "dew-strawberry",
            "gloss": "dew-glass-red", "shimmer": "star-galaxy", "metallic": "star-ruby-foil",
            "liner": "silk-scarlet", "ombre": "gradient-cherry"}
STILLS = ("mediapipe_samples/business-person.png", "faces/obama-720p.jpg",
          "mediapipe_samples/testImg.jpeg", "faces/two_people.jpg")
CLIP = "mediapipe_samples/gesture_recognizer_test_video.mp4"
CLIP_FRAMES = (40, 150)  # head level (pitch 7 degrees) and looking down (pitch 18)
GRID = "grid_talking/lbax4n.mpg"
TILE_W = 320
PNG = [cv2.IMWRITE_PNG_COMPRESSION, 9]
CORE = 224  # mask level of the lips' inside (the feathered rim left out)


def _lab(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab)


def load_faces(data: Path) -> list[tuple[str, np.ndarray, Scene, int]]:
    """(name, picture, scene, face index) for every face the sheets show."""
    out: list[tuple[str, np.ndarray, Scene, int]] = []
    with FaceTracker(mode="image") as tracker:
        for rel in STILLS:
            img = cv2.imread(str(data / rel), cv2.IMREAD_COLOR)
            scene = tracker.track(img)
            # The largest face of each picture (the sheets are about the lips).
            sizes = [float(np.ptp(scene.faces.lips_outer()[i][:, 0]))
                     for i in range(len(scene.faces))]
            out.append((Path(rel).stem, img, scene, int(np.argmax(sizes))))
    for rel, frames in ((CLIP, CLIP_FRAMES), (GRID, (30,))):
        with FaceTracker(mode="video") as tracker, av.open(str(data / rel)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                img = frame.to_ndarray(format="bgr24")
                scene = tracker.track(img, i / 25.0, i)
                if i in frames and len(scene.faces):
                    out.append((f"{Path(rel).stem}#{i}", img, scene, 0))
                if i >= max(frames):
                    break
    return out


def painted(img: np.ndarray, scene: Scene, face: int) -> np.ndarray:
    """The coverage the effect paints the face with, 0..255 (full frame, float32)."""
    geom = lip_geometry(scene.faces.points[face], scene.width, scene.height)
    out = np.zeros(img.shape[:2], np.float32)
    if geom is None:
        return out
    job = prepare_lips(img, geom, LipParams.from_shade(default_catalog().get("velvet-ruby")))
    if job is not None:
        x1, y1, x2, y2 = job.box
        out[y1:y2, x1:x2] = job.mask * 255.0
    return out


def _render(img: np.ndarray, scene: Scene, shade: Shade | str,
            effect: LipstickEffect | None = None) -> tuple[np.ndarray, LipstickEffect]:
    eff = effect or LipstickEffect(shade, crossfade_ms=0)
    return eff.apply(img.copy(), scene), eff


def _turned(scene: Scene, face: int, degrees: float) -> Scene:
    """The scene with face ``face`` turned by ``degrees`` of yaw as its landmarks' depth
    sees it (z sheared across x about the mouth), the outline and the picture unchanged."""
    pts = scene.faces.points.copy()
    p = pts[face]
    cx = float(p[[61, 291], 0].mean())
    p[:, 2] += np.float32(np.tan(np.radians(degrees))) * (p[:, 0] - cx)
    faces = FaceLandmarks(pts, pts, scene.faces.confidence, scene.faces.track_id)
    return scene.with_faces(faces)


def lobe(img: np.ndarray, scene: Scene, face: int, shade: Shade,
         turn: float = 0.0) -> dict[str, Any]:
    """What a finish adds over the same product as a matte, on one face."""
    sc = _turned(scene, face, turn) if turn else scene
    core = painted(img, sc, face) >= CORE
    finish, _ = _render(img, sc, shade)
    matte, _ = _render(img, sc, replace(shade, finish="matte"))
    lift = (_lab(finish)[:, :, 0] - _lab(matte)[:, :, 0])[core]
    peak = float(np.percentile(lift, 99)) if lift.size else 0.0
    geom = lip_geometry(sc.faces.points[face], sc.width, sc.height)
    assert geom is not None
    x1, y1, x2, y2 = geom.box
    u, v = lip_coordinates(geom)
    full_u = np.zeros(core.shape, np.float32)
    full_v = np.zeros(core.shape, np.float32)
    full_u[y1:y2, x1:x2], full_v[y1:y2, x1:x2] = u, v
    # The middle line: between the inner contours, in the same (u, v) frame.
    inner = sc.faces.points[face][[13, 14], :2] - np.array([x1, y1], np.float32)
    mid_v = float(np.mean([((q[1] - geom.centre[1]) * geom.axis[0]
                            - (q[0] - geom.centre[0]) * geom.axis[1]) / geom.half_height
                           for q in inner]))
    half = lift >= max(0.5 * peak, 1.0)
    w = lift[half]
    out: dict[str, Any] = {"peak": round(peak, 1),
                           "half_area": round(float(half.mean()), 3) if lift.size else 0.0,
                           "area3": round(float((lift >= 3.0).mean()), 3) if lift.size else 0.0}
    if w.size and peak >= 2.0:
        cu, cv = full_u[core][half], full_v[core][half]
        out.update(centroid_u=round(float(np.average(cu, weights=w)), 2),
                   centroid_v=round(float(np.average(cv, weights=w)), 2),
                   lower_share=round(float(np.average(cv > mid_v, weights=w)), 2))
        if shade.finish == "metallic":
            lab = _lab(finish)[core][half]
            hue = np.degrees(np.arctan2(lab[:, 2], lab[:, 1]))
            _, eff = _render(img, sc, shade)
            readout = getattr(eff, "last_readout", None)
            target = np.array(readout[0].colour.target if readout else shade.lab)
            want = float(np.degrees(np.arctan2(target[2], target[1])))
            out["hue_error"] = round(float(abs((np.median(hue) - want + 180) % 360 - 180)), 1)
            out["chroma_ratio"] = round(float(np.median(np.hypot(lab[:, 1], lab[:, 2]))
                                              / np.hypot(target[1], target[2])), 2)
    return out


def sparkle(img: np.ndarray, scene: Scene, face: int, shade: Shade) -> dict[str, Any]:
    """Shimmer: the share of lip pixels a flake lifts above their surroundings, and how
    many of the lit ones change when the head turns 10 degrees."""
    core = painted(img, scene, face) >= CORE
    lit = []
    for turn in (-5.0, 5.0):
        out, _ = _render(img, _turned(scene, face, turn), shade)
        L = _lab(out)[:, :, 0]
        lit.append(((L - cv2.GaussianBlur(L, (0, 0), 1.5)) > 6.0) & core)
    a, b = lit
    union = float((a | b).sum())
    return {"sparkle": round(float(a[core].mean()), 3),
            "relit": round(1.0 - float((a & b).sum()) / union, 2) if union else None}


def feather(img: np.ndarray, scene: Scene, face: int, shade: Shade) -> dict[str, Any]:
    """Liner: its darkening against the distance from the outer contour, in quarters of
    the liner width; ``at_one_width``: the darkening 1-1.25 widths in over its most (a
    pencil line stops at one width: 0)."""
    lined, _ = _render(img, scene, shade)
    plain, _ = _render(img, scene, replace(shade, liner_hex=None, liner_width=0.0))
    dark = _lab(plain)[:, :, 0] - _lab(lined)[:, :, 0]
    outer = np.zeros(dark.shape, np.uint8)
    cv2.fillPoly(outer, [np.round(scene.faces.lips_outer()[face]).astype(np.int32)], 1)
    mouth_w = float(np.linalg.norm(np.ptp(scene.faces.lips_outer()[face], axis=0)))
    dist = cv2.distanceTransform(outer, cv2.DIST_L2, 5) / (shade.liner_width * mouth_w)
    mask = painted(img, scene, face) >= 128
    profile = []
    for lo in np.arange(0.0, 3.0, 0.25):
        band = mask & (dist >= lo) & (dist < lo + 0.25)
        profile.append(float(dark[band].mean()) if band.any() else 0.0)
    top = max(profile[:3])
    return {"max_darkening": round(top, 1),
            "at_one_width": round(profile[4] / top, 2) if top > 0 else None,
            "profile": [round(p, 1) for p in profile]}


def ombre(img: np.ndarray, scene: Scene, face: int, shade: Shade) -> dict[str, Any]:
    """Ombre: where the inner colour shows (CIE76 over 8 against the same product without
    it), and how it runs across the lip: the mean difference near the lips' middle line
    (s < 0.3, s from 0 there to 1 at the outer contour) and near the outer contour."""
    out, _ = _render(img, scene, shade)
    plain, _ = _render(img, scene, replace(shade, ombre_inner_hex=None, ombre_ratio=0.0))
    diff = np.linalg.norm(_lab(out) - _lab(plain), axis=2)
    core = painted(img, scene, face) >= CORE
    s = across(scene, face)
    near, far = core & (s < 0.3), core & (s > 0.7)
    return {"inner_share": round(float((diff[core] > 8.0).mean()), 3) if core.any() else 0.0,
            "inner_dE": round(float(diff[near].mean()), 1) if near.any() else None,
            "outer_dE": round(float(diff[far].mean()), 1) if far.any() else None}


def across(scene: Scene, face: int) -> np.ndarray:
    """s of every frame pixel: 0 on the lips' middle line (the inner contours), 1 at the
    outer contour, from the two distances (frame-sized float32)."""
    shape = (scene.height, scene.width)
    outer = np.zeros(shape, np.uint8)
    cv2.fillPoly(outer, [np.round(scene.faces.lips_outer()[face]).astype(np.int32)], 1)
    line = np.ones(shape, np.uint8)
    cv2.polylines(line, [np.round(scene.faces.lips_inner()[face]).astype(np.int32)], True, 0)
    d_out = cv2.distanceTransform(outer, cv2.DIST_L2, 3)
    d_in = cv2.distanceTransform(line, cv2.DIST_L2, 3)
    return np.asarray(d_in / np.maximum(d_in + d_out, 1e-3))


def light_follow(img: np.ndarray, scene: Scene, face: int, shade: str
                 ) -> list[dict[str, float]]:
    """The lip's L* before and after lipstick on the face made darker and brighter."""
    core = painted(img, scene, face) >= CORE
    rows = []
    for k in (0.6, 0.8, 1.0, 1.15):
        var = scale_lightness(img, k)
        out, _ = _render(var, scene, shade)
        rows.append({"scale": k, "lip_in": round(float(_lab(var)[:, :, 0][core].mean()), 1),
                     "lip_out": round(float(_lab(out)[:, :, 0][core].mean()), 1)})
    return rows


def scale_lightness(img: np.ndarray, k: float) -> np.ndarray:
    """The picture with its CIELAB L* scaled by ``k`` (a darker or brighter light)."""
    lab = _lab(img)
    lab[:, :, 0] = np.clip(lab[:, :, 0] * k, 0.0, 100.0)
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2BGR) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def crop(img: np.ndarray, scene: Scene, face: int) -> tuple[int, int, int, int]:
    geom = lip_geometry(scene.faces.points[face], scene.width, scene.height)
    assert geom is not None
    cx, cy = geom.box[0] + geom.centre[0], geom.box[1] + geom.centre[1]
    r = geom.half_width * 1.3
    h, w = img.shape[:2]
    return (max(int(cx - r), 0), max(int(cy - 0.55 * r), 0), min(int(cx + r), w),
            min(int(cy + 0.55 * r), h))


def tile(img: np.ndarray, box: tuple[int, int, int, int], label: str) -> np.ndarray:
    x1, y1, x2, y2 = box
    part = img[y1:y2, x1:x2]
    scale = TILE_W / part.shape[1]
    part = cv2.resize(part, (TILE_W, round(part.shape[0] * scale)),
                      interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    bar = np.full((22, TILE_W, 3), 255, np.uint8)
    cv2.putText(bar, label, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.48, (40, 40, 40), 1,
                cv2.LINE_AA)
    return np.vstack([bar, part])


def sheet(tiles: list[np.ndarray], per_row: int = 3) -> np.ndarray:
    h = max(t.shape[0] for t in tiles)
    tiles = [cv2.copyMakeBorder(t, 0, h - t.shape[0], 0, 0, cv2.BORDER_CONSTANT,
                                value=(255, 255, 255)) for t in tiles]
    while len(tiles) % per_row:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.hstack([cv2.copyMakeBorder(t, 2, 2, 2, 2, cv2.BORDER_CONSTANT,
                                          value=(255, 255, 255)) for t in tiles[i:i + per_row]])
            for i in range(0, len(tiles), per_row)]
    return np.vstack(rows)


def run(data: Path, out_dir: Path) -> dict[str, Any]:
    cat = default_catalog()
    faces = load_faces(data)
    result: dict[str, Any] = {}
    for name, img, scene, face in faces:
        box = crop(img, scene, face)
        tiles = [tile(img, box, f"{name}: input")]
        row: dict[str, Any] = {}
        one = scene.with_faces(scene.faces.select([face]))
        for finish, sid in PRODUCTS.items():
            shade = cat.get(sid)
            rendered, eff = _render(img, one, shade)
            tiles.append(tile(rendered, box, f"{finish}: {sid}"))
            entry: dict[str, Any] = {"shade": sid}
            if finish in ("satin", "sheer", "gloss", "shimmer", "metallic"):
                entry.update(lobe(img, one, 0, shade))
            if finish == "shimmer":
                entry.update(sparkle(img, one, 0, shade))
            if finish == "liner":
                entry.update(feather(img, one, 0, shade))
            if finish == "ombre":
                entry.update(ombre(img, one, 0, shade))
            if getattr(eff, "last_readout", None):
                r = eff.last_readout[0].to_dict()
                entry["delta_e00"] = r["delta_e00"]
                row.setdefault("light", {"skin_lab": r["skin_lab"],
                                         "light_gain": r["light_gain"]})
            row[finish] = entry
        core = painted(img, one, 0) >= CORE
        matte, _ = _render(img, one, PRODUCTS["matte"])
        lin, lout = _lab(img)[:, :, 0][core], _lab(matte)[:, :, 0][core]
        row["lip"] = {"L_in": round(float(lin.mean()), 1), "L_out": round(float(lout.mean()), 1),
                      "spread_in": round(float(lin.std()), 2),
                      "spread_out": round(float(lout.std()), 2)}
        row["follow"] = light_follow(img, one, 0, PRODUCTS["matte"])
        row["gloss_turn"] = {f"{t:+.0f}": lobe(img, one, 0, cat.get(PRODUCTS["gloss"]), t)
                             for t in (-12.0, 12.0)}
        result[name] = row
        cv2.imwrite(str(out_dir / f"{name.replace('#', '-')}.png"), sheet(tiles), PNG)
        if name == "obama-720p":
            follow = [tile(img, box, "input")]
            for k in (0.6, 1.0, 1.15):
                var = scale_lightness(img, k)
                follow += [tile(var, box, f"light x{k}: input"),
                           tile(_render(var, one, PRODUCTS["matte"])[0], box,
                                f"light x{k}: {PRODUCTS['matte']}")]
            cv2.imwrite(str(out_dir / "light-follow.png"), sheet(follow[1:], per_row=2), PNG)
    # The highlight and the flakes as the head moves: on the real clip (looking down by
    # about 11 degrees between the two frames), and a still turned by the depth alone.
    turns = []
    for name, img, scene, face in faces:
        one = scene.with_faces(scene.faces.select([face]))
        box = crop(img, scene, face)
        if name.startswith(Path(CLIP).stem):
            pitch = float(one.faces.head_pose()[0][1])
            for f in ("gloss", "shimmer"):
                turns.append(tile(_render(img, one, PRODUCTS[f])[0], box,
                                  f"frame {name.split('#')[1]}, pitch {pitch:.0f}: {f}"))
        if name == Path(STILLS[0]).stem:
            for f, deg in (("gloss", 12.0), ("shimmer", 5.0)):
                for sign in (-1.0, 1.0):
                    turned = _turned(one, 0, sign * deg)
                    turns.append(tile(_render(img, turned, PRODUCTS[f])[0], box,
                                      f"yaw {sign * deg:+.0f} (depth): {f}"))
    if turns:
        cv2.imwrite(str(out_dir / "head-motion.png"), sheet(turns, per_row=2), PNG)
    return result


FINISH_COLS = ("satin", "sheer", "gloss", "shimmer", "metallic")


def to_markdown(res: dict[str, Any]) -> str:
    faces = res["faces"]
    out = ["# Lipstick finishes on real faces", "",
           f"{res['machine']}. Each product against the same product as a matte (what the "
           "finish adds). peak: 99th percentile of the added L*; half: share of the lips "
           "within half of it; 3: share with at least 3 L*; (u, v): where the half-peak "
           "area sits (u along the mouth, corners at -1 and 1; v across, + below); lower: "
           "its share on the lower lip. See `bench/bench_finishes.py`.", "",
           "| face | finish | peak L* | half | >= 3 L* | u | v | lower | more | dE00 |",
           "|---|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for name, row in faces.items():
        for f in FINISH_COLS:
            e = row[f]
            more = []
            if f == "metallic" and "hue_error" in e:
                more.append(f"hue err {e['hue_error']} deg, chroma x{e['chroma_ratio']}")
            if f == "shimmer":
                more.append(f"sparkle {e['sparkle']}, relit {e['relit']}")
            out.append(f"| {name} | {f} | {e['peak']} | {e['half_area']} | {e['area3']} | "
                       f"{e.get('centroid_u', '-')} | {e.get('centroid_v', '-')} | "
                       f"{e.get('lower_share', '-')} | {'; '.join(more)} | "
                       f"{e.get('delta_e00', '-')} |")
    out += ["", "| face | skin L*a*b* | light gain | lip L* in / out | spread in / out | "
            "follow (L* in -> out, light x0.6 .. x1.15) | liner at 1 width | ombre inner | "
            "gloss u at -12 / +12 deg |", "|---|---|---|---|---|---|---|---|---|"]
    # ombre: share of the lips where the inner colour shows, dE near the middle / outer
    for name, row in faces.items():
        lip, light = row["lip"], row.get("light", {})
        follow = ", ".join(f"{r['lip_in']}->{r['lip_out']}" for r in row["follow"])
        turn = " / ".join(str(row["gloss_turn"][k].get("centroid_u", "-"))
                          for k in ("-12", "+12"))
        out.append(f"| {name} | {light.get('skin_lab')} | {light.get('light_gain')} | "
                   f"{lip['L_in']} / {lip['L_out']} | {lip['spread_in']} / "
                   f"{lip['spread_out']} | {follow} | {row['liner']['at_one_width']} | "
                   f"{row['ombre']['inner_share']} ({row['ombre']['inner_dE']} / "
                   f"{row['ombre']['outer_dE']}) | {turn} |")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("bench/out/finishes"))
    args = ap.parse_args()
    data = args.data or shared_data_dir()
    if not (data / "SOURCES.md").is_file():
        raise SystemExit(f"real test data not found at {data}; pass --data or set ARENGINE_DATA")
    args.out.mkdir(parents=True, exist_ok=True)
    res = {"machine": f"{platform.processor() or platform.machine()}, "
                      f"{len(os.sched_getaffinity(0))} CPU cores",
           "products": PRODUCTS, "faces": run(data, args.out)}
    (args.out / "finishes.json").write_text(json.dumps(res, indent=1) + "\n")
    md = to_markdown(res)
    (args.out / "finishes.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
