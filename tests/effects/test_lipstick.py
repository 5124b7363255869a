"""Virtual lipstick on real faces: where it paints, what colour, each finish, fades, faces."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from arengine.catalog import Shade, UnknownShadeError, default_catalog
from arengine.effects import create_effect
from arengine.effects.lip_segmentation import band_sizes
from arengine.effects.lipstick import (
    LipGeometry,
    LipParams,
    LipstickEffect,
    composite_lips,
    lip_coordinates,
    lip_fields,
    lip_geometry,
    lip_mask,
    lip_roi_mask,
    prepare_lips,
    roi_to_lab,
)
from arengine.render.lips import delta_e00
from arengine.tracking import FaceTracker, HandTracker, hands_mask
from arengine.types import LIPS_INNER, LIPS_OUTER, MOUTH_LEFT, MOUTH_RIGHT, FaceLandmarks, Scene

DEFAULT = "velvet-ruby"

STILLS = ["mediapipe_samples/business-person.png", "faces/obama-720p.jpg",
          "faces/astronaut.png", "faces/two_people.jpg", "mediapipe_samples/testImg.jpeg"]


@pytest.fixture(scope="module")
def stills(load_image) -> dict[str, tuple[np.ndarray, Scene]]:
    """Each still with its faces tracked once (image mode)."""
    out = {}
    with FaceTracker(mode="image") as tracker:
        for rel in STILLS:
            img = load_image(rel)
            out[rel] = (img, tracker.track(img))
    return out


def _shade(shade_id: str, **change: object) -> Shade:
    return replace(default_catalog().get(shade_id), **change)  # type: ignore[arg-type]


def _render(img: np.ndarray, scene: Scene, shade: Shade | str, **kw: object) -> np.ndarray:
    return LipstickEffect(shade, **kw).apply(img.copy(), scene)  # type: ignore[arg-type]


def _lab(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab)


def _polygon_region(xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Outer-lip polygon minus inner-lip polygon, filled without anti-aliasing (bool)."""
    region = np.zeros(shape, np.uint8)
    cv2.fillPoly(region, [np.round(xy[list(LIPS_OUTER)]).astype(np.int32)], 1)
    cv2.fillPoly(region, [np.round(xy[list(LIPS_INNER)]).astype(np.int32)], 0)
    return region > 0


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _core(img: np.ndarray, scene: Scene, face: int = 0, hands: bool = False) -> np.ndarray:
    """Lip pixels inside the feathered edge (bool), as the effect paints them on ``img``;
    smiling lips in small faces are thin."""
    m = lip_mask(scene.faces, scene.hands if hands else None, scene.width, scene.height, face,
                 frame=img)
    return m >= 224


# --------------------------------------------------------------------------- the mask

def test_lip_mask_matches_expected_landmarks(data_dir: Path, load_image) -> None:
    """The mask built from the reference landmarks covers their lip polygon (IoU >= 0.9)."""
    img = load_image("mediapipe_samples/business-person.png")
    h, w = img.shape[:2]
    raw = json.loads((data_dir / "mediapipe_samples"
                      / "business-person_expected_face_landmarks.json").read_text())
    pts = np.array(raw["landmarks"], np.float32) * np.array([w, h, w], np.float32)
    faces = FaceLandmarks(pts, pts, np.ones(1, np.float32), np.zeros(1, np.int64))
    expected = _polygon_region(pts[0, :, :2], (h, w))
    mask = lip_mask(faces, None, w, h, frame=img)
    assert mask.shape == (h, w) and mask.dtype == np.uint8
    # The mask follows the picture, not the polygon: where they differ (the lip line
    # within a pixel or two) the picture wins, so the overlap with the polygon is a little
    # lower than the 0.9 the polygon mask had; bench/bench_lip_mask.py measures it against
    # a reference segmentation instead.
    assert _iou(mask >= 128, expected) >= 0.8
    # Without the picture the mask is where the lips may be: all of the polygon and more.
    support = lip_mask(faces, None, w, h)
    assert (support[expected] > 0).all() and (support[mask > 0] > 0).all()


def test_tracked_lip_mask_and_untouched_surroundings(data_dir: Path, stills) -> None:
    """End to end with the tracker; nothing outside the mask (grown by 3 px) changes.

    The legacy FaceMesh model puts this person's lips about 1 px lower than the reference
    (Tasks) model; on lips ~12 px thick that alone costs ~0.13 IoU between the two polygons,
    so this bound is looser than the one on the reference landmarks above.
    """
    img, scene = stills["mediapipe_samples/business-person.png"]
    h, w = img.shape[:2]
    raw = json.loads((data_dir / "mediapipe_samples"
                      / "business-person_expected_face_landmarks.json").read_text())
    pts = np.array(raw["landmarks"][0], np.float32)[:, :2] * np.array([w, h], np.float32)
    mask = lip_mask(scene.faces, None, w, h, frame=img)
    assert _iou(mask >= 128, _polygon_region(pts, (h, w))) >= 0.8
    grown = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    for shade in ("velvet-ruby", "dew-glass-red", "star-galaxy", "star-rose-gold",
                  "gradient-nude-liner", "dew-berry"):
        out = _render(img, scene, shade)
        changed = np.any(out != img, axis=2)
        assert changed.sum() > 0.8 * (mask >= 128).sum(), shade
        assert not changed[grown == 0].any(), shade
        assert not changed[mask == 0].any(), shade  # the mask is exactly what gets painted


def test_roi_mask_is_the_full_frame_mask(stills) -> None:
    img, scene = stills["faces/obama-720p.jpg"]
    geom = lip_geometry(scene.faces.points[0], scene.width, scene.height)
    assert isinstance(geom, LipGeometry)
    x1, y1, x2, y2 = geom.box
    full = lip_mask(scene.faces, None, scene.width, scene.height, frame=img)
    assert np.array_equal(full[y1:y2, x1:x2], lip_roi_mask(geom, None, img))
    assert full.sum() == full[y1:y2, x1:x2].sum()
    support = lip_mask(scene.faces, None, scene.width, scene.height, frame=None)
    assert np.array_equal(support[y1:y2, x1:x2], lip_roi_mask(geom))
    assert (support[full > 0] > 0).all()  # what is painted lies where the lips may be
    # The ROI is small: the effect never touches the frame outside it.
    assert (x2 - x1) * (y2 - y1) < 0.02 * scene.width * scene.height
    # Edge softness scales with the face but stays within 1..3 px.
    assert 1.0 <= geom.feather <= 3.0
    with pytest.raises(IndexError):
        lip_mask(scene.faces, None, scene.width, scene.height, face_index=3)


