"""Lips from the picture: which pixels around the mouth are lip, decided on every frame.

The landmark polygon alone misses the visible lip: on open mouths its inner contour lies
inside the lip, and its lower outline can sit below the real lip line. Here every pixel
of a band around that polygon is classified from the frame itself, with colour models
learnt on this face in this frame:

- **lip** from the lip core (between the outer and inner contours, away from both);
- **skin** from a ring just outside the band the lips may reach;
- **teeth** (the brighter half) and **cavity** (the darker half) from deep inside the
  mouth opening, weighted by how far the mouth is open (a closed mouth has neither).

Each class is one Gaussian in CIELAB (lip and skin share their pooled covariance, so the
edge falls halfway between their colours, where a blurred lip line crosses 50 %). The
per-pixel log-likelihood ratio of lip against the best other class, plus a mild prior
towards the landmark ring, is filtered with a guided filter (guide: the lightness), which
removes the chroma noise of the video and snaps the edge to the picture's, and becomes
the coverage through a logistic. Outside the band nothing is painted; the lip core
always is.

Arrays in, arrays out; no state. :func:`arengine.effects.lipstick.lip_roi_mask` feeds it
the box and the contours and cuts out hands afterwards.

Each constant says which measurement it comes from: the reference segmentations of
``bench/bench_lip_mask.py`` (88 frames: the 5 GRID talking heads, mouths 31-47 px wide;
the 720p clip, 103-112 px; 7 faces in 5 stills, 43-170 px), with the spatial figures
defined there (painted share of the sure lip, paint on sure skin and mouth interior).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from arengine.effects import lip_kernels as kernels

# How far the real lip line lies outside the landmark outline (99th percentile of the
# reference lip pixels outside the outer polygon, per frame): up to 4.2 px on GRID mouths,
# 2 px at 103-112 px, 7 px at 170 px. Not proportional to the mouth (the blur of a small
# video adds a constant), so a constant plus a small share of the width: 3.7 px at 40 px,
# 5.8 px at 110 px, 7.6 px at 170 px.
EXTEND_PX = 2.5
EXTEND_FRAC = 0.03
# How deep the real lip reaches into the landmark mouth opening (99th percentile of the
# reference lip pixels inside the inner polygon): up to 3.6 px on GRID, 4.2 px on the
# 81 px open smile.
GROW_PX = 1.5
GROW_FRAC = 0.05
# Past the mouth corners (along the mouth axis) lip may reach this far: the reference lips
# end a median 1.1 px and at most 3.8 px past the landmark corners on GRID (0.09 of the
# width); farther out, the dark corner crease looks like lip but is not.
CORNER_PX = 0.5
CORNER_FRAC = 0.05
# The skin ring: from 1 px beyond the band to 0.08 mouth widths farther (at least 2 px),
# read on 3 offsets along the outer contour: 250-450 samples on every reference face.
RING_GAP_PX = 1.0
RING_WIDTH_FRAC = 0.08
RING_OFFSETS = 3
# The lip core: pixels whose distance to the nearer lip contour is at least this share of
# the local lip thickness (and at least 1 px), the middle 30 % of each lip. On the
# reference frames >= 99 % of them are lip, even where the lower outline sits 2-3 px below
# the real lip line; they are always painted (a gloss highlight there is still lip).
CORE_SHARE = 0.35
# At most this many samples per model (every other one, and so on): the moments of 256
# pixels are as good here as those of 2000, and cost a tenth.
MAX_SAMPLES = 256
MIN_SAMPLES = 12
# Covariance floors (CIELAB units squared): compression noise on the test clips is about
# 1.5 L and 1 a/b units per pixel, and a model learnt from a few dozen pixels must not
# collapse to a point.
VAR_FLOOR = np.array([4.0, 1.0, 1.0])
# Log-likelihood ratios are clipped: past +-8 nats a pixel is decided, and unclipped ratios
# of far-off colours would swamp their neighbours in the guided filter.
LLR_CLIP = 8.0
# The landmark prior, in nats: +PRIOR 2 px inside the ring, -PRIOR at the band's edge. A
# colour contrast weaker than this (pale lips on pale skin, the 720p clip) leaves the edge
# to the landmarks. 1-3 gave the same figures within 0.5 points; 2 sits in the middle.
PRIOR = 2.0
# A constant bias (nats) against lip: at 0 the mask's edge lay a little outside the
# reference's (bleed 2.4 % of the lip area on talking GRID frames); at -0.5 bleed is 1.5 %
# for 0.6 points of painted lip; at -1 painted lip drops 1-2 points more.
BIAS = -0.5
# Inner gap (px) over which teeth and cavity become possible classes: below 1 px the
# landmark opening is a seam between closed lips; from 2.5 px a dark gap shows on every
# reference frame. A ramp, not a switch, so that a half-open mouth does not flicker.
OPEN_FROM = 1.0
OPEN_TO = 2.5
# The guided filter (radius 1 px, eps in guide units, L/100): on the log-likelihood ratio,
# not on the probability, so it smooths noise without blurring the edge. Filtering the
# probability (eps 1e-3) cost 3 points of painted lip and doubled the bleed; radii of
# 0.03-0.04 mouth widths cost 1-5 points more; eps 0.01-0.1 are alike.
GUIDE_RADIUS = 1
GUIDE_EPS = 0.01
# Coverage under 2 % is cut to 0: the logistic never reaches 0, and without the cut every
# pixel of the band (teeth, skin) would carry a haze of colour of up to 2 levels.
COVER_FLOOR = 0.02
# Teeth and cavity are learnt only from opening pixels farther from the lip colour than
# this (squared Mahalanobis distance to the lip model, 1.7 sigma): right after a closure
# the smoothed opening still covers closed lips, and models learnt on those cut a hole in
# them (painted lip fell to 79 % on one such frame with every pixel used, 90.5 % from 9 on;
# at 16 and 27 more dark-red cavity passed for lip: 4 % and 10 % of the opening painted).
MOUTH_UNLIKE = 9.0


def band_sizes(mouth_width: float) -> tuple[float, float, float]:
    """(extend, grow, ring) in pixels for a mouth ``mouth_width`` px wide: how far lip may
    reach outside the outline and into the opening, and where the skin ring ends."""
    extend = EXTEND_PX + EXTEND_FRAC * mouth_width
    grow = GROW_PX + GROW_FRAC * mouth_width
    ring = extend + RING_GAP_PX + max(2.0, RING_WIDTH_FRAC * mouth_width)
    return extend, grow, ring


@dataclass(frozen=True)
class Gaussian:
    """One colour class. ``whiten`` (3x4) maps a Lab pixel (with a 1 appended) to the
    class's unit-variance frame: the log-likelihood is ``log_norm - |whiten x|^2 / 2``."""

    mean: np.ndarray
    cov: np.ndarray
    whiten: np.ndarray
    log_norm: float

    @classmethod
    def of(cls, mean: np.ndarray, cov: np.ndarray) -> Gaussian:
        """The Gaussian of ``mean`` (3,) and ``cov`` (3, 3), positive definite. The 3x3
        algebra is written out in floats: numpy's linalg calls cost ~15 us each on arrays
        this small, and a frame fits up to eight of these."""
        (c00, _, _), (c10, c11, _), (c20, c21, c22) = cov.tolist()
        m0, m1, m2 = (float(v) for v in mean)
        l00 = math.sqrt(c00)  # cov = L L^T, L lower triangular
        l10, l20 = c10 / l00, c20 / l00
        l11 = math.sqrt(max(c11 - l10 * l10, 1e-9))
        l21 = (c21 - l20 * l10) / l11
        l22 = math.sqrt(max(c22 - l20 * l20 - l21 * l21, 1e-9))
        # whiten = L^-1: |L^-1 (x - mean)|^2 is the squared Mahalanobis distance.
        i00, i11, i22 = 1 / l00, 1 / l11, 1 / l22
        i10 = -l10 * i00 * i11
        i21 = -l21 * i11 * i22
        i20 = -(l20 * i00 + l21 * i10) * i22
        whiten = np.array([[i00, 0.0, 0.0, -i00 * m0],
                           [i10, i11, 0.0, -(i10 * m0 + i11 * m1)],
                           [i20, i21, i22, -(i20 * m0 + i21 * m1 + i22 * m2)]], np.float32)
        return cls(np.asarray(mean, np.float64), cov, whiten, -math.log(l00 * l11 * l22))

    @classmethod
    def fit(cls, samples: np.ndarray, trim: bool = False) -> Gaussian:
        """Mean and covariance of ``samples`` (n, 3), plus :data:`VAR_FLOOR`; with ``trim``,
        refit once without the samples beyond 3 sigma (a tooth or hair in the skin ring)."""
        x = np.ascontiguousarray(samples, np.float32).reshape(-1, 3)
        return cls._fit(_NO_IMAGE, _NO_SELECT, x, len(x), trim)

    @classmethod
    def fit_pixels(cls, lab: np.ndarray, select: np.ndarray, count: int) -> Gaussian:
        """:meth:`fit` of the pixels of ``lab`` where ``select`` (uint8, ``count`` of them
        set) is, read in place: no copy of them is made."""
        return cls._fit(lab, select, _NO_ROWS, count, False)

    @classmethod
    def _fit(cls, image: np.ndarray, select: np.ndarray, rows: np.ndarray, count: int,
             trim: bool) -> Gaussian:
        # At most MAX_SAMPLES: every step-th sample.
        step = math.ceil(count / MAX_SAMPLES) if count > MAX_SAMPLES else 1
        sums = np.empty(10)
        kernels.moments_into(image, select, rows, step, _NO_WHITEN, 0.0, sums)
        g = cls._of_sums(sums)
        if trim and sums[0] >= 2 * MIN_SAMPLES:
            kept = np.empty(10)
            # 27: 3 sigma in each of 3 dimensions.
            kernels.moments_into(image, select, rows, step, g.whiten.astype(np.float64), 27.0,
                                 kept)
            if kept[0] >= MIN_SAMPLES:
                g = cls._of_sums(kept)
        return g

    @classmethod
    def _of_sums(cls, sums: np.ndarray) -> Gaussian:
        """The Gaussian of moments_into's count, sums and cross sums."""
        n, s0, s1, s2, s00, s01, s02, s11, s12, s22 = sums.tolist()
        if n < 1:
            raise ValueError("a colour model needs at least one sample")
        m0, m1, m2 = s0 / n, s1 / n, s2 / n
        k = 1.0 / max(n - 1.0, 1.0)
        f0, f1, f2 = VAR_FLOOR.tolist()
        c01, c02, c12 = (s01 - n * m0 * m1) * k, (s02 - n * m0 * m2) * k, (s12 - n * m1 * m2) * k
        cov = np.array([[(s00 - n * m0 * m0) * k + f0, c01, c02],
                        [c01, (s11 - n * m1 * m1) * k + f1, c12],
                        [c02, c12, (s22 - n * m2 * m2) * k + f2]])
        return cls.of(np.array((m0, m1, m2)), cov)

    @classmethod
    def diagonal(cls, mean: tuple[float, float, float],
                 sigma: tuple[float, float, float]) -> Gaussian:
        """A fixed model (teeth or cavity before the opening shows enough of them)."""
        return cls.of(np.asarray(mean, np.float64), np.diag(np.square(sigma)))


