"""Virtual lipstick: recolours the lips of every tracked face with a catalog shade.

The work is split so that each part can be checked (and later ported to a shader) on its own:

1. :func:`lip_geometry` - the lips' box, contours and mouth axes from the face landmarks;
2. :func:`lip_roi_mask` - which pixels of that box are lip (not teeth, skin or a hand);
3. :func:`lip_fields` - per-pixel inputs derived from the picture and the geometry
   (blurred lightness, sparkle noise in lip coordinates, distances for liner and ombre);
4. :func:`composite_lips` - one pure per-pixel function that mixes the shade in.

Everything runs on the lips' bounding box only: a full-frame colour conversion alone would
cost more than the whole effect. Steps 1-3 always run here (:func:`prepare_lips`); step 4
runs here too, or in a render backend (``LipstickEffect(backend=...)``: the CPU reference
or the same formula as GLSL), so lipstick and the on-screen layers can share one frame.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from arengine.catalog import Shade, ShadeCatalog, default_catalog
from arengine.effects.base import Effect, register_effect
from arengine.effects.lip_segmentation import (
    band_sizes,
    ring_points,
    sample_pixels,
    segment_lips,
    support_mask,
)
from arengine.render.lips import (
    SPARKLE_SIZE,
    SPARKLE_TEXELS,
    LipFields,
    LipParams,
    composite_lips,
    roi_to_lab,
    sparkle_texture,
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


def lip_geometry(points: np.ndarray, width: int, height: int) -> LipGeometry | None:
    """The lips of one face (``points`` (478, 2|3) pixels), or None when they are off-frame."""
    p = points[:, :2].astype(np.float32)
    if not np.isfinite(p).all():
        return None
    outer = p[list(LIPS_OUTER)]
    inner = p[list(LIPS_INNER)]
    left, right = p[MOUTH_LEFT], p[MOUTH_RIGHT]
    mouth_w = float(np.linalg.norm(right - left))
    if mouth_w < 4.0:
        return None
    feather = float(np.clip(0.02 * mouth_w, 1.0, 3.0))
    gap = float(np.linalg.norm(p[UPPER_LIP_INNER_MID] - p[LOWER_LIP_INNER_MID]))
    # A closed mouth has a degenerate inner contour: growing it would cut a band out of the
    # closed lips, so only a real opening is grown (past the feather, so the blurred edge
    # never reaches the teeth); a closed one is cut out as it is (a hairline at most). The
    # grow ramps in over one more such gap instead of switching on: a switch made the
    # mask of a half-open mouth flicker from frame to frame.
    g0 = max(1.0, 0.015 * mouth_w)
    inner_grow = (1.5 * feather + 0.5) * float(np.clip((gap - g0) / g0, 0.0, 1.0))
    pad = math.ceil(max(1.5 * feather, band_sizes(mouth_w)[0])) + 2
    lo, hi = outer.min(axis=0), outer.max(axis=0)
    box = clip_box((lo[0], lo[1], hi[0], hi[1]), width, height, pad=pad)
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:
        return None
    off = np.array(box[:2], np.float32)
    axis = (right - left) / mouth_w
    normal = np.array([-axis[1], axis[0]], np.float32)
    centre = outer.mean(axis=0)
    across = (outer - centre) @ normal
    half_h = max(float(across.max() - across.min()) / 2.0, 1.0)
    c = centre - off
    return LipGeometry(box, outer - off, inner - off, (float(c[0]), float(c[1])),
                       (float(axis[0]), float(axis[1])), mouth_w / 2.0, half_h, feather,
                       inner_grow, gap)


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
    xs = np.arange(w, dtype=np.float32) - geom.centre[0]
    ys = np.arange(h, dtype=np.float32) - geom.centre[1]
    ax, ay = geom.axis
    u = (xs[None, :] * ax + ys[:, None] * ay) * (1.0 / geom.half_width)
    v = (ys[:, None] * ax - xs[None, :] * ay) * (1.0 / geom.half_height)
    return u.astype(np.float32), v.astype(np.float32)


def lip_fields(roi_lab: np.ndarray, mask: np.ndarray, geom: LipGeometry,
               params: LipParams) -> LipFields:
    """The per-pixel inputs ``params`` needs, computed on the ROI (blurs, noise lookup)."""
    lightness = np.ascontiguousarray(roi_lab[:, :, 0])
    sigma = max(0.015 * 2 * geom.half_width, 0.8)
    l_blur = cv2.GaussianBlur(lightness, (0, 0), sigma)
    core = (mask >= 128).astype(np.uint8)
    if not core.any():
        core = (mask > 0).astype(np.uint8)
    mean, std = cv2.meanStdDev(lightness, mask=core)
    sparkle = edge = radial = None
    if params.shimmer > 0 or params.ombre > 0:
        u, v = lip_coordinates(geom)
        if params.shimmer > 0:
            scale = SPARKLE_TEXELS / 2.0
            mx = u * scale + SPARKLE_SIZE / 2
            my = v * (scale * geom.half_height / geom.half_width) + SPARKLE_SIZE / 2
            sparkle = cv2.remap(sparkle_texture(), mx, my, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_WRAP)
        if params.ombre > 0:
            radial = cv2.magnitude(u, v)
    if params.liner > 0:
        solid = np.zeros(geom.shape, np.uint8)
        _fill(solid, geom.outer)
        solid = (solid >= 128).astype(np.uint8)
        edge = cv2.distanceTransform(solid, cv2.DIST_L2, 3)
        edge *= np.float32(1.0 / (2.0 * geom.half_width))
    return LipFields(l_blur, float(mean[0, 0]), float(std[0, 0]), sparkle, edge, radial)


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
                 hands: HandLandmarks | None = None) -> LipComposite | None:
    """Everything one face's composite needs from ``frame`` (mask, fields); None when
    nothing would be painted (no opacity, lips fully hidden)."""
    if params.opacity <= 0:
        return None
    x1, y1, x2, y2 = geom.box
    lab = roi_to_lab(frame[y1:y2, x1:x2])
    mask8 = lip_roi_mask(geom, hands, frame, lab)
    if not mask8.any():
        return None
    fields_ = lip_fields(lab, mask8, geom, params)
    mask = mask8.astype(np.float32) * np.float32(1 / 255)
    return LipComposite(geom.box, mask, params, fields_, lab)


def render_lips(frame: np.ndarray, geom: LipGeometry, params: LipParams,
                hands: HandLandmarks | None = None) -> None:
    """Paint one face's lips into ``frame`` in place: mask, fields, composite."""
    job = prepare_lips(frame, geom, params, hands)
    if job is None:
        return
    x1, y1, x2, y2 = job.box
    frame[y1:y2, x1:x2] = composite_lips(frame[y1:y2, x1:x2], job.mask, params, job.fields,
                                         job.roi_lab)


