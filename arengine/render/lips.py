"""The lips kernel: one shade as plain numbers, and the per-pixel function that mixes it in.

This is the contract between the lipstick effect (which measures the lips and the light on
the face and prepares the per-pixel fields) and every render backend: the CPU reference
here, and the same formula in ``shaders/lips.frag``. It lives with the backends because
they run it; the effect above them only fills it in.

Three things are modelled, each from a measurement rather than a fixed look:

* **the light** (:class:`SceneLight`): the skin around the mouth, against a reference skin,
  gives a gain per linear sRGB channel; a shade is shown as that product would look in that
  light (:meth:`SceneLight.adapt`), and the lip's own shading is kept at full contrast;
* **the lip surface**: a normal per pixel (fitted to the landmarks' depth by the effect),
  lit by a key light above and in front of the camera (:data:`HALF_VECTOR`), so gloss,
  satin, metallic and glitter highlights sit where that light would put them;
* **the finish**: a set of weights (:data:`FINISH_WEIGHTS`), so shades cross-fade smoothly.

:func:`delta_e00` (CIEDE2000) and :func:`lip_readout` say how far a rendered lip is from its
shade in the measured light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from functools import cache, lru_cache
from typing import Any

import cv2
import numpy as np

from arengine.catalog import Shade
from arengine.render import lip_kernels as kernels

Lab = tuple[float, float, float]

# Per-finish material weights: (detail, sheer, blot, gloss, sheen, shimmer, metallic).
# They are plain numbers so two shades of different finishes can be cross-faded smoothly.
# ``detail`` keeps the lip's own shading and creases (1: full contrast), ``blot`` is how
# much of the lip's own shine a powdery pigment absorbs, ``gloss`` a clear wet coat (a
# bright highlight over the pigment), ``sheen`` the broad low lobe of a satin,
# ``shimmer`` glitter flakes, ``metallic`` a tinted mirror-like lobe. Set by eye on the
# sheets of bench/results/finishes and held by the tests: a matte's blot keeps 94-97 % of
# the lip's L* spread, satin's sheen lifts 7-10 L* over a quarter of the lip, gloss and
# metallic 15-38 L* where the light is mirrored.
FINISH_WEIGHTS: dict[str, tuple[float, float, float, float, float, float, float]] = {
    "matte": (1.0, 0.0, 0.35, 0.0, 0.0, 0.0, 0.0),
    "satin": (1.0, 0.0, 0.3, 0.0, 1.0, 0.0, 0.0),
    "sheer": (1.0, 1.0, 0.0, 0.35, 0.3, 0.0, 0.0),
    "gloss": (1.0, 0.0, 0.0, 1.0, 0.3, 0.0, 0.0),
    "shimmer": (1.0, 0.0, 0.3, 0.15, 0.5, 1.0, 0.0),
    "metallic": (1.0, 0.0, 0.3, 0.0, 0.3, 0.35, 1.0),
}

# --------------------------------------------------------------------------- the light

# The key light: above the camera and in front of the face, 35 degrees up (a ring light or
# a softbox over a streamer's webcam). Image axes: x right, y down, z toward the camera.
# The specular lobes use the half vector between it and the view direction (0, 0, 1).
LIGHT_ELEVATION_DEG = 35.0
_el = math.radians(LIGHT_ELEVATION_DEG)
_h = (0.0, -math.sin(_el), math.cos(_el) + 1.0)
HALF_VECTOR: tuple[float, float, float] = (0.0, _h[1] / math.hypot(*_h),
                                           _h[2] / math.hypot(*_h))

# The skin the catalog's colours were chosen for, under the catalog's (D65 studio) light:
# a mid skin tone (L* 62, hue 52 degrees, chroma 24; the shared faces' mouth rings range
# from L* 36 to 84 and hue 30 to 76 degrees). A face whose skin measures brighter than this
# is taken to be in more light, and the shade is shown brighter, and so on.
REFERENCE_SKIN: Lab = (62.0, 15.0, 19.0)
# Skin lightness is partly the light and partly the person: only this power of the
# measured luminance ratio is taken as light (1 would show the same product darker on a
# darker-skinned face in the same light; 0 is today's fixed lightness whatever the light).
LIGHT_EXPONENT = 0.7
LIGHT_GAIN_RANGE = (0.3, 1.8)  # luminance gain, beyond which the measurement is not trusted
# The skin's colour cast against the reference skin is taken as the light's colour, at
# half strength (a face's own undertone is part of the cast), at most 25 % per channel.
CAST_STRENGTH = 0.5
CAST_RANGE = (0.8, 1.25)

# sRGB (D65) primaries and white as OpenCV's float cvtColor uses them. One colour at a
# time in plain floats: a few per face and frame, where numpy's call overhead would dominate.
_RGB2XYZ = ((0.412453, 0.357580, 0.180423),
            (0.212671, 0.715160, 0.072169),
            (0.019334, 0.119193, 0.950227))
_XYZ2RGB = tuple(tuple(float(v) for v in row) for row in np.linalg.inv(np.array(_RGB2XYZ)))
_WHITE = (0.950456, 1.0, 1.088754)
_LUMA = _RGB2XYZ[1]
_E = 6.0 / 29.0
Vec3 = tuple[float, float, float]


def _mul(m: tuple[tuple[float, ...], ...], v: Vec3) -> Vec3:
    return (m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
            m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
            m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2])


def _lab_to_linear(lab: Lab) -> Vec3:
    """Linear sRGB (unclipped) of a CIELAB colour, D65."""
    fy = (lab[0] + 16.0) / 116.0
    f = (fy + lab[1] / 500.0, fy, fy - lab[2] / 200.0)
    x, y, z = (t ** 3 if t > _E else (t - 4.0 / 29.0) * 3.0 * _E * _E for t in f)
    return _mul(_XYZ2RGB, (x * _WHITE[0], y * _WHITE[1], z * _WHITE[2]))


def _linear_to_lab(rgb: Vec3) -> Lab:
    """CIELAB of a linear sRGB colour (D65; values above 1 stay above L* 100)."""
    xyz = _mul(_RGB2XYZ, (max(rgb[0], 0.0), max(rgb[1], 0.0), max(rgb[2], 0.0)))
    fx, fy, fz = (t ** (1.0 / 3.0) if t > _E ** 3 else t / (3.0 * _E * _E) + 4.0 / 29.0
                  for t in (xyz[0] / _WHITE[0], xyz[1] / _WHITE[1], xyz[2] / _WHITE[2]))
    return (116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz))


def _into_gamut(lab: Lab) -> Lab:
    """The displayable colour nearest in look: L* at most 100, chroma lowered at the same
    hue until sRGB can show it (a bright light on a light, saturated shade would ask for
    more than a screen has; the target then is what the screen can show)."""
    L = min(float(lab[0]), 100.0)

    def inside(k: float) -> bool:
        rgb = _lab_to_linear((L, lab[1] * k, lab[2] * k))
        return all(-1e-6 <= c <= 1.0 + 1e-6 for c in rgb)

    if inside(1.0):
        return (L, float(lab[1]), float(lab[2]))
    lo, hi = 0.0, 1.0
    for _ in range(16):  # 1/65536 of the chroma
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if inside(mid) else (lo, mid)
    return (L, float(lab[1]) * lo, float(lab[2]) * lo)


def _luma(rgb: Vec3) -> float:
    return _LUMA[0] * rgb[0] + _LUMA[1] * rgb[1] + _LUMA[2] * rgb[2]


@dataclass(frozen=True)
class SceneLight:
    """The light on one face, as a gain per linear sRGB channel (R, G, B).

    ``gain`` = (1, 1, 1) is the catalog's reference light: shades show as their hex. It is
    measured from ``skin`` (the CIELAB colour of the skin around the mouth) by
    :meth:`from_skin`.
    """

    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    skin: Lab | None = None

    @classmethod
    def from_skin(cls, skin: Lab) -> SceneLight:
        """The light that makes :data:`REFERENCE_SKIN` look like ``skin``.

        Luminance: the skin's over the reference's, to :data:`LIGHT_EXPONENT`. Colour: the
        skin against a reference skin of the same lightness, channel by channel (von Kries
        in linear sRGB), at :data:`CAST_STRENGTH`, normalised to keep luminance.
        """
        L = min(max(float(skin[0]), 1.0), 100.0)
        y_skin = _luma(_lab_to_linear((L, 0.0, 0.0)))
        y_ref = _luma(_lab_to_linear((REFERENCE_SKIN[0], 0.0, 0.0)))
        lo, hi = LIGHT_GAIN_RANGE
        g = min(max((y_skin / y_ref) ** LIGHT_EXPONENT, lo), hi)
        have = _lab_to_linear((L, float(skin[1]), float(skin[2])))
        want = _lab_to_linear((L, REFERENCE_SKIN[1], REFERENCE_SKIN[2]))
        cast = [(max(h, 1e-4) / max(w, 1e-4)) ** CAST_STRENGTH
                for h, w in zip(have, want, strict=True)]
        norm = _luma((cast[0], cast[1], cast[2]))
        c0, c1 = CAST_RANGE
        r, gg, b = (g * min(max(c / norm, c0), c1) for c in cast)
        return cls((r, gg, b), (float(skin[0]), float(skin[1]), float(skin[2])))

    @property
    def luminance_gain(self) -> float:
        return _luma(self.gain)

    def adapt(self, lab: Lab) -> Lab:
        """``lab`` (a colour under the reference light) as it looks in this light, within
        what sRGB can show."""
        if self.gain == (1.0, 1.0, 1.0):
            return (float(lab[0]), float(lab[1]), float(lab[2]))
        r, g, b = _lab_to_linear((float(lab[0]), float(lab[1]), float(lab[2])))
        return _into_gamut(_linear_to_lab((r * self.gain[0], g * self.gain[1],
                                           b * self.gain[2])))

    def specular(self) -> Lab:
        """The colour of a highlight: the light source itself (its brightest channel at 1)."""
        top = max(self.gain)
        return _linear_to_lab((self.gain[0] / top, self.gain[1] / top, self.gain[2] / top))


NEUTRAL_LIGHT = SceneLight()


# --------------------------------------------------------------------------- parameters

@dataclass(frozen=True)
class LipParams:
    """Everything :func:`composite_lips` needs to know about a shade, as plain numbers.

    Colours are CIELAB (L 0..100) under the reference light. ``opacity`` already includes
    the effect's intensity, and so does ``gloss`` (the clear coat sits on top of the
    pigment, so it fades with the intensity rather than with the opacity). A cross-fade is
    just :meth:`blend` of two of these, so a shader gets the same uniforms whether or not a
    fade is running.
    """

    colour: Lab
    opacity: float
    detail: float = 1.0
    sheer: float = 0.0
    blot: float = 0.0
    gloss: float = 0.0
    sheen: float = 0.0
    shimmer: float = 0.0
    metallic: float = 0.0
    liner_colour: Lab = (0.0, 0.0, 0.0)
    liner: float = 0.0
    liner_width: float = 0.0
    ombre_colour: Lab = (0.0, 0.0, 0.0)
    ombre: float = 0.0
    ombre_ratio: float = 0.0

    @classmethod
    def from_shade(cls, shade: Shade, intensity: float = 1.0) -> LipParams:
        detail, sheer, blot, gloss, sheen, shimmer, metallic = FINISH_WEIGHTS[shade.finish]
        liner = shade.liner_lab
        ombre = shade.ombre_inner_lab
        return cls(colour=shade.lab, opacity=shade.opacity * intensity, detail=detail,
                   sheer=sheer, blot=blot, gloss=gloss * intensity, sheen=sheen, shimmer=shimmer,
                   metallic=metallic, liner_colour=liner or shade.lab,
                   liner=1.0 if liner else 0.0, liner_width=shade.liner_width,
                   ombre_colour=ombre or shade.lab, ombre=1.0 if ombre else 0.0,
                   ombre_ratio=shade.ombre_ratio)

    def transparent(self) -> LipParams:
        """The same material at zero opacity: the far end of a fade to or from no lipstick."""
        return replace(self, opacity=0.0, gloss=0.0, liner=0.0, ombre=0.0)

    def blend(self, other: LipParams, t: float) -> LipParams:
        """Linear mix, ``t`` = 0 gives ``self`` and 1 gives ``other``.

        A colour whose weight is zero on one side (no liner, no ombre, no lipstick) takes
        the other side's colour, so a fade never passes through a third colour.
        """
        if t <= 0.0:
            return self
        if t >= 1.0:
            return other
        a, b = self, other
        if a.opacity == 0.0:
            a = replace(a, colour=b.colour)
        if b.opacity == 0.0:
            b = replace(b, colour=a.colour)
        if a.liner == 0.0:
            a = replace(a, liner_colour=b.liner_colour, liner_width=b.liner_width)
        if b.liner == 0.0:
            b = replace(b, liner_colour=a.liner_colour, liner_width=a.liner_width)
        if a.ombre == 0.0:
            a = replace(a, ombre_colour=b.ombre_colour, ombre_ratio=b.ombre_ratio)
        if b.ombre == 0.0:
            b = replace(b, ombre_colour=a.ombre_colour, ombre_ratio=a.ombre_ratio)
        out: dict[str, Any] = {}
        for f in fields(self):
            x, y = getattr(a, f.name), getattr(b, f.name)
            if isinstance(x, tuple):
                out[f.name] = tuple(u + (v - u) * t for u, v in zip(x, y, strict=True))
            else:
                out[f.name] = x + (y - x) * t
        return LipParams(**out)


@dataclass(frozen=True)
class LipFields:
    """Per-pixel inputs of :func:`composite_lips` (ROI-sized float32), plus per-face numbers.

    ``l_blur``: CIELAB L of the lips blurred by about 1.5 % of the mouth width, over lip
    pixels only (skin does not bleed in, so no bright rim along the outline); only the
    highlights read it (a finish without any may pass L itself).
    ``normal``: (h, w, 3) the lip surface's unit normal (image axes: x right, y down, z
    toward the camera), fitted to the landmarks' depth. ``spec``: 0..1 how much of the key light's
    highlight a pixel can show (the mouth corners, the seam and the outline are shaded).
    ``glint``: (h, w, 3) glitter flake coverage 0..1 and each flake's tilt (x, y, -1..1),
    fixed to the lips. ``edge``: distance to the outer lip contour over the mouth width.
    ``radial``: the ombre coordinate, 0 along the lips' middle line, 1 at the outer contour
    and the corners. ``l_ref``/``l_std``: mean and spread of L over the lips. ``light``:
    the light on this face. Fields a shade does not use are None and read as zeros (a
    missing normal faces the camera).
    """

    l_blur: np.ndarray
    l_ref: float
    l_std: float
    normal: np.ndarray | None = None
    spec: np.ndarray | None = None
    glint: np.ndarray | None = None
    edge: np.ndarray | None = None
    radial: np.ndarray | None = None
    light: SceneLight = NEUTRAL_LIGHT

    def take(self, grid: tuple[slice, slice]) -> LipFields:
        """The same fields on a sub-grid of the ROI (for :func:`lip_readout`)."""

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.ascontiguousarray(a[grid])

        return replace(self, l_blur=np.ascontiguousarray(self.l_blur[grid]),
                       normal=pick(self.normal),
                       spec=pick(self.spec), glint=pick(self.glint), edge=pick(self.edge),
                       radial=pick(self.radial))


# --------------------------------------------------------------------------- glitter

GLINT_SIZE = 256  # texels of the tileable flake texture
GLINT_TEXELS = 80  # flake texels across the mouth width (about 1.3 px at 720p) ...
GLINT_MIN_PX = 1.2  # ... but never smaller than this many pixels (fewer on a small face)
GLINT_DENSITY = 0.2  # share of texels holding a flake
GLINT_TILT = 0.7  # flake tilt: up to 35 degrees off the surface (tan = 0.7)
# A flake sparkles fully within 12 degrees of the mirror direction, not at all past 28: on
# the shared faces 15-19 % of the flakes are lit at a time, and a 10 degree turn of the
# head relights about a third of the lit ones (22-41 %).
GLINT_COS = (math.cos(math.radians(28.0)), math.cos(math.radians(12.0)))


@cache
def glint_texture() -> np.ndarray:
    """(GLINT_SIZE, GLINT_SIZE, 3) float32: flake coverage and the flake's tilt (x, y).

    Each flake is a soft dot with its own random orientation; the tilt of every texel is the
    nearest flake's, so sampling between texels never mixes two flakes' tilts where there
    is coverage. Tileable, and the same in every run.
    """
    n = GLINT_SIZE
    rng = np.random.default_rng(20240611)
    centres = rng.random((n, n)) < GLINT_DENSITY
    angle = rng.random((n, n)) * 2.0 * np.pi
    radius = np.sqrt(rng.random((n, n)))  # uniform over the disc of tilts
    tx, ty = radius * np.cos(angle), radius * np.sin(angle)
    tiled = np.tile(centres, (3, 3))  # 3 x 3 so the blur and the nearest flake wrap around
    kernel = cv2.getGaussianKernel(5, 0.45)
    dots = cv2.sepFilter2D(tiled.astype(np.float32), -1, kernel, kernel)[n:2 * n, n:2 * n]
    dots = np.clip(dots * np.float32(1.0 / float(kernel[2, 0]) ** 2), 0.0, 1.0)  # 1 at a flake
    _, labels = cv2.distanceTransformWithLabels((~tiled).astype(np.uint8), cv2.DIST_L2, 3,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(tiled)  # labels count the zero pixels in row-major order from 1
    ny, nx = ys[labels - 1] % n, xs[labels - 1] % n
    out = np.empty((n, n, 3), np.float32)
    out[:, :, 0] = dots
    out[:, :, 1] = tx[ny, nx][n:2 * n, n:2 * n]
    out[:, :, 2] = ty[ny, nx][n:2 * n, n:2 * n]
    return out


def roi_to_lab(roi_bgr: np.ndarray) -> np.ndarray:
    """CIELAB (L 0..100, a, b; float32) of a BGR uint8 ROI, sRGB with D65 white."""
    return cv2.cvtColor(roi_bgr.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_BGR2Lab)


# --------------------------------------------------------------------------- compositing

# The key light is a softbox, not a point: a glossy lip mirrors it as a bright shape with
# soft edges (full within 3 degrees of the mirror direction, none past 14) in a softer
# halo, a metallic one as a broader tinted one (6 to 32 degrees); a satin spreads it as a
# low lobe (cos^5). On the shared faces the half-peak area is 4-7 % of the lip for gloss,
# 13-32 % for metallic and 22-34 % for satin (bench/bench_finishes.py).
GLOSS_COS = (math.cos(math.radians(14.0)), math.cos(math.radians(3.0)))
GLOSS_HALO = 24.0  # and a soft Phong halo around it (cos^24: half at 14 degrees)
METAL_COS = (math.cos(math.radians(32.0)), math.cos(math.radians(6.0)))
METAL_DIM = 0.15  # a metal is darker away from its highlight
SHEEN_SHININESS = 5.0
SHEEN_LIFT = 11.0  # L* a satin sheen adds at its peak (before opacity): a soft 6-12 L*
GLOSS_COAT = 0.75  # the clear coat's share at the peak of a gloss highlight


# Chroma follows the lip's shading as a pigment's does: less in the shadows (40 % at black),
# up to 10 % more where the lip is lighter than the shade (so the lip's mean chroma stays
# near the shade's: 94 % median, 80-103 %, for 5 mattes on 6 shared faces), and falling
# toward white near L* 100.
CHROMA_MAX = 1.1
WHITE_ROLLOFF = 1.6


def lab_to_bgr(lab: Lab) -> tuple[float, float, float]:
    """One CIELAB colour to BGR 0..1 as OpenCV's float conversion gives it (clipped)."""
    px = np.array([[lab]], np.float32)
    bgr = np.clip(cv2.cvtColor(px, cv2.COLOR_Lab2BGR)[0, 0], 0.0, 1.0)
    return (float(bgr[0]), float(bgr[1]), float(bgr[2]))


