"""Where the lipstick paints, and how it follows a talking mouth: today's landmark polygon
beside the picture-based lip mask, against a slow offline reference segmentation.

Spatial accuracy, per clip and group of frames (open mouth, closed, the 3 frames after each
closure) and on the stills, with the landmarks the live effect uses on that frame (One Euro
smoothed in video mode):

- **painted lip %**: mean coverage over the reference's sure lip (its lip pixels farther
  than 1 px from its edge);
- **teeth/cavity %**: coverage over the reference's sure mouth interior (the non-lip
  pixels the lips enclose, farther than 1 px from the lip), over the frames where at
  least 10 such pixels show;
- **bleed %**: coverage on sure skin (farther than 1 px from the reference lip and not
  mouth interior), over the reference lip area;
- **edge px**: mean distance between the mask's edge (coverage 0.5) and the reference's,
  both ways (the 1 px left out above is measured here).

The 1 px band is left out of the first three because at 360x288 the lip line itself is a
2-3 px blur with 2x2 chroma blocks (MPEG-1): the reference cannot place it closer than
that, and "within a pixel" is the target for the edge.

Temporal behaviour, per clip (every frame, no reference needed):

- **lag** (frames): the time shift s that best aligns the mask's signals with the same
  signals of a mask drawn from the raw landmarks (today's polygon, unsmoothed), by the
  peak of the normalised cross-correlation of their frame-to-frame changes, s in 0.05
  steps (raw signal linearly interpolated). Signals: the mouth opening the mask leaves
  (see :func:`signals`) and its centroid; a signal enters where the raw one moves
  (opening sd > 0.5 px, centroid sd > 0.3 px).
- **flicker**: on still stretches (raw lip landmarks, averaged over 5 frames, move less
  than 0.5 % of the mouth width per frame and the opening changes by < 0.01), the mean
  frame-to-frame change sum|m_t - m_t-1| over the mean lip area (%), and **toggles**, the
  pixels that cross coverage 0.5 per frame over the lip area (%).
- **after closure**: the painted share of the reference's sure lip on the 3 frames from
  each closure (the first frame with an inner gap < 0.05 of the width after one of > 0.12
  within 3 frames).

The reference (``results/lip-mask/reference/``) is built once with ``--build-reference``
and then read: see :func:`reference_mask` for the method. It was checked by eye on the
contact sheets this script writes (``--sheets``), and corrected where the eye disagreed
(:data:`REFERENCE_FIXES`). Run::

    python bench/bench_lip_mask.py --out bench/out            # numbers
    python bench/bench_lip_mask.py --sheets bench/results/lip-mask   # + contact sheets
    python bench/bench_lip_mask.py --build-reference          # rebuild the reference
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from arengine.data import shared_data_dir
from arengine.effects.lipstick import lip_geometry, lip_mask, lip_roi_mask, prepare_lips
from arengine.render.lips import LipParams, roi_to_lab
from arengine.tracking import FaceTracker
from arengine.tracking.smoothing import (
    DEFAULT_SMOOTHING,
    MOUTH_SMOOTHING,
    LandmarkSmoother,
    OneEuroFilter,
)
from arengine.types import (
    LIPS_INNER,
    LIPS_OUTER,
    LOWER_LIP_INNER_MID,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    UPPER_LIP_INNER_MID,
    FaceLandmarks,
)

ROOT = Path(__file__).resolve().parent
REFERENCE_DIR = ROOT / "results" / "lip-mask" / "reference"
GRID = ("brbk7n", "lbax4n", "lbbc2a", "lrwp9a", "lwbsza")
VIDEO_720P = "mediapipe_samples/gesture_recognizer_test_video.mp4"
CLIPS = {**{name: f"grid_talking/{name}.mpg" for name in GRID}, "720p": VIDEO_720P}
STILLS = ("mediapipe_samples/business-person.png", "faces/obama-720p.jpg",
          "faces/astronaut.png", "faces/two_people.jpg", "mediapipe_samples/testImg.jpeg")
FPS = 25.0
FRAMES_720P = (0, 39, 78, 117, 156, 194)  # spread over the clip; the thumb is beside the lips
OPEN, CLOSED = 0.15, 0.03  # inner gap over mouth width: open-mouth and closed frames
CLOSURE_FROM, CLOSURE_TO = 0.12, 0.05
# A still mouth: its raw landmarks, averaged over 5 frames, move less than this share of
# the mouth width per frame (0.2 px on GRID; talking there measures 0.008-0.02), and its
# opening changes by less than this.
STILL_SPEED, STILL_OPENING = 0.005, 0.01


# --------------------------------------------------------------------------- tracking

@dataclass
class Clip:
    """One clip's crops around the mouth and its raw landmarks (first face), in crop pixels.

    Only a window around the lips is kept (the 720p clip decoded whole is 0.5 GB)."""

    name: str
    source: str
    crops: np.ndarray  # (n, h, w, 3) uint8
    raw: np.ndarray  # (n, 478, 3) float32, crop pixels
    offset: tuple[int, int]  # the crop's top-left corner in the frame


def decode(path: Path) -> Iterator[np.ndarray]:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="bgr24")


def track_clip(name: str, data: Path) -> Clip:
    """Raw landmarks of every frame (FaceMesh video mode, no smoothing)."""
    frames, raw = [], []
    with FaceTracker("video", max_faces=1, smoothing=None) as tracker:
        for i, img in enumerate(decode(data / CLIPS[name])):
            faces = tracker.detect(img, i / FPS)
            if not len(faces):
                raise RuntimeError(f"{name}: no face on frame {i}")
            frames.append(img)
            raw.append(faces.raw[0])
    pts = np.array(raw, np.float32)
    lips = pts[:, list(LIPS_OUTER), :2]
    mw = float(np.median(np.linalg.norm(pts[:, MOUTH_RIGHT, :2] - pts[:, MOUTH_LEFT, :2],
                                        axis=1)))
    h, w = frames[0].shape[:2]
    pad = 0.9 * mw  # the light ring of the lipstick reads 1.75x the lips about their centre
    x1, y1 = (max(0, int(v - pad)) for v in lips.reshape(-1, 2).min(axis=0))
    x2 = min(w, int(lips[..., 0].max() + pad))
    y2 = min(h, int(lips[..., 1].max() + pad))
    crops = np.array([f[y1:y2, x1:x2] for f in frames])
    pts[:, :, 0] -= x1
    pts[:, :, 1] -= y1
    return Clip(name, CLIPS[name], crops, pts, (x1, y1))


def smoothed(raw: np.ndarray, new: bool) -> np.ndarray:
    """The landmarks the live tracker gives on each frame: today's One Euro on every point
    (``new`` False) or the face's filter with the mouth's own settings (True)."""
    filt: Callable[[np.ndarray, float], np.ndarray]
    filt = LandmarkSmoother(DEFAULT_SMOOTHING, MOUTH_SMOOTHING) if new \
        else OneEuroFilter(DEFAULT_SMOOTHING)
    return np.array([filt(raw[i], i / FPS) for i in range(len(raw))], np.float32)


def openness(points: np.ndarray) -> np.ndarray:
    """Inner gap over mouth width, per frame."""
    gap = np.linalg.norm(points[..., UPPER_LIP_INNER_MID, :2]
                         - points[..., LOWER_LIP_INNER_MID, :2], axis=-1)
    width = np.linalg.norm(points[..., MOUTH_RIGHT, :2] - points[..., MOUTH_LEFT, :2], axis=-1)
    return np.asarray(gap / np.maximum(width, 1e-6))


def closures(raw: np.ndarray) -> list[int]:
    """Frames where the mouth has just closed (see the module docstring)."""
    o = openness(raw)
    return [t for t in range(3, len(o)) if o[t] < CLOSURE_TO and o[t - 1] >= CLOSURE_TO
            and o[t - 3:t].max() >= CLOSURE_FROM]


def select_frames(raw: np.ndarray) -> dict[int, str]:
    """A GRID clip's reference frames: 6 open, 3 closed (spread evenly over the candidates)
    and the 3 frames from each closure."""
    o = openness(raw)

    def spread(cands: np.ndarray, k: int) -> list[int]:
        c = [int(x) for x in cands]
        return c if len(c) <= k else [c[round(x)] for x in np.linspace(0, len(c) - 1, k)]

    out: dict[int, str] = {}
    for t in spread(np.flatnonzero(o >= OPEN), 6):
        out[t] = "open"
    for t in spread(np.flatnonzero(o <= CLOSED), 3):
        out.setdefault(t, "closed")
    for c in closures(raw):
        for t in range(c, min(c + 3, len(o))):
            out[t] = "after-closure" if out.get(t) != "open" else "open"
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- masks

def legacy_mask(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Today's mask, as the effect painted it before the segmentation (float32 0..1,
    full frame): the landmark polygon, the mouth opening cut out and grown by a fixed
    1.5 feather + 0.5 px when the gap passes 1.5 % of the width, a Gaussian feather."""
    p = points[:, :2].astype(np.float32)
    outer, inner = p[list(LIPS_OUTER)], p[list(LIPS_INNER)]
    mouth_w = float(np.linalg.norm(p[MOUTH_RIGHT] - p[MOUTH_LEFT]))
    feather = float(np.clip(0.02 * mouth_w, 1.0, 3.0))
    gap = float(np.linalg.norm(p[UPPER_LIP_INNER_MID] - p[LOWER_LIP_INNER_MID]))
    grow = 1.5 * feather + 0.5 if gap > max(1.0, 0.015 * mouth_w) else 0.0
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(outer * 4).astype(np.int32)], 255, cv2.LINE_AA, shift=2)
    hole = np.zeros_like(mask)
    pts = np.round(inner * 4).astype(np.int32)
    cv2.fillPoly(hole, [pts], 255, cv2.LINE_AA, shift=2)
    if grow > 0:
        cv2.polylines(hole, [pts], True, 255, max(1, round(2 * grow)), cv2.LINE_AA, shift=2)
    cv2.subtract(mask, hole, dst=mask)
    sigma = feather / 2.0
    k = 2 * math.ceil(3 * sigma) + 1
    mask = cv2.GaussianBlur(mask, (k, k), sigma)
    if grow > 0:
        cv2.min(mask, cv2.bitwise_not(hole), dst=mask)
    return mask.astype(np.float32) * np.float32(1 / 255)


