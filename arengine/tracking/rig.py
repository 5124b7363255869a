"""A character rig solved from the tracking: head, eyes, gaze, brows, mouth, vowels, hands.

Virtual-host tools (Live2D's VTube Studio, VRM's VSeeFace, kalidokit) all reduce the face
mesh to a few dozen numbers that a character reads. :class:`RigSolver` does that for
arengine: per face and frame it measures the 478 landmarks (:func:`measure`), relates
the measures to the host's neutral face (:class:`Neutral`, captured from the first
frames with a face or on request), smooths them with a One Euro filter per group (low lag:
a mouth or a blink must not trail the voice) and returns a frozen :class:`Rig`.

Every measure is taken in the face's own frame (origin between the eyes, x along the
eye line, lengths in inter-ocular distances), so it does not change when the host moves,
leans in or tilts the head; the neutral then removes what differs between faces (eye
shape, mouth width, brow height), so two hosts drive the same range.

Left and right are the host's own (a host's left eye is on the image's right in an
unmirrored camera), which is also the character's left: a character faces the viewers as
the host does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import numpy as np

from arengine.tracking.gestures import GESTURES, GestureRecognizer, classify_hand
from arengine.tracking.smoothing import OneEuroConfig, OneEuroFilter
from arengine.types import CHIN, EYE_OUTER_LEFT, EYE_OUTER_RIGHT, FOREHEAD, Scene

# -- landmark indices (MediaPipe FaceMesh with refined irises) --------------------------
EYE_INNER_RIGHT, EYE_INNER_LEFT = 133, 362
# Upper and lower lid pairs, outer to inner, for the eye aspect ratio (Soukupova & Cech).
LIDS_RIGHT = ((160, 144), (159, 145), (158, 153))
LIDS_LEFT = ((387, 373), (386, 374), (385, 380))
IRIS_RIGHT, IRIS_LEFT = 468, 473  # iris centres; 468 sits in the host's right eye
BROW_RIGHT = (66, 105, 107)  # the brow's middle, above the upper lid
BROW_LEFT = (296, 334, 336)
LID_TOP_RIGHT, LID_TOP_LEFT = 159, 386
# Inner lip pairs (upper, lower) across the mouth: left third, middle, right third.
LIP_GAPS = ((82, 87), (13, 14), (312, 317))
MOUTH_CORNERS = (61, 291)
LIP_MID = (13, 14)
CHEEK_RIGHT, CHEEK_LEFT = 234, 454
NOSE_BRIDGE = 168
NOSE_BASE = 2  # below the nose tip, above the lip: it does not move with the jaw
WRIST, MIDDLE_MCP = 0, 9

# Measure vector layout (see :func:`measure`).
M_YAW, M_PITCH, M_ROLL, M_X, M_Y, M_SIZE = range(6)
M_EAR_R, M_EAR_L, M_GAZE_X, M_GAZE_Y, M_BROW_R, M_BROW_L = range(6, 12)
M_GAP, M_WIDTH, M_LIFT = range(12, 15)
MEASURES = 15

# -- ranges, measured on the shared clips (GRID talkers at 360x288, the 720p host) --------
# Eye aspect ratio of open eyes: 0.27-0.39 across the six faces; closed: 0.04-0.13.
DEFAULT_EAR = 0.32
# A blink: both eyes under this share of their neutral opening; open again above
# BLINK_OFF. The GRID blinks fall to 0.15-0.45 of neutral, a look down to 0.7.
BLINK_ON = 0.55
BLINK_OFF = 0.7
# The widest GRID opening is 0.38 of the mouth width (0.21 inter-ocular distances); below
# MOUTH_DEAD (lip jitter of a closed mouth: 0-0.01) the character's mouth stays shut.
MOUTH_FULL = 0.2  # inner-lip gap, in inter-ocular distances, that opens the mouth fully
MOUTH_DEAD = 0.01
# Mouth width over the inter-ocular distance: 0.46-0.62 while talking, neutral 0.53;
# MOUTH_WIDTH_RANGE of change reads as fully wide (I, E) or fully narrow (U, O).
DEFAULT_WIDTH = 0.53
MOUTH_WIDTH_RANGE = 0.15
SMILE_LIFT = 0.05  # corners this far above neutral (inter-ocular distances): full smile
BROW_RANGE = 0.2  # brow-lid distance change (share of neutral) that reads as fully raised
DEFAULT_BROW = 0.55  # brow-lid distance over the eye-nose height: 0.45-0.65 at rest
GAZE_RANGE_X = 0.12  # iris travel along the eye (share of its width): a full side glance
GAZE_RANGE_Y = 0.08
YAW_RANGE, PITCH_RANGE, ROLL_RANGE = 30.0, 20.0, 30.0  # degrees that read as a full turn
CALIBRATION_FRAMES = 15  # 0.6 s at 25 fps: long enough for a median past a blink
WAVE_WINDOW_S = 1.2  # a wave: the raised wrist turns back at least twice in this time
WAVE_AMPLITUDE = 0.25  # ... by at least this many inter-ocular distances each swing

# Vowel mouth shapes in (opening 0..1, width -1..1): A open wide, I barely open and wide,
# U barely open and pursed, E half open and wide, O open and round.
VOWELS: dict[str, tuple[float, float]] = {
    "a": (0.9, 0.05), "i": (0.25, 0.6), "u": (0.3, -0.65), "e": (0.5, 0.35),
    "o": (0.65, -0.45)}
VOWEL_SPREAD = 0.3

# One Euro settings per group (Casiez et al. 2012): cutoff in Hz, beta per unit/second.
# The mouth and eyes need the lowest lag (a 3-frame blink, syllables at 4-6 Hz); the head
# pose may smooth more: its jitter shows on every part of the character.
SMOOTH_HEAD = OneEuroConfig(min_cutoff=1.5, beta=0.3)
SMOOTH_POSITION = OneEuroConfig(min_cutoff=2.0, beta=0.5)
SMOOTH_EYES = OneEuroConfig(min_cutoff=8.0, beta=0.5)
SMOOTH_FACE = OneEuroConfig(min_cutoff=3.0, beta=1.0)
SMOOTH_MOUTH = OneEuroConfig(min_cutoff=6.0, beta=2.0)


@dataclass(frozen=True)
class Rig:
    """The parameters of one face in one frame; what a character reads.

    Angles are degrees from the neutral pose (positive yaw turns toward the image's
    right, positive pitch looks down, positive roll tilts clockwise). ``head_x``/``head_y``
    are the head's shift from neutral in inter-ocular distances, ``x``/``y`` its place in
    the frame (0..1). Eyes are 1 open as at neutral, 0 closed; ``gaze_*``, ``brow_*`` and
    ``mouth_width`` run -1..1; ``mouth_open``, ``smile`` and the vowel weights 0..1.
    """

    track_id: int = -1
    timestamp: float = 0.0
    calibrated: bool = False
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    head_x: float = 0.0
    head_y: float = 0.0
    head_scale: float = 1.0
    x: float = 0.5
    y: float = 0.5
    eye_open_left: float = 1.0
    eye_open_right: float = 1.0
    blink: bool = False
    gaze_x: float = 0.0
    gaze_y: float = 0.0
    brow_left: float = 0.0
    brow_right: float = 0.0
    mouth_open: float = 0.0
    mouth_width: float = 0.0
    smile: float = 0.0
    vowel_a: float = 0.0
    vowel_i: float = 0.0
    vowel_u: float = 0.0
    vowel_e: float = 0.0
    vowel_o: float = 0.0
    hand_left: float = 0.0  # 1 while the host's left hand is raised (above the chin)
    hand_right: float = 0.0
    waving: bool = False
    gestures: tuple[str, ...] = ()  # each hand's gesture this frame
    events: tuple[str, ...] = ()  # gestures held long enough to count, once each

    # Parameters a character may bind to (numbers; booleans as 0/1), see params().
    PARAMS: ClassVar[tuple[str, ...]] = (
        "yaw", "pitch", "roll", "head_x", "head_y", "head_scale", "eye_open_left",
        "eye_open_right", "blink", "gaze_x", "gaze_y", "brow_left", "brow_right",
        "mouth_open", "mouth_width", "smile", "vowel_a", "vowel_i", "vowel_u", "vowel_e",
        "vowel_o", "hand_left", "hand_right", "waving")

    def params(self) -> dict[str, float]:
        """The bindable parameters as numbers; angles normalised to -1..1 (a full turn)."""
        out: dict[str, float] = {}
        for name in self.PARAMS:
            out[name] = float(getattr(self, name))
        out["yaw"] = float(np.clip(self.yaw / YAW_RANGE, -1.0, 1.0))
        out["pitch"] = float(np.clip(self.pitch / PITCH_RANGE, -1.0, 1.0))
        out["roll"] = float(np.clip(self.roll / ROLL_RANGE, -1.0, 1.0))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (rounded), for reports."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = round(v, 4) if isinstance(v, float) else \
                list(v) if isinstance(v, tuple) else v
        return out

    def blend(self, other: Rig, k: float) -> Rig:
        """This rig moved ``k`` (0..1) of the way to ``other`` (numbers only), for fades."""
        k = float(np.clip(k, 0.0, 1.0))
        changes: dict[str, Any] = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, float) and isinstance(b, float):
                changes[f.name] = a + (b - a) * k
        return replace(self, **changes)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-9)


def head_angles(p: np.ndarray) -> tuple[float, float, float]:
    """Yaw, pitch, roll (degrees) of a face from several landmark axes at once.

    :meth:`FaceLandmarks.head_pose` reads one eye line and the forehead-chin line; here the
    across axis averages the outer eye corners, the inner ones and the cheeks, and the
    down axis the forehead-chin and the nose bridge-chin lines, so one noisy point moves
    the head less. The conventions are the same.
    """
    x_axis = _unit(_unit(p[EYE_OUTER_LEFT] - p[EYE_OUTER_RIGHT])
                   + _unit(p[EYE_INNER_LEFT] - p[EYE_INNER_RIGHT])
                   + _unit(p[CHEEK_LEFT] - p[CHEEK_RIGHT]))
    y_axis = _unit(p[CHIN] - p[FOREHEAD]) + _unit(p[CHIN] - p[NOSE_BRIDGE])
    y_axis -= x_axis * np.dot(y_axis, x_axis)
    y_axis = _unit(y_axis)
    z_axis = np.cross(x_axis, y_axis)
    yaw = float(np.degrees(np.arcsin(np.clip(-z_axis[0], -1, 1))))
    pitch = float(np.degrees(np.arctan2(-z_axis[1], z_axis[2])))
    roll = float(np.degrees(np.arctan2(x_axis[1], x_axis[0])))
    return yaw, pitch, roll


def eye_aspect_ratio(p: np.ndarray, outer: int, inner: int,
                     lids: tuple[tuple[int, int], ...]) -> float:
    """Lid gap over eye width (2D): about 0.3 open, under 0.15 closed."""
    width = float(np.linalg.norm(p[outer, :2] - p[inner, :2]))
    gap = sum(float(np.linalg.norm(p[u, :2] - p[lo, :2])) for u, lo in lids) / len(lids)
    return gap / max(width, 1e-6)


def measure(points: np.ndarray) -> np.ndarray:
    """The raw measures of one face's (478, 3) landmarks in pixels, before any neutral.

    Lengths are in inter-ocular distances (outer eye corners, 3D so a turned head keeps
    its size) and vertical ones are taken along the face's own up axis.
    """
    p = np.asarray(points, np.float64)
    yaw, pitch, roll = head_angles(p)
    iod = float(np.linalg.norm(p[EYE_OUTER_LEFT] - p[EYE_OUTER_RIGHT])) or 1.0
    across = _unit(p[EYE_OUTER_LEFT, :2] - p[EYE_OUTER_RIGHT, :2])
    down = np.array([-across[1], across[0]])  # image y grows downward: down is +90 deg

    def along(a: np.ndarray, axis: np.ndarray) -> float:
        return float(np.dot(a[:2], axis)) / iod

    out = np.zeros(MEASURES, np.float64)
    out[M_YAW], out[M_PITCH], out[M_ROLL] = yaw, pitch, roll
    out[M_X], out[M_Y] = p[NOSE_BRIDGE, 0], p[NOSE_BRIDGE, 1]
    out[M_SIZE] = iod
    out[M_EAR_R] = eye_aspect_ratio(p, EYE_OUTER_RIGHT, EYE_INNER_RIGHT, LIDS_RIGHT)
    out[M_EAR_L] = eye_aspect_ratio(p, EYE_OUTER_LEFT, EYE_INNER_LEFT, LIDS_LEFT)
    gx, gy = [], []
    for iris, a, b in ((IRIS_RIGHT, EYE_OUTER_RIGHT, EYE_INNER_RIGHT),
                       (IRIS_LEFT, EYE_INNER_LEFT, EYE_OUTER_LEFT)):
        # a is the eye's image-left corner, b its image-right one
        span = along(p[b] - p[a], across) or 1e-6
        gx.append(along(p[iris] - p[a], across) / span)
        gy.append(along(p[iris] - (p[a] + p[b]) / 2, down) / span)
    out[M_GAZE_X], out[M_GAZE_Y] = float(np.mean(gx)), float(np.mean(gy))
    # Brows against the eye-to-nose height, which shortens with them when the head
    # pitches (against the eye width they seemed to drop 0.6 of a full range on a look down).
    eyes_mid = (p[EYE_OUTER_LEFT] + p[EYE_OUTER_RIGHT]) / 2
    height = max(along(p[NOSE_BASE] - eyes_mid, down), 1e-3)
    out[M_BROW_R] = along(p[LID_TOP_RIGHT] - p[list(BROW_RIGHT)].mean(axis=0), down) / height
    out[M_BROW_L] = along(p[LID_TOP_LEFT] - p[list(BROW_LEFT)].mean(axis=0), down) / height
    out[M_GAP] = float(np.mean([max(along(p[lo] - p[u], down), 0.0) for u, lo in LIP_GAPS]))
    out[M_WIDTH] = float(np.linalg.norm(p[MOUTH_CORNERS[1]] - p[MOUTH_CORNERS[0]])) / iod
    mid = (p[LIP_MID[0]] + p[LIP_MID[1]]) / 2
    corners = (p[MOUTH_CORNERS[0]] + p[MOUTH_CORNERS[1]]) / 2
    out[M_LIFT] = along(mid - corners, down)
    return out


@dataclass(frozen=True)
class Neutral:
    """A host's resting face: the measures every frame is read against."""

    values: np.ndarray
    frames: int = 0  # how many frames it was taken from (0: population defaults)

    @classmethod
    def default(cls) -> Neutral:
        """Average faces (the shared clips' medians), until a host's own is captured."""
        v = np.zeros(MEASURES, np.float64)
        v[M_SIZE] = 0.0  # 0: positions and scale are read against the first frame
        v[M_EAR_R] = v[M_EAR_L] = DEFAULT_EAR
        v[M_GAZE_X], v[M_GAZE_Y] = 0.5, -0.06  # the iris sits a little above the corners
        v[M_BROW_R] = v[M_BROW_L] = DEFAULT_BROW
        v[M_WIDTH] = DEFAULT_WIDTH
        return cls(v, 0)

    @classmethod
    def capture(cls, samples: list[np.ndarray]) -> Neutral:
        """The median of each measure over ``samples`` (a blink or a word in the
        capture moves a median little); the eyes take the upper quartile, since a blink
        only ever lowers them."""
        s = np.array(samples, np.float64)
        v = np.median(s, axis=0)
        v[[M_EAR_R, M_EAR_L]] = np.percentile(s[:, [M_EAR_R, M_EAR_L]], 75, axis=0)
        return cls(v, len(samples))