@dataclass(frozen=True)
class LitColours:
    """The uniforms that depend on the light: the shade's colours as worn in it, and the
    highlight colour (BGR 0..1). Computed once per face for the CPU and the shader."""

    colour: Lab
    liner: Lab
    ombre: Lab
    specular_bgr: tuple[float, float, float]

    @staticmethod
    @lru_cache(maxsize=64)  # the composite and the readout of a face share one
    def of(params: LipParams, light: SceneLight) -> LitColours:
        return LitColours(light.adapt(params.colour), light.adapt(params.liner_colour),
                          light.adapt(params.ombre_colour), lab_to_bgr(light.specular()))


class _Terms:
    """What :func:`composite_lips` computes per pixel before the colour conversion."""

    __slots__ = ("coat", "colour", "sharp", "target")

    def __init__(self, target: np.ndarray, colour: tuple[Any, Any, Any], coat: np.ndarray | None,
                 sharp: np.ndarray | None) -> None:
        self.target = target  # T, CIELAB (h, w, 3)
        self.colour = colour  # C (L, a, b): arrays, or floats when the same everywhere
        self.coat = coat  # the clear coat's weight, None without gloss
        self.sharp = sharp  # L* the sharp highlights (metal lobe, flakes) add, None: none

    def take(self, grid: tuple[slice, slice]) -> _Terms:
        """The same terms on a sub-grid (contiguous copies)."""

        def pick(a: Any) -> Any:
            return np.ascontiguousarray(a[grid]) if isinstance(a, np.ndarray) else a

        return _Terms(pick(self.target), (pick(self.colour[0]), pick(self.colour[1]),
                                          pick(self.colour[2])),
                      pick(self.coat), pick(self.sharp))

    def highlight_free(self, mask: np.ndarray) -> np.ndarray:
        """uint8 mask of the lip pixels the readout uses: coverage >= READOUT_CORE and no
        sharp highlight (the satin's broad sheen is the satin's colour, not a highlight)."""
        keep = mask >= READOUT_CORE
        if self.sharp is not None:
            keep &= self.sharp <= READOUT_HIGHLIGHT
        if self.coat is not None:
            keep &= self.coat <= READOUT_HIGHLIGHT / 100.0
        return keep.view(np.uint8)


