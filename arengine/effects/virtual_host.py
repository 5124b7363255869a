"""The virtual host: a character driven live by the host's face and hands, part of the show.

Virtual-host tools (VTube Studio, VSeeFace, kalidokit) drive a character from a webcam;
here the character is one effect of the room's chain, so the room acts on it too: the
room's shade (and a poll's winning shade) colours its lips, a host's thumbs-up makes it
wave, a like goal reached makes it cheer (each once per event), and the stickers, avatars
and product card keep off it as they keep off faces (:func:`layout.add_subject`).

Modes (the ``mode`` setting, switched live through ``PUT /api/rooms/{room}/effects``):

- ``replace``: the character stands in for the host. The camera's picture never reaches
  the output: the frame is redrawn from a ``background`` (``studio``: a drawn studio set,
  ``green``: a flat chroma green for OBS keying, ``room``: the host's own room with the
  person removed, from :mod:`arengine.tracking.segmentation`), then the character. The
  chain draws it first and gives the later effects a scene without the host
  (:meth:`Effect.replaces_host`), so lipstick has no real lips to paint.
- ``beside``: the character as a co-host next to the real host, on the side with more
  room, smaller if it must be, never over a face (it is not drawn rather than cover one).

It never freezes: with no face (the host looked away, left, or there is no camera) the
character idles on a script (blinks, breathing, looking around and, with ``idle_talk``,
talking now and then), blended in and out so a lost face does not snap the pose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arengine.data import ASSETS_DIR
from arengine.effects.base import Effect, register_effect
from arengine.effects.layout import Rect, add_subject, free_side
from arengine.render.character import (
    CharacterRenderer,
    character_names,
    load_character,
)
from arengine.render.sprites import Canvas, SpriteBackend
from arengine.state import RoomState
from arengine.tracking.rig import VOWELS, Rig, RigSolver, vowel_weights
from arengine.tracking.segmentation import PERSON_MASK, PersonMask
from arengine.types import Scene

MODES = ("replace", "beside")
BACKGROUNDS = ("studio", "room", "green")
SIDES = ("auto", "left", "right")
STUDIO = ASSETS_DIR / "studio.json"
GREEN = (64, 177, 0)  # BGR of chroma-key green #00B140, the broadcast keying colour

# Sizes, as shares of the frame height: replace fills the frame like a host at a desk;
# beside is a co-host that leaves the host's face and most of the frame free.
REPLACE_HEIGHT = 0.94
BESIDE_HEIGHT = 0.6
BESIDE_SHRINK = (1.0, 0.85, 0.7, 0.55)  # tried in turn until the face is clear
FACE_PAD = 0.15  # face boxes grow by this share (twice upward: hair) before the check

# Timings (scene seconds).
FOUND_S = 0.25  # a face that comes back takes over within this
LOST_S = 0.6  # a lost face fades into the idle loop over this
AUTO_BLINK_AFTER_S = 6.0  # a tracked host who has not blinked for this long (a photo, the
#                          demo's portrait): the character blinks on its own schedule
WAVE_S, CHEER_S = 2.2, 2.6  # reaction lengths
ATTACK_S, RELEASE_S = 0.25, 0.4
WAVE_HZ, CHEER_HZ = 2.2, 3.0
BLINK_SLOT_S, BLINK_S = 4.0, 0.14  # one blink per slot at a scripted offset (people blink
#                                    every 2-10 s, 100-150 ms each)
LOOK_SLOT_S, LOOK_EASE_S = 2.6, 0.4
TALK_CYCLE_S, TALK_FROM_S, TALK_TO_S = 15.0, 5.0, 10.5  # the idle loop talks 5.5 s of 15
SYLLABLE_S = 0.22  # 4.5 syllables a second, a natural speaking rate


def _hash01(n: int, salt: int = 0) -> float:
    """A repeatable pseudo-random number in [0, 1) for slot ``n`` (Knuth's multiplicative
    hash), so the idle script is the same on every run and machine."""
    x = (n * 2654435761 + salt * 40503 + 12345) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 2246822519) & 0xFFFFFFFF
    x ^= x >> 13
    return x / 2 ** 32


def _ease(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def _envelope(dt: float, length: float) -> float:
    """0 -> 1 over ATTACK_S, held, back to 0 over RELEASE_S at the end of ``length``."""
    if dt < 0 or dt > length:
        return 0.0
    return min(_ease(dt / ATTACK_S), _ease((length - dt) / RELEASE_S))


def idle_params(t: float, talk: bool = True) -> dict[str, float]:
    """The scripted idle loop at time ``t``: looking around, blinking, a friendly smile
    and, with ``talk``, talking for a few seconds every cycle."""
    slot = math.floor(t / LOOK_SLOT_S)

    def target(n: int) -> tuple[float, float]:
        return (_hash01(n, 1) * 1.6 - 0.8, _hash01(n, 2) * 0.8 - 0.4)

    k = _ease((t - slot * LOOK_SLOT_S) / LOOK_EASE_S)
    (ax, ay), (bx, by) = target(slot - 1), target(slot)
    gx, gy = ax + (bx - ax) * k, ay + (by - ay) * k
    out = {"gaze_x": gx, "gaze_y": gy,
           "yaw": 0.3 * gx + 0.08 * math.sin(t * 0.7), "pitch": 0.25 * gy,
           "roll": 0.12 * math.sin(t * 0.45 + 1.0), "smile": 0.3,
           "eye_open_left": 1.0, "eye_open_right": 1.0}
    if idle_blink(t):
        out["eye_open_left"] = out["eye_open_right"] = 0.0
        out["blink"] = 1.0
    if talk:
        out.update(idle_mouth(t))
    return out


def idle_blink(t: float) -> bool:
    """Whether the scripted eyes are shut at ``t`` (one blink per BLINK_SLOT_S)."""
    slot = math.floor(t / BLINK_SLOT_S)
    at = slot * BLINK_SLOT_S + 0.3 + _hash01(slot, 3) * (BLINK_SLOT_S - 0.6)
    return at <= t < at + BLINK_S


def idle_mouth(t: float) -> dict[str, float]:
    """The scripted talk: syllables with vowels from a fixed sequence, word pauses."""
    phase = t % TALK_CYCLE_S
    if not TALK_FROM_S <= phase < TALK_TO_S:
        return {}
    j = math.floor(t / SYLLABLE_S)
    if _hash01(j, 4) < 0.18:  # a pause between words
        return {"talk": 1.0}
    vowel = "aiueo"[int(_hash01(j, 5) * 5)]
    opening = VOWELS[vowel][0] * (0.55 + 0.45 * _hash01(j, 6))
    frac = (t - j * SYLLABLE_S) / SYLLABLE_S
    fade = _ease((phase - TALK_FROM_S) / 0.3) * _ease((TALK_TO_S - phase) / 0.3)
    mouth = opening * math.sin(math.pi * frac) ** 1.2 * fade
    width = VOWELS[vowel][1]
    out = {"mouth_open": mouth, "mouth_width": width * fade, "talk": 1.0}
    out.update({f"vowel_{k}": v for k, v in vowel_weights(mouth, width).items()})
    return out


@dataclass
class Life:
    """What keeps the character alive between the rig and the drawing: the blend between
    tracked and idle, breathing and sway, auto-blinks, and the reactions (each once)."""

    breath_s: float = 4.0
    idle_talk: bool = True
    tracked: float = 0.0  # 0 idle .. 1 following the host
    last_t: float | None = None
    last_blink_t: float = 0.0
    last_rig: Rig | None = None
    wave_at: float | None = None
    cheer_at: float | None = None
    host_wave_until: float = -1e9
    cheer_pending: bool = False
    reactions: list[tuple[str, float]] = field(default_factory=list)

    def react(self, kind: str, t: float) -> None:
        """Start a reaction ("wave" or "cheer") at scene time ``t``."""
        if kind == "wave":
            self.wave_at = t
        elif kind == "cheer":
            self.cheer_at = t
        else:
            raise ValueError(f"unknown reaction {kind!r}")
        self.reactions.append((kind, t))

    def params(self, rig: Rig | None, t: float) -> dict[str, float]:
        """The character's parameters at scene time ``t``, from ``rig`` (None: no face)."""
        first = self.last_t is None
        dt = 0.0 if self.last_t is None else max(0.0, min(t - self.last_t, 0.5))
        self.last_t = t
        if rig is not None:  # the very first frame starts on the host, not on the idle loop
            self.tracked = 1.0 if first else min(1.0, self.tracked + dt / FOUND_S)
            self.last_rig = rig
            if rig.blink:
                self.last_blink_t = t
            if "thumbs_up" in rig.events:
                self.react("wave", t)
            if rig.waving:
                self.host_wave_until = t + RELEASE_S
        else:
            self.tracked = max(0.0, self.tracked - dt / LOST_S)
        if self.cheer_pending:
            self.cheer_pending = False
            self.react("cheer", t)

        idle = idle_params(t, self.idle_talk)
        source = self.last_rig.params() if self.last_rig is not None else {}
        k = _ease(self.tracked)
        out: dict[str, float] = {}
        for name in set(idle) | set(source):
            a = idle.get(name, _REST.get(name, 0.0))
            b = source.get(name, _REST.get(name, 0.0))
            out[name] = a + (b - a) * k
        if rig is not None and t - self.last_blink_t > AUTO_BLINK_AFTER_S and idle_blink(t):
            out["eye_open_left"] = out["eye_open_right"] = 0.0
            out["blink"] = 1.0
        if rig is None and k < 0.5:  # the hands of a host who is gone are down
            out["hand_left"] = out["hand_right"] = out["waving"] = 0.0
        out["eye_close_left"] = float(np.clip(1.0 - out.get("eye_open_left", 1.0), 0, 1))
        out["eye_close_right"] = float(np.clip(1.0 - out.get("eye_open_right", 1.0), 0, 1))
        out["breath"] = math.sin(2 * math.pi * t / self.breath_s)
        out["sway"] = 0.6 * math.sin(2 * math.pi * t / 7.3) + 0.4 * math.sin(t * 0.37)
        out["talk"] = max(out.get("talk", 0.0), 1.0 if out.get("mouth_open", 0.0) > 0.05
                          else 0.0)
        wave_on = _envelope(t - self.wave_at, WAVE_S) if self.wave_at is not None else 0.0
        if t < self.host_wave_until:
            wave_on = max(wave_on, 1.0)
        cheer = _envelope(t - self.cheer_at, CHEER_S) if self.cheer_at is not None else 0.0
        out["wave_on"] = wave_on
        out["cheer"] = cheer
        swing = wave_on * math.sin(2 * math.pi * WAVE_HZ * t)
        pump = cheer * 0.5 * math.sin(2 * math.pi * CHEER_HZ * t)
        out["wave"] = swing + pump
        out["smile"] = max(out.get("smile", 0.0), cheer, 0.6 * wave_on)
        return out

    def adopt(self, other: Life) -> None:
        for f in ("tracked", "last_t", "last_blink_t", "last_rig", "wave_at", "cheer_at",
                  "host_wave_until", "cheer_pending", "reactions"):
            setattr(self, f, getattr(other, f))


