"""The compiled composite computes the formula composite_lips documents.

The formula is written here once more with numpy, step by step as in the docstring, and
the kernels' terms and blend are compared with it for every finish, with ombre and liner,
on random lips (fields in their real ranges) and in a bright and a dim light.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np
import pytest

from arengine.catalog import default_catalog
from arengine.render import lip_kernels as kernels
from arengine.render import lips as L
from arengine.render.lips import FINISH_WEIGHTS, LipFields, LipParams, SceneLight


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / max(e1 - e0, 1e-6), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _reference(lab: np.ndarray, m: np.ndarray, p: LipParams, f: LipFields,
               lit: L.LitColours) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target Lab, coat, sharp) of the docstring's formula, in float64."""
    Lc = lab[..., 0].astype(np.float64)
    C = [np.full(m.shape, v, np.float64) for v in lit.colour]
    if p.ombre > 0 and f.radial is not None:
        wo = p.ombre * (1 - _smoothstep(p.ombre_ratio - .1, p.ombre_ratio + .35, f.radial))
        C = [c + wo * (v - c) for c, v in zip(C, lit.ombre, strict=True)]
    if p.liner > 0 and f.edge is not None:
        wl = .75 * p.liner * (1 - _smoothstep(.25 * p.liner_width, 1.8 * p.liner_width,
                                              f.edge))
        C = [c + wl * (v - c) for c, v in zip(C, lit.liner, strict=True)]
    d = Lc - f.l_ref
    d -= p.blot * np.maximum(d - f.l_std, 0)
    t = C[0] + p.detail * d
    t += .5 * p.sheer * (Lc - t)
    k = np.clip(.4 + .6 * t / np.maximum(C[0], 1), 0, L.CHROMA_MAX)
    k = np.minimum(k, L.WHITE_ROLLOFF * (100 - t) / np.maximum(100 - C[0], 1))
    coat = np.zeros(m.shape)
    sharp = np.zeros(m.shape)
    if p.gloss > 0 or p.sheen > 0 or p.metallic > 0 or p.shimmer > 0:
        n = f.normal.astype(np.float64)
        _, hy, hz = L.HALF_VECTOR
        nh = np.maximum(n[..., 1] * hy + n[..., 2] * hz, 0)
        sp = f.spec
        tex = np.clip(1 + (Lc - f.l_blur) / (f.l_std + 1), 0, 2)
        t = t + L.SHEEN_LIFT * p.sheen * sp * nh ** L.SHEEN_SHININESS
        before = t.copy()
        met = p.metallic * sp * _smoothstep(*L.METAL_COS, nh) * (.5 + .5 * tex)
        t = t - L.METAL_DIM * p.metallic * sp * (1 - met) * t
        t = t + .7 * met * (100 - t)
        k = k * (1 + .4 * met)
        g = n + L.GLINT_TILT * np.stack([f.glint[..., 1], f.glint[..., 2],
                                         np.zeros(m.shape)], axis=-1)
        dd = np.maximum((g[..., 1] * hy + g[..., 2] * hz) / np.linalg.norm(g, axis=-1), 0)
        gl = p.shimmer * f.glint[..., 0] * _smoothstep(.5, .9, m) * _smoothstep(*L.GLINT_COS,
                                                                                  dd)
        t = t + .7 * gl * (100 - t)
        k = k * (1 - .15 * gl)
        sharp = t - before
        own = np.clip((f.l_blur - f.l_ref - .5 * f.l_std) / (1.5 * f.l_std + 1), 0, 1)
        wet = (.6 * _smoothstep(*L.GLOSS_COS, nh) + .4 * nh ** L.GLOSS_HALO) \
            * (.4 + .6 * tex) + .35 * own ** 2
        coat = .75 * p.gloss * sp * np.minimum(wet, 1)
    return np.stack([t, k * C[1], k * C[2]], axis=-1), coat, sharp