def _uniforms(p: LipParams, f: LipFields, lit: LitColours) -> np.ndarray:
    """The kernels' uniforms (:data:`arengine.render.lip_kernels.UNIFORMS`, in order)."""
    return np.array((
        *lit.colour, *lit.liner, *lit.ombre,
        f.l_ref, f.l_std, p.blot, p.detail, p.sheer, p.sheen, p.metallic, p.shimmer, p.gloss,
        p.ombre, p.ombre_ratio, p.liner, p.liner_width,
        HALF_VECTOR[1], HALF_VECTOR[2],
        CHROMA_MAX, WHITE_ROLLOFF, SHEEN_LIFT, SHEEN_SHININESS,
        *METAL_COS, METAL_DIM, GLINT_TILT, *GLINT_COS,
        *GLOSS_COS, GLOSS_HALO, GLOSS_COAT), np.float64)


def _terms(lab: np.ndarray, mask: np.ndarray, p: LipParams, f: LipFields,
           lit: LitColours) -> _Terms:
    """The body of :func:`composite_lips`, in the order of its docstring, one compiled
    pass over the pixels (:func:`arengine.render.lip_kernels.terms_into`)."""
    h, w = mask.shape
    varies = (p.ombre > 0 and f.radial is not None) or (p.liner > 0 and f.edge is not None)
    target = np.empty((h, w, 3), np.float32)
    colour = np.empty((h, w, 3), np.float32) if varies else kernels.EMPTY3
    coat = np.empty((h, w), np.float32) if p.gloss > 0 else kernels.EMPTY2
    sharp = np.empty((h, w), np.float32) if p.metallic > 0 or (
        p.shimmer > 0 and f.glint is not None) else kernels.EMPTY2
    e2, e3 = kernels.EMPTY2, kernels.EMPTY3
    kernels.terms_into(
        cv2.extractChannel(lab, 0), mask, f.l_blur,
        f.normal if f.normal is not None else e3, f.spec if f.spec is not None else e2,
        f.glint if f.glint is not None else e3, f.edge if f.edge is not None else e2,
        f.radial if f.radial is not None else e2, _uniforms(p, f, lit),
        target, coat, sharp, colour)
    col: tuple[Any, Any, Any] = cv2.split(colour) if varies else lit.colour
    return _Terms(target, col, coat if coat.size else None, sharp if sharp.size else None)


