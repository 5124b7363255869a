"""The lips' segmentation and surface as compiled loops (numba), one pass per step.

Written with numpy, :func:`arengine.effects.lip_segmentation.segment_lips` was about 45
array operations on a box of ~6,000 pixels and the lip surface ~25 on a 49 x 25 grid plus
a 5x5 solve per lip; at 3-12 us of allocation and dispatch each, they cost more than
their arithmetic. On a 720p face the segmentation went from 430 to about 300 us and the
surface from 260 to 120 us (the rest is OpenCV: fills, distance transforms, the guided
filter, the warp). A guided filter written here was no faster than ximgproc's at this
size (80 us both), so that one stays OpenCV's. The GIL is released.

The kernels know no constants: the callers pass them, so each formula stays documented
beside its constants (lip_segmentation.py, lipstick.py). Compiled at import and cached
(see :mod:`arengine.compiled`).
"""

from __future__ import annotations

import numpy as np
from numba import float32, float64, int64, types, uint8, void

from arengine.compiled import kernel

_F2 = float32[:, :]
_U2 = uint8[:, :]


@kernel(void(_U2, _U2, _F2, _F2, _F2, _F2, float64[::1], _U2, _U2, _U2, _F2), fastmath=True)
def regions_into(outer_fill: np.ndarray, inner_fill: np.ndarray, d_out: np.ndarray,
                 d_mouth: np.ndarray, d_in: np.ndarray, d_ring: np.ndarray, k: np.ndarray,
                 ring: np.ndarray, core: np.ndarray, allowed: np.ndarray,
                 prior: np.ndarray) -> None:  # pragma: no cover - compiled
    """Per pixel of the mouth's box: ``ring`` (the landmark lips), ``core`` (their middle,
    always lip), ``allowed`` (where lip may be: the band, within the corners) and the
    landmark ``prior`` plus bias, in nats. ``k``: extend, grow, core share, prior, bias,
    then the corners' test: centre x, y, axis x, y and reach along it."""
    # The tests on the distances run in float32, as the distances are: they take values on
    # a lattice (1 and 1.37 px steps), where ties with a float64 product are common.
    extend, grow, share = np.float32(k[0]), np.float32(k[1]), np.float32(k[2])
    pri, bias = k[3], k[4]
    cx, cy, ax, ay, reach = k[5], k[6], k[7], k[8], np.float32(k[9])
    inv_ext, inv_grow = 1.0 / extend, 1.0 / grow
    h, w = outer_fill.shape
    for y in range(h):
        for x in range(w):
            r = outer_fill[y, x] > 0 and inner_fill[y, x] == 0
            di, dr = d_in[y, x], d_ring[y, x]
            near = min(di, dr)
            ring[y, x] = r
            core[y, x] = r and near >= max(share * (di + dr), np.float32(1.0))
            do, dm = d_out[y, x], d_mouth[y, x]
            along = np.float32(abs((x - cx) * ax + (y - cy) * ay))
            allowed[y, x] = do <= extend and dm <= grow and along <= reach
            p = min(near, 2.0) * 0.5 if r else -min(do * inv_ext + dm * inv_grow, 1.0)
            prior[y, x] = pri * p + bias


@kernel(void(float32[:, :, :], float32[:, :, :], float64[::1], int64, _F2, _U2, _U2, float64,
           float64, _F2), fastmath=True)
def logit_into(lab: np.ndarray, whiten: np.ndarray, log_norm: np.ndarray, models: int,
               prior: np.ndarray, core: np.ndarray, allowed: np.ndarray, clip: float,
               prior_max: float, logit: np.ndarray) -> None:  # pragma: no cover - compiled
    """The log-likelihood ratio of lip (model 0) against the best of the other ``models - 1``
    (each a 3x4 whitening and a log normaliser, its class weight included), clipped to
    +-``clip``, plus ``prior``; +-(``clip`` + ``prior_max``) in the core and outside the
    allowed band."""
    h, w = prior.shape
    for y in range(h):
        for x in range(w):
            if core[y, x]:
                logit[y, x] = clip + prior_max
                continue
            if not allowed[y, x]:
                logit[y, x] = -clip - prior_max
                continue
            L, a, b = lab[y, x, 0], lab[y, x, 1], lab[y, x, 2]
            lip = 0.0
            other = -1e30
            for m in range(models):
                q = 0.0
                for r in range(3):
                    z = whiten[m, r, 0] * L + whiten[m, r, 1] * a + whiten[m, r, 2] * b \
                        + whiten[m, r, 3]
                    q += z * z
                ll = log_norm[m] - 0.5 * q
                if m == 0:
                    lip = ll
                elif ll > other:
                    other = ll
            v = min(max(lip - other, -clip), clip)
            logit[y, x] = v + prior[y, x]


