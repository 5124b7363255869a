"""The lips kernel: one shade as plain numbers, and the per-pixel function that mixes it in.

This is the contract between the lipstick effect (which measures the lips and prepares
the per-pixel fields) and every render backend: the CPU reference here, and the same
formula in ``shaders/lips.frag``. It lives with the backends because they run it; the
effect above them only fills it in.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import cache
from typing import Any

import cv2
import numpy as np

from arengine.catalog import Shade

Lab = tuple[float, float, float]

# Per-finish material weights: (detail, sheer, gloss, shimmer, metallic). They are plain
# numbers so two shades of different finishes can be cross-faded smoothly.
FINISH_WEIGHTS: dict[str, tuple[float, float, float, float, float]] = {
    "matte": (0.8, 0.0, 0.0, 0.0, 0.0),
    "satin": (0.95, 0.0, 0.35, 0.0, 0.0),
    "sheer": (1.0, 1.0, 0.15, 0.0, 0.0),
    "gloss": (1.0, 0.0, 1.0, 0.0, 0.0),
    "shimmer": (0.9, 0.0, 0.3, 1.0, 0.0),
    "metallic": (0.9, 0.0, 0.4, 0.35, 1.0),
}
SPARKLE_TEXELS = 64  # sparkle texture texels across the mouth width: fixed to the lips
SPARKLE_SIZE = 256


# --------------------------------------------------------------------------- parameters

@dataclass(frozen=True)
class LipParams:
    """Everything :func:`composite_lips` needs to know about a shade, as plain numbers.

    Colours are CIELAB (L 0..100). ``opacity`` already includes the effect's intensity.
    A cross-fade is just :meth:`blend` of two of these, so a shader gets the same uniforms
    whether or not a fade is running.
    """

    colour: Lab
    opacity: float
    detail: float = 0.8
    sheer: float = 0.0
    gloss: float = 0.0
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
        detail, sheer, gloss, shimmer, metallic = FINISH_WEIGHTS[shade.finish]
        liner = shade.liner_lab
        ombre = shade.ombre_inner_lab
        return cls(colour=shade.lab, opacity=shade.opacity * intensity, detail=detail,
                   sheer=sheer, gloss=gloss, shimmer=shimmer, metallic=metallic,
                   liner_colour=liner or shade.lab, liner=1.0 if liner else 0.0,
                   liner_width=shade.liner_width,
                   ombre_colour=ombre or shade.lab, ombre=1.0 if ombre else 0.0,
                   ombre_ratio=shade.ombre_ratio)

    def transparent(self) -> LipParams:
        """The same material at zero opacity: the far end of a fade to or from no lipstick."""
        return replace(self, opacity=0.0, liner=0.0, ombre=0.0)

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
    """Per-pixel inputs of :func:`composite_lips` (ROI-sized float32), plus two lip stats.

    ``l_blur``: CIELAB L blurred by about 1.5 % of the mouth width (where highlights are).
    ``sparkle``: 0..1 fixed noise sampled in lip coordinates (a texture in a shader).
    ``edge``: distance to the outer lip contour over the mouth width.
    ``radial``: elliptic radius from the mouth centre, 0 at the centre, 1 at the corners and
    the outer lip line. ``l_ref``/``l_std``: mean and spread of L over the lips.
    Fields a shade does not use are None and read as zeros.
    """

    l_blur: np.ndarray
    l_ref: float
    l_std: float
    sparkle: np.ndarray | None = None
    edge: np.ndarray | None = None
    radial: np.ndarray | None = None


@cache
def sparkle_texture() -> np.ndarray:
    """A fixed, tileable field of sparse bright grains, the same in every run and frame."""
    rng = np.random.default_rng(20240611)
    n = rng.random((SPARKLE_SIZE, SPARKLE_SIZE), dtype=np.float32)
    grains = np.clip((n - 0.88) / 0.12, 0.0, 1.0)
    tiled = np.tile(grains, (3, 3))  # blur across the seams so the tile repeats cleanly
    n0 = SPARKLE_SIZE
    grains = cv2.GaussianBlur(tiled, (3, 3), 0.6)[n0:2 * n0, n0:2 * n0]
    grains /= max(float(np.percentile(grains, 99.0)), 1e-6)
    return np.clip(grains, 0.0, 1.0).astype(np.float32)


def roi_to_lab(roi_bgr: np.ndarray) -> np.ndarray:
    """CIELAB (L 0..100, a, b; float32) of a BGR uint8 ROI, sRGB with D65 white."""
    return cv2.cvtColor(roi_bgr.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_BGR2Lab)


# --------------------------------------------------------------------------- compositing

def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - np.float32(e0)) * np.float32(1.0 / max(e1 - e0, 1e-6)), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def composite_lips(roi_bgr: np.ndarray, mask: np.ndarray, params: LipParams,
                   fields: LipFields, roi_lab: np.ndarray | None = None) -> np.ndarray:
    """Lipstick over one ROI: a pure per-pixel function (the reference for the shader).

    Inputs per pixel: ``src`` (BGR 0..1), its CIELAB ``L, a, b`` (L 0..100), coverage
    ``m`` = mask (0..1), and from ``fields``: ``Lb`` (blurred L), ``s`` sparkle, ``e`` edge
    distance, ``r`` radial; uniforms ``Lr`` = l_ref, ``Ls`` = l_std and ``params``.
    ``smoothstep`` and ``mix`` are GLSL's. Steps, all finishes at once (a finish is only a
    set of weights: see ``FINISH_WEIGHTS``)::

        C    = colour                                         # shade, CIELAB
        C    = mix(C, ombre_colour, ombre * (1 - smoothstep(ratio-.15, ratio+.15, r)))
        C    = mix(C, liner_colour, liner * (1 - smoothstep(.5*lw, lw, e)))
        spec = clamp((Lb - Lr - .5*Ls) / (1.5*Ls + 1), 0, 1)^2   # the lip's bright areas
        T.L  = C.L + detail*((L - Lb) + .6*(Lb - Lr))            # keep creases, soften
        T.L += .8*metallic*(Lb - Lr)                             #   the broad shading
        T.L  = mix(T.L, L, .5*sheer)
        k    = clamp(.4 + .6*T.L / max(colour.L, 1), 0, 1)      # shadows lose chroma
        k   += .25*metallic*spec                                 # tinted metal highlight
        g    = gloss*spec;   T.L += .55*g*(100 - T.L);  k *= 1 - .5*g
        h    = shimmer*s;    T.L += .6*h*(100 - T.L);   k *= 1 - .4*h
        T.ab = C.ab * k
        tgt  = clamp(Lab_to_sRGB(T), 0, 1)                       # D65, standard sRGB curve
        a    = m * opacity * (1 - .45*sheer)
        out  = round(255 * mix(src, tgt, a))

    Where ``m`` is 0 the output equals the input exactly.
    """
    src = roi_bgr.astype(np.float32)
    lab = roi_to_lab(roi_bgr) if roi_lab is None else roi_lab
    L = lab[:, :, 0]
    p = params
    f32 = np.float32
    h, w = mask.shape
    target = np.empty((h, w, 3), np.float32)
    cL, ca, cb = (np.full((h, w), v, np.float32) for v in p.colour)
    if p.ombre > 0 and fields.radial is not None:
        wo = f32(p.ombre) * (1.0 - _smoothstep(p.ombre_ratio - 0.15, p.ombre_ratio + 0.15,
                                               fields.radial))
        for ch, v in zip((cL, ca, cb), p.ombre_colour, strict=True):
            ch += wo * (f32(v) - ch)
    if p.liner > 0 and fields.edge is not None:
        wl = f32(p.liner) * (1.0 - _smoothstep(0.5 * p.liner_width, p.liner_width,
                                               fields.edge))
        for ch, v in zip((cL, ca, cb), p.liner_colour, strict=True):
            ch += wl * (f32(v) - ch)
    lr, ls = f32(fields.l_ref), f32(fields.l_std)
    spec = np.clip((fields.l_blur - lr - 0.5 * ls) * f32(1.0 / (1.5 * ls + 1.0)), 0.0, 1.0)
    spec *= spec
    broad = fields.l_blur - lr
    tL = cL + f32(p.detail) * (L - fields.l_blur + f32(0.6) * broad)
    if p.metallic > 0:
        tL += f32(0.8 * p.metallic) * broad
    if p.sheer > 0:
        tL += f32(0.5 * p.sheer) * (L - tL)
    # Pigment in shadow loses chroma with lightness; this also keeps dark, saturated shades
    # inside the sRGB gamut, where clipping would scramble the lip's texture.
    ab_gain = np.clip(f32(0.4) + tL * f32(0.6 / max(float(p.colour[0]), 1.0)), 0.0, 1.0)
    if p.metallic > 0:
        ab_gain += f32(0.25 * p.metallic) * spec
    if p.gloss > 0:
        g = f32(p.gloss) * spec
        tL += f32(0.55) * g * (100.0 - tL)
        ab_gain *= 1.0 - f32(0.5) * g
    if p.shimmer > 0 and fields.sparkle is not None:
        s = f32(p.shimmer) * fields.sparkle
        tL += f32(0.6) * s * (100.0 - tL)
        ab_gain *= 1.0 - f32(0.4) * s
    target[:, :, 0] = tL
    target[:, :, 1] = ca * ab_gain
    target[:, :, 2] = cb * ab_gain
    tgt = cv2.cvtColor(target, cv2.COLOR_Lab2BGR)
    np.clip(tgt, 0.0, 1.0, out=tgt)
    alpha = mask.astype(np.float32) * f32(p.opacity * (1.0 - 0.45 * p.sheer))
    tgt *= f32(255.0)
    tgt -= src
    tgt *= alpha[:, :, None]
    tgt += src
    tgt += f32(0.5)
    return tgt.astype(np.uint8)