def composite_lips(roi_bgr: np.ndarray, mask: np.ndarray, params: LipParams,
                   fields: LipFields, roi_lab: np.ndarray | None = None) -> np.ndarray:
    """Lipstick over one ROI: a pure per-pixel function (the reference for the shader).

    Inputs per pixel: ``src`` (BGR 0..1), its CIELAB ``L`` (0..100), coverage ``m`` = mask
    (0..1), and from ``fields``: ``Lb`` (blurred L), ``n`` surface normal, ``sp`` highlight
    visibility, ``fl, t`` glitter flake coverage and tilt, ``e`` edge distance, ``r`` ombre
    coordinate; uniforms ``Lr`` = l_ref, ``Ls`` = l_std, ``params`` and, from the light:
    ``C0, Cl, Co`` = the shade's, liner's and ombre's colours as worn in it
    (:meth:`SceneLight.adapt`), ``S`` the highlight colour; ``H`` = :data:`HALF_VECTOR`.
    ``smoothstep`` and ``mix`` are GLSL's. Steps, all finishes at once (a finish is only a
    set of weights: see ``FINISH_WEIGHTS``)::

        C    = mix(C0, Co, ombre * (1 - smoothstep(ratio-.1, ratio+.35, r)))
        C    = mix(C, Cl, .75*liner * (1 - smoothstep(.25*lw, 1.8*lw, e)))  # feathered
        d    = L - Lr;  d -= blot*max(d - Ls, 0)   # the lip's own shine, partly absorbed
        T.L  = C.L + detail*d                 # the lip's shading and creases, full contrast
        T.L  = mix(T.L, L, .5*sheer)
        k    = clamp(.4 + .6*T.L / max(C.L, 1), 0, 1.1)        # chroma follows shading
        k    = min(k, 1.6*(100 - T.L) / max(100 - C.L, 1))     # ... toward white at the top
        nh   = max(dot(n, H), 0);  tex = clamp(1 + (L - Lb)/(Ls + 1), 0, 2)
        T.L += 11*sheen * sp * nh^5                             # satin: soft broad sheen
        met  = metallic * sp * smoothstep(cos 32°, cos 6°, nh) * (.5 + .5*tex)
        T.L -= .15*metallic * sp * (1 - met) * T.L              # darker off the highlight
        T.L += .7*met*(100 - T.L);    k *= 1 + .4*met           # tinted: chroma kept
        d    = max(dot(normalize(n + .7*(t.x, t.y, 0)), H), 0)  # each flake's own normal
        g    = shimmer * fl * smoothstep(.5, .9, m) * smoothstep(cos 28°, cos 12°, d)
        T.L += .7*g*(100 - T.L);      k *= 1 - .15*g            # pearly: keeps a tint
        own  = clamp((Lb - Lr - .5*Ls) / (1.5*Ls + 1), 0, 1)    # the lip's own highlights
        wet  = .6*smoothstep(cos 14°, cos 3°, nh) + .4*nh^24    # the softbox, mirrored
        coat = .75*gloss * sp * min(wet * (.4 + .6*tex) + .35*own^2, 1)
        T.ab = C.ab * k
        tgt  = clamp(Lab_to_sRGB(T), 0, 1)                       # D65, standard sRGB curve
        a    = m * opacity * (1 - .45*sheer)
        out  = round(255 * mix(mix(src, tgt, a), S, m*coat))     # pigment, then clear coat

    Where ``m`` is 0 the output equals the input exactly.
    """
    return _composite(roi_bgr, mask, params, fields, roi_lab)[0]


