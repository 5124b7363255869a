"""Where on-screen layers go, and what time it is for them.

Placement: a layer never covers the host's face or a raised hand, nor a character drawn as
a subject (the virtual host, see :func:`add_subject`). :func:`obstacles` turns a
:class:`Scene` into padded keep-out boxes; :class:`Placer` picks, among a few anchors, the
first free spot for a panel (least overlap wins when none is free) and keeps it until it
becomes blocked, so panels do not jump around when the host moves a little.

Time: layers read :class:`RoomState` snapshots whose times are unix seconds, but animate on
``scene.timestamp`` (monotonic seconds) so that the same frames always give the same
pictures. :class:`StateClock` maps one onto the other: the first frame drawn with a state is
taken to happen at ``state.taken_at``, and later frames advance with the scene timestamps.
No wall clock is read, so tests are deterministic.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from arengine.state import RoomState
from arengine.types import Scene

Anchor = Literal["top-left", "top-right", "bottom-left", "bottom-right", "left", "right",
                 "top", "bottom"]
ANCHORS: tuple[str, ...] = ("top-left", "top-right", "bottom-left", "bottom-right", "left",
                            "right", "top", "bottom")


@dataclass(frozen=True)
class Rect:
    """An axis-aligned box in pixels: top-left (x, y), size (w, h)."""

    x: int
    y: int
    w: int
    h: int

    @property
    def x2(self) -> int:
        return self.x + self.w

    @property
    def y2(self) -> int:
        return self.y + self.h

    @property
    def area(self) -> int:
        return max(self.w, 0) * max(self.h, 0)

    def overlap(self, other: Rect) -> int:
        """Area shared with ``other`` in pixels."""
        w = min(self.x2, other.x2) - max(self.x, other.x)
        h = min(self.y2, other.y2) - max(self.y, other.y)
        return max(w, 0) * max(h, 0)

    def intersects(self, other: Rect) -> bool:
        return self.overlap(other) > 0

    def moved(self, dx: int, dy: int) -> Rect:
        return Rect(self.x + dx, self.y + dy, self.w, self.h)

    def normalized(self, width: int, height: int) -> tuple[float, float, float, float]:
        """(x, y, w, h) as fractions of the frame size."""
        return (self.x / width, self.y / height, self.w / width, self.h / height)

    @classmethod
    def from_xyxy(cls, box: Sequence[float] | np.ndarray) -> Rect:
        x1, y1, x2, y2 = (round(float(v)) for v in box[:4])
        return cls(x1, y1, x2 - x1, y2 - y1)


KEEP_OUT = "keep_out"  # scene.extras key: rects already taken by layers drawn earlier
SUBJECTS = "subjects"  # scene.extras key: on-screen people drawn by effects (virtual host)


def ui_scale(width: int, height: int, scale: float = 1.0) -> float:
    """Pixels per design pixel: layers are designed for 720p and scale with the frame's
    short side, so a portrait (phone) stream gets the same sizes as a landscape one."""
    return min(width, height) / 720.0 * scale


def obstacles(scene: Scene, face_pad: float = 0.15, hand_pad: float = 0.1,
              reserved: bool = True) -> list[Rect]:
    """Keep-out boxes: every face and every hand, padded by a fraction of their size, and
    (with ``reserved``) whatever earlier layers of this frame took with :func:`reserve`.

    Faces are grown more upward (hair, forehead) than the landmarks reach. Subjects
    (:func:`add_subject`) count like faces, whatever ``reserved`` says.
    """
    out: list[Rect] = list(_reserved(scene)) if reserved else []
    out.extend(subjects(scene))
    for box in scene.faces.boxes():
        x1, y1, x2, y2 = (float(v) for v in box)
        w, h = x2 - x1, y2 - y1
        out.append(Rect.from_xyxy((x1 - face_pad * w, y1 - 2 * face_pad * h,
                                   x2 + face_pad * w, y2 + face_pad * h)))
    for box in scene.hands.boxes():
        x1, y1, x2, y2 = (float(v) for v in box)
        w, h = x2 - x1, y2 - y1
        out.append(Rect.from_xyxy((x1 - hand_pad * w, y1 - hand_pad * h,
                                   x2 + hand_pad * w, y2 + hand_pad * h)))
    return out


def _reserved(scene: Scene) -> list[Rect]:
    # Stamped with the frame: Scene.at() shares ``extras`` between frames, and last
    # frame's reservations must not block this one.
    stamp, rects = scene.extras.get(KEEP_OUT, (None, []))
    return rects if stamp == (scene.timestamp, scene.frame_index) else []


def reserve(scene: Scene, rect: Rect) -> None:
    """Mark ``rect`` as taken for the rest of this frame, so later layers go elsewhere."""
    rects = _reserved(scene)
    rects.append(rect)
    scene.extras[KEEP_OUT] = ((scene.timestamp, scene.frame_index), rects)


def add_subject(scene: Scene, rect: Rect) -> None:
    """Mark ``rect`` as a person on screen for the rest of this frame (a character that an
    effect drew): later layers keep off it as they keep off faces."""
    stamp = (scene.timestamp, scene.frame_index)
    got = scene.extras.get(SUBJECTS, (None, []))
    rects = got[1] if got[0] == stamp else []
    rects.append(rect)
    scene.extras[SUBJECTS] = (stamp, rects)


def subjects(scene: Scene) -> list[Rect]:
    """The subjects marked on this frame (none from an earlier frame's notes)."""
    stamp, rects = scene.extras.get(SUBJECTS, (None, []))
    return list(rects) if stamp == (scene.timestamp, scene.frame_index) else []


def anchor_rect(anchor: str, w: int, h: int, width: int, height: int, margin: int) -> Rect:
    """The rectangle of size (w, h) at ``anchor`` inside a width x height frame."""
    if anchor not in ANCHORS:
        raise ValueError(f"unknown anchor {anchor!r}; known: {', '.join(ANCHORS)}")
    left, right = margin, width - margin - w
    top, bottom = margin, height - margin - h
    cx, cy = (width - w) // 2, (height - h) // 2
    x = {"left": left, "right": right}.get(anchor.split("-")[-1], cx)
    y = {"top": top, "bottom": bottom}.get(anchor.split("-")[0], cy)
    if anchor in ("left", "right"):
        y = cy
    return Rect(int(x), int(y), w, h)


def blocked(rect: Rect, keep_out: Iterable[Rect]) -> int:
    """Total area of ``rect`` covered by the keep-out boxes."""
    return sum(rect.overlap(k) for k in keep_out)


class Placer:
    """Chooses a spot for one panel and sticks with it while it stays clear.

    ``anchors`` are tried in order; for each, the panel may also slide along its edge
    (``slide`` steps) to dodge a hand. The least-covered candidate wins when none is clear.
    """

    def __init__(self, anchors: Sequence[str] = ("top-right", "top-left", "bottom-right",
                                                  "bottom-left"),
                 margin: float = 0.02, slide_steps: int = 6) -> None:
        for a in anchors:
            if a not in ANCHORS:
                raise ValueError(f"unknown anchor {a!r}; known: {', '.join(ANCHORS)}")
        if not anchors:
            raise ValueError("at least one anchor is needed")
        self.anchors = tuple(anchors)
        self.margin = margin
        self.slide_steps = slide_steps
        self.current: Rect | None = None

    def candidates(self, w: int, h: int, width: int, height: int) -> list[Rect]:
        """Every spot tried, in order: each anchor, then slid along its edge."""
        m = round(self.margin * height)
        out: list[Rect] = []
        for a in self.anchors:
            r = anchor_rect(a, w, h, width, height, m)
            out.append(r)
            along_x = a in ("top", "bottom")
            span = (width - 2 * m - w) if along_x else (height - 2 * m - h)
            for i in range(1, self.slide_steps + 1):
                step = round(span * i / self.slide_steps)
                if a.startswith("top-"):
                    out.append(r.moved(0, step))
                elif a.startswith("bottom-"):
                    out.append(r.moved(0, -step))
                elif along_x:
                    d = step // 2 if i % 2 else -step // 2
                    out.append(r.moved(d, 0))
                else:
                    d = step // 2 if i % 2 else -step // 2
                    out.append(r.moved(0, d))
        inside = [r for r in out if r.x >= 0 and r.y >= 0 and r.x2 <= width
                  and r.y2 <= height]
        return inside or out[:1]

    def place(self, w: int, h: int, width: int, height: int, keep_out: Sequence[Rect]) -> Rect:
        """A rectangle for a (w, h) panel; the previous one if it is still clear."""
        cur = self.current
        if cur is not None and (cur.w, cur.h) == (w, h) and cur.x2 <= width \
                and cur.y2 <= height and blocked(cur, keep_out) == 0:
            return cur
        best: Rect | None = None
        best_cover = -1
        for r in self.candidates(w, h, width, height):
            cover = blocked(r, keep_out)
            if cover == 0:
                best = r
                break
            if best is None or cover < best_cover:
                best, best_cover = r, cover
        assert best is not None
        self.current = best
        return best


def free_side(width: int, faces: Sequence[Rect]) -> str:
    """"left" or "right": the side of the frame with more room beside the faces."""
    if not faces:
        return "right"
    left = min(f.x for f in faces)
    right = width - max(f.x2 for f in faces)
    return "left" if left > right else "right"


class StateClock:
    """Maps scene time (monotonic seconds) to room time (unix seconds) for one layer.

    :meth:`set_state` swaps the snapshot atomically (safe from another thread); the first
    :meth:`read` after a swap pins that frame's ``scene.timestamp`` to ``state.taken_at``
    (or to the running room time, if later, so the clock never runs backwards).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: RoomState | None = None
        self._pinned: tuple[float, float] | None = None  # (scene ts, unix) of the pin
        self._repin = True

    def set_state(self, state: RoomState | None) -> None:
        with self._lock:
            self._state = state
            self._repin = True

    @property
    def state(self) -> RoomState | None:
        """The latest snapshot, without touching the clock."""
        with self._lock:
            return self._state

    def read(self, scene_time: float) -> tuple[RoomState | None, float]:
        """The latest state and the room time (unix seconds) of a frame at ``scene_time``."""
        with self._lock:
            state = self._state
            if state is None:
                return None, scene_time
            if self._repin:
                unix = state.taken_at
                if self._pinned is not None:  # never run backwards on a new snapshot
                    ts, prev = self._pinned
                    unix = max(unix, prev + (scene_time - ts))
                self._pinned = (scene_time, unix)
                self._repin = False
            assert self._pinned is not None
            ts, unix = self._pinned
        return state, unix + (scene_time - ts)