@dataclass
class _FaceState:
    """Filters and recent history of one tracked face."""

    head: OneEuroFilter = field(default_factory=lambda: OneEuroFilter(SMOOTH_HEAD))
    position: OneEuroFilter = field(default_factory=lambda: OneEuroFilter(SMOOTH_POSITION))
    eyes: OneEuroFilter = field(default_factory=lambda: OneEuroFilter(SMOOTH_EYES))
    face: OneEuroFilter = field(default_factory=lambda: OneEuroFilter(SMOOTH_FACE))
    mouth: OneEuroFilter = field(default_factory=lambda: OneEuroFilter(SMOOTH_MOUTH))
    blinking: bool = False
    last_t: float | None = None


class RigSolver:
    """Turns scenes into rigs: call :meth:`update` once per frame.

    The first ``calibration_frames`` frames with a face are the host's neutral (until then
    population defaults stand in and ``Rig.calibrated`` is False); :meth:`calibrate`
    captures it again from the next frames. One neutral serves the solver's host; each
    tracked face keeps its own filters. Hands count for the face they belong to (the
    host's): raised above the chin, waving, and their gestures (confirmed ones fire once,
    through :class:`~arengine.tracking.gestures.GestureRecognizer`).
    """

    def __init__(self, calibration_frames: int = CALIBRATION_FRAMES,
                 gesture_hold_s: float = 0.3) -> None:
        if calibration_frames < 1:
            raise ValueError(f"calibration_frames must be at least 1, got "
                             f"{calibration_frames}")
        self.calibration_frames = calibration_frames
        self.neutral = Neutral.default()
        self._capture: list[np.ndarray] | None = []
        self._faces: dict[int, _FaceState] = {}
        # A gesture counts once while it is held, even when the hand tracker loses it or
        # reads it as another pose for a while: on the 720p thumbs-up clip the thumb
        # flickers to "fist" or no hand for up to 1 s; re-armed after 1.5 s without it.
        self._gestures = GestureRecognizer(actions={g: g for g in GESTURES},
                                           hold_s=gesture_hold_s, cooldown_s=3.0,
                                           rearm_s=1.5)
        self._wrists: deque[tuple[float, float]] = deque()
        self.last: Rig | None = None

    @property
    def calibrated(self) -> bool:
        return self.neutral.frames > 0 and self._capture is None

    @property
    def calibrating(self) -> bool:
        return self._capture is not None

    def calibrate(self) -> None:
        """Capture the neutral again from the next frames with a face (the host asks, e.g.
        after a change of camera or seat); the old one serves until then."""
        self._capture = []

    def adopt(self, other: RigSolver) -> None:
        """Take over another solver's neutral and face filters (the effect was remade)."""
        self.neutral = other.neutral
        self._capture = None if other._capture is None else list(other._capture)
        self._faces = other._faces
        self._gestures = other._gestures
        self._wrists = other._wrists
        self.last = other.last

    def update(self, scene: Scene) -> Rig | None:
        """The rig of the scene's main face (the largest), or None when there is none."""
        rigs = self.solve_all(scene)
        if not rigs:
            self.last = None
            return None
        self.last = rigs[0]
        return rigs[0]

    def solve_all(self, scene: Scene) -> list[Rig]:
        """One rig per face, the main face (the largest) first."""
        faces = scene.faces
        t = float(scene.timestamp)
        gestures, events, raised, waving = self._hands(scene, t)
        if len(faces) == 0:
            self._faces.clear()
            return []
        boxes = faces.boxes()
        order = np.argsort(-((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
        rigs: list[Rig] = []
        live: set[int] = set()
        for rank, i in enumerate(int(k) for k in order):
            tid = int(faces.track_id[i]) if i < len(faces.track_id) else i
            live.add(tid)
            m = measure(faces.raw[i])
            if rank == 0 and self._capture is not None:
                # The capture so far serves at once (frames == 0: not calibrated yet), so
                # the character does not jump when the capture completes.
                self._capture.append(m)
                done = len(self._capture) >= self.calibration_frames
                found = Neutral.capture(self._capture)
                self.neutral = found if done else Neutral(found.values, 0)
                if done:
                    self._capture = None
            state = self._faces.setdefault(tid, _FaceState())
            main = rank == 0
            rigs.append(self._solve(m, state, tid, t, scene,
                                    gestures if main else (), events if main else (),
                                    raised if main else (0.0, 0.0), waving and main))
        for gone in set(self._faces) - live:
            del self._faces[gone]
        return rigs

    def _solve(self, m: np.ndarray, st: _FaceState, tid: int, t: float, scene: Scene,
               gestures: tuple[str, ...], events: tuple[str, ...],
               raised: tuple[float, float], waving: bool) -> Rig:
        n = self.neutral.values
        if st.last_t is not None and t <= st.last_t:  # a repeated stamp: keep the clock
            t = st.last_t + 1e-3
        st.last_t = t
        known = n[M_SIZE] > 0  # a captured neutral (the defaults know no place or size)
        size0 = n[M_SIZE] if known else m[M_SIZE]
        x0, y0 = (n[M_X], n[M_Y]) if known else (m[M_X], m[M_Y])

        yaw, pitch, roll = st.head(np.array([m[M_YAW] - n[M_YAW], m[M_PITCH] - n[M_PITCH],
                                             _wrap(m[M_ROLL] - n[M_ROLL])]), t)
        hx, hy, hs = st.position(np.array([(m[M_X] - x0) / size0, (m[M_Y] - y0) / size0,
                                           m[M_SIZE] / size0]), t)
        ear = np.array([m[M_EAR_L] / max(n[M_EAR_L], 1e-6),
                        m[M_EAR_R] / max(n[M_EAR_R], 1e-6)])
        # Blinks read the unsmoothed opening (a blink lasts 3-4 frames at 25 fps).
        both = float(ear.mean())
        if st.blinking:
            st.blinking = both < BLINK_OFF
        else:
            st.blinking = both < BLINK_ON
        eye_l, eye_r = np.clip(st.eyes(ear, t), 0.0, 1.5)
        if st.blinking:
            eye_l = eye_r = 0.0
        gx, gy, bl, br = st.face(np.array([
            (m[M_GAZE_X] - n[M_GAZE_X]) / GAZE_RANGE_X,
            (m[M_GAZE_Y] - n[M_GAZE_Y]) / GAZE_RANGE_Y,
            (m[M_BROW_L] / max(n[M_BROW_L], 1e-6) - 1.0) / BROW_RANGE,
            (m[M_BROW_R] / max(n[M_BROW_R], 1e-6) - 1.0) / BROW_RANGE]), t)
        # The mouth reads against the neutral mouth width, not the frame's (which narrows
        # for an O): the opening is the gap over the host's own resting width.
        width0 = max(n[M_WIDTH], 1e-6)
        gap = m[M_GAP] * DEFAULT_WIDTH / width0
        op, wd, lift = st.mouth(np.array([
            (gap - MOUTH_DEAD) / (MOUTH_FULL - MOUTH_DEAD),
            (m[M_WIDTH] / width0 - 1.0) / MOUTH_WIDTH_RANGE,
            (m[M_LIFT] - n[M_LIFT]) / SMILE_LIFT]), t)
        mouth_open = float(np.clip(op, 0.0, 1.0))
        mouth_width = float(np.clip(wd, -1.0, 1.0))
        smile = float(np.clip(0.7 * max(lift, 0.0) + 0.3 * max(mouth_width, 0.0), 0.0, 1.0))
        vowels = vowel_weights(mouth_open, mouth_width)
        h, w = max(scene.height, 1), max(scene.width, 1)
        return Rig(
            track_id=tid, timestamp=float(scene.timestamp), calibrated=self.calibrated,
            yaw=float(yaw), pitch=float(pitch), roll=float(roll),
            head_x=float(np.clip(hx, -3, 3)), head_y=float(np.clip(hy, -3, 3)),
            head_scale=float(np.clip(hs, 0.3, 3.0)),
            x=float(m[M_X] / w), y=float(m[M_Y] / h),
            eye_open_left=float(eye_l), eye_open_right=float(eye_r), blink=st.blinking,
            gaze_x=float(np.clip(gx, -1, 1)), gaze_y=float(np.clip(gy, -1, 1)),
            brow_left=float(np.clip(bl, -1, 1)), brow_right=float(np.clip(br, -1, 1)),
            mouth_open=mouth_open, mouth_width=mouth_width, smile=smile,
            vowel_a=vowels["a"], vowel_i=vowels["i"], vowel_u=vowels["u"],
            vowel_e=vowels["e"], vowel_o=vowels["o"],
            hand_left=raised[0], hand_right=raised[1], waving=waving,
            gestures=gestures, events=events)

    def _hands(self, scene: Scene, t: float) -> tuple[tuple[str, ...], tuple[str, ...],
                                                      tuple[float, float], bool]:
        """Gestures, confirmed gestures, (left, right) raised and waving, for the host."""
        hands = scene.hands
        events = tuple(e.gesture for e in self._gestures.update_hands(hands, t))
        if len(hands) == 0:
            self._wrists.clear()
            return (), events, (0.0, 0.0), False
        names = tuple(g for g in (classify_hand(p).gesture for p in hands.points) if g)
        faces = scene.faces
        left = right = 0.0
        waving = False
        if len(faces):
            boxes = faces.boxes()
            main = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
            face = faces.points[main]
            chin_y, centre_x = float(face[CHIN, 1]), float(face[NOSE_BRIDGE, 0])
            iod = float(np.linalg.norm(face[EYE_OUTER_LEFT] - face[EYE_OUTER_RIGHT])) or 1.0
            top_wrist: tuple[float, float] | None = None
            for p in hands.points:
                wrist = p[WRIST]
                if float(wrist[1]) > chin_y:
                    continue
                # An unmirrored camera shows the host's left hand on the image's right.
                if float(wrist[0]) > centre_x:
                    left = 1.0
                else:
                    right = 1.0
                if top_wrist is None or wrist[1] < top_wrist[1]:
                    top_wrist = (float(wrist[0]) / iod, float(wrist[1]))
            if top_wrist is not None:
                self._wrists.append((t, top_wrist[0]))
                while self._wrists and t - self._wrists[0][0] > WAVE_WINDOW_S:
                    self._wrists.popleft()
                waving = _turns(self._wrists) >= 2
            else:
                self._wrists.clear()
        return names, events, (left, right), waving


def _wrap(deg: float) -> float:
    return float((deg + 180.0) % 360.0 - 180.0)


def _turns(samples: deque[tuple[float, float]]) -> int:
    """How often a 1D track (zigzag) turns back by at least :data:`WAVE_AMPLITUDE`."""
    xs = [x for _, x in samples]
    if not xs:
        return 0
    turns, direction, start, extreme = 0, 0, xs[0], xs[0]
    for x in xs[1:]:
        if direction == 0:
            if abs(x - start) >= WAVE_AMPLITUDE:
                direction, extreme = (1 if x > start else -1), x
        elif (x - extreme) * direction > 0:
            extreme = x  # still going the same way
        elif abs(x - extreme) >= WAVE_AMPLITUDE:
            turns, direction, extreme = turns + 1, -direction, x
    return turns


def vowel_weights(opening: float, width: float) -> dict[str, float]:
    """A/I/U/E/O weights from the mouth's opening (0..1) and width (-1..1).

    Each vowel is a point in (opening, width) (:data:`VOWELS`); a softmax of the distances
    says which shape the mouth is nearest, and the weights are scaled so that the blend
    opens as far as the mouth does (sum of weight x the vowel's opening = ``opening``): a
    character whose mouth shapes are the full vowels then opens its mouth as wide as the
    host's, and a closed mouth weighs nothing.
    """
    d = {k: ((opening - o) ** 2 + (width - w) ** 2) for k, (o, w) in VOWELS.items()}
    g = {k: float(np.exp(-v / (2 * VOWEL_SPREAD ** 2))) for k, v in d.items()}
    total = sum(g.values()) or 1.0
    share = {k: v / total for k, v in g.items()}
    reach = sum(share[k] * VOWELS[k][0] for k in share) or 1.0
    scale = max(opening, 0.0) / reach
    return {k: round(v * scale, 4) for k, v in share.items()}
