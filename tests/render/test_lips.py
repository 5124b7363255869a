"""The lips kernel on its own: CIEDE2000 against the published pairs, the light model, and
the per-pixel finishes on real lips (fields from real landmarks and pictures)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

import cv2
import numpy as np
import pytest

from arengine.catalog import default_catalog
from arengine.effects.lipstick import (
    lip_fields,
    lip_geometry,
    lip_roi_mask,
    measure_light,
    measure_skin,
)
from arengine.render.lips import (
    FINISH_WEIGHTS,
    HALF_VECTOR,
    NEUTRAL_LIGHT,
    REFERENCE_SKIN,
    LipParams,
    SceneLight,
    _delta_e00,
    composite_and_read,
    composite_lips,
    delta_e00,
    glint_texture,
    lip_readout,
    roi_to_lab,
)
from arengine.tracking import FaceTracker

# Sharma, Wu & Dalal (2005), Table 1: (L1, a1, b1, L2, a2, b2, dE00), all 34 pairs. They
# are built to catch the formula's traps: the hue of neutral colours, the mean hue across
# 0/360 degrees, the G term near a* = 0.
SHARMA = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


def test_ciede2000_matches_sharmas_table() -> None:
    pairs = np.array(SHARMA)
    got = delta_e00(pairs[:, 0:3], pairs[:, 3:6])
    np.testing.assert_allclose(got, pairs[:, 6], atol=5e-5)
    np.testing.assert_allclose(delta_e00(pairs[:, 3:6], pairs[:, 0:3]), pairs[:, 6], atol=5e-5)
    # The per-frame readout's scalar version is the same formula.
    for row in SHARMA:
        assert _delta_e00(row[0:3], row[3:6]) == pytest.approx(row[6], abs=5e-5)
        assert _delta_e00(row[3:6], row[0:3]) == pytest.approx(row[6], abs=5e-5)


def test_ciede2000_agrees_with_scikit_image_elsewhere() -> None:
    """Away from the table, on colours across the whole space (scikit-image is a test-only
    cross-check here; the engine's readout uses its own numpy implementation)."""
    from skimage.color import deltaE_ciede2000

    rng = np.random.default_rng(7)
    a = rng.uniform([0, -90, -90], [100, 90, 90], (2000, 3))
    b = a + rng.normal(0, 8, a.shape)
    np.testing.assert_allclose(delta_e00(a, b), deltaE_ciede2000(a, b), atol=1e-9)
    assert float(delta_e00((50.0, 10.0, 10.0), (50.0, 10.0, 10.0))) == 0.0


# --------------------------------------------------------------------------- the light

def test_reference_skin_means_the_reference_light() -> None:
    light = SceneLight.from_skin(REFERENCE_SKIN)
    assert light.gain == pytest.approx((1.0, 1.0, 1.0), abs=1e-9)
    ruby = default_catalog().get("velvet-ruby").lab
    assert light.adapt(ruby) == pytest.approx(ruby, abs=1e-6)
    assert NEUTRAL_LIGHT.adapt(ruby) == ruby


def test_light_gain_follows_the_skin() -> None:
    """Brighter skin: more light (brighter shade), darker: less; a warm cast warms it."""
    ruby = default_catalog().get("velvet-ruby").lab
    Ls = [SceneLight.from_skin((L, REFERENCE_SKIN[1], REFERENCE_SKIN[2])).adapt(ruby)[0]
          for L in (35.0, 50.0, 62.0, 75.0, 85.0)]
    assert all(b > a for a, b in itertools.pairwise(Ls)), Ls
    assert Ls[0] < ruby[0] - 5 and Ls[-1] > ruby[0] + 5
    warm = SceneLight.from_skin((62.0, 18.0, 45.0))  # a tungsten-lit face's skin
    cool = SceneLight.from_skin((62.0, 8.0, 5.0))  # a grey, cool-lit one
    assert warm.gain[0] > warm.gain[2] and cool.gain[2] > cool.gain[0]
    assert warm.adapt(ruby)[2] > ruby[2] + 3 > cool.adapt(ruby)[2] + 6
    # The cast and the gain are bounded: a green wall is not taken for the light.
    odd = SceneLight.from_skin((62.0, -60.0, 80.0))
    assert max(odd.gain) / min(odd.gain) < 1.6


@pytest.fixture(scope="module")
def faces(load_image: Callable[[str], np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(picture, landmarks of its first face) for real faces."""
    out = {}
    with FaceTracker(mode="image", max_faces=1) as tracker:
        for rel in ("mediapipe_samples/business-person.png", "faces/obama-720p.jpg",
                    "mediapipe_samples/testImg.jpeg"):
            img = load_image(rel)
            found = tracker.detect(img)
            assert len(found) == 1
            out[rel] = (img, found.points[0])
    return out


def test_measured_skin_follows_the_picture_light(faces) -> None:
    """The skin ring's L* scales with the picture's; a warm cast raises its b*."""
    img, pts = faces["faces/obama-720p.jpg"]
    h, w = img.shape[:2]
    geom = lip_geometry(pts, w, h)
    assert geom is not None
    skin = measure_skin(img, geom)
    assert skin is not None and 55 < skin[0] < 70  # the skin around his mouth, not the lips
    lab = roi_to_lab(img)
    lab[:, :, 0] *= 0.7
    dim = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2BGR) * 255 + 0.5, 0, 255).astype(np.uint8)
    dim_skin = measure_skin(dim, geom)
    assert dim_skin is not None and dim_skin[0] == pytest.approx(0.7 * skin[0], abs=1.5)
    warm = np.clip(img.astype(np.float32) * (0.85, 1.0, 1.15), 0, 255).astype(np.uint8)
    warm_skin = measure_skin(warm, geom)
    assert warm_skin is not None and warm_skin[2] > skin[2] + 4
    assert measure_light(dim, geom).luminance_gain < 0.8 * measure_light(img, geom).luminance_gain


# --------------------------------------------------------------------------- finishes

def _case(faces, rel: str, shade_id: str, **change: object):
    img, pts = faces[rel]
    h, w = img.shape[:2]
    geom = lip_geometry(pts, w, h)
    assert geom is not None
    x1, y1, x2, y2 = geom.box
    roi = np.ascontiguousarray(img[y1:y2, x1:x2])
    lab = roi_to_lab(roi)
    m8 = lip_roi_mask(geom)
    params = replace(LipParams.from_shade(default_catalog().get(shade_id)), **change)
    fields = lip_fields(lab, m8, geom, params, pts, measure_light(img, geom))
    return roi, lab, m8.astype(np.float32) / 255, params, fields


def _L(bgr: np.ndarray) -> np.ndarray:
    return roi_to_lab(bgr)[:, :, 0]


def test_normals_face_the_camera_and_tilt_with_the_lips(faces) -> None:
    """Unit normals toward the camera; the lower lip's upper half faces up (the key light's
    side), the upper lip faces down, the corners turn sideways."""
    for rel in faces:
        _, _, m, _, f = _case(faces, rel, "dew-glass-red")
        assert f.normal is not None
        n = f.normal
        core = m >= 0.9
        # Unit, but where the seam averages the two lips' normals (lit less there).
        norm = np.linalg.norm(n[core], axis=1)
        assert (norm <= 1.0 + 1e-5).all() and (norm >= 0.6).all()
        assert np.percentile(norm, 5) >= 0.75
        assert (n[core][:, 2] > 0.4).all()  # nothing on the lips faces away
        # Where the key light can be seen mirrored (normal near the half vector, where the
        # light reaches) is in the lower half of the box: the lower lip faces up.
        assert f.spec is not None
        seen = (n[:, :, 1] * HALF_VECTOR[1] + n[:, :, 2] * HALF_VECTOR[2]) * f.spec
        ys = np.nonzero(core & (seen > np.percentile(seen[core], 95)))[0]
        assert ys.mean() > 0.5 * m.shape[0], rel


def test_matte_adds_no_highlight_and_keeps_the_shading(faces) -> None:
    """A matte only absorbs some of the lip's own shine: nowhere is it lighter than the
    same shade with no finish at all, and the lip's lightness spread is kept."""
    for rel in faces:
        roi, lab, m, p, f = _case(faces, rel, "velvet-ruby")
        assert p.gloss == p.sheen == p.metallic == p.shimmer == 0.0
        bare = composite_lips(roi, m, replace(p, blot=0.0), f, lab)
        matte = composite_lips(roi, m, p, f, lab)
        core = m >= 0.9
        assert (_L(matte)[core] <= _L(bare)[core] + 0.5).all(), rel
        spread = _L(matte)[core].std() / _L(roi)[core].std()
        assert 0.85 <= spread <= 1.15, (rel, spread)


def test_finish_weights_cover_every_finish() -> None:
    from arengine.catalog import FINISHES

    assert set(FINISH_WEIGHTS) == set(FINISHES)
    assert all(len(w) == 7 for w in FINISH_WEIGHTS.values())


def test_glint_texture_flakes_with_their_own_tilt() -> None:
    tex = glint_texture()
    cover, tilt = tex[:, :, 0], tex[:, :, 1:]
    assert 0.1 < (cover > 0.5).mean() < 0.4  # dense, fine flakes
    assert (np.linalg.norm(tilt, axis=2) <= 1.0 + 1e-6).all()
    # Within a flake the tilt is one value (its own orientation), flakes differ.
    ys, xs = np.nonzero(cover > 0.9)
    assert np.std(tilt[ys, xs, 0]) > 0.3
    assert glint_texture() is tex  # made once


def test_readout_reads_what_was_painted(faces) -> None:
    """composite_and_read's readout is the mean Lab of the pixels it painted (highlights
    out), and the sub-grid readout from the picture agrees with it."""
    for shade_id in ("velvet-ruby", "dew-glass-red", "gradient-nude-liner"):
        roi, lab, m, p, f = _case(faces, "mediapipe_samples/business-person.png", shade_id)
        out, colour = composite_and_read(roi, m, p, f, lab)
        assert np.array_equal(out, composite_lips(roi, m, p, f, lab))
        assert colour is not None and colour.pixels > 100
        sub = lip_readout(m, p, f, lab, roi_bgr=roi)
        assert sub is not None
        assert float(delta_e00(sub.rendered, colour.rendered)) < 1.0, shade_id
        assert float(delta_e00(sub.target, colour.target)) < 0.5, shade_id
        assert colour.delta_e00 == pytest.approx(float(delta_e00(colour.target,
                                                                 colour.rendered)), abs=1e-6)
        if shade_id == "velvet-ruby":  # one colour: the target is the shade in the light
            assert colour.target == pytest.approx(f.light.adapt(p.colour), abs=1e-3)
        with pytest.raises(ValueError, match="roi_bgr"):
            lip_readout(m, p, f, lab)
