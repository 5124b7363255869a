"""The lipstick's per-pixel formula as compiled loops (numba), one pass per step.

:func:`arengine.render.lips.composite_lips` documents the formula. Written with numpy it
was about 40 array operations on a lip box of a few thousand pixels, each costing 3-12 us
of allocation and dispatch for a few microseconds of arithmetic: a shimmer's terms took
207 us on a 720p face (38x107 px). Here each pixel goes through the formula once: 70 us
(matte 15), and the whole composite with its readout went from 370 to 200 us. The GIL is
released meanwhile, so another room's frame or the event loop runs.

The kernels know no constants: everything arrives as uniforms, in the order of
:data:`UNIFORMS`, as a shader's would. Fields a shade does not use are passed as empty
arrays. Arithmetic is in float64 with fastmath (numpy's version ran in float32): the
composites of 280 frames of the 720p clip, all finishes, agree with it to one 8-bit
level, on 1-14 pixels per finish.

Compiled at import, with numba's cache (:mod:`arengine.compiled`), never on a live frame.
"""

from __future__ import annotations

import numpy as np
from numba import float32, float64, uint8, void

from arengine.compiled import kernel

_F2 = float32[:, :]
_F3 = float32[:, :, :]

# The uniforms of :func:`terms_into`, by index.
UNIFORMS = (
    "cL", "ca", "cb",  # the shade's colour as worn in the measured light
    "liner_L", "liner_a", "liner_b", "ombre_L", "ombre_a", "ombre_b",
    "l_ref", "l_std", "blot", "detail", "sheer", "sheen", "metallic", "shimmer", "gloss",
    "ombre", "ombre_ratio", "liner", "liner_width",
    "half_y", "half_z",  # HALF_VECTOR (its x is 0)
    "chroma_max", "white_rolloff", "sheen_lift", "sheen_shininess",
    "metal_cos0", "metal_cos1", "metal_dim", "glint_tilt", "glint_cos0", "glint_cos1",
    "gloss_cos0", "gloss_cos1", "gloss_halo", "gloss_coat",
)
U = {name: i for i, name in enumerate(UNIFORMS)}