_REST: dict[str, float] = {"eye_open_left": 1.0, "eye_open_right": 1.0, "head_scale": 1.0}


@register_effect("virtual_host")
class VirtualHost(Effect):
    """A character that follows the host (see the module docstring for the modes)."""

    enabled_by_default = False  # a room shows its host until the host asks for a character

    def __init__(self, character: str = "mei", mode: str = "replace",
                 background: str = "studio", scale: float = 1.0, side: str = "auto",
                 idle_talk: bool = True, calibration: int = 0,
                 backend: SpriteBackend | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {str(mode)[:40]!r}")
        if background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {', '.join(BACKGROUNDS)}, not "
                             f"{str(background)[:40]!r}")
        if side not in SIDES:
            raise ValueError(f"side must be one of {', '.join(SIDES)}, not {str(side)[:40]!r}")
        if not 0.2 <= scale <= 2.0:
            raise ValueError(f"scale must be between 0.2 and 2, got {scale}")
        self.character_name = character
        self.character = load_character(character)  # CharacterError (a ValueError) if bad
        self.renderer = CharacterRenderer(self.character)
        self.mode = mode
        self.background = background
        self.scale = scale
        self.side = side
        self.idle_talk = idle_talk
        self.calibration = calibration
        self.solver = RigSolver()
        self.life = Life(self.character.breath_s, idle_talk)
        # A render backend (GPU) to draw through in beside mode, joining the chain's frame
        # as the layers do; replace mode always draws the whole picture itself.
        self.backend = backend
        self._frames = 0
        self._studio: tuple[tuple[int, int], np.ndarray] | None = None
        self._studio_renderer: CharacterRenderer | None = None
        self._lips: str | None = None
        self._goal: tuple[int, str] | None = None  # the like goal whose reach was seen
        self._state_seen = False
        self._side: str | None = None
        self._box: tuple[float, float, float, float] | None = None  # beside: current place
        self._box_t: float | None = None
        self.last_rig: Rig | None = None
        self.last_params: dict[str, float] = {}
        self.last_box: Rect | None = None  # where the character was drawn (None: not drawn)
        self.last_background: str = ""

    # -- hooks ------------------------------------------------------------------------
    def replaces_host(self) -> bool:
        return self.mode == "replace"

    def needs(self) -> frozenset[str]:
        return frozenset({PERSON_MASK}) if self.mode == "replace" and \
            self.background == "room" else frozenset()

    def adopt(self, previous: Effect) -> None:
        """Keep the host's calibration, the reactions and the animation across a change
        of settings; a changed ``calibration`` number asks for a new neutral pose."""
        if not isinstance(previous, VirtualHost):
            return
        self.solver.adopt(previous.solver)
        if self.calibration != previous.calibration:
            self.solver.calibrate()
        self.life.adopt(previous.life)
        self._lips, self._goal, self._state_seen = (previous._lips, previous._goal,
                                                    previous._state_seen)
        self._studio, self._studio_renderer = previous._studio, previous._studio_renderer
        self._side = previous._side

    def calibrate(self) -> None:
        """Capture the host's neutral face again from the next frames."""
        self.solver.calibrate()

    # -- the room -----------------------------------------------------------------------
    def set_state(self, state: RoomState) -> None:
        """The room's shade for the lips; a like goal turning reached starts a cheer (one
        per goal reached: a goal already reached when the effect starts does not)."""
        self._lips = _shade_hex(state)
        goal = state.like_goal
        key = (goal.target, goal.message) if goal is not None else None
        if goal is not None and goal.reached:
            if key != self._goal and self._state_seen:
                self.life.cheer_pending = True
            self._goal = key
        else:
            self._goal = None
        self._state_seen = True

    # -- per frame ----------------------------------------------------------------------
    def apply(self, frame: np.ndarray, scene: Scene) -> np.ndarray:
        rig = self.solver.update(scene)
        self.last_rig = rig
        params = self.life.params(rig, scene.timestamp)
        self.last_params = params
        h, w = frame.shape[:2]
        colours = {"lips": self._lips} if self._lips else None
        rect: tuple[float, float, float, float] | None
        if self.mode == "replace":
            np.copyto(frame, self._backdrop(scene, w, h))
            rect = self._replace_rect(w, h)
        else:
            self.last_background = "camera"
            rect = self._beside_rect(scene, w, h)
        if rect is None:
            self.last_box = None
            return frame
        if self.backend is not None and self.mode == "beside":
            sprite, x, y = self.renderer.sprite((w, h), rect, params, colours)
            self._frames += 1
            with Canvas(frame, self.backend) as canvas:
                canvas.sprite(sprite, x, y, 1.0, ("virtual_host", id(self)), self._frames)
            frame = canvas.frame
        else:
            self.renderer.composite(frame, rect, params, colours)
        box = Rect(round(rect[0]), round(rect[1]), round(rect[2]), round(rect[3]))
        self.last_box = box
        add_subject(scene, box)
        return frame

    def _replace_rect(self, w: int, h: int) -> tuple[float, float, float, float]:
        cw, ch = self.character.size
        height = min(REPLACE_HEIGHT * self.scale * h, 0.95 * w * ch / cw)
        width = height * cw / ch
        return ((w - width) / 2, h - height, width, height)

    def _beside_rect(self, scene: Scene, w: int, h: int
                     ) -> tuple[float, float, float, float] | None:
        """Beside the host: the preferred side first, then the other, each at shrinking
        sizes; None when every spot would cover a face. Moves glide over 0.3 s."""
        faces = [_pad_face(b) for b in scene.faces.boxes()]
        side = self.side
        if side == "auto":
            want = free_side(w, faces)
            if self._side is None or not faces:
                self._side = want if faces else (self._side or want)
            elif want != self._side:
                room = {"left": min(f.x for f in faces), "right": w - max(f.x2 for f in faces)}
                if room[want] > 1.3 * room[self._side]:
                    self._side = want
            side = self._side
        cw, ch = self.character.size
        margin = 0.02 * w
        target: tuple[float, float, float, float] | None = None
        for s in (side, "left" if side == "right" else "right"):
            for k in BESIDE_SHRINK:
                height = BESIDE_HEIGHT * self.scale * k * h
                width = height * cw / ch
                x = margin if s == "left" else w - margin - width
                r = (x, h - height, width, height)
                if not _covers(r, faces):
                    target = r
                    break
            if target is not None:
                break
        t = scene.timestamp
        if target is None:
            self._box = None
            return None
        if self._box is None or self._box_t is None:
            box = target
        else:
            k = min(1.0, max(0.0, t - self._box_t) / 0.3)
            a = self._box
            box = (a[0] + (target[0] - a[0]) * k, a[1] + (target[1] - a[1]) * k,
                   a[2] + (target[2] - a[2]) * k, a[3] + (target[3] - a[3]) * k)
            if _covers(box, faces):
                box = target
        self._box, self._box_t = box, t
        return box

    def _backdrop(self, scene: Scene, w: int, h: int) -> np.ndarray:
        """The picture behind the character in replace mode (never the camera's)."""
        if self.background == "green":
            self.last_background = "green"
            return np.broadcast_to(np.array(GREEN, np.uint8), (h, w, 3))
        if self.background == "room":
            got = scene.extras.get(PERSON_MASK)
            if isinstance(got, PersonMask) and got.plate.shape[:2] == (h, w):
                self.last_background = "room"
                return got.plate
            self.last_background = "studio (no room picture yet)"
        else:
            self.last_background = "studio"
        if self._studio is None or self._studio[0] != (w, h):
            self._studio = ((w, h), self._render_studio(w, h))
        return self._studio[1]

    def _render_studio(self, w: int, h: int) -> np.ndarray:
        if self._studio_renderer is None:
            self._studio_renderer = CharacterRenderer(load_character(STUDIO))
        r = self._studio_renderer
        sw, sh = r.character.size
        s = max(w / sw, h / sh)  # cover the frame, centred
        out = np.zeros((h, w, 3), np.uint8)
        r.composite(out, ((w - sw * s) / 2, (h - sh * s) / 2, sw * s, sh * s), {}, None, 0.0)
        out.setflags(write=False)
        return out

    def report(self) -> dict[str, Any]:
        """This frame's rig and drawing, for reports (``arengine tryon --report``)."""
        return {"rig": None if self.last_rig is None else self.last_rig.to_dict(),
                "tracked": round(self.life.tracked, 3),
                "box": None if self.last_box is None else
                [self.last_box.x, self.last_box.y, self.last_box.w, self.last_box.h],
                "background": self.last_background,
                "reactions": [k for k, _ in self.life.reactions]}


def _pad_face(box: np.ndarray) -> Rect:
    x1, y1, x2, y2 = (float(v) for v in box)
    fw, fh = x2 - x1, y2 - y1
    return Rect.from_xyxy((x1 - FACE_PAD * fw, y1 - 2 * FACE_PAD * fh, x2 + FACE_PAD * fw,
                           y2 + FACE_PAD * fh))


def _covers(rect: tuple[float, float, float, float], faces: list[Rect]) -> bool:
    r = Rect(math.floor(rect[0]), math.floor(rect[1]), math.ceil(rect[2]) + 1,
             math.ceil(rect[3]) + 1)
    return any(r.intersects(f) for f in faces)


def _shade_hex(state: RoomState) -> str | None:
    """The room's shade as "#RRGGBB" (the poll's winner arrives the same way)."""
    if state.shade_hex:
        return state.shade_hex
    if state.shade_id:
        from arengine.catalog import default_catalog

        try:
            return str(default_catalog().get(state.shade_id).hex)
        except Exception:
            return None
    return None


def characters() -> list[str]:
    """The characters a host can choose (one per file in ``assets/characters``)."""
    return character_names()
