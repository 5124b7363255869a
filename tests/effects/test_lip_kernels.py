"""The compiled segmentation and surface loops compute what their numpy formulas say.

Each kernel is checked against the formula written with numpy (as the effect computed it
before the loops were compiled), on real faces where it matters: a kernel that drifted
from its formula would still paint something plausible, and only a comparison shows it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from arengine.effects import lip_kernels as kernels
from arengine.effects import lip_segmentation as seg
from arengine.effects import lipstick as lp
from arengine.render.lips import roi_to_lab
from arengine.tracking import FaceTracker


def test_every_kernel_is_compiled_at_import() -> None:
    # A kernel compiled on its first call would stall the first frame of a live room.
    dispatchers = [getattr(kernels, n) for n in dir(kernels)
                   if hasattr(getattr(kernels, n), "signatures")]
    assert len(dispatchers) >= 7
    for d in dispatchers:
        assert d.signatures, d


def _moments_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=0), np.cov(x.astype(np.float64), rowvar=False) + np.diag(seg.VAR_FLOOR)


def test_fit_is_the_mean_and_covariance_of_every_kth_sample() -> None:
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(1000, 3)) * (5, 2, 3) + (50, 20, 10)).astype(np.float32)
    g = seg.Gaussian.fit(x)
    mean, cov = _moments_reference(x[::math.ceil(1000 / seg.MAX_SAMPLES)])
    np.testing.assert_allclose(g.mean, mean, atol=1e-4)
    np.testing.assert_allclose(g.cov, cov, rtol=1e-4, atol=1e-4)
    small = x[:40]
    g = seg.Gaussian.fit(small)
    np.testing.assert_allclose(g.cov, _moments_reference(small)[1], rtol=1e-4, atol=1e-4)


def test_trimmed_fit_leaves_out_samples_beyond_three_sigma() -> None:
    rng = np.random.default_rng(4)
    x = (rng.normal(size=(200, 3)) * 2 + (60, 15, 18)).astype(np.float32)
    x[:5] = (95.0, 0.0, 0.0)  # a tooth in the skin ring
    first = seg.Gaussian.fit(x)
    y = cv2.transform(x.reshape(-1, 1, 3), first.whiten).reshape(-1, 3)
    keep = (y * y).sum(axis=1) <= 27.0
    assert not keep[:5].any()
    g = seg.Gaussian.fit(x, trim=True)
    mean, cov = _moments_reference(x[keep])
    np.testing.assert_allclose(g.mean, mean, atol=1e-4)
    np.testing.assert_allclose(g.cov, cov, rtol=1e-4, atol=1e-4)


def test_fit_pixels_reads_the_selected_pixels_in_place() -> None:
    rng = np.random.default_rng(5)
    lab = (rng.random((40, 90, 3)) * (100, 60, 60) - (0, 30, 30)).astype(np.float32)
    select = (rng.random((40, 90)) < 0.3).astype(np.uint8)
    n = int(select.sum())
    g = seg.Gaussian.fit_pixels(lab, select, n)
    ref = seg.Gaussian.fit(lab[select.view(bool)])
    np.testing.assert_allclose(g.mean, ref.mean, atol=1e-5)
    np.testing.assert_allclose(g.cov, ref.cov, rtol=1e-5, atol=1e-5)


def test_farthest_pair_is_the_brute_force_one() -> None:
    rng = np.random.default_rng(6)
    for _ in range(20):
        p = rng.random((20, 2)).astype(np.float32) * 100
        d = ((p[:, None] - p[None]) ** 2).sum(axis=2)
        i, j = kernels.farthest_pair(p)
        assert d[i, j] == d.max()


def _segment_reference(lab: np.ndarray, outer: np.ndarray, inner: np.ndarray,
                       mouth_width: float, gap: float, skin: np.ndarray) -> np.ndarray:
    """segment_lips' formula in numpy (see lip_segmentation's module doc)."""
    shape = lab.shape[:2]
    extend, grow, _ = seg.band_sizes(mouth_width)
    of, inf = seg._fill(shape, outer), seg._fill(shape, inner)
    dist = seg._dist
    d_out, d_mouth, d_in, d_ring = dist(1 - of), dist(inf), dist(of), dist(1 - inf)
    ring = cv2.subtract(of, inf) > 0
    near = np.minimum(d_in, d_ring)
    core = ring & (near >= np.maximum(np.float32(seg.CORE_SHARE) * (d_in + d_ring), 1.0))
    allowed = (d_out <= extend) & (d_mouth <= grow) & seg.within_corners(shape, outer,
                                                                         mouth_width)
    lip_own, skin_model = seg.Gaussian.fit(lab[core]), seg.Gaussian.fit(skin, trim=True)
    pooled = 0.5 * (lip_own.cov + skin_model.cov)

    def ll(g: seg.Gaussian) -> np.ndarray:
        y = cv2.transform(lab, g.whiten)
        return np.float32(g.log_norm) - 0.5 * (y * y).sum(axis=2)

    lip = ll(seg.Gaussian.of(lip_own.mean, pooled))
    other = ll(seg.Gaussian.of(skin_model.mean, pooled))
    weight = seg._smoothstep(seg.OPEN_FROM, seg.OPEN_TO, gap)
    if weight > 0:
        for m in seg._mouth_models(lab, inf, d_mouth, lip_own):
            other = np.maximum(other, ll(m) + np.float32(math.log(weight)))
    logit = np.clip(lip - other, -seg.LLR_CLIP, seg.LLR_CLIP)
    outside = np.minimum(d_out / np.float32(extend) + d_mouth / np.float32(grow), 1.0)
    prior = np.where(ring, np.minimum(near, 2.0) * 0.5, -outside)
    logit += np.float32(seg.PRIOR) * prior + np.float32(seg.BIAS)
    logit[~allowed] = -seg.LLR_CLIP - seg.PRIOR
    logit[core] = seg.LLR_CLIP + seg.PRIOR
    guide = lab[:, :, 0] * np.float32(1 / 100)
    logit = cv2.ximgproc.guidedFilter(guide, logit.astype(np.float32), seg.GUIDE_RADIUS,
                                      seg.GUIDE_EPS)
    cover = 1.0 / (1.0 + np.exp(-logit))
    cover[~allowed | (cover < seg.COVER_FLOOR)] = 0.0
    return cover


@pytest.fixture(scope="module")
def mouths(load_image) -> list[tuple[np.ndarray, lp.LipGeometry, np.ndarray]]:
    """(picture, lips, landmarks) of real faces, closed and open mouths."""
    out = []
    with FaceTracker(mode="image") as ft:
        for name in ("mediapipe_samples/business-person.png", "faces/obama-720p.jpg",
                     "faces/two_people.jpg"):
            img = load_image(name)
            scene = ft.track(img, 0.0)
            for pts in scene.faces.points:
                geom = lp.lip_geometry(pts, img.shape[1], img.shape[0])
                assert geom is not None
                out.append((img, geom, pts))
    assert len(out) >= 4
    return out


@pytest.mark.parametrize("gap", [None, 3.0])  # as seen, and as an open mouth (mouth models)
def test_segmentation_matches_its_numpy_formula(mouths, gap: float | None) -> None:
    for img, geom, _ in mouths:
        x1, y1, x2, y2 = geom.box
        lab = roi_to_lab(img[y1:y2, x1:x2])
        mw = 2 * geom.half_width
        skin = seg.sample_pixels(img, seg.ring_points(geom.outer + np.float32([x1, y1]), mw))
        g = geom.gap if gap is None else gap
        got = seg.segment_lips(lab, geom.outer, geom.inner, mw, g, skin)
        want = _segment_reference(lab, geom.outer, geom.inner, mw, g, skin)
        assert (got > 0).sum() > 50
        np.testing.assert_allclose(got, want, atol=2e-3)


def _surface_reference(geom: lp.LipGeometry, points: np.ndarray) -> np.ndarray:
    """lip_surface's fit in numpy: least squares with the ridge, per lip."""
    p = points[lp._RING_POINTS].astype(np.float64)
    centre = np.array(geom.centre) + np.array(geom.box[:2])
    u = ((p[:, :2] - centre) @ np.array(geom.axis)).reshape(2, -1) / geom.half_width
    s = lp._RING_S
    basis = np.stack([u, u * u, s, s * s, u * s], axis=-1)
    basis -= basis.mean(axis=1, keepdims=True)
    z = p[:, 2].reshape(2, -1)
    z = (z.mean(axis=1, keepdims=True) - z) / geom.half_width
    n = u.shape[1]
    out = []
    for lip in range(2):
        b = basis[lip]
        a = b.T @ b + np.diag(lp.SURFACE_RIDGE) * n
        out.append(np.linalg.solve(a, b.T @ z[lip] + lp._TEMPLATES[lip]
                                   * np.array(lp.SURFACE_RIDGE) * n))
    return np.array(out)


