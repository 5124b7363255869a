"""Likes: floating hearts for each recent like, and the like-goal progress bar.

Every time in ``RoomState.recent_likes`` becomes one heart that rises, sways and fades over
``life_s``. A heart's lane position, sway, size and colour come from hashing its like time,
so the same likes at the same scene times always draw the same picture, and a heart does
not jump when a newer snapshot arrives. Heart sprites are cached per (size, colour).

The goal bar ("1,234 / 5,000") eases toward the new count and switches to the goal's
message, in gold, once it is reached. Its card is cached and redrawn only when the text
changes; the fill is a per-frame rectangle.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence

import cv2
import numpy as np

from arengine.effects.base import Effect, register_effect
from arengine.effects.layout import Placer, Rect, StateClock, obstacles, reserve, ui_scale
from arengine.effects.vote_sticker import WINNER, _Tween, ease_out
from arengine.render.sprites import (
    Canvas,
    SpriteBackend,
    SpriteCache,
    SpriteVersions,
    from_mask,
    over,
    rounded_rect,
)
from arengine.render.text import TextRenderer, default_renderer
from arengine.state import LikeGoalView, RoomState
from arengine.types import Scene

BGR = tuple[int, int, int]
HEART_COLOURS: tuple[BGR, ...] = ((120, 60, 255), (80, 40, 230), (60, 150, 255),
                                  (230, 110, 190), (255, 170, 90))
SIZE_STEPS = 6  # heart sizes are quantized so the sprite cache stays small


def heart_mask(size: int) -> np.ndarray:
    """Anti-aliased heart coverage (float32 0..1), ``size`` pixels wide and high."""
    ss = 4  # supersampling for smooth edges
    n = size * ss
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    x = (xx + 0.5) / n * 2.5 - 1.25
    y = 1.3 - (yy + 0.5) / n * 2.45
    inside = (x * x + y * y - 1) ** 3 - x * x * y ** 3 <= 0
    return cv2.resize(inside.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)


def heart_sprite(size: int, bgr: BGR) -> np.ndarray:
    """A heart with a thin white rim, premultiplied BGRA."""
    m = heart_mask(size)
    rim = np.clip(m - cv2.erode(m, np.ones((3, 3), np.uint8)), 0, 1)
    return over(from_mask(m, bgr), from_mask(rim, (255, 255, 255), 0.8), 0, 0)


def _unit(seed: bytes, i: int) -> float:
    """The i-th pseudo-random number in [0, 1) for a seed (stable across runs)."""
    return hashlib.blake2b(seed, digest_size=8, person=bytes([i]) * 16).digest()[0] / 256.0


@register_effect("likes")
class Likes(Effect):
    """Hearts for recent likes plus the like-goal bar. Feed it with :meth:`set_state`."""

    def __init__(self, scale: float = 1.0, life_s: float = 2.5, max_hearts: int = 40,
                 lane_width: float = 0.16, rise: float = 0.55, show_goal: bool = True,
                 hearts: bool = True, ease_s: float = 0.3,
                 lane_anchors: Sequence[str] = ("bottom-right", "bottom-left"),
                 goal_anchors: Sequence[str] = ("top-left", "top-right", "top",
                                                "bottom-left", "bottom-right"),
                 goal_label: str = "Like goal", text: TextRenderer | None = None,
                 backend: SpriteBackend | None = None) -> None:
        if life_s <= 0:
            raise ValueError(f"life_s must be positive, got {life_s}")
        if max_hearts < 0:
            raise ValueError(f"max_hearts must be >= 0, got {max_hearts}")
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.scale = scale
        self.life_s = life_s
        self.max_hearts = max_hearts
        self.lane_width = lane_width
        self.rise = rise
        self.show_goal = show_goal
        self.hearts = hearts
        self.ease_s = ease_s
        self.goal_label = goal_label
        self.text = text or default_renderer()
        self.backend = backend  # a render backend to draw through (GPU), or None: in place
        self._keys = SpriteVersions("likes")
        self.lane = Placer(lane_anchors, slide_steps=0)
        self.goal_placer = Placer(goal_anchors)
        self._clock = StateClock()
        self._sprites: SpriteCache[np.ndarray] = SpriteCache(64)
        self._cards: SpriteCache[tuple[np.ndarray, Rect, tuple[int, int], int]] = \
            SpriteCache(8)
        self._advances: dict[tuple[str, int], int] = {}
        self._goal_tween = _Tween(0.0)
        self._goal_key: tuple[int, str] | None = None
        self.last_goal_rect: Rect | None = None
        self.last_goal_bar: Rect | None = None  # the bar's full track, frame pixels
        self.last_hearts: list[tuple[float, int, int]] = []  # (like time, x, y) drawn

    def set_state(self, state: RoomState) -> None:
        """Swap in the latest room snapshot (atomic; called from any thread)."""
        self._clock.set_state(state)

    def apply(self, frame: np.ndarray, scene: Scene) -> np.ndarray:
        state, now = self._clock.read(scene.timestamp)
        self.last_goal_rect = self.last_goal_bar = None
        self.last_hearts = []
        if state is None:
            return frame
        u = ui_scale(frame.shape[1], frame.shape[0], self.scale)
        with Canvas(frame, self.backend) as canvas:
            if self.show_goal and state.like_goal is not None:
                self._draw_goal(canvas, scene, state.like_goal, u)
            if self.hearts and state.recent_likes:
                self._draw_hearts(canvas, scene, state.recent_likes, now, u)
        return canvas.frame

    # -- hearts -------------------------------------------------------------------------
    def heart_params(self, like_time: float, nth: int) -> tuple[float, float, float, float,
                                                                int]:
        """(lane offset -1..1, sway amplitude 0..1, sway phase, size 0..1, colour index)."""
        seed = struct.pack("<dI", like_time, nth)
        return (_unit(seed, 0) * 2 - 1, 0.3 + 0.7 * _unit(seed, 1),
                _unit(seed, 2) * 2 * math.pi, _unit(seed, 3),
                int(_unit(seed, 4) * len(HEART_COLOURS)))

    def _heart(self, size: int, colour: int) -> np.ndarray:
        return self._sprites.get((size, colour),
                                 lambda: heart_sprite(size, HEART_COLOURS[colour]))

    def _draw_hearts(self, canvas: Canvas, scene: Scene, likes: Sequence[float],
                     now: float, u: float) -> None:
        h, w = canvas.frame.shape[:2]
        lane_w = max(20, round(self.lane_width * h))
        lane_h = round(self.rise * h)
        # Hearts are fleeting and see-through: they may cross other panels, not faces.
        lane = self.lane.place(lane_w, lane_h, w, h, obstacles(scene, reserved=False))
        alive = sorted(t for t in likes if 0.0 <= now - t < self.life_s)[-self.max_hearts:]
        seen: dict[float, int] = {}
        base = max(12, round(26 * u))
        for t_like in alive:
            nth = seen.get(t_like, 0)
            seen[t_like] = nth + 1
            off, amp, phase, sz, colour = self.heart_params(t_like, nth)
            k = (now - t_like) / self.life_s
            step = int(sz * SIZE_STEPS)
            pop = min(1.0, ease_out(k / 0.12))  # a quick pop-in
            size = max(6, round(base * (1 + step / SIZE_STEPS * 0.7) * (0.5 + 0.5 * pop)))
            size -= size % 2
            sprite = self._heart(size, colour)
            cx = lane.x + lane_w / 2 + off * (lane_w - size) / 2 * 0.6 \
                + amp * (lane_w - size) / 2 * 0.4 * math.sin(phase + k * 2 * math.pi * 1.2)
            cy = lane.y2 - size / 2 - ease_out(k) * (lane_h - size)
            alpha = 1.0 if k < 0.6 else max(0.0, 1.0 - (k - 0.6) / 0.4)
            x, y = round(cx - size / 2), round(cy - size / 2)
            canvas.sprite(sprite, x, y, alpha, key=("heart", size, colour))
            self.last_hearts.append((t_like, x, y))

    # -- goal bar -----------------------------------------------------------------------
    def _draw_goal(self, canvas: Canvas, scene: Scene, goal: LikeGoalView,
                   u: float) -> None:
        if goal.target <= 0:
            return
        h, w = canvas.frame.shape[:2]
        reached = goal.reached or goal.count >= goal.target
        share = 1.0 if reached else min(max(goal.count / goal.target, 0.0), 1.0)
        t = scene.timestamp
        key = (goal.target, goal.message)
        if key != self._goal_key:  # a new goal starts from its own count, not the old bar
            self._goal_key = key
            self._goal_tween = _Tween(share)
        self._goal_tween.set(share, t, self.ease_s)
        card, bar, text_at, px = self.goal_card(goal, reached, u)
        rect = self.goal_placer.place(card.shape[1], card.shape[0], w, h, obstacles(scene))
        self.last_goal_rect = rect
        reserve(scene, rect)
        canvas.sprite(card, rect.x, rect.y, 1.0, *self._keys.key("goal", card))
        if not reached:
            # The count changes with every like: drawn from cached pieces (label, each
            # digit, target) instead of re-rendering the card.
            x = rect.x + text_at[0]
            for piece in (f"{self.goal_label}  ", *f"{goal.count:,}", f" / {goal.target:,}"):
                sprite = self.text.render(piece, px, (255, 255, 255), "bold")
                canvas.sprite(sprite, x - 1, rect.y + text_at[1],  # 1 px pad
                              key=("text-bold", piece, px))
                x += self._advance(piece, px)
        fill = round(bar.w * min(max(self._goal_tween.value(t, self.ease_s), 0.0), 1.0))
        self.last_goal_bar = bar.moved(rect.x, rect.y)
        b = self.last_goal_bar
        canvas.rect(b.x, b.y, fill, b.h, WINNER if reached else HEART_COLOURS[0])

    def _advance(self, piece: str, px: int) -> int:
        key = (piece, px)
        adv = self._advances.get(key)
        if adv is None:
            if len(self._advances) > 512:
                self._advances.clear()
            adv = self._advances[key] = self.text.measure(piece, px, "bold")
        return adv

    def goal_card(self, goal: LikeGoalView, reached: bool, u: float
                  ) -> tuple[np.ndarray, Rect, tuple[int, int], int]:
        """The cached goal card, its bar's track, where the count line goes, its size.

        Before the goal is reached the card holds no count (drawn per frame); after, it
        holds the goal's message.
        """
        key = (goal.target, goal.message if reached else None, reached, round(u, 3))
        return self._cards.get(key, lambda: self._render_goal(goal, reached, u))

    def _render_goal(self, goal: LikeGoalView, reached: bool, u: float
                     ) -> tuple[np.ndarray, Rect, tuple[int, int], int]:
        pad = max(5, round(10 * u))
        icon = max(12, round(22 * u))
        px = max(13, round(17 * u))
        width = round(300 * u)
        inner = width - 2 * pad - icon - pad // 2
        text = None
        if reached:
            text = self.text.render(goal.message or f"{goal.target:,}!", px, (120, 230, 255),
                                    "bold", max_width=inner, max_lines=2)
        text_h = text.shape[0] if text is not None else sum(self.text.metrics(px, "bold"))
        bar_h = max(5, round(9 * u))
        height = pad + max(text_h, icon) + pad // 2 + bar_h + pad
        card = rounded_rect(height, width, 12 * u, (40, 24, 30), 0.78,
                            border=max(1.0, 2 * u),
                            border_bgr=WINNER if reached else HEART_COLOURS[0])
        over(card, heart_sprite(icon, HEART_COLOURS[0]), pad,
             pad + (max(text_h, icon) - icon) // 2)
        text_at = (pad + icon + pad // 2, pad)
        if text is not None:
            over(card, text, *text_at)
        bar = Rect(pad, height - pad - bar_h, width - 2 * pad, bar_h)
        over(card, rounded_rect(bar.h, bar.w, bar.h / 2, (255, 255, 255), 0.18), bar.x, bar.y)
        return card, bar, text_at, px