@kernel(void(_F2, _U2, float64, _F2), fastmath=True)
def coverage_into(logit: np.ndarray, allowed: np.ndarray, floor: float,
                  cover: np.ndarray) -> None:  # pragma: no cover - compiled
    """The logistic of ``logit``; 0 outside the band and under ``floor``."""
    h, w = logit.shape
    for y in range(h):
        for x in range(w):
            c = 0.0
            if allowed[y, x]:
                c = 1.0 / (1.0 + np.exp(-logit[y, x]))
                if c < floor:
                    c = 0.0
            cover[y, x] = c


@kernel(void(float32[::1], float32[::1], _F2, _F2, float64[:, :], float64[::1],
           float32[:, :, :], _F2), fastmath=True)
def surface_into(u: np.ndarray, v: np.ndarray, edge: np.ndarray, slope: np.ndarray,
                 coeffs: np.ndarray, k: np.ndarray, planes: np.ndarray,
                 s_out: np.ndarray) -> None:  # pragma: no cover - compiled
    """The lip surface on the mouth's grid (see ``lipstick._surface_fields``): per grid
    point the image-axes normal and the highlight ramp (``planes``, 4 channels) and the
    across-lip coordinate s (``s_out``). ``edge``/``slope``: the four contours and their
    slopes per column; ``coeffs``: each lip's c1..c5; ``k``: half width over half height,
    the steepest slope, the mouth axis x, y."""
    hw_hh, lim, ax, ay = k[0], k[1], k[2], k[3]
    nv, nu = s_out.shape
    for j in range(nv):
        vj = v[j]
        for i in range(nu):
            ui = u[i]
            lower = min(max((vj - 0.5 * (edge[0, i] + edge[2, i])) * (1.0 / 0.12) + 0.5, 0.0),
                        1.0)
            al0 = al1 = ac0 = ac1 = s0 = s1 = 0.0
            for lip in range(2):
                sg = 1.0 if lip == 0 else -1.0
                inner, outer = edge[2 * lip, i], edge[2 * lip + 1, i]
                din, dout = slope[2 * lip, i], slope[2 * lip + 1, i]
                t = max(sg * (inner - outer), 0.15)  # no lip is thinner but a corner
                s2 = min(max(sg * (inner - vj) / t, -0.5), 1.5)
                c1, c2, c3, c4, c5 = (coeffs[lip, 0], coeffs[lip, 1], coeffs[lip, 2],
                                      coeffs[lip, 3], coeffs[lip, 4])
                zs = c3 + 2.0 * c4 * s2 + c5 * ui
                along = c1 + 2.0 * c2 * ui + c5 * s2 + zs * sg * (din - s2 * (din - dout)) / t
                across = zs * (-hw_hh * sg / t)
                if lip == 0:
                    al0, ac0, s0 = along, across, s2
                else:
                    al1, ac1, s1 = along, across, s2
            along = min(max(al0 + lower * (al1 - al0), -lim), lim)
            across = min(max(ac0 + lower * (ac1 - ac0), -lim), lim)
            s = s0 + lower * (s1 - s0)
            inv = 1.0 / np.sqrt(along * along + across * across + 1.0)
            ramp = min(min(s * 5.0, (1.05 - s) * 3.5), (0.95 - abs(ui)) * 2.5)
            planes[j, i, 0] = (ay * across - ax * along) * inv
            planes[j, i, 1] = (-ay * along - ax * across) * inv
            planes[j, i, 2] = inv
            planes[j, i, 3] = min(max(ramp, 0.0), 1.0)
            s_out[j, i] = s


@kernel(void(float32[:, :, :], _U2, float32[:, :], int64, float64[:, :], float64,
           float64[::1]), fastmath=True)