def _lips(rng: np.random.Generator, h: int = 30, w: int = 70):
    """A random lip box: picture, coverage and every field, in their real ranges."""
    bgr = rng.integers(40, 230, (h, w, 3), dtype=np.uint8)
    lab = L.roi_to_lab(bgr)
    m = np.clip(rng.random((h, w)) * 1.6 - 0.3, 0, 1).astype(np.float32)
    n = rng.normal(size=(h, w, 3)) * (0.4, 0.4, 0.2) + (0, 0, 1)
    n = (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(np.float32)
    glint = np.concatenate([rng.random((h, w, 1)), rng.random((h, w, 2)) * 2 - 1],
                           axis=-1).astype(np.float32)
    f = LipFields(l_blur=(lab[..., 0] + rng.normal(size=(h, w)) * 3).astype(np.float32),
                  l_ref=float(lab[..., 0].mean()), l_std=float(lab[..., 0].std()),
                  normal=n, spec=rng.random((h, w)).astype(np.float32), glint=glint,
                  edge=(rng.random((h, w)) * 0.2).astype(np.float32),
                  radial=(rng.random((h, w)) * 1.2).astype(np.float32))
    return bgr, lab, m, f


def _shades() -> list[str]:
    cat = default_catalog()
    out = {}
    for s in cat:
        out.setdefault(s.finish, s.id)
    out["liner+ombre"] = next(s.id for s in cat if s.ombre_inner_hex and s.liner_hex)
    return sorted(out.values())


@pytest.mark.parametrize("shade_id", _shades())
@pytest.mark.parametrize("skin", [(78.0, 10.0, 15.0), (40.0, 14.0, 20.0)])
def test_terms_are_the_documented_formula(shade_id: str, skin: tuple[float, float, float]
                                          ) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{shade_id} {skin}".encode()))
    _, lab, m, f = _lips(rng)
    f = LipFields(**{**f.__dict__, "light": SceneLight.from_skin(skin)})
    p = LipParams.from_shade(default_catalog().get(shade_id))
    lit = L.LitColours.of(p, f.light)
    terms = L._terms(lab, m, p, f, lit)
    target, coat, sharp = _reference(lab, m, p, f, lit)
    np.testing.assert_allclose(terms.target, target, atol=2e-3)
    if p.gloss > 0:
        assert terms.coat is not None
        np.testing.assert_allclose(terms.coat, coat, atol=1e-5)
    if p.metallic > 0 or p.shimmer > 0:
        assert terms.sharp is not None
        np.testing.assert_allclose(terms.sharp, sharp, atol=2e-3)
    assert (terms.coat is not None) == (p.gloss > 0)


def test_every_finish_is_covered() -> None:
    finishes = {default_catalog().get(s).finish for s in _shades()}
    assert finishes == set(FINISH_WEIGHTS)


def test_blend_is_pigment_then_clear_coat() -> None:
    rng = np.random.default_rng(9)
    bgr, lab, m, f = _lips(rng)
    p = LipParams.from_shade(default_catalog().get(
        next(s.id for s in default_catalog() if s.finish == "gloss")))
    out, terms = L._paint(bgr, m, p, f, lab, L.LitColours.of(p, f.light))
    tgt = np.clip(cv2.cvtColor(terms.target, cv2.COLOR_Lab2BGR), 0, 1) * 255.0
    a = (m * p.opacity * (1 - .45 * p.sheer))[..., None]
    mix = bgr + (tgt - bgr) * a
    assert terms.coat is not None
    spec = np.array(L.LitColours.of(p, f.light).specular_bgr) * 255.0
    want = mix + (m * terms.coat)[..., None] * (spec - mix)
    assert np.abs(out.astype(float) - np.floor(want + 0.5)).max() <= 1
    assert (out[m == 0] == bgr[m == 0]).all()  # no coverage: the picture as it was
    assert (out != bgr).any()


def test_every_kernel_is_compiled_at_import() -> None:
    for d in (kernels.terms_into, kernels.blend_into):
        assert d.signatures
