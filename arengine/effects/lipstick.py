"""Virtual lipstick: recolours the lips of every tracked face with a catalog shade.

The work is split so that each part can be checked (and later ported to a shader) on its own:

1. :func:`lip_geometry` - the lips' box, contours and mouth axes from the face landmarks;
2. :func:`lip_roi_mask` - which pixels of that box are lip (not teeth, skin or a hand);
3. :func:`measure_light` and :func:`lip_fields` - the light on the face (from the skin
   around the mouth) and the per-pixel inputs derived from the picture, the geometry and
   the landmarks' depth (the lip surface's normals, glitter flakes in lip coordinates,
   blurred lightness, the liner's and the ombre's coordinates);
4. :func:`composite_lips` - one pure per-pixel function that mixes the shade in, and reads
   back how far the result is from the shade in that light (``LipstickEffect.last_readout``).

Everything runs on the lips' bounding box only: a full-frame colour conversion alone would
cost more than the whole effect. Steps 1-3 always run here (:func:`prepare_lips`); step 4
runs here too, or in a render backend (``LipstickEffect(backend=...)``: the CPU reference
or the same formula as GLSL), so lipstick and the on-screen layers can share one frame.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from arengine.catalog import Shade, ShadeCatalog, default_catalog
from arengine.effects import lip_kernels as kernels
from arengine.effects.base import Effect, register_effect
from arengine.effects.lip_segmentation import (
    band_sizes,
    ring_points,
    sample_pixels,
    segment_lips,
    support_mask,
)
from arengine.render.lips import (
    GLINT_MIN_PX,
    GLINT_SIZE,
    GLINT_TEXELS,
    NEUTRAL_LIGHT,
    Lab,
    LipColour,
    LipFields,
    LipParams,
    SceneLight,
    composite_and_read,
    composite_lips,
    glint_texture,
    lip_readout,
    roi_to_lab,
)
from arengine.tracking.geometry import clip_box, hands_mask
from arengine.types import (
    LIPS_INNER,
    LIPS_OUTER,
    LOWER_LIP_INNER_MID,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    UPPER_LIP_INNER_MID,
    FaceLandmarks,
    HandLandmarks,
    Scene,
)

if TYPE_CHECKING:
    from arengine.render.backend import RenderBackend

DEFAULT_SHADE = "velvet-ruby"
# The light measured on a face is smoothed with this time constant (seconds): on the 720p
# clip the skin ring's mean moves by 0.5 L* from frame to frame (2.8 at the 95th
# percentile, as the mouth moves and the thumb passes) while the light does not.
LIGHT_SMOOTH_S = 0.25
LIGHT_INTERVAL_S = 0.09  # so it is measured at most about 11 times a second
# --------------------------------------------------------------------------- geometry

@dataclass(frozen=True)
class LipGeometry:
    """One face's lips in the coordinates of their region of interest (ROI).

    ``box`` is the ROI in frame pixels (x1, y1, x2, y2); every other point is relative to
    its top-left corner. ``axis`` runs from the mouth's image-left corner to its right one;
    ``half_width``/``half_height`` are half the mouth's width and outer-lip height along and
    across it. ``feather`` is the edge softness in pixels, ``inner_grow`` how far the
    mouth opening is enlarged before it is cut out when there is no picture to segment
    (0 when the mouth is closed), ``gap`` the inner-lip gap in pixels. The box holds the
    landmark lips plus the band the picture may extend them by (see
    :mod:`arengine.effects.lip_segmentation`).
    """

    box: tuple[int, int, int, int]
    outer: np.ndarray
    inner: np.ndarray
    centre: tuple[float, float]
    axis: tuple[float, float]
    half_width: float
    half_height: float
    feather: float
    inner_grow: float
    gap: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        x1, y1, x2, y2 = self.box
        return (y2 - y1, x2 - x1)


_OUTER = np.array(LIPS_OUTER)
_INNER = np.array(LIPS_INNER)


def lip_geometry(points: np.ndarray, width: int, height: int) -> LipGeometry | None:
    """The lips of one face (``points`` (478, 2|3) pixels), or None when they are off-frame."""
    # Scalars in Python floats: numpy's calls on 2-vectors cost 3-10 us each (the function
    # took 49 us so, 20 us now).
    p = points[:, :2].astype(np.float32)
    if not np.isfinite(p).all():
        return None
    outer = p[_OUTER]
    inner = p[_INNER]
    (lx, ly), (rx, ry) = p[MOUTH_LEFT].tolist(), p[MOUTH_RIGHT].tolist()
    mouth_w = math.hypot(rx - lx, ry - ly)
    if mouth_w < 4.0:
        return None
    feather = min(max(0.02 * mouth_w, 1.0), 3.0)
    (ux, uy), (dx, dy) = p[UPPER_LIP_INNER_MID].tolist(), p[LOWER_LIP_INNER_MID].tolist()
    gap = math.hypot(ux - dx, uy - dy)
    # A closed mouth has a degenerate inner contour: growing it would cut a band out of the
    # closed lips, so only a real opening is grown (past the feather, so the blurred edge
    # never reaches the teeth); a closed one is cut out as it is (a hairline at most). The
    # grow ramps in over one more such gap instead of switching on: a switch made the
    # mask of a half-open mouth flicker from frame to frame.
    g0 = max(1.0, 0.015 * mouth_w)
    inner_grow = (1.5 * feather + 0.5) * min(max((gap - g0) / g0, 0.0), 1.0)
    pad = math.ceil(max(1.5 * feather, band_sizes(mouth_w)[0])) + 2
    (x_lo, y_lo), (x_hi, y_hi) = outer.min(axis=0).tolist(), outer.max(axis=0).tolist()
    box = clip_box((x_lo, y_lo, x_hi, y_hi), width, height, pad=pad)
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:
        return None
    ax, ay = (rx - lx) / mouth_w, (ry - ly) / mouth_w
    cx, cy = (outer.sum(axis=0) * (1.0 / len(outer))).tolist()
    across = outer[:, 1] * ax - outer[:, 0] * ay  # along the normal (-ay, ax)
    half_h = max(float(across.max() - across.min()) / 2.0, 1.0)
    off = np.array(box[:2], np.float32)
    return LipGeometry(box, outer - off, inner - off, (cx - box[0], cy - box[1]), (ax, ay),
                       mouth_w / 2.0, half_h, feather, inner_grow, gap)


def _fill(mask: np.ndarray, polygon: np.ndarray) -> None:
    pts = np.round(polygon * 4).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA, shift=2)


def lip_roi_mask(geom: LipGeometry, hands: HandLandmarks | None = None,
                 frame: np.ndarray | None = None,
                 roi_lab: np.ndarray | None = None) -> np.ndarray:
    """Lip coverage in the ROI, uint8 0..255, minus any hand in front of the mouth.

    With ``frame`` (BGR, the full picture) the lips are segmented from it
    (:func:`~arengine.effects.lip_segmentation.segment_lips`): this is what the effect
    paints. ``roi_lab`` is the box's CIELAB when the caller has it already. Without a
    frame there is nothing to segment, and the mask is where the lips may be: the landmark
    lip ring grown by the band the picture may move its edges by (a superset of what is
    painted on any picture).
    """
    if frame is not None:
        x1, y1, x2, y2 = geom.box
        lab = roi_lab if roi_lab is not None else roi_to_lab(frame[y1:y2, x1:x2])
        off = np.array([x1, y1], np.float32)
        mouth_w = 2.0 * geom.half_width
        skin = sample_pixels(frame, ring_points(geom.outer + off, mouth_w))
        cover = segment_lips(lab, geom.outer, geom.inner, mouth_w, geom.gap, skin)
        mask = np.round(cover * 255).astype(np.uint8)
    else:
        mask = support_mask(geom.shape, geom.outer, geom.inner, 2.0 * geom.half_width)
    if hands is not None and len(hands):
        hand = hands_mask(hands, geom.box)
        if hand.any():
            # Every pixel the silhouette touches (its anti-aliased rim too), grown by one
            # more, is hand: no fingertip pixel gets tinted.
            _, hand = cv2.threshold(hand, 0, 255, cv2.THRESH_BINARY)
            hand = cv2.dilate(hand, np.ones((3, 3), np.uint8))
            mask = cv2.multiply(mask, cv2.bitwise_not(hand), scale=1.0 / 255.0)
    return mask


def lip_mask(faces: FaceLandmarks, hands: HandLandmarks | None, width: int, height: int,
             face_index: int = 0, frame: np.ndarray | None = None) -> np.ndarray:
    """Full-frame uint8 lip mask of one face. With ``frame`` (the picture the landmarks
    belong to) exactly the coverage the effect paints with; without, where the lips may
    be (see :func:`lip_roi_mask`)."""
    out = np.zeros((height, width), np.uint8)
    if not 0 <= face_index < len(faces):
        raise IndexError(f"face_index {face_index} out of range for {len(faces)} face(s)")
    geom = lip_geometry(faces.points[face_index], width, height)
    if geom is None:
        return out
    x1, y1, x2, y2 = geom.box
    out[y1:y2, x1:x2] = lip_roi_mask(geom, hands, frame)
    return out


# --------------------------------------------------------------------------- fields

def lip_coordinates(geom: LipGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of every ROI pixel in the mouth's own frame: u along the mouth, v across,
    both -1..1 over the outer lips. Anything drawn through them moves with the lips."""
    h, w = geom.shape
    return _uv(geom, np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def _uv(geom: LipGeometry, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) on the grid of ROI columns ``xs`` by rows ``ys``."""
    dx = xs - np.float32(geom.centre[0])
    dy = ys - np.float32(geom.centre[1])
    ax, ay = geom.axis
    u = (dx[None, :] * ax + dy[:, None] * ay) * (1.0 / geom.half_width)
    v = (dy[:, None] * ax - dx[None, :] * ay) * (1.0 / geom.half_height)
    return u.astype(np.float32), v.astype(np.float32)


def _points_uv(geom: LipGeometry, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of ROI points (n, 2)."""
    d: np.ndarray = xy - np.array(geom.centre, np.float32)
    ax, ay = geom.axis
    u: np.ndarray = (d[:, 0] * ax + d[:, 1] * ay) / geom.half_width
    v: np.ndarray = (d[:, 1] * ax - d[:, 0] * ay) / geom.half_height
    return u, v


# The lips' landmark rings, image left to right, MediaPipe FaceMesh indices: the inner
# contour, the two rings between, the outer contour. Their depth gives the lip surface.
UPPER_LIP_RINGS = ((191, 80, 81, 82, 13, 312, 311, 310, 415),
                   (183, 42, 41, 38, 12, 268, 271, 272, 407),
                   (184, 74, 73, 72, 11, 302, 303, 304, 408),
                   (185, 40, 39, 37, 0, 267, 269, 270, 409))
LOWER_LIP_RINGS = ((95, 88, 178, 87, 14, 317, 402, 318, 324),
                   (96, 89, 179, 86, 15, 316, 403, 319, 325),
                   (77, 90, 180, 85, 16, 315, 404, 320, 307),
                   (146, 91, 181, 84, 17, 314, 405, 321, 375))
# Each lip's surface, height toward the camera in half mouth widths, as a function of u
# (along the mouth) and s (across the lip: 0 at its inner edge, 1 at its outer contour):
#     Z = c1*u + c2*u^2 + c3*s + c4*s^2 + c5*u*s   (+ a constant)
# The template is the mean least-squares fit to the landmarks of the 16 shared faces
# (stills, the 720p clip, the GRID talkers; spread 0.05-0.1 per coefficient, most in c1,
# the yaw, and c3, the pitch); a face's own fit is pulled toward it by SURFACE_RIDGE, so
# that noisy depth on a small face cannot fold the lips.
UPPER_LIP_SURFACE = (0.0, -0.71, 0.47, -0.24, 0.0)
LOWER_LIP_SURFACE = (0.0, -0.55, 0.30, -0.21, 0.0)
SURFACE_RIDGE = (0.002, 0.05, 0.05, 0.05, 0.05)  # per coefficient, times the point count
# s of each ring (inner, two between, outer): the medians over the same faces, within 0.05
# on every face.
UPPER_RING_S = (0.0, 0.20, 0.55, 1.0)
LOWER_RING_S = (0.0, 0.25, 0.59, 1.0)
SURFACE_GRID = 24  # normal samples per half mouth width (normals are smooth; upsampled)
SURFACE_MAX_SLOPE = 1.2  # the steepest the lip surface gets, along or across (50 degrees)
_RING_POINTS = [i for rings in (UPPER_LIP_RINGS, LOWER_LIP_RINGS) for ring in rings
                for i in ring]
_RIDGE_DIAG = np.array(SURFACE_RIDGE)
_RING_S = np.repeat(np.array([UPPER_RING_S, LOWER_RING_S]), len(UPPER_LIP_RINGS[0]), axis=1)
_TEMPLATES = np.array([UPPER_LIP_SURFACE, LOWER_LIP_SURFACE])
_TEMPLATE_PULL = _TEMPLATES * _RIDGE_DIAG
# The grid the lip surface is computed on, in the mouth's frame: u along (-1.1..1.1),
# v across (-1.4..1.4, half heights; rows set per face).
_SURFACE_U = np.linspace(-1.1, 1.1, 2 * SURFACE_GRID + 1, dtype=np.float32)
_SURFACE_DU = float(_SURFACE_U[1] - _SURFACE_U[0])


# Both contours run from the image-left corner, upper lip first (LIPS_INNER, LIPS_OUTER):
# the upper inner, upper outer, lower inner and lower outer parts of inner + outer.
_N = len(LIPS_INNER)
_CONTOUR_PARTS = (np.arange(0, _N // 2 + 1), np.arange(_N, _N + _N // 2 + 1),
                  np.r_[0, np.arange(_N - 1, _N // 2 - 1, -1)],
                  np.r_[_N, np.arange(2 * _N - 1, _N + _N // 2 - 1, -1)])


def _lip_contours(geom: LipGeometry) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(u, v) of the upper inner, upper outer, lower inner and lower outer contours, each
    running along u (image left to right): contours as functions of u, for np.interp."""
    u, v = _points_uv(geom, np.concatenate([geom.inner, geom.outer]))
    out = []
    for part in _CONTOUR_PARTS:  # image left to right; a contour that folds back is cut
        out.append((np.maximum.accumulate(u[part]), v[part]))
    return (out[0], out[1], out[2], out[3])


def lip_surface(geom: LipGeometry, points: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """The upper and the lower lip's surface coefficients (c1..c5, see UPPER_LIP_SURFACE),
    fitted to the depth of ``points`` (the face's (478, 3) landmarks, frame pixels) or the
    template without them (or when they are not finite)."""
    if points is None or points.shape[-1] < 3:
        return _TEMPLATES[0], _TEMPLATES[1]
    p = points[_RING_POINTS].astype(np.float64)
    if not np.isfinite(p).all():
        return _TEMPLATES[0], _TEMPLATES[1]
    coeffs = np.empty((2, 5))
    kernels.surface_fit_into(p, np.array((geom.centre[0] + geom.box[0],
                                          geom.centre[1] + geom.box[1], *geom.axis,
                                          geom.half_width)), _RING_S, _RIDGE_DIAG,
                             _TEMPLATE_PULL, coeffs)
    return coeffs[0], coeffs[1]


@cache
def _surface_v(rows: int) -> np.ndarray:
    return np.linspace(-1.4, 1.4, rows, dtype=np.float32)


def _surface_fields(geom: LipGeometry, points: np.ndarray | None, ombre: bool
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The lip's unit normal (h, w, 3), highlight visibility (h, w) and, for an ombre, its
    coordinate (h, w).

    Computed in the mouth's own frame on a grid of SURFACE_GRID samples per half mouth
    width (the contours are then functions of the column alone, and every slope is
    analytic), and warped onto the ROI: they are smooth.
    """
    h, w = geom.shape
    u = _SURFACE_U
    nu = len(u)
    nv = max(5, round(nu * geom.half_height / geom.half_width * (1.4 / 1.1)))
    v = _surface_v(nv)
    contours = _lip_contours(geom)
    # Per column: the upper lip's inner (a) and outer (b) contour, the lower lip's, and
    # their slopes along u.
    edge = np.empty((4, nu), np.float32)
    for row, (cu, cv) in zip(edge, contours, strict=True):
        row[:] = np.interp(u, cu, cv)
    slope = cv2.Sobel(edge, cv2.CV_32F, 1, 0, ksize=1, scale=0.5 / _SURFACE_DU,
                      borderType=cv2.BORDER_REPLICATE)
    # Per grid point, both lips' slopes of the height (Z in half mouth widths, dZ/ds and
    # dZ/du, then in pixels per pixel along and across the mouth; v counts half heights;
    # the upper lip's s grows against v, the lower's with it), mixed by which lip the point
    # is on, at most SURFACE_MAX_SLOPE (a thin, stretched lip, a smile, would otherwise come
    # out as a knife edge, as the bulge is fitted in half mouth widths, not lip
    # thicknesses); the normal (-along, -across, 1) turned into image axes; and a ramp: the
    # key light cannot reach into the mouth corners, the seam (the lips roll inwards) or
    # over the outer contour (the lip turns into skin there). One compiled pass
    # (lip_kernels.surface_into): the same formula in numpy was 25 operations, 190 us.
    ax, ay = geom.axis
    planes = np.empty((nv, nu, 4), np.float32)
    s = np.empty((nv, nu), np.float32)
    kernels.surface_into(u, v, edge, slope, np.stack(lip_surface(geom, points)),
                         np.array((geom.half_width / geom.half_height, SURFACE_MAX_SLOPE,
                                   ax, ay), np.float64), planes, s)
    # ROI pixel -> grid index: u = ((x - cx) ax + (y - cy) ay) / hw, column = (u + 1.1) / du.
    cx, cy = geom.centre
    fu = (nu - 1) / (2.2 * geom.half_width)
    fv = (nv - 1) / (2.8 * geom.half_height)
    warp = np.array([[ax * fu, ay * fu, (nu - 1) / 2.0 - (cx * ax + cy * ay) * fu],
                     [-ay * fv, ax * fv, (nv - 1) / 2.0 - (cy * ax - cx * ay) * fv]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    out = cv2.warpAffine(planes, warp, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    radial = None
    if ombre:
        r = np.hypot(np.clip(s, 0.0, 1.0), OMBRE_ALONG * u).astype(np.float32)
        radial = cv2.warpAffine(r, warp, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    # (Across the seam the interpolation averages the two lips' normals into a shorter
    # one, which is right there: the seam is lit less.)
    return cv2.cvtColor(out, cv2.COLOR_BGRA2BGR), cv2.extractChannel(out, 3), radial


# The ombre's inner colour follows the lips' middle line (s = 0) and fades toward the
# outer contour and, this much more slowly, toward the corners (a gradient lip).
OMBRE_ALONG = 0.5


def lip_fields(roi_lab: np.ndarray, mask: np.ndarray, geom: LipGeometry,
               params: LipParams, points: np.ndarray | None = None,
               light: SceneLight = NEUTRAL_LIGHT) -> LipFields:
    """The per-pixel inputs ``params`` needs, computed on the ROI (blurs, the lip surface,
    flake lookup); ``points`` are the face's landmarks (frame pixels, with depth) that the
    surface is fitted to, ``light`` the light measured on the face (see
    :func:`measure_light`)."""
    lightness = cv2.extractChannel(roi_lab, 0)
    core = (mask >= 128).astype(np.uint8)
    if not core.any():
        core = (mask > 0).astype(np.uint8)
    mean, std = cv2.meanStdDev(lightness, mask=core)
    lit = params.gloss > 0 or params.sheen > 0 or params.metallic > 0 or params.shimmer > 0
    l_blur = lightness  # read only by the highlights (the lip's texture and own shine)
    if lit:
        # Blurred over lip pixels only (normalised convolution): skin around thin lips
        # would otherwise read as a bright lip rim.
        sigma = max(0.015 * 2 * geom.half_width, 0.8)
        weight = mask.astype(np.float32) * np.float32(1 / 255)
        num = cv2.GaussianBlur(lightness * weight, (0, 0), sigma)
        den = cv2.GaussianBlur(weight, (0, 0), sigma)
        l_blur = np.where(den > 1e-3, num / np.maximum(den, 1e-3), lightness).astype(
            np.float32)
    normal = spec = radial = glint = edge = None
    if lit or params.ombre > 0:
        n, sp, radial = _surface_fields(geom, points, params.ombre > 0)
        if lit:
            normal, spec = n, sp
    if params.shimmer > 0:
        u, v = lip_coordinates(geom)
        # Flakes no smaller than GLINT_MIN_PX, or a small face's would fall between pixels.
        scale = min(GLINT_TEXELS / 2.0, geom.half_width / GLINT_MIN_PX)
        mx = u * scale + GLINT_SIZE / 2
        my = v * (scale * geom.half_height / geom.half_width) + GLINT_SIZE / 2
        glint = cv2.remap(glint_texture(), mx, my, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_WRAP)
    if params.liner > 0:
        solid = np.zeros(geom.shape, np.uint8)
        _fill(solid, geom.outer)
        solid = (solid >= 128).astype(np.uint8)
        edge = cv2.distanceTransform(solid, cv2.DIST_L2, 3)
        edge *= np.float32(1.0 / (2.0 * geom.half_width))
    return LipFields(l_blur, float(mean[0, 0]), float(std[0, 0]), normal=normal, spec=spec,
                     glint=glint, edge=edge, radial=radial, light=light)


# The skin ring the light is measured on: between the outer lip contour grown by these
# factors about the mouth centre (philtrum, cheeks beside the corners, the chin below the
# lower lip). Of its pixels the darkest quarter (nostrils,
# folds, stubble, the shadow under the lower lip) and the brightest tenth (shine) are
# left out before the mean.
LIGHT_RING = (1.25, 1.75)
LIGHT_TRIM = (25.0, 90.0)
LIGHT_SAMPLES = 60  # ring pixels read across its width (every pixel of a small face)


def measure_skin(frame: np.ndarray, geom: LipGeometry) -> Lab | None:
    """Mean CIELAB of the skin around the mouth (see LIGHT_RING), None when too little of
    it is in the picture."""
    fh, fw = frame.shape[:2]
    off = np.array(geom.box[:2], np.float32)
    c = np.array(geom.centre, np.float32) + off
    spoke = geom.outer + off - c
    big = spoke * LIGHT_RING[1] + c
    lo, hi = big.min(axis=0), big.max(axis=0)
    x1, y1 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x2, y2 = min(int(hi[0]) + 2, fw), min(int(hi[1]) + 2, fh)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return None
    # Read on a grid of about LIGHT_SAMPLES pixels across the ring's width.
    step = max(1, round((x2 - x1) / LIGHT_SAMPLES))
    lab = roi_to_lab(np.ascontiguousarray(frame[y1:y2:step, x1:x2:step]))
    ring = np.zeros(lab.shape[:2], np.uint8)
    corner = (c - np.array([x1, y1], np.float32) - (step - 1) / 2.0) * (4.0 / step)
    for factor, value in ((LIGHT_RING[1], 1), (LIGHT_RING[0], 0)):
        cv2.fillPoly(ring, [np.round(spoke * (4.0 * factor / step) + corner).astype(np.int32)],
                     value, shift=2)
    hist = cv2.calcHist([lab], [0], ring, [101], [0.0, 101.0])[:, 0]
    total = float(hist.sum())
    if total < 16:
        return None
    cum = np.cumsum(hist)
    low, high = (float(np.searchsorted(cum, q / 100.0 * total)) for q in LIGHT_TRIM)
    keep = cv2.inRange(lab, (low, -128.0, -128.0), (high + 1.0, 128.0, 128.0))
    keep &= ring * np.uint8(255)
    if not keep.any():
        keep = ring
    mean = cv2.mean(lab, mask=keep)
    return (float(mean[0]), float(mean[1]), float(mean[2]))


def measure_light(frame: np.ndarray, geom: LipGeometry) -> SceneLight:
    """The light on this face from the skin around its mouth (neutral when none is seen)."""
    skin = measure_skin(frame, geom)
    return NEUTRAL_LIGHT if skin is None else SceneLight.from_skin(skin)


@dataclass(frozen=True)
class LipComposite:
    """One face's lipstick, ready to composite: the arguments of :func:`composite_lips`
    (or of ``RenderBackend.composite_lips``) for the lips' box of the frame."""

    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels
    mask: np.ndarray  # float32 0..1, box-sized
    params: LipParams
    fields: LipFields
    roi_lab: np.ndarray  # CIELAB of the frame inside ``box``, reused by the CPU composite


def prepare_lips(frame: np.ndarray, geom: LipGeometry, params: LipParams,
                 hands: HandLandmarks | None = None, points: np.ndarray | None = None,
                 light: SceneLight | None = None) -> LipComposite | None:
    """Everything one face's composite needs from ``frame`` (mask, fields); None when
    nothing would be painted (no opacity, lips fully hidden). ``points`` (the face's
    landmarks with depth) shape the lip surface; ``light`` is measured here when None."""
    if params.opacity <= 0:
        return None
    x1, y1, x2, y2 = geom.box
    lab = roi_to_lab(frame[y1:y2, x1:x2])
    mask8 = lip_roi_mask(geom, hands, frame, lab)
    if not mask8.any():
        return None
    if light is None:
        light = measure_light(frame, geom)
    fields_ = lip_fields(lab, mask8, geom, params, points, light)
    mask = mask8.astype(np.float32) * np.float32(1 / 255)
    return LipComposite(geom.box, mask, params, fields_, lab)


def render_lips(frame: np.ndarray, geom: LipGeometry, params: LipParams,
                hands: HandLandmarks | None = None, points: np.ndarray | None = None,
                light: SceneLight | None = None) -> LipComposite | None:
    """Paint one face's lips into ``frame`` in place: mask, fields, composite. Returns what
    was composited (None: nothing)."""
    job = prepare_lips(frame, geom, params, hands, points, light)
    if job is None:
        return None
    x1, y1, x2, y2 = job.box
    frame[y1:y2, x1:x2] = composite_lips(frame[y1:y2, x1:x2], job.mask, params, job.fields,
                                         job.roi_lab)
    return job


# --------------------------------------------------------------------------- the effect

@dataclass(frozen=True)
class LipReadout:
    """One painted face's colour readout for a frame: which shade (``fading`` while a
    cross-fade runs), the light measured on the face (``skin``: the skin ring's CIELAB,
    ``light_gain``: linear R, G, B) and how far the rendered lip is from that shade as
    worn in that light (``colour``: CIEDE2000 of the mean rendered Lab, highlights left
    out, against the target Lab)."""

    face: int
    track_id: int
    shade: str | None
    fading: bool
    skin: Lab | None
    light_gain: tuple[float, float, float]
    colour: LipColour

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, rounded to what a colour readout can tell."""

        def lab(v: Lab | None) -> list[float] | None:
            return None if v is None else [round(float(x), 2) for x in v]

        return {"face": self.face, "track_id": self.track_id, "shade": self.shade,
                "fading": self.fading, "skin_lab": lab(self.skin),
                "light_gain": [round(float(g), 3) for g in self.light_gain],
                "target_lab": lab(self.colour.target),
                "rendered_lab": lab(self.colour.rendered),
                "delta_e00": round(self.colour.delta_e00, 2), "pixels": self.colour.pixels}


class _Fade:
    """A shade change in progress: from one look to another over ``duration`` seconds."""

    def __init__(self, target: LipParams | None) -> None:
        self.start: LipParams | None = target
        self.end: LipParams | None = target
        self.t0: float | None = None
        self.duration = 0.0
        self.pending = False
        self.last_timestamp: float | None = None
        self.shade_id: str | None = None  # the shade this fade ends on, for the readout

    def at(self, timestamp: float) -> LipParams | None:
        """The look at ``timestamp`` (a fade not started yet shows its start)."""
        if self.pending:
            return self.start
        if self.t0 is None or self.duration <= 0:
            t = 1.0
        else:
            t = min(max((timestamp - self.t0) / self.duration, 0.0), 1.0)
        if t <= 0.0:
            return self.start
        if t >= 1.0:
            return self.end
        a, b = self.start, self.end
        if a is None:
            if b is None:
                return None
            a = b.transparent()
        if b is None:
            b = a.transparent()
        return a.blend(b, t * t * (3.0 - 2.0 * t))  # eased: no visible jolt at either end

    def value(self, timestamp: float) -> LipParams | None:
        """The look for a frame at ``timestamp``; starts a fade waiting for its first frame."""
        if self.pending:
            self.t0, self.pending = timestamp, False
        self.last_timestamp = timestamp
        return self.at(timestamp)

    def retarget(self, end: LipParams | None, at: float | None, duration: float) -> None:
        """Fade from what shows at ``at`` (or on the last frame) to ``end``."""
        when = at if at is not None else self.last_timestamp
        self.start = self.at(when) if when is not None else self.end
        self.end, self.duration = end, duration
        self.t0, self.pending = at, at is None


@register_effect("lipstick")
class LipstickEffect(Effect):
    """Virtual lipstick on every tracked face.

    ``shade`` is a :class:`Shade` or a catalog id. ``per_face`` maps a face's track id (or,
    when no tracked face has that id, its index in the frame) to its own shade, or to None
    for no lipstick on that face. ``set_shade`` cross-fades over ``crossfade_ms`` on the
    scene clock instead of cutting, so a host switching products on stream looks smooth.
    ``intensity`` scales every shade's opacity.

    With a ``backend`` (a :class:`~arengine.render.backend.RenderBackend`) the per-pixel
    composite runs there, the way the on-screen layers draw through their ``Canvas``: the
    effect opens the frame on the backend (in place when it can), composites each face and
    returns ``end_frame()``. When the backend already has a frame open (``frame_open``:
    whoever opened it reads it back), the faces are added to that frame and ``frame`` is
    returned as it is, so a whole effect chain can share one upload and one readback.
    Without a backend the effect paints ``frame`` in place with numpy/OpenCV.
    """

    backend: RenderBackend | None  # composites lips, not only sprites

    def __init__(self, shade: Shade | str = DEFAULT_SHADE, crossfade_ms: float = 300,
                 per_face: Mapping[int, Shade | str | None] | None = None,
                 catalog: ShadeCatalog | None = None, intensity: float = 1.0,
                 backend: RenderBackend | None = None) -> None:
        if not 0.0 <= intensity <= 1.0:
            raise ValueError(f"intensity must be between 0 and 1, got {intensity}")
        if not crossfade_ms >= 0:
            raise ValueError(f"crossfade_ms must be >= 0, got {crossfade_ms}")
        self.catalog = catalog if catalog is not None else default_catalog()
        self._lock = threading.Lock()  # set_shade may come from another thread than apply
        self.crossfade_ms = float(crossfade_ms)
        self.intensity = float(intensity)
        self.backend = backend  # a render backend to composite through (GPU), or None: in place
        self._shade = self.resolve(shade)
        self._default = _Fade(self._params(self._shade))
        self._default.shade_id = self._shade.id if self._shade else None
        self._faces: dict[int, _Fade] = {}
        for key, s in (per_face or {}).items():
            resolved = self.resolve(s)
            self._faces[int(key)] = _Fade(self._params(resolved))
            self._faces[int(key)].shade_id = resolved.id if resolved else None
        # track id -> (time measured, smoothed skin, its light)
        self._skin: dict[int, tuple[float, Lab, SceneLight]] = {}
        # The colour readout of the last frame, one entry per painted face (replaced as a
        # whole each frame, so another thread may read it at any time).
        self.last_readout: list[LipReadout] = []

    def resolve(self, shade: Shade | str | None) -> Shade | None:
        """A shade object from a shade or a catalog id (unknown ids raise UnknownShadeError)."""
        if shade is None or isinstance(shade, Shade):
            return shade
        if isinstance(shade, str):
            return self.catalog.get(shade)
        raise TypeError(f"shade must be a Shade, a shade id or None, not {type(shade).__name__}")

    @property
    def shade(self) -> Shade | None:
        """The shade every face without its own is (fading) towards."""
        return self._shade

    def _params(self, shade: Shade | None) -> LipParams | None:
        return None if shade is None else LipParams.from_shade(shade, self.intensity)

    def set_shade(self, shade: Shade | str | None, at: float | None = None,
                  face: int | None = None) -> None:
        """Cross-fade to ``shade`` starting at scene time ``at`` (None: the next frame).

        ``face`` picks one face's override (track id or index) instead of the default shade;
        None as the shade fades that face's (or every face's) lipstick out.
        """
        resolved = self.resolve(shade)
        end = self._params(resolved)
        with self._lock:
            if face is None:
                fade = self._default
                self._shade = resolved
            elif int(face) in self._faces:
                fade = self._faces[int(face)]
            else:
                # A face without its own shade so far starts from the default's look.
                fade = self._faces[int(face)] = _Fade(self._default.end)
                fade.last_timestamp = self._default.last_timestamp
            fade.retarget(end, at, self.crossfade_ms / 1000.0)
            fade.shade_id = resolved.id if resolved else None

    def params_for(self, scene: Scene, index: int) -> LipParams | None:
        """The look face ``index`` of ``scene`` gets at ``scene.timestamp``."""
        return self._fade_for(scene, index).at(scene.timestamp)

    def _fade_for(self, scene: Scene, index: int) -> _Fade:
        ids = scene.faces.track_id
        tid = int(ids[index])
        if tid in self._faces:
            return self._faces[tid]
        if index in self._faces and index not in {int(x) for x in ids}:
            return self._faces[index]
        return self._default

    def light_for(self, frame: np.ndarray, scene: Scene, index: int,
                  geom: LipGeometry) -> SceneLight:
        """The light on face ``index``: its skin measured in ``frame``, smoothed over time
        per track (LIGHT_SMOOTH_S) so the shade does not flicker as the mouth moves."""
        tid = int(scene.faces.track_id[index])
        prev = self._skin.get(tid)
        now = scene.timestamp
        if prev is not None and 0.0 <= now - prev[0] < LIGHT_INTERVAL_S:
            return prev[2]  # measured a moment ago: the light has not changed since
        skin = measure_skin(frame, geom)
        if skin is None:
            if prev is None:
                return NEUTRAL_LIGHT
            skin = prev[1]
        elif prev is not None and now > prev[0]:
            a = 1.0 - math.exp(-(now - prev[0]) / LIGHT_SMOOTH_S)
            skin = (prev[1][0] + a * (skin[0] - prev[1][0]),
                    prev[1][1] + a * (skin[1] - prev[1][1]),
                    prev[1][2] + a * (skin[2] - prev[1][2]))
        light = SceneLight.from_skin(skin)
        self._skin[tid] = (now, skin, light)
        return light

    def apply(self, frame: np.ndarray, scene: Scene) -> np.ndarray:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 image (H, W, 3), got {frame.shape} "
                             f"{frame.dtype}")
        hands = scene.hands if len(scene.hands) else None
        with self._lock:
            # Advance every fade once per frame, face or not, so a fade asked for "from
            # the next frame" starts on that frame's clock.
            for fade in (self._default, *self._faces.values()):
                fade.value(scene.timestamp)
            looks = [self.params_for(scene, i) for i in range(len(scene.faces))]
            shade_ids = [self._fade_for(scene, i).shade_id for i in range(len(scene.faces))]
            fading = [self._fade_for(scene, i).at(scene.timestamp) is not
                      self._fade_for(scene, i).end for i in range(len(scene.faces))]
            seen = {int(t) for t in scene.faces.track_id}
            for tid in [t for t in self._skin if t not in seen]:
                del self._skin[tid]
        readouts: list[LipReadout] = []

        def read(i: int, job: LipComposite, colour: LipColour | None = None) -> None:
            if colour is None:  # through a backend: from the picture, before compositing
                x1, y1, x2, y2 = job.box
                colour = lip_readout(job.mask, job.params, job.fields, job.roi_lab,
                                     roi_bgr=frame[y1:y2, x1:x2])
            if colour is not None:
                light = job.fields.light
                readouts.append(LipReadout(i, int(scene.faces.track_id[i]), shade_ids[i],
                                           fading[i], light.skin, light.gain, colour))

        try:
            if self.backend is not None:
                return self._composite_through(self.backend, frame, scene, looks, hands, read)
            for i, job in self._jobs(frame, scene, looks, hands):
                x1, y1, x2, y2 = job.box
                frame[y1:y2, x1:x2], colour = composite_and_read(
                    frame[y1:y2, x1:x2], job.mask, job.params, job.fields, job.roi_lab)
                read(i, job, colour)
            return frame
        finally:
            self.last_readout = readouts

    def _jobs(self, frame: np.ndarray, scene: Scene, looks: list[LipParams | None],
              hands: HandLandmarks | None) -> Iterator[tuple[int, LipComposite]]:
        """Each painted face's index and composite, prepared face by face when asked for:
        compositing in place between two shows the next face the faces painted before it,
        with a backend or without."""
        h, w = frame.shape[:2]
        for i, params in enumerate(looks):
            if params is None or params.opacity <= 0:
                continue
            points = scene.faces.points[i]
            geom = lip_geometry(points, w, h)
            if geom is None:
                continue
            job = prepare_lips(frame, geom, params, hands, points,
                               self.light_for(frame, scene, i, geom))
            if job is not None:
                yield i, job

    def _composite_through(self, backend: RenderBackend, frame: np.ndarray, scene: Scene,
                           looks: list[LipParams | None], hands: HandLandmarks | None,
                           read: Callable[[int, LipComposite], None]) -> np.ndarray:
        """Composite every face on ``backend``: in a frame of our own, or in the open one."""
        joined = backend.frame_open
        opened = joined
        try:
            for i, job in self._jobs(frame, scene, looks, hands):
                read(i, job)  # from the picture before this face is composited
                if not opened:  # the frame is opened only when there are lips to paint
                    backend.begin_frame(frame, inplace=bool(frame.flags.c_contiguous
                                                            and frame.flags.writeable))
                    opened = True
                backend.composite_lips(job.box, job.mask, job.params, fields=job.fields,
                                       roi_lab=job.roi_lab)
        except BaseException:
            if opened and not joined:  # never leave our own frame open on the backend
                backend.abort_frame()
            raise
        if joined or not opened:
            return frame
        return backend.end_frame()