def moments_into(image: np.ndarray, select: np.ndarray, rows: np.ndarray, step: int,
                 whiten: np.ndarray, limit: float,
                 out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Count, sums and cross sums (``out``: n, 3 sums, 6 of x_i x_j for i <= j) of every
    ``step``-th sample: the pixels of ``image`` where ``select`` is set (raster order),
    or, with an empty image, the ``rows`` (n, 3). With a ``whiten`` (3x4, not empty)
    only samples within ``limit`` squared Mahalanobis distance count."""
    out[:] = 0.0
    trim = whiten.size > 0
    if image.size > 0:
        h, w = select.shape
        total = h * w
    else:
        total = rows.shape[0]
    seen = 0
    for idx in range(total):
        if image.size > 0:
            y, x = idx // w, idx % w
            if not select[y, x]:
                continue
            v0, v1, v2 = image[y, x, 0], image[y, x, 1], image[y, x, 2]
        else:
            v0, v1, v2 = rows[idx, 0], rows[idx, 1], rows[idx, 2]
        seen += 1
        if (seen - 1) % step:
            continue
        if trim:
            q = 0.0
            for r in range(3):
                z = whiten[r, 0] * v0 + whiten[r, 1] * v1 + whiten[r, 2] * v2 + whiten[r, 3]
                q += z * z
            if q > limit:
                continue
        out[0] += 1.0
        out[1] += v0
        out[2] += v1
        out[3] += v2
        out[4] += v0 * v0
        out[5] += v0 * v1
        out[6] += v0 * v2
        out[7] += v1 * v1
        out[8] += v1 * v2
        out[9] += v2 * v2


@kernel(types.UniTuple(int64, 2)(float32[:, :]))
def farthest_pair(points: np.ndarray) -> tuple[int, int]:  # pragma: no cover - compiled
    """The indices (i < j) of the two points (n, 2) farthest apart, the first such pair."""
    best, bi, bj = -1.0, 0, 0
    n = points.shape[0]
    for i in range(n):
        for j in range(i + 1, n):
            dx = points[i, 0] - points[j, 0]
            dy = points[i, 1] - points[j, 1]
            d = dx * dx + dy * dy
            if d > best:
                best, bi, bj = d, i, j
    return bi, bj


@kernel(void(float64[:, :], float64[::1], float64[:, :], float64[::1], float64[:, :],
           float64[:, :]))
def surface_fit_into(points: np.ndarray, k: np.ndarray, ring_s: np.ndarray,
                     ridge: np.ndarray, pull: np.ndarray,
                     coeffs: np.ndarray) -> None:  # pragma: no cover - compiled
    """Each lip's ridge-regularised least-squares surface (see ``lipstick.lip_surface``):
    ``points`` (2 n, 3) the lips' ring landmarks (upper lip first), ``k`` the mouth
    centre x, y, axis x, y and half width; ``ring_s`` (2, n) each point's s; ``ridge``
    (5,) and ``pull`` (2, 5) per point. The 5x5 normal equations are solved by Cholesky."""
    cx, cy, ax, ay, hw = k[0], k[1], k[2], k[3], k[4]
    n = ring_s.shape[1]
    basis = np.empty((n, 5))
    z = np.empty(n)
    a = np.empty((5, 5))
    rhs = np.empty(5)
    for lip in range(2):
        for i in range(n):
            px, py, pz = points[lip * n + i, 0], points[lip * n + i, 1], points[lip * n + i, 2]
            u = ((px - cx) * ax + (py - cy) * ay) / hw
            s = ring_s[lip, i]
            basis[i, 0], basis[i, 1], basis[i, 2] = u, u * u, s
            basis[i, 3], basis[i, 4] = s * s, u * s
            z[i] = -pz / hw
        for c in range(5):  # the constant drops out
            m = 0.0
            for i in range(n):
                m += basis[i, c]
            m /= n
            for i in range(n):
                basis[i, c] -= m
        mz = 0.0
        for i in range(n):
            mz += z[i]
        mz /= n
        for r in range(5):
            acc = 0.0
            for i in range(n):
                acc += basis[i, r] * (z[i] - mz)
            rhs[r] = acc + pull[lip, r] * n
            for c in range(5):
                acc = 0.0
                for i in range(n):
                    acc += basis[i, r] * basis[i, c]
                a[r, c] = acc + (ridge[r] * n if r == c else 0.0)
        for j in range(5):  # a = L L^T, in place (lower triangle)
            d = a[j, j]
            for q in range(j):
                d -= a[j, q] * a[j, q]
            a[j, j] = np.sqrt(d)
            for r in range(j + 1, 5):
                e = a[r, j]
                for q in range(j):
                    e -= a[r, q] * a[j, q]
                a[r, j] = e / a[j, j]
        for r in range(5):  # L y = rhs, then L^T c = y
            e = rhs[r]
            for q in range(r):
                e -= a[r, q] * rhs[q]
            rhs[r] = e / a[r, r]
        for r in range(4, -1, -1):
            e = rhs[r]
            for q in range(r + 1, 5):
                e -= a[q, r] * coeffs[lip, q]
            coeffs[lip, r] = e / a[r, r]