# --------------------------------------------------------------------------- the effect

class _Fade:
    """A shade change in progress: from one look to another over ``duration`` seconds."""

    def __init__(self, target: LipParams | None) -> None:
        self.start: LipParams | None = target
        self.end: LipParams | None = target
        self.t0: float | None = None
        self.duration = 0.0
        self.pending = False
        self.last_timestamp: float | None = None

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
        self._faces: dict[int, _Fade] = {}
        for key, s in (per_face or {}).items():
            self._faces[int(key)] = _Fade(self._params(self.resolve(s)))

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

    def params_for(self, scene: Scene, index: int) -> LipParams | None:
        """The look face ``index`` of ``scene`` gets at ``scene.timestamp``."""
        ids = scene.faces.track_id
        tid = int(ids[index])
        if tid in self._faces:
            fade = self._faces[tid]
        elif index in self._faces and index not in {int(x) for x in ids}:
            fade = self._faces[index]
        else:
            fade = self._default
        return fade.at(scene.timestamp)

    def apply(self, frame: np.ndarray, scene: Scene) -> np.ndarray:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 image (H, W, 3), got {frame.shape} "
                             f"{frame.dtype}")
        h, w = frame.shape[:2]
        hands = scene.hands if len(scene.hands) else None
        with self._lock:
            # Advance every fade once per frame, face or not, so a fade asked for "from
            # the next frame" starts on that frame's clock.
            for fade in (self._default, *self._faces.values()):
                fade.value(scene.timestamp)
            looks = [self.params_for(scene, i) for i in range(len(scene.faces))]
        if self.backend is not None:
            return self._composite_through(self.backend, frame, scene, looks, hands)
        for i, params in enumerate(looks):
            if params is None or params.opacity <= 0:
                continue
            geom = lip_geometry(scene.faces.points[i], w, h)
            if geom is not None:
                render_lips(frame, geom, params, hands)
        return frame

    @staticmethod
    def _composite_through(backend: RenderBackend, frame: np.ndarray, scene: Scene,
                           looks: list[LipParams | None],
                           hands: HandLandmarks | None) -> np.ndarray:
        """Composite every face on ``backend``: in a frame of our own, or in the open one."""
        h, w = frame.shape[:2]
        joined = bool(getattr(backend, "frame_open", False))
        opened = joined
        try:
            for i, params in enumerate(looks):
                if params is None or params.opacity <= 0:
                    continue
                geom = lip_geometry(scene.faces.points[i], w, h)
                if geom is None:
                    continue
                # Prepared face by face, as without a backend: a CPU backend drawing in
                # place shows this face the faces composited before it.
                job = prepare_lips(frame, geom, params, hands)
                if job is None:
                    continue
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