@pytest.mark.parametrize("rel", ["faces/astronaut.png", "faces/obama-720p.jpg"])
def test_teeth_are_not_painted(stills, rel: str) -> None:
    """Open-mouth smiles with teeth showing: the teeth keep their pixels.

    The landmark opening is no longer cut out whole: the real lip reaches up to 4 px into
    it on these faces, and the mask now follows the picture there (up to the grow of
    :func:`band_sizes`). So instead of "no pixel of the landmark opening changes": nothing
    deeper in the opening than the grow changes, and the teeth (its bright, nearly
    colourless pixels) are left as they are.
    """
    img, scene = stills[rel]
    assert scene.faces.mouth_openness()[0] > 0.1  # the mouth really is open here
    inner = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(scene.faces.lips_inner()[0]).astype(np.int32)], 1)
    assert inner.sum() > 100
    out = _render(img, scene, "velvet-ruby")
    p = scene.faces.points[0]
    grow = band_sizes(float(np.linalg.norm(p[MOUTH_RIGHT, :2] - p[MOUTH_LEFT, :2])))[1]
    deep = cv2.distanceTransform(inner, cv2.DIST_L2, 3) > grow + 1
    assert np.array_equal(out[deep], img[deep])  # none on the astronaut's thin opening
    lab = _lab(img)
    teeth = (inner > 0) & (lab[:, :, 0] > 70) & (np.hypot(lab[:, :, 1], lab[:, :, 2]) < 20)
    teeth = cv2.erode(teeth.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # not the rim
    assert teeth.sum() > 30
    assert np.any(out != img, axis=2)[teeth].mean() < 0.02
    # ... while the lips around them are painted.
    core = _core(img, scene)
    assert np.abs(out[core].astype(int) - img[core]).mean() > 15


def test_closed_mouth_paints_across_the_seam(stills) -> None:
    """A closed mouth's inner contour is degenerate: no unpainted band along the seam."""
    img, scene = stills["mediapipe_samples/business-person.png"]
    assert scene.faces.mouth_openness()[0] < 0.01
    geom = lip_geometry(scene.faces.points[0], scene.width, scene.height)
    assert geom is not None and geom.inner_grow == 0
    mask = lip_mask(scene.faces, None, scene.width, scene.height, frame=img)
    outer = np.zeros_like(mask)
    cv2.fillPoly(outer, [np.round(scene.faces.lips_outer()[0]).astype(np.int32)], 1)
    eroded = cv2.erode(outer, np.ones((5, 5), np.uint8)) > 0
    # Only the inner contour itself (a hairline here) is left out, not a grown band.
    seam = np.zeros_like(mask)
    cv2.fillPoly(seam, [np.round(scene.faces.lips_inner()[0]).astype(np.int32)], 1)
    cv2.polylines(seam, [np.round(scene.faces.lips_inner()[0]).astype(np.int32)], True, 1, 3)
    unpainted = eroded & (mask < 128)
    assert not (unpainted & (seam == 0)).any()
    assert unpainted.sum() < 0.15 * eroded.sum()


@pytest.fixture(scope="module")
def hand_over_mouth(face_video: Path) -> list[tuple[np.ndarray, Scene]]:
    """Frames of the 720p video where the thumb covers part of the lips, with tracking."""
    found = []
    with FaceTracker(mode="video") as faces, HandTracker(mode="video") as hands, \
            av.open(str(face_video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            img = frame.to_ndarray(format="bgr24")
            scene = faces.track(img, float(frame.time or 0.0), i)
            scene = scene.with_hands(hands.detect(img))
            if not len(scene.faces) or not len(scene.hands):
                continue
            geom = lip_geometry(scene.faces.points[0], scene.width, scene.height)
            if geom is None:
                continue
            overlap = (hands_mask(scene.hands, geom.box) > 0) & (lip_roi_mask(geom) > 0)
            if overlap.sum() > 200:
                found.append((img, scene))
    return found


def test_hand_in_front_of_mouth_is_not_painted(hand_over_mouth) -> None:
    assert len(hand_over_mouth) >= 5, "expected the thumb in front of the lips in some frames"
    for img, scene in hand_over_mouth:
        geom = lip_geometry(scene.faces.points[0], scene.width, scene.height)
        assert geom is not None
        x1, y1, x2, y2 = geom.box
        hand = np.zeros(img.shape[:2], np.uint8)
        hand[y1:y2, x1:x2] = hands_mask(scene.hands, geom.box)
        out = _render(img, scene, "velvet-ruby")
        assert np.array_equal(out[hand > 0], img[hand > 0]), scene.frame_index
        # The lips beside the thumb are still painted.
        visible = (lip_mask(scene.faces, scene.hands, scene.width, scene.height,
                            frame=img) >= 250)
        assert visible.sum() > 300
        assert np.abs(out[visible].astype(int) - img[visible]).mean() > 10


# --------------------------------------------------------------------------- colour

def _hue_chroma(lab: np.ndarray) -> tuple[float, float]:
    a, b = float(lab[1]), float(lab[2])
    return float(np.degrees(np.arctan2(b, a))), float(np.hypot(a, b))


@pytest.mark.parametrize("rel", ["mediapipe_samples/business-person.png",
                                 "faces/obama-720p.jpg", "faces/astronaut.png"])
@pytest.mark.parametrize("shade_id", ["velvet-bordeaux", "velvet-ruby", "velvet-nude",
                                      "velvet-rose", "velvet-coral"])
def test_matte_colour_fidelity_and_texture(stills, rel: str, shade_id: str) -> None:
    """The lips take the hue and chroma of the shade as worn in the face's light, yet keep
    their own creases."""
    img, scene = stills[rel]
    shade = default_catalog().get(shade_id)
    assert shade.finish == "matte"
    effect = LipstickEffect(shade)
    out = effect.apply(img.copy(), scene)
    core = _painted(img, scene) >= 160 / 255
    assert core.sum() > 60
    lab_out = _lab(out)
    got = np.median(lab_out[core], axis=0)
    hue, chroma = _hue_chroma(got)
    target = effect.last_readout[0].colour.target  # the shade in the measured light
    want_hue, want_chroma = _hue_chroma(np.array(target))
    dh = (hue - want_hue + 180.0) % 360.0 - 180.0
    assert abs(dh) <= 5.0, (hue, want_hue)
    # A light, saturated shade in bright light sits on the edge of what sRGB can show:
    # its lighter pixels can only lose chroma (the coral on the bright astronaut: -21 %).
    tol = 0.25 if shade_id == "velvet-coral" else 0.2
    assert abs(chroma - want_chroma) <= tol * want_chroma, (chroma, want_chroma)

    # Texture: L minus its blur over lip pixels only (normalised convolution), so the
    # teeth and skin next to thin lips do not count as lip texture.
    inside = _painted(img, scene) >= 224 / 255
    weight = inside.astype(np.float32)
    norm = np.maximum(cv2.GaussianBlur(weight, (0, 0), 1.5), 1e-3)

    def high_pass(lab: np.ndarray) -> np.ndarray:
        L = np.ascontiguousarray(lab[:, :, 0])
        return (L - cv2.GaussianBlur(L * weight, (0, 0), 1.5) / norm)[inside]

    assert float(np.corrcoef(high_pass(_lab(img)), high_pass(lab_out))[0, 1]) >= 0.7


def _painted(img: np.ndarray, scene: Scene, face: int = 0, shade: str = DEFAULT) -> np.ndarray:
    """The coverage the effect paints face ``face`` with (full frame, float 0..1)."""
    geom = lip_geometry(scene.faces.points[face], scene.width, scene.height)
    assert geom is not None
    job = prepare_lips(img, geom, LipParams.from_shade(default_catalog().get(shade)))
    out = np.zeros(img.shape[:2], np.float32)
    if job is not None:
        x1, y1, x2, y2 = job.box
        out[y1:y2, x1:x2] = job.mask
    return out


def _lip_l(img: np.ndarray, core: np.ndarray) -> np.ndarray:
    return _lab(img)[:, :, 0][core]


def _one(scene: Scene, face: int) -> Scene:
    return scene.with_faces(scene.faces.select([face]))


def _turned(scene: Scene, degrees: float) -> Scene:
    """The first face turned by ``degrees`` of yaw as its landmarks' depth sees it (z
    sheared across x about the mouth): the outline and the picture stay as they are."""
    pts = scene.faces.points.copy()
    cx = float(pts[0, [61, 291], 0].mean())
    pts[0, :, 2] += np.float32(np.tan(np.radians(degrees))) * (pts[0, :, 0] - cx)
    return scene.with_faces(FaceLandmarks(pts, pts, scene.faces.confidence,
                                          scene.faces.track_id))


def _lobe(img: np.ndarray, scene: Scene, shade: Shade) -> dict[str, float]:
    """What a finish adds over the same product as a matte on the first face: the peak
    (99th percentile) L*, the share of the lips within half of it, and where that area
    sits (u along the mouth, -1..1; lower: its share below the lips' middle line)."""
    core = _painted(img, scene) >= 224 / 255
    lift = (_lab(_render(img, scene, shade))[:, :, 0]
            - _lab(_render(img, scene, replace(shade, finish="matte")))[:, :, 0])
    peak = float(np.percentile(lift[core], 99))
    half = core & (lift >= 0.5 * peak)
    geom = lip_geometry(scene.faces.points[0], scene.width, scene.height)
    assert geom is not None
    x1, y1, x2, y2 = geom.box
    u, v = (np.zeros(img.shape[:2], np.float32) for _ in range(2))
    u[y1:y2, x1:x2], v[y1:y2, x1:x2] = lip_coordinates(geom)
    mid = np.zeros(img.shape[:2], bool)
    seam = scene.faces.points[0][[13, 14], 1].mean()  # the middle line at the centre
    mid[round(float(seam)):, :] = True
    w = lift[half]
    return {"peak": peak, "half_area": float(half.sum() / core.sum()),
            "u": float(np.average(u[half], weights=w)),
            "lower": float(np.average(mid[half], weights=w)), "core": float(core.sum())}


FINISH_FACES = ["mediapipe_samples/business-person.png", "faces/obama-720p.jpg",
                "mediapipe_samples/testImg.jpeg"]


def test_gloss_is_a_wet_highlight_on_the_lower_lips_centre(stills) -> None:
    """Gloss mirrors the key light where the lip's 3D shape faces it: a bright (>= 18 L*),
    compact (2-15 % of the lips) highlight on the lower lip near the centre line, not a
    rim along the outline. Before: 10-20 L*, half of it at the mouth corners (|u| 0.6)."""
    peaks = []
    for rel in FINISH_FACES:
        img, scene = stills[rel]
        got = _lobe(img, _one(scene, 0), _shade("dew-glass-red"))
        peaks.append(got["peak"])
        assert got["peak"] >= 18.0, (rel, got)
        assert 0.02 <= got["half_area"] <= 0.15, (rel, got)
        assert abs(got["u"]) <= 0.3, (rel, got)
        assert got["lower"] >= 0.8, (rel, got)
    assert float(np.median(peaks)) >= 20.0, peaks


def test_gloss_highlight_moves_with_the_head(stills) -> None:
    """Turning the head (the landmarks' depth) moves the highlight across the lip: the key
    light stays with the camera. Before, the highlight stayed where the lip was bright."""
    img, scene = stills["mediapipe_samples/business-person.png"]
    one = _one(scene, 0)
    left = _lobe(img, _turned(one, -12.0), _shade("dew-glass-red"))
    right = _lobe(img, _turned(one, 12.0), _shade("dew-glass-red"))
    assert left["u"] - right["u"] >= 0.2, (left, right)


@pytest.fixture(scope="module")
def clip_frames(face_video: Path) -> dict[int, tuple[np.ndarray, Scene]]:
    """Frames 40 (head level, pitch ~7 degrees) and 150 (looking down, ~18) of the clip."""
    out = {}
    with FaceTracker(mode="video") as faces, av.open(str(face_video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            img = frame.to_ndarray(format="bgr24")
            scene = faces.track(img, float(frame.time or 0.0), i)
            if i in (40, 150):
                out[i] = (img, scene)
            if i >= 150:
                break
    return out


def test_gloss_highlight_follows_a_real_nod(clip_frames) -> None:
    """In the real clip the woman looks down by about 11 degrees: the lower lip turns
    toward the light above and its highlight climbs toward the middle line."""
    (img_a, sa), (img_b, sb) = clip_frames[40], clip_frames[150]
    pa, pb = (float(s.faces.head_pose()[0][1]) for s in (sa, sb))
    assert pb - pa > 8.0
    shade = _shade("dew-glass-red")

    def v_of(img: np.ndarray, scene: Scene) -> float:
        core = _painted(img, scene) >= 224 / 255
        lift = (_lab(_render(img, scene, shade))[:, :, 0]
                - _lab(_render(img, scene, replace(shade, finish="matte")))[:, :, 0])
        half = core & (lift >= 0.5 * np.percentile(lift[core], 99))
        geom = lip_geometry(scene.faces.points[0], scene.width, scene.height)
        assert geom is not None
        x1, y1, x2, y2 = geom.box
        v = np.zeros(img.shape[:2], np.float32)
        v[y1:y2, x1:x2] = lip_coordinates(geom)[1]
        return float(np.average(v[half], weights=lift[half]))

    assert v_of(img_a, sa) - v_of(img_b, sb) >= 0.08


def test_satin_is_a_soft_broad_sheen(stills) -> None:
    """Satin: a low (5-12.5 L*), wide (>= 20 % of the lips) lobe: another finish than matte
    (which adds none, tests/render/test_lips.py) and than gloss (sharper, smaller)."""
    for rel in FINISH_FACES:
        img, scene = stills[rel]
        satin = _lobe(img, _one(scene, 0), _shade("silk-cherry"))
        gloss = _lobe(img, _one(scene, 0), replace(_shade("silk-cherry"), finish="gloss"))
        assert 5.0 <= satin["peak"] <= 12.5, (rel, satin)
        assert satin["half_area"] >= 0.2, (rel, satin)
        assert satin["half_area"] > 2 * gloss["half_area"], (rel, satin, gloss)
        assert gloss["peak"] > satin["peak"] + 8, (rel, satin, gloss)


def test_metallic_is_a_tinted_strong_highlight(stills) -> None:
    """Metallic: a strong highlight (>= 15 L*) in the shade's own hue (within 15 degrees,
    >= 60 % of its chroma), where gloss's highlight is nearly white. (Bright and saturated,
    it meets the edge of the sRGB gamut, where clipping turns a red a little.)"""
    for rel in FINISH_FACES:
        img, scene = stills[rel]
        one = _one(scene, 0)
        core = _painted(img, one) >= 224 / 255
        shade = _shade("star-ruby-foil")
        effect = LipstickEffect(shade)
        metal = _lab(effect.apply(img.copy(), one))
        target = np.array(effect.last_readout[0].colour.target)
        got = _lobe(img, one, shade)
        assert got["peak"] >= 15.0, (rel, got)
        lift = metal[:, :, 0] - _lab(_render(img, one, replace(shade, finish="matte")))[:, :, 0]
        hl = core & (lift >= 0.5 * got["peak"])
        hue, chroma = _hue_chroma(np.median(metal[hl], axis=0))
        want_hue, want_chroma = _hue_chroma(target)
        assert abs((hue - want_hue + 180) % 360 - 180) <= 15.0, (rel, hue, want_hue)
        assert chroma >= 0.6 * want_chroma, (rel, chroma, want_chroma)
        gloss = _lab(_render(img, one, replace(shade, finish="gloss")))
        glift = gloss[:, :, 0] - _lab(_render(img, one, replace(shade, finish="matte")))[:, :, 0]
        ghl = core & (glift >= 0.5 * np.percentile(glift[core], 99))
        assert _hue_chroma(np.median(gloss[ghl], axis=0))[1] < 0.8 * chroma, rel


def _sparkles(img: np.ndarray, scene: Scene, shade: Shade) -> np.ndarray:
    """Lip pixels a flake lifts 6 L* above their surroundings."""
    core = _painted(img, scene) >= 224 / 255
    L = np.ascontiguousarray(_lab(_render(img, scene, shade))[:, :, 0])
    return core & ((L - cv2.GaussianBlur(L, (0, 0), 1.5)) > 6.0)


def test_shimmer_is_stable_and_moves_with_the_lips(stills) -> None:
    img, scene = stills["faces/obama-720p.jpg"]
    shade = _shade("star-champagne")
    effect = LipstickEffect(shade)
    a = effect.apply(img.copy(), scene)
    b = effect.apply(img.copy(), scene.at(0.04, 1))
    assert np.array_equal(a, b)  # same picture, same landmarks: the same sparkle
    # Fine glitter: flakes light a few percent of the lips, a pixel or two each.
    lit = _sparkles(img, scene, shade)
    core = _painted(img, scene) >= 224 / 255
    assert 0.015 < lit.sum() / core.sum() < 0.2
    # Move the face (picture and landmarks) 7 px right and 4 px down: the sparkle moves too.
    dx, dy = 7, 4
    moved_img = np.roll(img, (dy, dx), axis=(0, 1))
    pts = scene.faces.points.copy()
    pts[:, :, 0] += dx
    pts[:, :, 1] += dy
    faces = FaceLandmarks(pts, pts, scene.faces.confidence, scene.faces.track_id)
    moved = effect.apply(moved_img.copy(), scene.with_faces(faces))
    geom = lip_geometry(scene.faces.points[0], scene.width, scene.height)
    assert geom is not None
    x1, y1, x2, y2 = geom.box
    shifted_back = moved[y1 + dy:y2 + dy, x1 + dx:x2 + dx].astype(int)
    assert np.abs(shifted_back - a[y1:y2, x1:x2]).max() <= 2
    # ... whereas screen-fixed noise would not have followed.
    params = LipParams.from_shade(shade)
    lab = roi_to_lab(img[y1:y2, x1:x2])
    mask = lip_roi_mask(geom)
    f1 = lip_fields(lab, mask, geom, params)
    geom2 = lip_geometry(pts[0], scene.width, scene.height)
    assert geom2 is not None and geom2.box != geom.box
    f2 = lip_fields(roi_to_lab(moved_img[geom2.box[1]:geom2.box[3], geom2.box[0]:geom2.box[2]]),
                    lip_roi_mask(geom2), geom2, params)
    assert f1.glint is not None and f2.glint is not None
    assert np.allclose(f1.glint, f2.glint, atol=1e-3)  # same ROI-relative pattern


def test_shimmer_twinkles_as_the_head_turns(stills) -> None:
    """Each flake's brightness comes from its own orientation: a 10 degree turn of the head
    relights a good part of them (before: the same dots, whatever the pose)."""
    for rel in FINISH_FACES:
        img, scene = stills[rel]
        one = _one(scene, 0)
        shade = _shade("star-galaxy")
        a = _sparkles(img, _turned(one, -5.0), shade)
        b = _sparkles(img, _turned(one, 5.0), shade)
        relit = 1.0 - (a & b).sum() / (a | b).sum()
        assert relit >= 0.2, (rel, relit)


def test_glitter_stays_on_the_lip(stills) -> None:
    """No flake lights outside the lip's solid part (mask < 0.5: the feathered rim, skin)."""
    img, scene = stills["mediapipe_samples/business-person.png"]
    geom = lip_geometry(scene.faces.points[0], scene.width, scene.height)
    assert geom is not None
    x1, y1, x2, y2 = geom.box
    roi = np.ascontiguousarray(img[y1:y2, x1:x2])
    lab = roi_to_lab(roi)
    m8 = lip_roi_mask(geom)
    params = LipParams.from_shade(_shade("star-galaxy"))
    fields = lip_fields(lab, m8, geom, params, scene.faces.points[0])
    m = m8.astype(np.float32) / 255
    with_flakes = composite_lips(roi, m, params, fields, lab)
    without = composite_lips(roi, m, replace(params, shimmer=0.0), fields, lab)
    differs = np.any(with_flakes != without, axis=2)
    assert differs.sum() > 20
    assert not differs[m < 0.5].any()


def test_sheer_keeps_more_of_the_lips_own_colour(stills) -> None:
    img, scene = stills["faces/obama-720p.jpg"]
    core = _painted(img, scene) >= 224 / 255
    base = _lab(img)[core]
    for shade_id in ("velvet-ruby", "velvet-rose"):
        matte = _shade(shade_id)
        sheer = replace(matte, finish="sheer")
        d_matte = np.linalg.norm(_lab(_render(img, scene, matte))[core] - base, axis=1).mean()
        d_sheer = np.linalg.norm(_lab(_render(img, scene, sheer))[core] - base, axis=1).mean()
        assert d_sheer < 0.75 * d_matte, shade_id


def _liner_profile(img: np.ndarray, scene: Scene, lined: Shade) -> np.ndarray:
    """Mean darkening the liner adds against the distance from the outer contour, in
    quarters of the liner width (0..3 widths)."""
    plain = replace(lined, liner_hex=None, liner_width=0.0)
    dark = _lab(_render(img, scene, plain))[:, :, 0] - _lab(_render(img, scene, lined))[:, :, 0]
    outer = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(outer, [np.round(scene.faces.lips_outer()[0]).astype(np.int32)], 1)
    mouth_w = float(np.linalg.norm(np.ptp(scene.faces.lips_outer()[0], axis=0)))
    dist = cv2.distanceTransform(outer, cv2.DIST_L2, 5) / (lined.liner_width * mouth_w)
    mask = _painted(img, scene) >= 0.5
    return np.array([dark[mask & (dist >= d) & (dist < d + 0.25)].mean()
                     for d in np.arange(0.0, 3.0, 0.25)])


def test_liner_darkens_the_edge_band(stills) -> None:
    img, scene = stills["mediapipe_samples/business-person.png"]
    lined = _shade("velvet-plum")
    assert lined.liner_hex is not None
    plain = replace(lined, liner_hex=None, liner_width=0.0)
    L_lined = _lab(_render(img, scene, lined))[:, :, 0]
    L_plain = _lab(_render(img, scene, plain))[:, :, 0]
    outer = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(outer, [np.round(scene.faces.lips_outer()[0]).astype(np.int32)], 1)
    dist = cv2.distanceTransform(outer, cv2.DIST_L2, 3)
    mask = _painted(img, scene)
    mouth_w = float(np.linalg.norm(np.ptp(scene.faces.lips_outer()[0], axis=0)))
    band = (dist > 0) & (dist <= 0.5 * lined.liner_width * mouth_w + 1) & (mask >= 0.5)
    inside = (dist > 2 * lined.liner_width * mouth_w + 2) & (mask >= 224 / 255)
    assert band.sum() > 50 and inside.sum() > 50
    assert (L_plain - L_lined)[band].mean() > 3.0
    assert abs((L_plain - L_lined)[inside].mean()) < 0.5


def test_liner_is_a_soft_band_blended_into_the_colour(stills) -> None:
    """A feathered band, not a pencil line: a liner width in from the contour it still
    darkens by a fifth of its most (before: nothing, the line stopped there), it is gone by
    two widths, and even at the edge the lip's colour shows through (blended)."""
    img, scene = stills["mediapipe_samples/business-person.png"]
    lined = _shade("silk-scarlet")
    prof = _liner_profile(img, scene, lined)  # quarters of a liner width
    top = prof[:3].max()
    assert top > 3.0, prof
    assert prof[4] >= 0.2 * top, prof  # at 1.0-1.25 widths
    assert (prof[8:] < 0.1 * top).all(), prof  # past 2 widths
    full = _lab(_render(img, scene, replace(lined, hex=lined.liner_hex, liner_hex=None,
                                            liner_width=0.0)))[:, :, 0]
    plain = _lab(_render(img, scene, replace(lined, liner_hex=None, liner_width=0.0)))[:, :, 0]
    core = _painted(img, scene) >= 224 / 255
    assert top < 0.85 * float((plain - full)[core].mean()), prof


def _ombre_shows(img: np.ndarray, scene: Scene, shade: Shade) -> np.ndarray:
    """Lip pixels where the ombre's inner colour shows (CIE76 > 8 against no ombre)."""
    plain = replace(shade, ombre_inner_hex=None, ombre_ratio=0.0)
    diff = np.linalg.norm(_lab(_render(img, scene, shade)) - _lab(_render(img, scene, plain)),
                          axis=2)
    return (_painted(img, scene) >= 224 / 255) & (diff > 8.0)


def test_ombre_is_a_gradient_from_the_lips_middle_line(stills) -> None:
    """Inner colour along the lips' middle line, the outer colour at the outer contour."""
    img, scene = stills["mediapipe_samples/business-person.png"]
    shade = _shade("gradient-plum")
    assert shade.ombre_inner_lab is not None
    shows = _ombre_shows(img, scene, shade)
    core = _painted(img, scene) >= 224 / 255
    outer = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(outer, [np.round(scene.faces.lips_outer()[0]).astype(np.int32)], 1)
    line = np.ones(img.shape[:2], np.uint8)
    cv2.polylines(line, [np.round(scene.faces.lips_inner()[0]).astype(np.int32)], True, 0)
    d_in = cv2.distanceTransform(line, cv2.DIST_L2, 3)
    d_out = cv2.distanceTransform(outer, cv2.DIST_L2, 3)
    s = d_in / np.maximum(d_in + d_out, 1e-3)  # 0 at the middle line, 1 at the contour
    assert shows[core & (s < 0.25)].mean() > 0.8
    assert shows[core & (s > 0.8)].mean() < 0.1
    assert 0.25 < shows[core].mean() < 0.75


@pytest.fixture(scope="module")
def talking(data_dir: Path) -> tuple[np.ndarray, Scene]:
    """A GRID talker with the mouth open wide (frame 30 of lbax4n: a 39 px mouth)."""
    with FaceTracker(mode="video") as faces, \
            av.open(str(data_dir / "grid_talking" / "lbax4n.mpg")) as container:
        for i, frame in enumerate(container.decode(video=0)):
            img = frame.to_ndarray(format="bgr24")
            scene = faces.track(img, i / 25.0, i)
            if i == 30:
                return img, scene
    raise AssertionError("the clip is shorter than 31 frames")


def test_ombre_stays_visible_with_the_mouth_open(stills, talking) -> None:
    """With the mouth open the inner colour sits on the lips' inner edges, not in the
    opening (before: a blob at the mouth centre, on these faces entirely in the opening)."""
    for img, scene in (stills["faces/obama-720p.jpg"], talking):
        assert scene.faces.mouth_openness()[0] > 0.1
        shows = _ombre_shows(img, _one(scene, 0), _shade("gradient-cherry"))
        core = _painted(img, scene) >= 224 / 255
        assert shows.sum() / core.sum() >= 0.1, shows.sum() / core.sum()


# --------------------------------------------------------------------------- the light

LIGHT_FACES = STILLS  # every face of them: 7 faces in studio, outdoor and dim light


def _lip_stats(img: np.ndarray, scene: Scene, face: int, shade: str) -> tuple[float, ...]:
    """Lip L* mean and spread before and after the shade (on the painted lips)."""
    one = _one(scene, face)
    core = _painted(img, one) >= 224 / 255
    out = _render(img, one, shade)
    li, lo = _lip_l(img, core), _lip_l(out, core)
    return float(li.mean()), float(lo.mean()), float(li.std()), float(lo.std())


@pytest.mark.parametrize("shade", ["velvet-ruby", "velvet-nude", "velvet-bordeaux"])
def test_shade_follows_the_light_across_faces(stills, shade: str) -> None:
    """Across the shared faces the painted lip's L* follows the lip's own L* (each face's
    light) instead of sitting at one value (before: slope 0.07, L* 34-37 for a ruby on
    every face), and the lip's lightness spread is kept within 15 % (before: 55 %)."""
    rows = [_lip_stats(img, scene, i, shade) for rel in LIGHT_FACES
            for img, scene in [stills[rel]] for i in range(len(scene.faces))]
    assert len(rows) == 7
    lin, lout, sin, sout = (np.array(c) for c in zip(*rows, strict=True))
    assert float(np.corrcoef(lin, lout)[0, 1]) >= 0.8
    assert float(np.polyfit(lin, lout, 1)[0]) >= 0.3
    assert float(np.ptp(lout)) >= 10.0
    ratio = sout / sin
    # A dark shade in dim light sits near black, where the lip's darkest creases can only
    # clip: the bordeaux on the dimmest face (L* 14 in that light) keeps 84-85 %.
    low = 0.84 if shade == "velvet-bordeaux" else 0.85
    assert ((ratio >= low) & (ratio <= 1.15)).all(), ratio


def _scale_lightness(img: np.ndarray, k: float) -> np.ndarray:
    lab = _lab(img)
    lab[:, :, 0] = np.clip(lab[:, :, 0] * k, 0.0, 100.0)
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2BGR) * 255 + 0.5, 0, 255).astype(np.uint8)


def test_shade_follows_a_dimmer_and_a_brighter_light(stills) -> None:
    """The same face made darker and brighter (its L* scaled): the painted lip follows
    (before: 33.7 to 36.0 L* for 0.6x to 1.15x the light)."""
    img, scene = stills["faces/obama-720p.jpg"]
    rows = [_lip_stats(_scale_lightness(img, k), scene, 0, "velvet-ruby")
            for k in (0.6, 0.8, 1.0, 1.15)]
    lin, lout = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    assert (np.diff(lout) > 1.0).all(), lout
    assert float(np.polyfit(lin, lout, 1)[0]) >= 0.3, (lin, lout)


def test_white_balance_follows_the_skins_cast(stills) -> None:
    """A warm (tungsten-like) cast on the whole picture warms the shade too: higher b* in
    the target and on the painted lip; a cool one cools it."""
    img, scene = stills["faces/obama-720p.jpg"]
    core = _painted(img, scene) >= 224 / 255
    got = {}
    for name, gains in (("cool", (1.15, 1.0, 0.87)), ("neutral", (1.0, 1.0, 1.0)),
                        ("warm", (0.87, 1.0, 1.15))):  # B, G, R
        pic = np.clip(img.astype(np.float32) * gains + 0.5, 0, 255).astype(np.uint8)
        effect = LipstickEffect("velvet-ruby")
        out = effect.apply(pic.copy(), scene)
        got[name] = (effect.last_readout[0].colour.target[2],
                     float(np.median(_lab(out)[core][:, 2])))
    assert got["warm"][0] > got["neutral"][0] + 2 > got["cool"][0] + 4, got
    assert got["warm"][1] > got["neutral"][1] > got["cool"][1], got


# --------------------------------------------------------------------------- the readout

def test_colour_readout_per_face(stills) -> None:
    """Each painted face reports its shade, the shade as worn in the measured light, the
    rendered lip's mean Lab (highlights out) and CIEDE2000 between them."""
    img, scene = stills["faces/two_people.jpg"]
    effect = LipstickEffect("velvet-ruby")
    out = effect.apply(img.copy(), scene)
    assert [r.face for r in effect.last_readout] == [0, 1]
    shade = default_catalog().get("velvet-ruby")
    for r in effect.last_readout:
        assert r.shade == "velvet-ruby" and not r.fading
        assert r.skin is not None and r.light_gain != (1.0, 1.0, 1.0)
        c = r.colour
        assert c.delta_e00 == pytest.approx(float(delta_e00(c.target, c.rendered)), abs=1e-6)
        assert c.delta_e00 < 5.0  # a matte at 95 % covers the lip
        core = _painted(img, _one(scene, r.face)) >= 0.9
        measured = _lab(out)[core].astype(np.float64).mean(axis=0)
        assert float(delta_e00(measured, c.rendered)) < 1.0
        d = r.to_dict()
        assert d["shade"] == "velvet-ruby" and len(d["target_lab"]) == 3
        json.dumps(d)
    # The target is the shade in the light: a dim face's target is darker.
    assert all(r.colour.target[0] < shade.lab[0] for r in effect.last_readout)
    # During a fade the readout says so; with no face there is none.
    effect.set_shade("velvet-nude", at=1.0)
    effect.apply(img.copy(), scene.at(1.1))
    assert all(r.fading and r.shade == "velvet-nude" for r in effect.last_readout)
    effect.apply(img.copy(), Scene.empty(scene.width, scene.height))
    assert effect.last_readout == []


def test_readout_is_small_for_opaque_shades_everywhere(stills) -> None:
    """An opaque matte lands within a few CIEDE2000 of the shade in every light; a sheer,
    by design, shows more of the lip."""
    for rel in LIGHT_FACES:
        img, scene = stills[rel]
        matte = LipstickEffect("velvet-ruby")
        matte.apply(img.copy(), scene)
        sheer = LipstickEffect("dew-berry")
        sheer.apply(img.copy(), scene)
        for a, b in zip(matte.last_readout, sheer.last_readout, strict=True):
            assert a.colour.delta_e00 < 5.0, (rel, a)
            assert b.colour.delta_e00 > a.colour.delta_e00, (rel, a, b)


def test_every_finish_looks_different(stills) -> None:
    img, scene = stills["mediapipe_samples/business-person.png"]
    core = _core(img, scene)
    base = _shade("silk-cherry")
    renders = {f: _render(img, scene, replace(base, finish=f))[core].astype(int)
               for f in ("matte", "satin", "sheer", "gloss", "shimmer", "metallic")}
    names = list(renders)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(renders[a] - renders[b]).mean() > 1.0, (a, b)


def test_composite_is_identity_where_the_mask_is_zero(stills) -> None:
    img, scene = stills["faces/astronaut.png"]
    geom = lip_geometry(scene.faces.points[0], scene.width, scene.height)
    assert geom is not None
    x1, y1, x2, y2 = geom.box
    roi = img[y1:y2, x1:x2]
    params = LipParams.from_shade(_shade("gradient-nude-liner"))
    lab = roi_to_lab(roi)
    m8 = lip_roi_mask(geom)
    fields = lip_fields(lab, m8, geom, params)
    zero = np.zeros(m8.shape, np.float32)
    assert np.array_equal(composite_lips(roi, zero, params, fields, lab), roi)
    # Without the precomputed Lab it gives the same answer.
    m = m8.astype(np.float32) / 255
    assert np.array_equal(composite_lips(roi, m, params, fields),
                          composite_lips(roi, m, params, fields, lab))


# --------------------------------------------------------------------------- fades

def _lip_colour(img: np.ndarray, core: np.ndarray) -> np.ndarray:
    return np.median(_lab(img)[core], axis=0)


def test_set_shade_cross_fades_on_the_scene_clock(stills) -> None:
    img, scene = stills["faces/obama-720p.jpg"]
    core = _painted(img, scene) >= 224 / 255
    old, new = "velvet-ruby", "dew-peach"
    effect = LipstickEffect(old, crossfade_ms=300)
    before = effect.apply(img.copy(), scene.at(1.0, 0))
    effect.set_shade(new)  # from the next frame on
    start = effect.apply(img.copy(), scene.at(2.0, 1))
    assert np.array_equal(start, before)  # the fade starts on this frame, at t = 0
    mid = effect.apply(img.copy(), scene.at(2.15, 2))
    end = effect.apply(img.copy(), scene.at(2.30, 3))
    target = _render(img, scene, new)
    assert np.array_equal(end, target)
    c_old, c_mid, c_new = (_lip_colour(x, core) for x in (before, mid, target))
    span = c_new - c_old
    t = float(np.dot(c_mid - c_old, span) / np.dot(span, span))
    assert 0.25 < t < 0.75, t
    assert np.linalg.norm(c_mid - (c_old + t * span)) < 0.25 * np.linalg.norm(span)


def test_set_shade_at_a_given_time_and_fade_out(stills) -> None:
    img, scene = stills["faces/obama-720p.jpg"]
    effect = LipstickEffect("velvet-ruby", crossfade_ms=200)
    ruby = effect.apply(img.copy(), scene.at(0.0))
    effect.set_shade(None, at=5.0)  # fade the lipstick out from t = 5 s
    assert np.array_equal(effect.apply(img.copy(), scene.at(4.9)), ruby)
    half = effect.apply(img.copy(), scene.at(5.1))
    assert not np.array_equal(half, ruby) and not np.array_equal(half, img)
    assert np.array_equal(effect.apply(img.copy(), scene.at(5.2)), img)
    effect = LipstickEffect("velvet-ruby", crossfade_ms=0)
    effect.set_shade("velvet-nude", at=1.0)
    assert np.array_equal(effect.apply(img.copy(), scene.at(1.0)),
                          _render(img, scene, "velvet-nude"))


# --------------------------------------------------------------------------- faces

def _face_changed(out: np.ndarray, img: np.ndarray, scene: Scene, i: int) -> bool:
    geom = lip_geometry(scene.faces.points[i], scene.width, scene.height)
    assert geom is not None
    x1, y1, x2, y2 = geom.box
    return not np.array_equal(out[y1:y2, x1:x2], img[y1:y2, x1:x2])


@pytest.mark.parametrize("rel", ["faces/two_people.jpg", "mediapipe_samples/testImg.jpeg"])
def test_every_face_gets_lipstick_unless_told_not(stills, rel: str) -> None:
    img, scene = stills[rel]
    assert len(scene.faces) == 2
    out = _render(img, scene, "velvet-rose")
    assert _face_changed(out, img, scene, 0) and _face_changed(out, img, scene, 1)
    # per_face by track id: the second face goes bare, the first gets another shade.
    ids = [int(t) for t in scene.faces.track_id]
    out = _render(img, scene, "velvet-rose", per_face={ids[1]: None, ids[0]: "velvet-nude"})
    assert _face_changed(out, img, scene, 0) and not _face_changed(out, img, scene, 1)
    nude = _render(img, scene, "velvet-nude")
    geom = lip_geometry(scene.faces.points[0], scene.width, scene.height)
    assert geom is not None
    x1, y1, x2, y2 = geom.box
    assert np.array_equal(out[y1:y2, x1:x2], nude[y1:y2, x1:x2])
    # ... or by index in the frame when no face carries that id.
    renumbered = FaceLandmarks(scene.faces.points, scene.faces.raw, scene.faces.confidence,
                               np.array([100, 101]))
    out = _render(img, scene.with_faces(renumbered), "velvet-rose", per_face={0: None})
    assert not _face_changed(out, img, scene, 0) and _face_changed(out, img, scene, 1)


def test_one_face_can_switch_alone(stills) -> None:
    img, scene = stills["faces/two_people.jpg"]
    effect = LipstickEffect("velvet-rose", crossfade_ms=0)
    first = effect.apply(img.copy(), scene.at(0.0))
    effect.set_shade(None, face=int(scene.faces.track_id[0]), at=1.0)
    out = effect.apply(img.copy(), scene.at(1.0))
    assert not _face_changed(out, img, scene, 0)
    geom = lip_geometry(scene.faces.points[1], scene.width, scene.height)
    assert geom is not None
    x1, y1, x2, y2 = geom.box
    assert np.array_equal(out[y1:y2, x1:x2], first[y1:y2, x1:x2])


# --------------------------------------------------------------------------- settings

def test_settings_and_errors(stills) -> None:
    img, scene = stills["faces/astronaut.png"]
    effect = create_effect("lipstick", shade="velvet-nude", intensity=0.5)
    assert isinstance(effect, LipstickEffect)
    half = effect.apply(img.copy(), scene)
    full = _render(img, scene, "velvet-nude")
    core = _core(img, scene)
    d_half = np.abs(half[core].astype(int) - img[core]).mean()
    d_full = np.abs(full[core].astype(int) - img[core]).mean()
    assert 0.3 * d_full < d_half < 0.7 * d_full
    assert np.array_equal(_render(img, scene, "velvet-nude", intensity=0.0), img)
    with pytest.raises(UnknownShadeError, match="velvet-ruby"):
        LipstickEffect("no-such-shade")
    with pytest.raises(UnknownShadeError):
        LipstickEffect(per_face={0: "nope"})
    with pytest.raises(ValueError, match="intensity"):
        LipstickEffect(intensity=1.5)
    with pytest.raises(ValueError, match="crossfade_ms"):
        LipstickEffect(crossfade_ms=-1)
    with pytest.raises(UnknownShadeError):
        LipstickEffect().set_shade("nope")


def test_no_face_leaves_the_frame_alone(load_image) -> None:
    img = load_image("mediapipe_samples/hand_thumb_up.jpg")
    scene = Scene.empty(img.shape[1], img.shape[0])
    assert np.array_equal(LipstickEffect().apply(img.copy(), scene), img)


def test_bad_frames_and_landmarks(stills) -> None:
    img, scene = stills["faces/obama-720p.jpg"]
    effect = LipstickEffect()
    assert effect.shade is not None and effect.shade.id == "velvet-ruby"
    with pytest.raises(ValueError, match="BGR uint8"):
        effect.apply(img.astype(np.float32), scene)
    with pytest.raises(ValueError, match="BGR uint8"):
        effect.apply(img[:, :, 0].copy(), scene)
    bad = scene.faces.points.copy()
    bad[0, LIPS_OUTER[3]] = np.nan  # a tracker glitch must not crash the stream
    faces = FaceLandmarks(bad, bad, scene.faces.confidence, scene.faces.track_id)
    assert np.array_equal(effect.apply(img.copy(), scene.with_faces(faces)), img)
    effect.set_shade("velvet-nude", at=0.0)
    assert effect.shade is not None and effect.shade.id == "velvet-nude"


def test_lips_at_the_frame_edge(stills) -> None:
    """A face half out of the picture: the visible part of the lips is painted, no error."""
    img, scene = stills["faces/obama-720p.jpg"]
    geom = lip_geometry(scene.faces.points[0], scene.width, scene.height)
    assert geom is not None
    cx = round(geom.centre[0]) + geom.box[0]
    crop = np.ascontiguousarray(img[:, cx:])
    pts = scene.faces.points.copy()
    pts[:, :, 0] -= cx
    faces = FaceLandmarks(pts, pts, scene.faces.confidence, scene.faces.track_id)
    cropped = Scene(crop.shape[1], crop.shape[0], faces)
    out = LipstickEffect().apply(crop.copy(), cropped)
    mask = lip_mask(faces, None, crop.shape[1], crop.shape[0], frame=crop)
    assert mask[:, 0].any() and (mask >= 224).sum() > 100
    assert not np.array_equal(out, crop)
    assert np.array_equal(out[mask == 0], crop[mask == 0])


def test_effect_cost_stays_within_the_frame_budget(stills) -> None:
    """A generous bound on the feature (the effect must leave time for tracking at 30 fps):
    the bench measures the real figure, ~1 ms at 720p."""
    import time

    img, scene = stills["faces/obama-720p.jpg"]
    for shade in ("velvet-ruby", "star-galaxy", "gradient-nude-liner"):
        effect = LipstickEffect(shade)
        frames = [img.copy() for _ in range(25)]
        ms = []
        for f in frames:
            t = time.perf_counter()
            effect.apply(f, scene)
            ms.append((time.perf_counter() - t) * 1000)
        assert float(np.median(ms[5:])) < 8.0, (shade, ms)


def test_readout_reaches_the_room_stats_and_the_tryon_report(stills, data_dir: Path,
                                                              tmp_path: Path) -> None:
    """The host console reads the room's stats; ``arengine tryon --report`` writes it per
    frame and per shade."""
    import asyncio
    import subprocess
    import sys

    from arengine.pipeline import EffectChain, RoomConfig
    from arengine.pipeline.room import RoomPipeline

    img, scene = stills["faces/obama-720p.jpg"]
    effect = LipstickEffect("velvet-ruby")
    chain = EffectChain(effects={"lipstick": effect})
    room = RoomPipeline("r", RoomConfig(track_faces=False, track_hands=False, effects=()),
                        effects=chain)
    try:
        assert room.stats()["colour"] == []
        chain.apply(img.copy(), scene, lambda _: None, lambda _: None)
        colour = room.stats()["colour"]
        assert [c["shade"] for c in colour] == ["velvet-ruby"]
        assert colour[0]["delta_e00"] == round(effect.last_readout[0].colour.delta_e00, 2)
    finally:
        asyncio.run(room.close())
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "arengine.cli", "tryon",
                           str(data_dir / "faces/two_people.jpg"), "-o",
                           str(tmp_path / "out.jpg"), "--report", str(report)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    got = json.loads(report.read_text())
    frame = got["per_frame"][0]["colour"]
    assert [c["face"] for c in frame] == [0, 1]
    assert all(c["shade"] == "velvet-ruby" and 0 <= c["delta_e00"] < 5 for c in frame)
    summary = got["colour"]["shades"]["velvet-ruby"]
    assert summary["faces"] == 2 and summary["max"] == max(c["delta_e00"] for c in frame)