def new_mask(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The lipstick's mask today (float32 0..1, full frame): :func:`lip_mask` with the
    picture."""
    faces = FaceLandmarks(points[None], points[None], np.ones(1, np.float32),
                          np.zeros(1, np.int64))
    h, w = image.shape[:2]
    return lip_mask(faces, None, w, h, frame=image).astype(np.float32) * np.float32(1 / 255)


# --------------------------------------------------------------------------- reference

UP = 4  # the reference is computed on a 4x bicubic upscale
# Corrections after the eye check: (reference id) -> [(label, polygon in frame pixels)],
# label "lip" or "not". They become hard seeds and hard labels of the reference.
REFERENCE_FIXES: dict[str, list[tuple[str, list[tuple[float, float]]]]] = {
    # The thumb's blurred shadow beside the left mouth corner read as lip: the pink ends at
    # x ~ 576, the landmark corner is at 559.
    "720p-078": [("not", [(540, 410), (575, 410), (575, 446), (540, 446)])],
}


def _poly(shape: tuple[int, int], pts: np.ndarray) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(pts * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    return m


def _mixture(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A k-component full-covariance Gaussian mixture (EM) of samples x (n, 3)."""
    em = cv2.ml.EM_create()
    em.setClustersNumber(max(1, min(k, len(x) // 50)))
    em.setCovarianceMatrixType(cv2.ml.EM_COV_MAT_GENERIC)
    em.setTermCriteria((cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-3))
    em.trainEM(x.astype(np.float64))
    return em.getWeights()[0], em.getMeans(), np.array(em.getCovs())


def _mixture_loglik(model: tuple[np.ndarray, np.ndarray, np.ndarray],
                    x: np.ndarray) -> np.ndarray:
    weights, means, covs = model
    parts = []
    for wk, mk, ck in zip(weights, means, covs, strict=True):
        c = ck + np.eye(3) * 0.5
        d = x - mk
        q = np.einsum("ij,jk,ik->i", d, np.linalg.inv(c), d)
        parts.append(np.log(wk + 1e-12) - 0.5 * q - 0.5 * np.log(np.linalg.det(c)))
    a = np.array(parts)
    top = a.max(axis=0)
    return np.asarray(top + np.log(np.exp(a - top).sum(axis=0)))


def reference_box(points: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """The reference crop: the outer lips plus 0.35 of the mouth width on every side."""
    o = points[list(LIPS_OUTER), :2]
    pad = 0.35 * float(np.linalg.norm(points[MOUTH_RIGHT, :2] - points[MOUTH_LEFT, :2]))
    lo, hi = o.min(axis=0) - pad, o.max(axis=0) + pad
    return (max(0, math.floor(lo[0])), max(0, math.floor(lo[1])),
            min(width, math.ceil(hi[0])), min(height, math.ceil(hi[1])))


def reference_mask(image: np.ndarray, points: np.ndarray,
                   fixes: list[tuple[str, list[tuple[float, float]]]] = ()  # type: ignore[assignment]
                   ) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The slow reference: lip coverage (float32 0..1) of the crop around the lips.

    On a 4x bicubic upscale of the crop (CIELAB), seeded from the raw landmarks of that
    frame: sure lip = the middle 20 % of each lip between the contours; sure skin = farther
    than 0.12 mouth widths outside the outer contour; sure mouth interior = the middle of
    the opening when the inner gap is over 1.5 px. Three rounds of: a 3-component Gaussian
    mixture per class (lip / skin / mouth interior), the per-pixel log-likelihood ratio of
    lip against the better other class plus a prior of +-1.5 nats per 1.5 px of distance
    to the landmark lip ring, 6 mean-field iterations of a Gaussian-kernel CRF (sigma
    0.8 px, weight 3), lip kept only where connected to the sure lip and at most 0.10
    mouth widths outside the contour; then the mixtures are refitted from the pixels
    labelled surely (2 px from the edge). The 4x labels are averaged back to the frame's
    pixels, so the reference is a coverage. ``fixes`` force pixels to lip or not.
    """
    h, w = image.shape[:2]
    cv2.setRNGSeed(0)  # the mixtures start from a random k-means: the same one every run
    x1, y1, x2, y2 = reference_box(points, w, h)
    big = cv2.resize(image[y1:y2, x1:x2], None, fx=UP, fy=UP, interpolation=cv2.INTER_CUBIC)
    lab = cv2.cvtColor(big.astype(np.float32) / 255, cv2.COLOR_BGR2Lab)
    off = np.array([x1, y1], np.float32)

    def up(xy: np.ndarray) -> np.ndarray:
        return np.asarray((xy - off + 0.5) * UP - 0.5)

    o, i = up(points[list(LIPS_OUTER), :2]), up(points[list(LIPS_INNER), :2])
    mw = float(np.linalg.norm(points[MOUTH_RIGHT, :2] - points[MOUTH_LEFT, :2])) * UP
    gap = float(np.linalg.norm(points[UPPER_LIP_INNER_MID, :2]
                               - points[LOWER_LIP_INNER_MID, :2])) * UP
    sh = big.shape[:2]
    outer, inner = _poly(sh, o), _poly(sh, i)
    ring = outer & (1 - inner)

    def dist(m: np.ndarray) -> np.ndarray:
        return cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_L2, 5)

    d_o, d_i, d_out, d_ii = dist(outer), dist(1 - inner), dist(1 - outer), dist(inner)
    near = np.minimum(d_o, d_i)
    core = (ring > 0) & (near >= 0.4 * (d_o + d_i)) & (near >= UP)
    skin = d_out >= 0.12 * mw
    interior = (inner > 0) & (d_ii >= 0.4 * d_ii.max()) if gap >= 1.5 * UP \
        else np.zeros(sh, bool)
    allowed = (d_out < 0.10 * mw) & ~interior
    prior = 1.5 * np.clip((near - d_out - d_ii) / UP / 1.5, -3, 3)
    force_lip, force_not = np.zeros(sh, bool), np.zeros(sh, bool)
    for label, poly in fixes:
        m = _poly(sh, up(np.array(poly, np.float32))) > 0
        if label == "lip":
            force_lip |= m
        else:
            force_not |= m
    core &= ~force_not  # a fix overrides the landmarks
    x = lab.reshape(-1, 3)
    lip_seed = core | force_lip
    other_seeds = [skin | force_not, interior]
    keep = core
    for _ in range(3):
        ll_lip = _mixture_loglik(_mixture(x[lip_seed.ravel()], 3), x)
        ll_not = np.max([_mixture_loglik(_mixture(x[s.ravel()], 3), x)
                         for s in other_seeds if s.sum() > 30], axis=0)
        u = (np.clip(ll_lip - ll_not, -8, 8).reshape(sh) + prior).astype(np.float32)
        q = 1 / (1 + np.exp(-u))
        for _ in range(6):
            s = cv2.GaussianBlur(q, (0, 0), UP * 0.8)
            q = 1 / (1 + np.exp(-(u + 3.0 * (2 * s - 1))))
        q[~allowed | force_not] = 0
        q[core | force_lip] = 1
        fg = (q > 0.5).astype(np.uint8)
        _, cc = cv2.connectedComponents(fg)
        keep = np.isin(cc, np.unique(cc[(core | force_lip) & (fg > 0)])) & (fg > 0)
        k = np.ones((2 * UP + 1, 2 * UP + 1), np.uint8)
        sure_in = cv2.erode(keep.astype(np.uint8), k) > 0
        sure_out = cv2.dilate(keep.astype(np.uint8), k) == 0
        lip_seed = sure_in | core | force_lip
        other_seeds = [skin | force_not | (sure_out & (inner == 0) & (d_out > 0)),
                       interior | (sure_out & (inner > 0))]
    cov = cv2.resize(keep.astype(np.float32), (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
    return (x1, y1, x2, y2), cov


@dataclass
class RefFrame:
    """One reference frame: where it comes from and the lip coverage of its crop."""

    id: str
    source: str  # a clip name (CLIPS) or a still's path
    frame: int
    face: int
    kind: str  # open, closed, after-closure, 720p, still
    box: tuple[int, int, int, int]  # frame pixels
    coverage: np.ndarray = field(repr=False)


def load_reference(folder: Path = REFERENCE_DIR) -> list[RefFrame]:
    index = json.loads((folder / "index.json").read_text())
    out = []
    for e in index["frames"]:
        png = cv2.imread(str(folder / f"{e['id']}.png"), cv2.IMREAD_GRAYSCALE)
        if png is None:
            raise FileNotFoundError(folder / f"{e['id']}.png")
        out.append(RefFrame(e["id"], e["source"], e["frame"], e["face"], e["kind"],
                            tuple(e["box"]), png.astype(np.float32) / 255))  # type: ignore[arg-type]
    return out


def build_reference(data: Path, folder: Path = REFERENCE_DIR,
                    only: set[str] | None = None) -> list[RefFrame]:
    """Select the frames, segment each one (minutes), write PNGs and index.json. With
    ``only`` (reference ids), the others are read back as they are (after a fix)."""
    kept = {r.id: r for r in load_reference(folder)} if only is not None else {}
    refs: list[RefFrame] = []
    for name in CLIPS:
        clip = track_clip(name, data)
        chosen = select_frames(clip.raw) if name != "720p" else \
            dict.fromkeys(FRAMES_720P, "720p")
        for t, kind in chosen.items():
            rid = f"{name}-{t:03d}"
            if only is not None and rid not in only and rid in kept:
                refs.append(kept[rid])
                continue
            box, cov = reference_mask(clip.crops[t], clip.raw[t],
                                      _shift(REFERENCE_FIXES.get(rid, []), clip.offset))
            ox, oy = clip.offset
            refs.append(RefFrame(rid, name, t, 0, kind,
                                 (box[0] + ox, box[1] + oy, box[2] + ox, box[3] + oy), cov))
    with FaceTracker("image") as tracker:
        for rel in STILLS:
            img = cv2.imread(str(data / rel))
            faces = tracker.detect(img)
            for k in range(len(faces)):
                rid = f"{Path(rel).stem}-{k}"
                if only is not None and rid not in only and rid in kept:
                    refs.append(kept[rid])
                    continue
                box, cov = reference_mask(img, faces.raw[k], REFERENCE_FIXES.get(rid, []))
                refs.append(RefFrame(rid, rel, 0, k, "still", box, cov))
    folder.mkdir(parents=True, exist_ok=True)
    for r in refs:
        cv2.imwrite(str(folder / f"{r.id}.png"), np.round(r.coverage * 255).astype(np.uint8))
    index = {"method": "bench/bench_lip_mask.py reference_mask (4x upscale, GMM + CRF, "
                       "seeded from the raw landmarks of the frame), checked by eye",
             "fixes": sorted(REFERENCE_FIXES),
             "frames": [{"id": r.id, "source": r.source, "frame": r.frame, "face": r.face,
                         "kind": r.kind, "box": list(r.box)} for r in refs]}
    (folder / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return refs


def _shift(fixes: list[tuple[str, list[tuple[float, float]]]],
           offset: tuple[int, int]) -> list[tuple[str, list[tuple[float, float]]]]:
    return [(label, [(x - offset[0], y - offset[1]) for x, y in poly]) for label, poly in fixes]


# --------------------------------------------------------------------------- metrics

def mouth_interior(ref_lip: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Mouth interior of a reference crop: the holes of its lip, plus the landmark mouth
    opening within the lip's convex hull (not past its corners), minus lip (bool)."""
    lip = ref_lip.astype(np.uint8)
    union = lip | inner.astype(np.uint8)
    flood = np.pad(union, 1)
    cv2.floodFill(flood, None, (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    hull = np.zeros_like(lip)
    pts = cv2.findNonZero(lip)
    if pts is not None:
        cv2.fillConvexPoly(hull, cv2.convexHull(pts), 1)
    return np.asarray((holes | ((inner > 0) & (hull > 0))) & (lip == 0))


def spatial(mask: np.ndarray, ref: np.ndarray, inner: np.ndarray) -> dict[str, float]:
    """The spatial figures of one mask (crop, 0..1) against its reference coverage."""
    lip = (ref >= 0.5).astype(np.uint8)
    k = np.ones((3, 3), np.uint8)
    sure = cv2.erode(lip, k) > 0
    not_lip = cv2.dilate(lip, k) == 0
    mouth = mouth_interior(lip, inner) & not_lip
    skin = not_lip & ~mouth
    return {"painted": float(mask[sure].mean()) if sure.any() else 1.0,
            "teeth_sum": float(mask[mouth].sum()), "teeth_area": float(mouth.sum()),
            "bleed": float(mask[skin].sum() / max(1, lip.sum())),
            "edge_px": edge_distance(mask, ref)}


def edge_distance(mask: np.ndarray, ref: np.ndarray) -> float:
    """Mean distance (px) between the 0.5 edges of two coverages, averaged both ways."""
    def edge(x: np.ndarray) -> np.ndarray:
        b = (x >= 0.5).astype(np.uint8)
        return np.asarray((b - cv2.erode(b, np.ones((3, 3), np.uint8))) > 0)

    ea, eb = edge(mask), edge(ref)
    if not ea.any() or not eb.any():
        return float("inf")
    da = cv2.distanceTransform((~ea).astype(np.uint8), cv2.DIST_L2, 5)
    db = cv2.distanceTransform((~eb).astype(np.uint8), cv2.DIST_L2, 5)
    return float(0.5 * (db[ea].mean() + da[eb].mean()))


def signals(mask: np.ndarray) -> tuple[float, float, float]:
    """(mouth opening px, centroid x, centroid y) of a coverage map. The opening is the
    unpainted height between the upper and the lower lip, averaged over the middle 40 % of
    the mouth's columns (soft: 1 - coverage summed between the column's first and last
    painted pixel); 0 for a closed mouth, and it does not jump when the gap reaches a
    corner, as a count of enclosed holes does."""
    b = mask >= 0.5
    cols = np.flatnonzero(b.any(axis=0))
    opening = 0.0
    if len(cols) >= 3:
        lo, hi = int(cols[0]), int(cols[-1])
        c0, c1 = int(lo + 0.3 * (hi - lo)), int(lo + 0.7 * (hi - lo)) + 1
        for c in range(c0, c1):
            ys = np.flatnonzero(b[:, c])
            if len(ys) >= 2:
                opening += float((1 - mask[ys[0]:ys[-1] + 1, c]).sum())
        opening /= c1 - c0
    area = float(mask.sum())
    if area <= 0:
        return opening, float("nan"), float("nan")
    ys_, xs_ = np.indices(mask.shape)
    return opening, float((xs_ * mask).sum() / area), float((ys_ * mask).sum() / area)


def lag_frames(x: np.ndarray, y: np.ndarray, max_shift: float = 3.0) -> float:
    """The shift s (frames, 0.05 steps, -max..max) at which the frame-to-frame changes of
    the signals ``x`` (n, k) best correlate with those of ``y`` (n, k) delayed by s, the
    correlations of the k signals averaged; positive s: x lags y."""
    dx, dy = np.diff(x, axis=0), np.diff(y, axis=0)
    n = len(dx)
    first = int(np.ceil(max_shift)) + 1
    t = np.arange(first, n - first)
    best, best_s = -np.inf, 0.0
    for s in np.arange(-max_shift, max_shift + 1e-9, 0.05):
        pos = t - s
        lo = np.floor(pos).astype(int)
        frac = (pos - lo)[:, None]
        shifted = dy[lo] * (1 - frac) + dy[np.minimum(lo + 1, n - 1)] * frac
        a = dx[t] - dx[t].mean(axis=0)
        b = shifted - shifted.mean(axis=0)
        den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
        rho = float(np.mean((a * b).sum(axis=0) / np.maximum(den, 1e-9)))
        if rho > best + 1e-9:
            best, best_s = rho, float(s)
    return round(best_s, 2)


def still_frames(raw: np.ndarray) -> np.ndarray:
    """Frames t (>= 1) where the mouth is still from t-1 to t (see the module docstring)."""
    lips = raw[:, list(LIPS_OUTER + LIPS_INNER), :2].astype(np.float64)
    kernel = np.ones(5) / 5
    avg = np.apply_along_axis(lambda s: np.convolve(s, kernel, mode="same"), 0, lips)
    speed = np.linalg.norm(np.diff(avg, axis=0), axis=2).mean(axis=1)
    width = np.linalg.norm(raw[:, MOUTH_RIGHT, :2] - raw[:, MOUTH_LEFT, :2], axis=1)
    o = np.convolve(openness(raw), kernel, mode="same")
    still = (speed < STILL_SPEED * width[1:]) & (np.abs(np.diff(o)) < STILL_OPENING)
    still[:2] = still[-2:] = False  # the moving average is cut at the ends
    return np.flatnonzero(still) + 1


def flicker(masks: np.ndarray, still: np.ndarray) -> tuple[float, float]:
    """(mean change %, toggles %) per still frame, over the mean lip area."""
    area = float(masks.sum(axis=(1, 2)).mean())
    if not len(still) or area <= 0:
        return float("nan"), float("nan")
    change = np.abs(masks[still] - masks[still - 1]).sum(axis=(1, 2)).mean()
    toggles = ((masks[still] >= 0.5) != (masks[still - 1] >= 0.5)).sum(axis=(1, 2)).mean()
    return float(100 * change / area), float(100 * toggles / area)


# --------------------------------------------------------------------------- the run

VARIANTS = ("before", "after")


def clip_masks(clip: Clip) -> dict[str, np.ndarray]:
    """Per-frame masks of a clip: today's (polygon, today's smoothing), the new one (its
    smoothing, with the picture), and today's polygon from the raw landmarks."""
    n, h, w = clip.crops.shape[:3]
    today, new = smoothed(clip.raw, False), smoothed(clip.raw, True)
    out = {"before": np.empty((n, h, w), np.float32), "after": np.empty((n, h, w), np.float32),
           "raw": np.empty((n, h, w), np.float32)}
    for t in range(n):
        out["before"][t] = legacy_mask(today[t], w, h)
        out["after"][t] = new_mask(clip.crops[t], new[t])
        out["raw"][t] = legacy_mask(clip.raw[t], w, h)
    return out


def temporal(clip: Clip, masks: dict[str, np.ndarray]) -> dict[str, Any]:
    """Lag, flicker and toggles of each variant, and the raw mask's own flicker."""
    sig = {k: np.array([signals(m) for m in v]) for k, v in masks.items()}
    ref = sig["raw"]
    use = [j for j, floor in enumerate((0.5, 0.3, 0.3)) if ref[:, j].std() > floor]
    still = still_frames(clip.raw)
    out: dict[str, Any] = {"frames": len(clip.raw), "still_frames": len(still),
                           "signals": [("opening", "cx", "cy")[j] for j in use]}
    for k in ("before", "after", "raw"):
        f, tog = flicker(masks[k], still)
        out[k] = {"lag": lag_frames(sig[k][:, use], ref[:, use]) if k != "raw" else 0.0,
                  "flicker": f, "toggles": tog}
    return out


@dataclass
class Result:
    spatial: dict[str, dict[str, dict[str, float]]]  # group -> variant -> figures
    temporal: dict[str, dict[str, Any]]  # clip -> figures
    per_frame: list[dict[str, Any]]


def _group(ref: RefFrame) -> str:
    if ref.kind == "still":
        return "stills"
    if ref.kind == "720p":
        return "720p"
    return f"{ref.source}:{ref.kind}"


def evaluate(data: Path | None = None, refs: list[RefFrame] | None = None,
             clips: dict[str, Clip] | None = None) -> Result:
    """Every figure of the module docstring, before and after."""
    data = data or shared_data_dir()
    refs = refs if refs is not None else load_reference()
    clips = clips if clips is not None else {n: track_clip(n, data) for n in CLIPS}
    per_frame: list[dict[str, Any]] = []
    temporal_: dict[str, dict[str, Any]] = {}
    live: dict[str, dict[str, np.ndarray]] = {}
    for name, clip in clips.items():
        masks = clip_masks(clip)
        temporal_[name] = temporal(clip, masks)
        live[name] = masks
    stills: dict[str, tuple[np.ndarray, FaceLandmarks]] = {}
    if any(r.kind == "still" for r in refs):
        with FaceTracker("image") as tracker:
            for rel in {r.source for r in refs if r.kind == "still"}:
                img = cv2.imread(str(data / rel))
                stills[rel] = (img, tracker.detect(img))
    for r in refs:
        x1, y1, x2, y2 = r.box
        if r.kind == "still":
            img, faces = stills[r.source]
            pts = _face_in(faces, r.box)
            h, w = img.shape[:2]
            masks = {"before": legacy_mask(pts, w, h)[y1:y2, x1:x2],
                     "after": new_mask(img, pts)[y1:y2, x1:x2]}
            raw_pts = pts
            off = (0, 0)
        else:
            clip = clips[r.source]
            off = clip.offset
            cx1, cy1, cx2, cy2 = x1 - off[0], y1 - off[1], x2 - off[0], y2 - off[1]
            masks = {k: live[r.source][k][r.frame][cy1:cy2, cx1:cx2] for k in VARIANTS}
            raw_pts = clip.raw[r.frame].copy()
            raw_pts[:, 0] += off[0]
            raw_pts[:, 1] += off[1]
        inner = np.zeros(r.coverage.shape, np.uint8)
        cv2.fillPoly(inner, [np.round(raw_pts[list(LIPS_INNER), :2] - (x1, y1)).astype(np.int32)],
                     1)
        row: dict[str, Any] = {"id": r.id, "group": _group(r)}
        for k in VARIANTS:
            row[k] = spatial(masks[k], r.coverage, inner)
        per_frame.append(row)
    groups: dict[str, dict[str, dict[str, float]]] = {}
    for g in sorted({row["group"] for row in per_frame}):
        rows = [row for row in per_frame if row["group"] == g]
        groups[g] = {k: _summary([row[k] for row in rows]) for k in VARIANTS}
    for name in clips:
        rows = [row for row in per_frame if row["group"].startswith(f"{name}:")
                and not row["group"].endswith(":closed")]
        if rows:  # the talking frames of a clip together: open and just closed
            groups[f"{name}:talking"] = {k: _summary([row[k] for row in rows]) for k in VARIANTS}
    return Result(groups, temporal_, per_frame)


MIN_OPENING = 10  # sure mouth-interior pixels for a frame to count in teeth/cavity %


def _summary(rows: list[dict[str, float]]) -> dict[str, float]:
    """A group's figures; teeth/cavity % over its frames with a visible opening only (a
    closed mouth's seam is a few pixels the reference may call either)."""
    rows_open = [r for r in rows if r["teeth_area"] >= MIN_OPENING]
    area = sum(r["teeth_area"] for r in rows_open)
    return {"frames": len(rows),
            "painted": 100 * float(np.mean([r["painted"] for r in rows])),
            "painted_min": 100 * float(np.min([r["painted"] for r in rows])),
            "teeth": 100 * sum(r["teeth_sum"] for r in rows_open) / area if area else 0.0,
            "open_frames": len(rows_open),
            "bleed": 100 * float(np.mean([r["bleed"] for r in rows])),
            "edge_px": float(np.mean([r["edge_px"] for r in rows]))}


def _face_in(faces: FaceLandmarks, box: tuple[int, int, int, int]) -> np.ndarray:
    """The face whose lips are centred in ``box``."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    d = [np.hypot(*(p[list(LIPS_OUTER), :2].mean(axis=0) - (cx, cy))) for p in faces.points]
    return np.asarray(faces.points[int(np.argmin(d))], np.float32)


def after_closure(result: Result) -> list[tuple[str, float]]:
    """(reference id, painted %) of every frame just after a closure, with the new mask."""
    return [(row["id"], 100 * row["after"]["painted"]) for row in result.per_frame
            if row["group"].endswith(":after-closure")]


# --------------------------------------------------------------------------- cost

def time_prepare(data: Path, frames: int = 60, repeats: int = 5) -> dict[str, Any]:
    """Per-face ms on the 720p clip, medians of ``repeats`` runs (the machine is shared):
    all of :func:`prepare_lips` (matte shade), the segmented mask alone, and the landmark
    mask without the picture (what the mask cost before the segmentation, roughly)."""
    imgs, pts = [], []
    with FaceTracker("video", max_faces=1) as tracker:
        for i, img in enumerate(decode(data / VIDEO_720P)):
            faces = tracker.detect(img, i / FPS)
            if len(faces):
                imgs.append(img)
                pts.append(faces.points[0])
            if len(imgs) >= frames:
                break
    params = LipParams(colour=(40.0, 55.0, 30.0), opacity=0.9)
    runs: dict[str, list[float]] = {"prepare_lips": [], "segmented_mask": [],
                                    "landmark_mask": []}
    for _ in range(repeats):
        ms: dict[str, list[float]] = {k: [] for k in runs}
        for img, p in zip(imgs, pts, strict=True):
            geom = lip_geometry(p, img.shape[1], img.shape[0])
            if geom is None:
                continue
            x1, y1, x2, y2 = geom.box
            lab = roi_to_lab(img[y1:y2, x1:x2])
            t0 = time.perf_counter()
            prepare_lips(img, geom, params)
            t1 = time.perf_counter()
            lip_roi_mask(geom, None, img, lab)
            t2 = time.perf_counter()
            lip_roi_mask(geom)
            t3 = time.perf_counter()
            for k, dt in zip(ms, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                ms[k].append(dt * 1000)
        for k in runs:
            runs[k].append(float(np.median(ms[k][5:])))
    return {"frames": len(imgs), "repeats": repeats, "runs_ms": runs,
            "median_ms": {k: float(np.median(v)) for k, v in runs.items()}}


# --------------------------------------------------------------------------- reports

def to_markdown(result: Result, cost: dict[str, Any] | None) -> str:
    out = ["# Lip mask: today's polygon (before) and the picture-based mask (after)", "",
           "Against the reference segmentation in `results/lip-mask/reference/` (see "
           "`bench/bench_lip_mask.py`). Painted = coverage of the sure lip; teeth/cavity = "
           "coverage of the sure mouth interior; bleed = paint on sure skin over the lip "
           "area; edge = mean distance between the mask's and the reference's edges.", "",
           "| group | frames | painted lip % | teeth/cavity % (frames open) | bleed % | edge px |",
           "|---|---:|---:|---:|---:|---:|"]
    for g, v in result.spatial.items():
        b, a = v["before"], v["after"]
        out.append(f"| {g} | {a['frames']} | {b['painted']:.1f} -> **{a['painted']:.1f}** "
                   f"(min {a['painted_min']:.1f}) | {b['teeth']:.1f} -> **{a['teeth']:.1f}** "
                   f"({a['open_frames']}) | "
                   f"{b['bleed']:.1f} -> **{a['bleed']:.1f}** | "
                   f"{b['edge_px']:.2f} -> **{a['edge_px']:.2f}** |")
    out += ["", "| clip | frames (still) | lag, frames | flicker % | toggles % | raw-landmark "
                "mask flicker / toggles % |", "|---|---:|---:|---:|---:|---:|"]
    for name, t in result.temporal.items():
        b, a, r = t["before"], t["after"], t["raw"]
        out.append(f"| {name} | {t['frames']} ({t['still_frames']}) | {b['lag']:.2f} -> "
                   f"**{a['lag']:.2f}** | {b['flicker']:.2f} -> **{a['flicker']:.2f}** | "
                   f"{b['toggles']:.2f} -> **{a['toggles']:.2f}** | "
                   f"{r['flicker']:.2f} / {r['toggles']:.2f} |")
    closure = after_closure(result)
    if closure:
        worst = min(closure, key=lambda x: x[1])
        out += ["", f"After closures ({len(closure)} frames): painted lip >= "
                    f"{worst[1]:.1f} % (worst {worst[0]})."]
    if cost:
        m, r = cost["median_ms"], cost["runs_ms"]
        out += ["", "Per face, 720p clip, median of "
                    f"{cost['repeats']} runs of {cost['frames']} frames (each run's median): "
                    f"`prepare_lips` **{m['prepare_lips']:.2f} ms** "
                    f"({', '.join(f'{x:.2f}' for x in r['prepare_lips'])}), of which the "
                    f"segmented mask {m['segmented_mask']:.2f} ms; the landmark mask alone "
                    f"(no picture) {m['landmark_mask']:.2f} ms."]
    return "\n".join(out) + "\n"


def contact_sheets(result: Result, refs: list[RefFrame], clips: dict[str, Clip], data: Path,
                   folder: Path, per_group: int = 2) -> list[Path]:
    """Per clip (and the stills) one PNG: rows of input | today's mask | new mask |
    reference, each mask tinted with its 0.5 edge drawn."""
    stills: dict[str, tuple[np.ndarray, FaceLandmarks]] = {}
    written = []
    by_source: dict[str, list[RefFrame]] = {}
    for r in refs:
        by_source.setdefault("stills" if r.kind == "still" else r.source, []).append(r)
    for source, rs in by_source.items():
        picks: list[RefFrame] = []
        for kind in ("open", "closed", "after-closure", "720p", "still"):
            of = [r for r in rs if r.kind == kind]
            if of:
                picks += [of[round(x)] for x in np.linspace(0, len(of) - 1,
                                                            min(per_group, len(of)))]
        rows = []
        for r in picks:
            img, masks = _masks_for(r, clips, stills, data)
            rows.append(_sheet_row(img, masks, r))
        width = max(x.shape[1] for x in rows)
        sheet = np.vstack([cv2.copyMakeBorder(x, 0, 2, 0, width - x.shape[1],
                                              cv2.BORDER_CONSTANT) for x in rows])
        path = folder / f"sheet-{source.replace('/', '-')}.png"
        cv2.imwrite(str(path), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        written.append(path)
    return written


def _masks_for(r: RefFrame, clips: dict[str, Clip],
               stills: dict[str, tuple[np.ndarray, FaceLandmarks]],
               data: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    x1, y1, x2, y2 = r.box
    if r.kind == "still":
        if r.source not in stills:
            with FaceTracker("image") as tracker:
                img = cv2.imread(str(data / r.source))
                stills[r.source] = (img, tracker.detect(img))
        img, faces = stills[r.source]
        pts = _face_in(faces, r.box)
        h, w = img.shape[:2]
        return img[y1:y2, x1:x2], [legacy_mask(pts, w, h)[y1:y2, x1:x2],
                                   new_mask(img, pts)[y1:y2, x1:x2], r.coverage]
    clip = clips[r.source]
    ox, oy = clip.offset
    crop = clip.crops[r.frame]
    h, w = crop.shape[:2]
    today = smoothed(clip.raw[:r.frame + 1], False)[-1]
    new = smoothed(clip.raw[:r.frame + 1], True)[-1]
    sl = (slice(y1 - oy, y2 - oy), slice(x1 - ox, x2 - ox))
    return crop[sl], [legacy_mask(today, w, h)[sl], new_mask(crop, new)[sl], r.coverage]


def _sheet_row(img: np.ndarray, masks: list[np.ndarray], r: RefFrame) -> np.ndarray:
    scale = max(1, min(4, 200 // max(1, img.shape[1])))
    big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    panels = [big]
    for m, colour in zip(masks, ((255, 0, 255), (0, 0, 255), (0, 200, 0)), strict=True):
        mm = cv2.resize(m, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        tint = big.astype(np.float32) * (1 - 0.4 * mm[..., None]) \
            + np.array(colour, np.float32) * 0.4 * mm[..., None]
        panel = tint.clip(0, 255).astype(np.uint8)
        cnts, _ = cv2.findContours((mm >= 0.5).astype(np.uint8), cv2.RETR_LIST,
                                   cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(panel, cnts, -1, (255, 255, 255), 1)
        panels.append(panel)
    row = np.hstack([cv2.copyMakeBorder(p, 0, 0, 0, 2, cv2.BORDER_CONSTANT) for p in panels])
    label = f"{r.id} {r.kind}   input | today | new | reference"
    cv2.putText(row, label, (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 255, 255), 1)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    ap.add_argument("--build-reference", action="store_true")
    ap.add_argument("--only", default=None, help="with --build-reference: these ids only "
                                                  "(comma-separated), the rest kept")
    ap.add_argument("--sheets", type=Path, default=None, help="write contact sheets here")
    ap.add_argument("--no-cost", action="store_true")
    args = ap.parse_args()
    data = args.data or shared_data_dir()
    if not (data / "SOURCES.md").is_file():
        raise SystemExit(f"no test data at {data}: pass --data or set ARENGINE_DATA")
    only = set(args.only.split(",")) if args.only else None
    refs = build_reference(data, only=only) if args.build_reference else load_reference()
    clips = {n: track_clip(n, data) for n in CLIPS}
    result = evaluate(data, refs, clips)
    cost = None if args.no_cost else time_prepare(data)
    res = {"machine": f"{platform.processor() or platform.machine()}, "
                      f"{len(os.sched_getaffinity(0))} CPU cores",
           "spatial": result.spatial, "temporal": result.temporal,
           "after_closure": after_closure(result), "per_frame": result.per_frame,
           "cost_720p": cost}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lip_mask.json").write_text(json.dumps(res, indent=1))
    md = to_markdown(result, cost)
    (args.out / "lip_mask.md").write_text(md)
    if args.sheets is not None:
        args.sheets.mkdir(parents=True, exist_ok=True)
        for p in contact_sheets(result, refs, clips, data, args.sheets):
            print("wrote", p)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