def _tight(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The box of the pixels that get paint (mask > 0), None when there are none: the ROI
    holds a margin around the lips that the per-pixel work can skip."""
    x, y, w, h = cv2.boundingRect((mask > 0).view(np.uint8))
    return None if w == 0 else (slice(y, y + h), slice(x, x + w))


def _composite(roi_bgr: np.ndarray, mask: np.ndarray, params: LipParams, fields: LipFields,
               roi_lab: np.ndarray | None, crop: bool = True
               ) -> tuple[np.ndarray, _Terms | None, LitColours, tuple[int, int]]:
    """The composite of the ROI, with the per-pixel terms of the part that was worked on
    and that part's top-left corner in the ROI (only the painted box when ``crop``)."""
    lab = roi_to_lab(roi_bgr) if roi_lab is None else roi_lab
    lit = LitColours.of(params, fields.light)
    if crop:
        box = _tight(mask)
        if box is None:
            return roi_bgr.copy(), None, lit, (0, 0)
        if (box[0].stop - box[0].start) * (box[1].stop - box[1].start) < mask.size:
            out = roi_bgr.copy()
            out[box], terms = _paint(roi_bgr[box], mask[box], params, fields.take(box),
                                     lab[box], lit)
            return out, terms, lit, (box[0].start, box[1].start)
    out, terms = _paint(roi_bgr, mask, params, fields, lab, lit)
    return out, terms, lit, (0, 0)


def _paint(roi_bgr: np.ndarray, mask: np.ndarray, params: LipParams, fields: LipFields,
           lab: np.ndarray, lit: LitColours) -> tuple[np.ndarray, _Terms]:
    terms = _terms(lab, mask, params, fields, lit)
    tgt = cv2.cvtColor(terms.target, cv2.COLOR_Lab2BGR)
    out = np.empty(roi_bgr.shape, np.uint8)
    kernels.blend_into(roi_bgr, tgt, mask, params.opacity * (1.0 - 0.45 * params.sheer),
                       terms.coat if terms.coat is not None else kernels.EMPTY2,
                       np.array(lit.specular_bgr, np.float64), out)
    return out, terms


def composite_and_read(roi_bgr: np.ndarray, mask: np.ndarray, params: LipParams,
                       fields: LipFields, roi_lab: np.ndarray | None = None
                       ) -> tuple[np.ndarray, LipColour | None]:
    """:func:`composite_lips` and the :func:`lip_readout` of exactly what it painted (on
    the readout's grid of lip pixels), sharing the per-pixel work."""
    out, terms, lit, (oy, ox) = _composite(roi_bgr, mask, params, fields, roi_lab)
    grid = _readout_grid(mask)
    if grid is None or terms is None:
        return out, None
    ys, xs = grid
    local = (slice(ys.start - oy, ys.stop - oy, ys.step), slice(xs.start - ox, xs.stop - ox,
                                                               xs.step))
    return out, _read(np.ascontiguousarray(out[grid]), np.ascontiguousarray(mask[grid]),
                      terms.take(local), lit)


# --------------------------------------------------------------------------- the readout

# Hues exactly 180 degrees apart (Sharma's pairs 13-14) differ by 180 plus rounding after
# atan2: the formula's "<= 180" branch must still be taken for them.
_HUE_EPS = 1e-9


def delta_e00(lab1: np.ndarray | Lab, lab2: np.ndarray | Lab) -> np.ndarray:
    """CIEDE2000 colour difference (kL = kC = kH = 1) of CIELAB colours, (..., 3) each.

    Follows Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula:
    implementation notes, supplementary test data, and mathematical observations", including
    their notes on the hue angle of neutral colours and the mean hue across 0/360 degrees.
    """
    c1, c2 = np.asarray(lab1, np.float64), np.asarray(lab2, np.float64)
    L1, a1, b1 = c1[..., 0], c1[..., 1], c1[..., 2]
    L2, a2, b2 = c2[..., 0], c2[..., 1], c2[..., 2]
    cbar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2.0
    g = 0.5 * (1.0 - np.sqrt(cbar ** 7 / (cbar ** 7 + 25.0 ** 7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.where(c1p == 0, 0.0, np.degrees(np.arctan2(b1, a1p)) % 360.0)
    h2p = np.where(c2p == 0, 0.0, np.degrees(np.arctan2(b2, a2p)) % 360.0)
    dLp = L2 - L1
    dCp = c2p - c1p
    both = (c1p * c2p) != 0
    dh = h2p - h1p
    dh = np.where(dh > 180.0 + _HUE_EPS, dh - 360.0,
                  np.where(dh < -180.0 - _HUE_EPS, dh + 360.0, dh))
    dh = np.where(both, dh, 0.0)
    dHp = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2.0)
    Lbp = (L1 + L2) / 2.0
    Cbp = (c1p + c2p) / 2.0
    hsum = h1p + h2p
    far = np.abs(h1p - h2p) > 180.0 + _HUE_EPS
    hbp = np.where(far, np.where(hsum < 360.0, hsum + 360.0, hsum - 360.0), hsum) / 2.0
    hbp = np.where(both, hbp, hsum)
    t = (1.0 - 0.17 * np.cos(np.radians(hbp - 30.0)) + 0.24 * np.cos(np.radians(2.0 * hbp))
         + 0.32 * np.cos(np.radians(3.0 * hbp + 6.0))
         - 0.20 * np.cos(np.radians(4.0 * hbp - 63.0)))
    dtheta = 30.0 * np.exp(-(((hbp - 275.0) / 25.0) ** 2))
    rc = 2.0 * np.sqrt(Cbp ** 7 / (Cbp ** 7 + 25.0 ** 7))
    sl = 1.0 + 0.015 * (Lbp - 50.0) ** 2 / np.sqrt(20.0 + (Lbp - 50.0) ** 2)
    sc = 1.0 + 0.045 * Cbp
    sh = 1.0 + 0.015 * Cbp * t
    rt = -np.sin(np.radians(2.0 * dtheta)) * rc
    return np.asarray(np.sqrt((dLp / sl) ** 2 + (dCp / sc) ** 2 + (dHp / sh) ** 2
                              + rt * (dCp / sc) * (dHp / sh)))


def _delta_e00(lab1: Lab, lab2: Lab) -> float:
    """:func:`delta_e00` of one pair, in plain floats (a readout per face and frame)."""
    L1, a1, b1 = lab1
    L2, a2, b2 = lab2
    cbar7 = ((math.hypot(a1, b1) + math.hypot(a2, b2)) / 2.0) ** 7
    g = 0.5 * (1.0 - math.sqrt(cbar7 / (cbar7 + 25.0 ** 7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360.0 if c1p else 0.0
    h2p = math.degrees(math.atan2(b2, a2p)) % 360.0 if c2p else 0.0
    if c1p * c2p == 0:
        dh, hbp = 0.0, h1p + h2p
    else:
        dh = h2p - h1p
        dh = dh - 360.0 if dh > 180.0 + _HUE_EPS else dh + 360.0 if dh < -180.0 - _HUE_EPS \
            else dh
        hsum = h1p + h2p
        if abs(h1p - h2p) > 180.0 + _HUE_EPS:
            hsum = hsum + 360.0 if hsum < 360.0 else hsum - 360.0
        hbp = hsum / 2.0
    dHp = 2.0 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh) / 2.0)
    Lbp, Cbp = (L1 + L2) / 2.0, (c1p + c2p) / 2.0
    t = (1.0 - 0.17 * math.cos(math.radians(hbp - 30.0))
         + 0.24 * math.cos(math.radians(2.0 * hbp))
         + 0.32 * math.cos(math.radians(3.0 * hbp + 6.0))
         - 0.20 * math.cos(math.radians(4.0 * hbp - 63.0)))
    dtheta = 30.0 * math.exp(-(((hbp - 275.0) / 25.0) ** 2))
    rc = 2.0 * math.sqrt(Cbp ** 7 / (Cbp ** 7 + 25.0 ** 7))
    sl = 1.0 + 0.015 * (Lbp - 50.0) ** 2 / math.sqrt(20.0 + (Lbp - 50.0) ** 2)
    sc, sh = 1.0 + 0.045 * Cbp, 1.0 + 0.015 * Cbp * t
    rt = -math.sin(math.radians(2.0 * dtheta)) * rc
    dl, dc, dhh = (L2 - L1) / sl, (c2p - c1p) / sc, dHp / sh
    return math.sqrt(dl * dl + dc * dc + dhh * dhh + rt * dc * dhh)


READOUT_CORE = 0.9  # mask coverage a pixel needs to count as lip in the readout
READOUT_HIGHLIGHT = 2.0  # L* a finish's highlight may add before the pixel is left out
READOUT_PIXELS = 300  # about this many lip pixels are read, on an even grid


@dataclass(frozen=True)
class LipColour:
    """One face's colour readout: the shade as worn in the measured light (``target``),
    the mean CIELAB of the rendered lip (mask >= :data:`READOUT_CORE`, highlights left
    out) and CIEDE2000 between them, over ``pixels`` lip pixels."""

    target: Lab
    rendered: Lab
    delta_e00: float
    pixels: int


def lip_readout(mask: np.ndarray, params: LipParams, fields: LipFields, roi_lab: np.ndarray,
                *, roi_bgr: np.ndarray | None = None,
                rendered_bgr: np.ndarray | None = None) -> LipColour | None:
    """How far the rendered lips are from the shade as worn in ``fields.light``.

    ``roi_lab`` is the CIELAB of the picture before the lipstick. The rendered colour is
    read from ``rendered_bgr`` (the composited ROI) or, given the picture ``roi_bgr``
    instead, is what :func:`composite_lips` paints, evaluated at the pixels read only (a
    GPU backend paints the same within 1/255). Pixels are read on an even grid of about
    READOUT_PIXELS lip pixels; the target is their mean shade colour ``C`` (ombre and
    liner included) in that light. None when no lip pixel qualifies.
    """
    if (roi_bgr is None) == (rendered_bgr is None):
        raise ValueError("give the picture (roi_bgr) or the composite (rendered_bgr)")
    m = np.asarray(mask, np.float32)
    grid = _readout_grid(m)
    if grid is None:
        return None
    sub_mask = np.ascontiguousarray(m[grid])
    lab = np.ascontiguousarray(roi_lab[grid])
    sub = fields.take(grid)
    if rendered_bgr is not None:
        lit = LitColours.of(params, fields.light)
        return _read(np.ascontiguousarray(rendered_bgr[grid]), sub_mask,
                     _terms(lab, sub_mask, params, sub, lit), lit)
    assert roi_bgr is not None
    out, terms, lit, _ = _composite(np.ascontiguousarray(roi_bgr[grid]), sub_mask, params,
                                    sub, lab, crop=False)
    assert terms is not None
    return _read(out, sub_mask, terms, lit)


def _readout_grid(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The even grid of about READOUT_PIXELS lip pixels the readout reads (the same on
    every backend, so their readouts agree); None when there is no lip."""
    core = cv2.countNonZero((mask >= READOUT_CORE).view(np.uint8))
    box = _tight(mask)
    if core == 0 or box is None:
        return None
    k = max(1, round(math.sqrt(core / READOUT_PIXELS)))
    ys, xs = box
    return (slice(ys.start + k // 2, ys.stop, k), slice(xs.start + k // 2, xs.stop, k))


def _read(out: np.ndarray, mask: np.ndarray, terms: _Terms, lit: LitColours
          ) -> LipColour | None:
    """The readout of ``out`` (rendered BGR) over the highlight-free lip pixels."""
    sel = terms.highlight_free(mask)
    n = cv2.countNonZero(sel)
    if n == 0:
        return None
    got = cv2.mean(roi_to_lab(out), mask=sel)[:3]
    c = terms.colour
    if isinstance(c[0], np.ndarray):
        want = cv2.mean(cv2.merge(list(c)), mask=sel)[:3]
    else:
        want = (float(c[0]), float(c[1]), float(c[2]))
    return LipColour((want[0], want[1], want[2]), (got[0], got[1], got[2]),
                     _delta_e00(want, got), n)