def test_surface_fit_matches_least_squares(mouths) -> None:
    for _, geom, pts in mouths:
        got = np.array(lp.lip_surface(geom, pts))
        np.testing.assert_allclose(got, _surface_reference(geom, pts), atol=1e-9)
        assert not np.allclose(got, lp._TEMPLATES)  # fitted to this face, not the template


def test_surface_grid_matches_its_numpy_formula(mouths) -> None:
    for _, geom, pts in mouths:
        u = lp._SURFACE_U
        nu = len(u)
        nv = max(5, round(nu * geom.half_height / geom.half_width * (1.4 / 1.1)))
        v = lp._surface_v(nv)[:, None]
        edge = np.empty((4, nu), np.float32)
        for row, (cu, cv) in zip(edge, lp._lip_contours(geom), strict=True):
            row[:] = np.interp(u, cu, cv)
        slope = cv2.Sobel(edge, cv2.CV_32F, 1, 0, ksize=1, scale=0.5 / lp._SURFACE_DU,
                          borderType=cv2.BORDER_REPLICATE)
        coeffs = np.stack(lp.lip_surface(geom, pts))
        ax, ay = geom.axis
        planes = np.empty((nv, nu, 4), np.float32)
        s_got = np.empty((nv, nu), np.float32)
        kernels.surface_into(u, v[:, 0], edge, slope, coeffs,
                             np.array((geom.half_width / geom.half_height,
                                       lp.SURFACE_MAX_SLOPE, ax, ay)), planes, s_got)
        # The formula, both lips at once (2, rows, columns).
        sgn = np.array([1.0, -1.0])[:, None, None]
        inner, outer = edge[0::2, None, :], edge[1::2, None, :]
        d_in, d_out = slope[0::2, None, :], slope[1::2, None, :]
        t = np.maximum(sgn * (inner - outer), 0.15)
        s2 = np.clip(sgn * (inner - v) / t, -0.5, 1.5)
        c1, c2, c3, c4, c5 = coeffs.T[:, :, None, None]
        zs = c3 + 2 * c4 * s2 + c5 * u
        along2 = c1 + 2 * c2 * u + c5 * s2 + zs * sgn * (d_in - s2 * (d_in - d_out)) / t
        across2 = zs * (-geom.half_width / geom.half_height * sgn / t)
        lower = np.clip((v - 0.5 * (edge[0] + edge[2])) / 0.12 + 0.5, 0, 1)
        lim = lp.SURFACE_MAX_SLOPE
        along = np.clip(along2[0] + lower * (along2[1] - along2[0]), -lim, lim)
        across = np.clip(across2[0] + lower * (across2[1] - across2[0]), -lim, lim)
        s = s2[0] + lower * (s2[1] - s2[0])
        inv = 1 / np.sqrt(along ** 2 + across ** 2 + 1)
        ramp = np.clip(np.minimum(np.minimum(s * 5, (1.05 - s) * 3.5),
                                  (0.95 - np.abs(u)) * 2.5), 0, 1)
        want = np.stack([(ay * across - ax * along) * inv, (-ay * along - ax * across) * inv,
                         inv, ramp], axis=-1)
        np.testing.assert_allclose(planes, want, atol=1e-4)
        np.testing.assert_allclose(s_got, s, atol=1e-4)
        assert planes[..., 3].max() > 0.5  # the highlight can show somewhere


def test_fit_of_nothing_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        seg.Gaussian.fit(np.zeros((0, 3), np.float32))
