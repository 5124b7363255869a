"""Host hand gestures: thumbs up, fist, victory, open palm and 2-5 raised fingers, and the
common hands that are not commands (pointing, rock, call me, resting, half-raised).

:func:`classify_hand` reads one hand's 21 landmarks. Whether a finger is straight comes
from its joint angles (in 3D, so it does not matter how the hand is turned or which hand it
is) and from how far its tip reaches from the wrist compared with its middle joint, both
independent of the hand's size on screen. Orientation is used only where it is the meaning:
a thumbs-up points up, and finger counts, an open palm, a victory sign and a fist count
only when the hand is raised (fingers up), so a hand hanging at the host's side does
nothing. A count is only a count when every finger is clearly straight or clearly curled
and the straight ones are the natural counting set (index first): on the shared HaGRID
photos this reads "four" as four and "rock", "call me" and resting hands as nothing.

:class:`GestureRecognizer` turns per-frame poses into actions: a gesture must be held for
``hold_s`` (scene seconds) before it fires, fires once however long it is held (it re-arms
only after the hand has done something else for ``rearm_s``), a flicker shorter than
``grace_s`` does not break a hold, and an action cannot repeat within ``cooldown_s``.
Actions come from a gesture -> action mapping (by default thumbs up -> ``like_burst``,
N fingers (2-5) -> ``pick_option_N``, fist -> ``close_poll``; pointing, rock and call
do nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from arengine.types import HAND_POINTS, HandLandmarks, Scene

GESTURES: tuple[str, ...] = ("thumbs_up", "thumbs_down", "victory", "open_palm", "fist",
                             "pointing", "rock", "call", "fingers_1", "fingers_2",
                             "fingers_3", "fingers_4", "fingers_5")
# A host points at products all the time, and "rock" and "call me" signs are greetings:
# they are recognised (so they are not read as counts) and do nothing by default. On the
# HaGRID photos, "rock" read as 2 fingers and "call" as 1 or a thumbs-up before, and most
# non-command hands voted. Pointing is one finger, so a count starts at two.
DEFAULT_ACTIONS: dict[str, str] = {
    "thumbs_up": "like_burst",
    "fist": "close_poll",
    **{f"fingers_{n}": f"pick_option_{n}" for n in range(2, 6)},
}
# The finger sets that are counts (thumb first): the index finger first, then the next
# ones in order; five is the open hand. Anything else (rock, call, thumb and index) is not.
COUNTS: dict[tuple[bool, ...], int] = {
    (False, True, False, False, False): 1,
    (False, True, True, False, False): 2,
    (False, True, True, True, False): 3,
    (False, True, True, True, True): 4,
    (True, True, True, True, True): 5,
}
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
_CHAINS = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))
WRIST, THUMB_MCP, THUMB_TIP, INDEX_MCP, MIDDLE_MCP, PINKY_MCP = 0, 2, 4, 5, 9, 17

# Thresholds, in degrees and in palm sizes; measured on the MediaPipe sample pictures and
# videos (thumbs up, open hand) with a wide margin either side.
STRAIGHT_BEND = 60.0  # PIP + DIP bend below this: finger straight
CURLED_BEND = 90.0  # above this: finger curled
REACH = 1.15  # straight fingers reach this much farther than their middle joint
THUMB_BEND = 60.0
THUMB_OUT = 0.6  # thumb tip this many palm sizes from the index knuckle: held out
THUMB_UP_DEG = 55.0  # thumb within this angle of straight up (or down)
UPRIGHT_DEG = 75.0  # hand (wrist -> middle knuckle) within this angle of up: raised
# A count is shown to the camera: the palm (or its back) faces it. |cos| of the palm
# normal against the view axis was 0.83-1.0 on every deliberate HaGRID and MediaPipe
# sample hand, and 0.09 for a hand resting open on a table (which read as "5").
FACING = 0.5


@dataclass(frozen=True)
class HandPose:
    """What one hand is doing in one frame.

    ``names`` lists the gestures it matches, most specific first (a victory sign is also
    two fingers); ``extended`` says which fingers are straight (thumb first).
    """

    names: tuple[str, ...]
    extended: tuple[bool, bool, bool, bool, bool]
    count: int
    upright: bool
    thumb_angle: float  # degrees between the thumb and image-up

    @property
    def gesture(self) -> str | None:
        return self.names[0] if self.names else None


@dataclass(frozen=True)
class GestureEvent:
    """A confirmed gesture and the action it maps to."""

    gesture: str
    action: str
    hand: int  # index of the hand in the frame's HandLandmarks
    timestamp: float  # scene seconds of the frame that confirmed it
    handedness: str = ""
    held_s: float = 0.0


def option_index(action: str) -> int | None:
    """The poll option (0-based) a ``pick_option_N`` action picks; None for other actions."""
    prefix = "pick_option_"
    if action.startswith(prefix) and action[len(prefix):].isdigit():
        n = int(action[len(prefix):])
        return n - 1 if n >= 1 else None
    return None


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < 1e-9 or nb < 1e-9:
        return 0.0
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))))


def _from_up(v: np.ndarray) -> float:
    """Angle in degrees between the 2D image vector ``v`` and image-up (0 = up, 180 = down)."""
    return _angle(np.array([v[0], v[1]], np.float64), np.array([0.0, -1.0]))


def classify_hand(points: np.ndarray) -> HandPose:
    """The pose of one hand from its (21, 3) landmarks in pixels (z in the same scale)."""
    p = np.asarray(points, np.float64)
    if p.shape != (HAND_POINTS, 3):
        raise ValueError(f"expected hand landmarks of shape (21, 3), got {p.shape}")
    palm = float(np.mean([np.linalg.norm(p[WRIST] - p[i])
                          for i in (INDEX_MCP, MIDDLE_MCP, PINKY_MCP)]))
    if palm < 1e-6:
        return HandPose((), (False, False, False, False, False), 0, False, 180.0)

    straight: list[bool] = []
    curled: list[bool] = []
    for a, b, c, d in _CHAINS[1:]:
        bend = _angle(p[b] - p[a], p[c] - p[b]) + _angle(p[c] - p[b], p[d] - p[c])
        reach = float(np.linalg.norm(p[d] - p[WRIST])) / max(
            float(np.linalg.norm(p[b] - p[WRIST])), 1e-6)
        straight.append(bend < STRAIGHT_BEND and reach > REACH)
        curled.append(bend > CURLED_BEND or reach < 1.0)

    a, b, c, d = _CHAINS[0]
    thumb_bend = _angle(p[b] - p[a], p[c] - p[b]) + _angle(p[c] - p[b], p[d] - p[c])
    thumb_out = np.linalg.norm(p[THUMB_TIP] - p[INDEX_MCP]) / palm
    thumb = bool(thumb_bend < THUMB_BEND and thumb_out > THUMB_OUT)
    thumb_angle = _from_up(p[THUMB_TIP, :2] - p[THUMB_MCP, :2])
    upright = _from_up(p[MIDDLE_MCP, :2] - p[WRIST, :2]) < UPRIGHT_DEG
    normal = np.cross(p[INDEX_MCP] - p[WRIST], p[PINKY_MCP] - p[WRIST])
    facing = abs(float(normal[2])) / max(float(np.linalg.norm(normal)), 1e-9) >= FACING
    extended = (thumb, *straight)
    count = int(sum(extended))

    # A finger seen end-on (pointing at the camera) is neither clearly straight nor
    # clearly curled; a closed hand needs no straight finger and most clearly curled.
    closed = not any(straight) and sum(curled) >= 3
    # A deliberate pose has every finger decided: straight or curled, none half bent
    # (a resting or half-raised hand has several in between).
    clear = all(s or c for s, c in zip(straight, curled, strict=True))
    thumb_folded = thumb_bend >= THUMB_BEND or thumb_out < THUMB_OUT  # decided: not out
    names: list[str] = []
    if thumb and closed:
        if thumb_angle < THUMB_UP_DEG:
            names.append("thumbs_up")
        elif thumb_angle > 180.0 - THUMB_UP_DEG:
            names.append("thumbs_down")
    if upright and not names and clear:
        index, middle, ring, pinky = straight
        if closed and not thumb:
            names.append("fist")
        elif index and pinky and not middle and not ring:
            names.append("rock")
        elif thumb and pinky and not (index or middle or ring):
            names.append("call")
        elif extended in COUNTS and (thumb or thumb_folded) and facing:
            if extended == (False, True, False, False, False):
                names.append("pointing")
            elif extended == (False, True, True, False, False):
                names.append("victory")
            elif count == 5:
                names.append("open_palm")
            names.append(f"fingers_{COUNTS[extended]}")
    return HandPose(tuple(names), extended, count, bool(upright),  # type: ignore[arg-type]
                    float(thumb_angle))


@dataclass
class _Track:
    """One hand followed across frames, with its hold state."""

    wrist: np.ndarray
    palm: float
    seen: float
    candidate: str | None = None
    since: float = 0.0
    last_match: float = 0.0
    fired: bool = False
    fired_gesture: str | None = None  # the gesture that fired last, and when it was
    fired_seen: float = -1e9  # last seen: it re-arms only after being gone for rearm_s
    index: int = -1  # the hand's index in the latest frame that had it


class GestureRecognizer:
    """Confirms held gestures and maps them to actions; call :meth:`update` every frame.

    ``actions`` maps gesture names (see :data:`GESTURES`) to action names; a pose that
    matches several gestures uses the first that has an action (so with the defaults a
    victory sign picks option 2). Times are ``scene.timestamp`` seconds, so results are
    the same for the same frames however fast they are processed.
    """

    def __init__(self, actions: Mapping[str, str] | None = None, hold_s: float = 0.5,
                 cooldown_s: float = 1.0, grace_s: float = 0.15, rearm_s: float = 0.5,
                 min_score: float = 0.5) -> None:
        self.actions = dict(DEFAULT_ACTIONS if actions is None else actions)
        unknown = sorted(set(self.actions) - set(GESTURES))
        if unknown:
            raise ValueError(f"unknown gesture(s) {', '.join(unknown)}; known: "
                             f"{', '.join(GESTURES)}")
        if min(hold_s, cooldown_s, grace_s, rearm_s) < 0:
            raise ValueError("hold_s, cooldown_s, grace_s and rearm_s must be >= 0")
        self.hold_s = hold_s
        self.cooldown_s = cooldown_s
        self.grace_s = grace_s
        self.rearm_s = rearm_s
        self.min_score = min_score
        self._tracks: list[_Track] = []
        self._last_fired: dict[str, float] = {}

    def reset(self) -> None:
        self._tracks.clear()
        self._last_fired.clear()

    def resolve(self, pose: HandPose) -> str | None:
        """The gesture of ``pose`` that drives an action (None: nothing to do)."""
        for name in pose.names:
            if name in self.actions:
                return name
        return None

    def update(self, scene: Scene) -> list[GestureEvent]:
        """Feed one frame's hands; returns the gestures confirmed on this frame."""
        return self.update_hands(scene.hands, scene.timestamp)

    def update_hands(self, hands: HandLandmarks, timestamp: float) -> list[GestureEvent]:
        t = float(timestamp)
        events: list[GestureEvent] = []
        used: set[int] = set()
        for i in range(len(hands)):
            if i < len(hands.score) and float(hands.score[i]) < self.min_score:
                continue
            pts = hands.points[i]
            pose = classify_hand(pts)
            track = self._match(pts, t, used)
            track.index = i
            gesture = self.resolve(pose)
            prev_seen = track.fired_seen
            if gesture is not None and gesture == track.fired_gesture:
                track.fired_seen = t  # seen at all, even as a flicker: not yet re-armed
            if gesture == track.candidate:
                track.last_match = t
            elif track.candidate is None or t - track.last_match > self.grace_s:
                track.candidate, track.since, track.last_match = gesture, t, t
                # The gesture that already fired comes back after a short doubt: the
                # same hold, not a new one.
                track.fired = (gesture is not None and gesture == track.fired_gesture
                               and t - prev_seen <= self.rearm_s)
            # else: a short flicker inside the grace period; keep holding
            if track.candidate is None or track.fired or t - track.since < self.hold_s:
                continue
            action = self.actions[track.candidate]
            last = self._last_fired.get(action)
            track.fired, track.fired_gesture, track.fired_seen = True, track.candidate, t
            if last is not None and t - last < self.cooldown_s:
                continue  # held again too soon after the same action: swallowed
            self._last_fired[action] = t
            label = hands.handedness[i] if i < len(hands.handedness) else ""
            events.append(GestureEvent(track.candidate, action, i, t, label,
                                       round(t - track.since, 6)))
        # Forget hands gone for longer than a flicker (and than the re-arm time).
        keep = max(self.grace_s, self.rearm_s, 0.05)
        self._tracks = [tr for tr in self._tracks if t - tr.seen <= keep]
        return events

    def pending(self) -> list[tuple[int, str, float]]:
        """Holds in progress on the latest frame: (hand index, gesture, progress 0..1).

        For on-screen feedback (a ring filling up) so the host sees a gesture is being
        taken before it fires.
        """
        if not self._tracks:
            return []
        latest = max(tr.seen for tr in self._tracks)
        out = []
        for tr in self._tracks:
            if tr.seen == latest and tr.candidate is not None and not tr.fired:
                k = 1.0 if self.hold_s <= 0 else (tr.last_match - tr.since) / self.hold_s
                out.append((tr.index, tr.candidate, min(max(k, 0.0), 1.0)))
        return sorted(out)

    def _match(self, pts: np.ndarray, t: float, used: set[int]) -> _Track:
        """The track of the hand at ``pts`` (nearest wrist within two palms) or a new one."""
        wrist = np.asarray(pts[WRIST, :2], np.float64)
        palm = float(np.linalg.norm(pts[MIDDLE_MCP, :2] - pts[WRIST, :2])) or 1.0
        best, best_d = -1, 2.0
        for k, tr in enumerate(self._tracks):
            if k in used:
                continue
            d = float(np.linalg.norm(tr.wrist - wrist)) / max(palm, tr.palm)
            if d < best_d:
                best, best_d = k, d
        if best < 0:
            self._tracks.append(_Track(wrist, palm, t))
            best = len(self._tracks) - 1
        used.add(best)
        tr = self._tracks[best]
        tr.wrist, tr.palm, tr.seen = wrist, palm, t
        return tr