@kernel(inline="always")
def _smoothstep(e0: float, e1: float, x: float) -> float:
    t = (x - e0) * (1.0 / max(e1 - e0, 1e-6))
    t = min(max(t, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


@kernel(inline="always")
def _pow(x: float, e: float) -> float:
    """``x ** e``; whole exponents (the lobes' 5 and 24) by squaring, a tenth of libm's
    pow (which made a satin or gloss pixel cost 35 ns instead of 5)."""
    n = int(e)
    if n != e or n < 0 or n > 64:
        return float(x ** e)
    r = 1.0
    while n:
        if n & 1:
            r *= x
        x *= x
        n >>= 1
    return r


@kernel(void(_F2, _F2, _F2, _F3, _F2, _F3, _F2, _F2, float64[::1], _F3, _F2, _F2, _F3),
        fastmath=True)
def terms_into(L: np.ndarray, mask: np.ndarray, l_blur: np.ndarray, normal: np.ndarray,
               spec: np.ndarray, glint: np.ndarray, edge: np.ndarray, radial: np.ndarray,
               u: np.ndarray, target: np.ndarray, coat: np.ndarray, sharp: np.ndarray,
               colour: np.ndarray) -> None:  # pragma: no cover - compiled
    """The terms of the formula per pixel: ``target`` (h, w, 3) Lab, and where the shade
    has them, ``coat`` (the clear coat's weight), ``sharp`` (L* the sharp highlights add)
    and ``colour`` (the pigment's colour, when ombre or liner make it vary). Outputs that
    are empty arrays are not written."""
    h, w = L.shape
    cL0, ca0, cb0 = u[0], u[1], u[2]
    lr, ls = u[9], u[10]
    blot, detail, sheer, sheen = u[11], u[12], u[13], u[14]
    metallic, shimmer, gloss = u[15], u[16], u[17]
    ombre, ratio, liner, lw = u[18], u[19], u[20], u[21]
    hy, hz = u[22], u[23]
    chroma_max, white_rolloff = u[24], u[25]
    sheen_lift, sheen_shin = u[26], u[27]
    mc0, mc1, metal_dim = u[28], u[29], u[30]
    tilt, gc0, gc1 = u[31], u[32], u[33]
    wc0, wc1, halo, coat_k = u[34], u[35], u[36], u[37]
    use_ombre = ombre > 0 and radial.size > 0
    use_liner = liner > 0 and edge.size > 0
    lit = gloss > 0 or sheen > 0 or metallic > 0 or shimmer > 0
    has_normal = normal.size > 0
    has_spec = spec.size > 0
    use_glint = shimmer > 0 and glint.size > 0
    write_colour = colour.size > 0
    write_coat = coat.size > 0
    write_sharp = sharp.size > 0
    inv_ls1 = 1.0 / (ls + 1.0)
    inv_own = 1.0 / (1.5 * ls + 1.0)
    for y in range(h):
        for x in range(w):
            cL, ca, cb = cL0, ca0, cb0
            if use_ombre:
                wo = ombre * (1.0 - _smoothstep(ratio - 0.1, ratio + 0.35, radial[y, x]))
                cL += wo * (u[6] - cL)
                ca += wo * (u[7] - ca)
                cb += wo * (u[8] - cb)
            if use_liner:
                wl = 0.75 * liner * (1.0 - _smoothstep(0.25 * lw, 1.8 * lw, edge[y, x]))
                cL += wl * (u[3] - cL)
                ca += wl * (u[4] - ca)
                cb += wl * (u[5] - cb)
            lab_l = L[y, x]
            t = lab_l - lr
            if blot > 0:
                t -= blot * max(t - ls, 0.0)
            t = t * detail + cL
            if sheer > 0:
                t += 0.5 * sheer * (lab_l - t)
            k = min(max(t * (0.6 / max(cL, 1.0)) + 0.4, 0.0), chroma_max)
            k = min(k, (100.0 - t) * (white_rolloff / max(100.0 - cL, 1.0)))
            if lit:
                if has_normal:
                    nx, ny, nz = normal[y, x, 0], normal[y, x, 1], normal[y, x, 2]
                else:
                    nx, ny, nz = 0.0, 0.0, 1.0
                nh = max(ny * hy + nz * hz, 0.0)
                sp = spec[y, x] if has_spec else 1.0
                tex = min(max((lab_l - l_blur[y, x]) * inv_ls1 + 1.0, 0.0), 2.0)
                if sheen > 0:
                    t += sheen_lift * sheen * sp * _pow(nh, sheen_shin)
                before = t
                if metallic > 0:
                    met = metallic * sp * _smoothstep(mc0, mc1, nh) * (0.5 + 0.5 * tex)
                    t -= metal_dim * metallic * sp * (1.0 - met) * t
                    t += 0.7 * met * (100.0 - t)
                    k *= 1.0 + 0.4 * met
                if use_glint:
                    gx = nx + tilt * glint[y, x, 1]
                    gy = ny + tilt * glint[y, x, 2]
                    gd = max((gy * hy + nz * hz) / np.sqrt(gx * gx + gy * gy + nz * nz + 1e-6),
                             0.0)
                    gl = shimmer * glint[y, x, 0] * _smoothstep(0.5, 0.9, mask[y, x]) \
                        * _smoothstep(gc0, gc1, gd)
                    t += 0.7 * gl * (100.0 - t)
                    k *= 1.0 - 0.15 * gl
                if write_sharp:
                    sharp[y, x] = t - before
                if write_coat:
                    own = min(max((l_blur[y, x] - lr - 0.5 * ls) * inv_own, 0.0), 1.0)
                    wet = (0.6 * _smoothstep(wc0, wc1, nh) + 0.4 * _pow(nh, halo)) \
                        * (0.4 + 0.6 * tex) + 0.35 * own * own
                    coat[y, x] = coat_k * gloss * sp * min(wet, 1.0)
            target[y, x, 0] = t
            target[y, x, 1] = k * ca
            target[y, x, 2] = k * cb
            if write_colour:
                colour[y, x, 0] = cL
                colour[y, x, 1] = ca
                colour[y, x, 2] = cb


@kernel(void(uint8[:, :, :], _F3, _F2, float64, _F2, float64[::1], uint8[:, :, :]), fastmath=True)
def blend_into(src: np.ndarray, tgt: np.ndarray, mask: np.ndarray, alpha: float,
               coat: np.ndarray, spec_bgr: np.ndarray, out: np.ndarray
               ) -> None:  # pragma: no cover - compiled
    """``out = round(mix(mix(src, 255 clamp(tgt), m alpha), 255 S, m coat))``, uint8;
    pixels with no coverage are copied as they are."""
    h, w = mask.shape
    has_coat = coat.size > 0
    for y in range(h):
        for x in range(w):
            m = mask[y, x]
            if m <= 0:
                out[y, x, 0] = src[y, x, 0]
                out[y, x, 1] = src[y, x, 1]
                out[y, x, 2] = src[y, x, 2]
                continue
            a = m * alpha
            wc = m * coat[y, x] if has_coat else 0.0
            for c in range(3):
                s = np.float64(src[y, x, c])
                v = 255.0 * min(max(tgt[y, x, c], 0.0), 1.0)
                v = s + (v - s) * a
                v += wc * (255.0 * spec_bgr[c] - v)
                out[y, x, c] = np.uint8(min(max(v + 0.5, 0.0), 255.0))


# The stand-ins for a 2-D or 3-channel field a shade does not use.
EMPTY2 = np.zeros((0, 0), np.float32)
EMPTY3 = np.zeros((0, 0, 3), np.float32)