_NO_IMAGE = np.zeros((0, 0, 3), np.float32)
_NO_SELECT = np.zeros((0, 0), np.uint8)
_NO_ROWS = np.zeros((0, 3), np.float32)
_NO_WHITEN = np.zeros((0, 0), np.float64)


def _fill(shape: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    """Binary (0/1) fill of a polygon given in pixel coordinates, 1/16 px precision."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    return mask


def _dist(mask: np.ndarray) -> np.ndarray:
    return cv2.distanceTransform(mask, cv2.DIST_L2, 3)


def ring_points(outer: np.ndarray, mouth_width: float) -> np.ndarray:
    """Where to sample skin: the outer contour, 4 points per segment, pushed out from the
    mouth's centre onto :data:`RING_OFFSETS` offsets between just past the lip band and
    the ring's edge (n, 2). Radial offsets equal normal ones on the lips' near-elliptic
    outline, and cost a tenth."""
    extend, _, ring = band_sizes(mouth_width)
    pts = outer.astype(np.float32)
    step = np.concatenate((pts[1:], pts[:1])) - pts  # to the next point, round the contour
    dense = (pts[:, None, :] + step[:, None, :] * _QUARTERS).reshape(-1, 2)
    radial = dense - pts.sum(axis=0) * np.float32(1.0 / len(pts))  # from the centre
    radial *= 1.0 / np.maximum(np.sqrt((radial * radial).sum(axis=1)), 1e-3)[:, None]
    first = extend + RING_GAP_PX
    offsets = (first + (ring - first) * _OFFSET_STEPS).astype(np.float32)
    out = dense[None, :, :] + offsets[:, None, None] * radial[None, :, :]
    return np.asarray(out.reshape(-1, 2))


_QUARTERS = np.array([[0.0], [0.25], [0.5], [0.75]], np.float32)
_OFFSET_STEPS = np.linspace(0.0, 1.0, RING_OFFSETS)


def sample_pixels(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """CIELAB (n, 3) of the frame's pixels nearest ``points``, those inside the frame."""
    h, w = frame.shape[:2]
    xy = np.round(points).astype(np.int32)
    ok = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    if ok.sum() > MAX_SAMPLES:
        ok &= np.arange(len(ok)) % math.ceil(ok.sum() / MAX_SAMPLES) == 0
    px = frame[xy[ok, 1], xy[ok, 0]].reshape(-1, 1, 3)
    if not len(px):
        return np.zeros((0, 3), np.float32)
    lab = cv2.cvtColor(px.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_BGR2Lab)
    return np.asarray(lab.reshape(-1, 3))


def _smoothstep(e0: float, e1: float, x: float) -> float:
    t = min(max((x - e0) / (e1 - e0), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def segment_lips(lab: np.ndarray, outer: np.ndarray, inner: np.ndarray, mouth_width: float,
                 gap: float, skin: np.ndarray) -> np.ndarray:
    """Lip coverage (float32 0..1, the shape of ``lab``) of one mouth.

    ``lab`` is the CIELAB of the lips' box (float32, L 0..100), ``outer``/``inner`` the
    landmark contours in box pixels, ``gap`` the inner-lip gap in pixels and ``skin``
    Lab samples of the skin around the lips (:func:`ring_points`, :func:`sample_pixels`).
    """
    shape = (lab.shape[0], lab.shape[1])
    extend, grow, _ = band_sizes(mouth_width)
    outer_fill, inner_fill = _fill(shape, outer), _fill(shape, inner)
    d_out = _dist(1 - outer_fill)  # outside the outer contour
    d_mouth = _dist(inner_fill)  # inside the mouth opening
    d_in, d_ring = _dist(outer_fill), _dist(1 - inner_fill)  # to the outer, inner contour
    ring, core, allowed = (np.empty(shape, np.uint8) for _ in range(3))
    prior = np.empty(shape, np.float32)
    # The prior: up to +PRIOR 2 px inside the landmark ring, down to -PRIOR at the band's
    # edge outside it (outwards or into the mouth), plus the bias; the band stops at the
    # corners (within_corners).
    kernels.regions_into(outer_fill, inner_fill, d_out, d_mouth, d_in, d_ring,
                         np.array((extend, grow, CORE_SHARE, PRIOR, BIAS,
                                   *_corners(outer, mouth_width)), np.float64),
                         ring, core, allowed, prior)
    lip_at, n_lip = core, cv2.countNonZero(core)
    if n_lip < MIN_SAMPLES:
        lip_at, n_lip = ring, cv2.countNonZero(ring)
    if n_lip < MIN_SAMPLES or len(skin) < MIN_SAMPLES:
        return ring.astype(np.float32)  # too little picture to learn from: the landmarks
    lip_own = Gaussian.fit_pixels(lab, lip_at, n_lip)
    skin_model = Gaussian.fit(skin, trim=True)
    pooled = 0.5 * (lip_own.cov + skin_model.cov)
    models = [Gaussian.of(lip_own.mean, pooled), Gaussian.of(skin_model.mean, pooled)]
    log_norms = [models[0].log_norm, models[1].log_norm]
    weight = _smoothstep(OPEN_FROM, OPEN_TO, gap)
    if weight > 0:
        for model in _mouth_models(lab, inner_fill, d_mouth, lip_own):
            models.append(model)
            log_norms.append(model.log_norm + math.log(weight))
    logit = np.empty(shape, np.float32)
    kernels.logit_into(lab, np.stack([m.whiten for m in models]),
                       np.array(log_norms, np.float64), len(models), prior, core, allowed,
                       LLR_CLIP, PRIOR, logit)
    guide = cv2.extractChannel(lab, 0) * np.float32(1 / 100)
    logit = cv2.ximgproc.guidedFilter(guide, logit, GUIDE_RADIUS, GUIDE_EPS)
    cover = np.empty(shape, np.float32)
    kernels.coverage_into(logit, allowed, COVER_FLOOR, cover)
    return cover


def _mouth_models(lab: np.ndarray, inner_fill: np.ndarray, d_mouth: np.ndarray,
                  lip: Gaussian) -> tuple[Gaussian, Gaussian]:
    """Teeth and cavity, learnt from the middle of the opening (farther from its contour
    than 30 % of its half height): its pixels unlike lip (:data:`MOUTH_UNLIKE`) brighter
    than the lip are teeth, the darker ones cavity. Where fewer than MIN_SAMPLES show,
    fixed models stand in (bright and neutral; dark and reddish)."""
    deep = (inner_fill > 0) & (d_mouth >= max(1.0, 0.3 * float(d_mouth.max())))
    px = lab[deep]
    if len(px):
        y = cv2.transform(px.reshape(-1, 1, 3), lip.whiten).reshape(-1, 3)
        px = px[np.einsum("ij,ij->i", y, y) > MOUTH_UNLIKE]
    l_lip, a_lip = float(lip.mean[0]), float(lip.mean[1])
    bright = px[:, 0] > l_lip
    teeth = Gaussian.fit(px[bright]) if bright.sum() >= MIN_SAMPLES else \
        Gaussian.diagonal((min(95.0, l_lip + 25.0), 0.25 * a_lip, 10.0), (10.0, 4.0, 6.0))
    cavity = Gaussian.fit(px[~bright]) if (~bright).sum() >= MIN_SAMPLES else \
        Gaussian.diagonal((max(5.0, l_lip - 30.0), 0.6 * a_lip, 5.0), (8.0, 6.0, 6.0))
    return teeth, cavity


def _corners(outer: np.ndarray, mouth_width: float) -> tuple[float, float, float, float, float]:
    """(centre x, y, axis x, y, reach) of :func:`within_corners`' test: a pixel is within
    the corners when its distance from the centre along the axis is at most the reach."""
    i, j = kernels.farthest_pair(np.ascontiguousarray(outer, np.float32))
    (ax_, ay_), (bx, by) = outer[i].tolist(), outer[j].tolist()
    length = math.hypot(bx - ax_, by - ay_)
    if length < 1e-3:
        return (0.0, 0.0, 0.0, 0.0, math.inf)
    reach = length / 2 + CORNER_PX + CORNER_FRAC * mouth_width
    return ((ax_ + bx) / 2, (ay_ + by) / 2, (bx - ax_) / length, (by - ay_) / length, reach)


def within_corners(shape: tuple[int, int], outer: np.ndarray, mouth_width: float) -> np.ndarray:
    """Pixels no farther along the mouth axis than its corners (the outer contour's two
    farthest points), plus :data:`CORNER_PX` and :data:`CORNER_FRAC` of the width."""
    cx, cy, ax, ay, reach = _corners(outer, mouth_width)
    xs = (np.arange(shape[1], dtype=np.float32) - np.float32(cx)) * np.float32(ax)
    ys = (np.arange(shape[0], dtype=np.float32) - np.float32(cy)) * np.float32(ay)
    return np.asarray(np.abs(ys[:, None] + xs[None, :]) <= reach)


def support_mask(shape: tuple[int, int], outer: np.ndarray, inner: np.ndarray,
                 mouth_width: float) -> np.ndarray:
    """Where :func:`segment_lips` may paint on any picture (uint8 0/255): the landmark lip
    ring grown outwards by the lip band, into the opening by the grow, within the corners."""
    extend, grow, _ = band_sizes(mouth_width)
    d_out = _dist(1 - _fill(shape, outer))
    d_mouth = _dist(_fill(shape, inner))
    allowed = (d_out <= extend) & (d_mouth <= grow) & within_corners(shape, outer,
                                                                     mouth_width)
    return allowed.astype(np.uint8) * np.uint8(255)
