"""Viewer avatars: the latest active viewers beside the host, with their latest comment.

A viewer shows up (sliding and fading in over ``entry_s``) when they join, comment or vote
(``ViewerView.last_active``). At most ``max_visible`` are shown, newest at the bottom; when
a new one arrives the oldest fades out and the others glide up. Each viewer is one cached
sprite (avatar disc, name, speech bubble) re-rendered only when their name, comment or
picture changes, so a frame costs one blend per visible viewer.

Newcomers enter at a paced rate (``entries_per_s``, a bucket of ``max_visible``, so a
fresh room shows its column at once). Unpaced, a storm of 1,000 viewer actions a second
brought a whole new column every frame: twelve rows rendered per frame took 57% of the
effects thread, the room fell from 30 to 19 fps, and no name stayed long enough to read.

Avatars are the viewer's uploaded picture (decoded once, centre-cropped to a disc, cached by
id and content) or generated from the id: a colour picked by hashing the id, with initials.
The column goes on the side of the frame with more room beside the faces and skips around
faces, raised hands and panels drawn earlier in the frame.
"""

from __future__ import annotations

import colorsys
import hashlib
import heapq
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from arengine.effects.base import Effect, register_effect
from arengine.effects.layout import Rect, StateClock, free_side, obstacles, reserve, ui_scale
from arengine.effects.vote_sticker import _Tween, ease_out
from arengine.render.sprites import (
    Canvas,
    SpriteBackend,
    SpriteCache,
    SpriteVersions,
    circle_crop,
    circle_mask,
    from_mask,
    over,
    rounded_rect,
)
from arengine.render.text import TextRenderer, default_renderer
from arengine.state import RoomState, ViewerView
from arengine.types import Scene

Side = Literal["auto", "left", "right"]


def avatar_colour(viewer_id: str) -> tuple[int, int, int]:
    """A pleasant BGR colour derived from the id (same id, same colour, on every machine)."""
    h = hashlib.sha1(viewer_id.encode("utf-8")).digest()
    hue = h[0] / 255.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.55 + h[1] / 255.0 * 0.2, 0.78)
    return round(b * 255), round(g * 255), round(r * 255)


def initials(name: str) -> str:
    """One or two letters for a generated avatar: "Mai Anh" -> "MA", "王小明" -> "王"."""
    words = [w for w in name.split() if w]
    if not words:
        return "?"
    first = _first_letter(words[0])
    if not first.isascii() or not first.isalpha():
        return first  # CJK, Thai...: one character reads best
    second = _first_letter(words[1]) if len(words) > 1 else ""
    return (first + (second if second.isascii() and second.isalpha() else "")).upper()


def _first_letter(word: str) -> str:
    for ch in word:
        if unicodedata.category(ch)[0] in "LN":
            return ch
    return word[0]


def decode_avatar(data: bytes) -> np.ndarray | None:
    """Uploaded picture bytes to a BGR image, or None if they are not a readable image."""
    if not data:
        return None
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return img if img is not None and img.size else None


@dataclass
class _Shown:
    """A viewer on screen: when they came in and where their row is heading."""

    entered: float  # room time the entry animation starts
    y: _Tween
    sprite: np.ndarray
    rect: Rect | None = None
    leaving_since: float | None = None


@register_effect("avatars")
class Avatars(Effect):
    """Draws the room's active viewers. Feed it snapshots with :meth:`set_state`."""

    def __init__(self, max_visible: int = 12, scale: float = 1.0, side: Side = "auto",
                 entry_s: float = 0.3, linger_s: float | None = None,
                 bubble_width: float = 0.36, show_comments: bool = True, columns: int = 2,
                 entries_per_s: float = 4.0, text: TextRenderer | None = None,
                 backend: SpriteBackend | None = None) -> None:
        if max_visible < 1:
            raise ValueError(f"max_visible must be at least 1, got {max_visible}")
        if side not in ("auto", "left", "right"):
            raise ValueError(f"side must be 'auto', 'left' or 'right', not {side!r}")
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if columns < 1:
            raise ValueError(f"columns must be at least 1, got {columns}")
        if not entries_per_s > 0:
            raise ValueError(f"entries_per_s must be positive, got {entries_per_s}")
        self.max_visible = max_visible
        self.columns = columns
        self.scale = scale
        self.side = side
        self.entry_s = entry_s
        self.linger_s = linger_s
        self.bubble_width = bubble_width
        self.show_comments = show_comments
        self.entries_per_s = entries_per_s
        self.text = text or default_renderer()
        self.backend = backend  # a render backend to draw through (GPU), or None: in place
        self._keys = SpriteVersions("avatars")
        self._clock = StateClock()
        self._rows: SpriteCache[np.ndarray] = SpriteCache(4 * max_visible + 16)
        self._pictures: SpriteCache[np.ndarray] = SpriteCache(4 * max_visible + 16)
        self._shown: dict[str, _Shown] = {}
        self._side: str | None = None
        self.last_rects: dict[str, Rect] = {}  # viewer id -> where drawn last frame
        self._members: dict[str, ViewerView] = {}  # the column (not leaving), last seen
        self._entries = float(max_visible)  # the entry bucket
        self._entries_at: float | None = None  # room time it was last filled

    def set_state(self, state: RoomState) -> None:
        """Swap in the latest room snapshot (atomic; called from any thread)."""
        self._clock.set_state(state)

    def visible(self, state: RoomState, now: float) -> list[ViewerView]:
        """The viewers to show, newest first: the ``max_visible`` most recently active."""
        viewers = (v for v in state.viewers if self.linger_s is None
                   or now - v.last_active <= self.linger_s)
        # a pick, not a sort: every frame, among up to 500 viewers
        return heapq.nsmallest(self.max_visible, viewers, key=lambda v: (-v.last_active, v.id))

    def members(self, state: RoomState, now: float) -> list[ViewerView]:
        """The column this frame, newest first: last frame's, with newcomers let in at the
        paced rate, each in place of the least recently active."""
        if self._entries_at is not None:
            self._entries = min(float(self.max_visible), self._entries
                                + max(0.0, now - self._entries_at) * self.entries_per_s)
        self._entries_at = now
        seen = {v.id: v for v in state.viewers if v.id in self._members}
        # A snapshot holds only the most recently active viewers (viewer_count has all):
        # then a member missing from it is still in the room, not gone.
        truncated = state.viewer_count > len(state.viewers)
        column = [v for vid, last in self._members.items()
                  if (v := seen.get(vid, last if truncated else None)) is not None
                  and (self.linger_s is None or now - v.last_active <= self.linger_s)]
        inside = {v.id for v in column}
        for v in self.visible(state, now):  # newest first
            if v.id in inside:
                continue
            if self._entries < 1:
                break
            if len(column) >= self.max_visible:
                oldest = max(column, key=lambda m: (-m.last_active, m.id))
                if (-v.last_active, v.id) >= (-oldest.last_active, oldest.id):
                    break  # not newer than anyone shown: neither is the rest
                column.remove(oldest)
            column.append(v)
            self._entries -= 1
        column.sort(key=lambda v: (-v.last_active, v.id))
        self._members = {v.id: v for v in column}
        return column

    # -- per frame ----------------------------------------------------------------------
    def apply(self, frame: np.ndarray, scene: Scene) -> np.ndarray:
        state, now = self._clock.read(scene.timestamp)
        self.last_rects = {}
        if state is None:
            return frame
        h, w = frame.shape[:2]
        u = ui_scale(w, h, self.scale)
        viewers = self.members(state, now)
        ids = {v.id for v in viewers}
        t = scene.timestamp
        glide = self.entry_s * 0.8

        for vid, shown in list(self._shown.items()):
            if vid in ids:
                if shown.leaving_since is not None:  # came back: enter again
                    del self._shown[vid]
            elif shown.leaving_since is None:
                shown.leaving_since = now
            elif now - shown.leaving_since >= self.entry_s:
                del self._shown[vid]

        keep_out = obstacles(scene)
        faces = [Rect.from_xyxy(b) for b in scene.faces.boxes()]
        side = self._choose_side(w, faces)
        margin = round(0.02 * h)
        bottom = h - margin
        y = bottom
        column, offset, column_w = 0, 0, 0
        for v in viewers:  # newest first, stacked upward from the bottom
            sprite = self.row(v, u, side == "right")
            sh, sw = sprite.shape[:2]
            while True:
                x = margin + offset if side == "left" else w - margin - offset - sw
                y_top = self._free_y(Rect(x, y - sh, sw, sh), keep_out, margin)
                if y_top is not None or column >= self.columns - 1:
                    break
                # This column is full: start the next one further in, from the bottom.
                column, offset, y = column + 1, offset + column_w + round(10 * u), bottom
            known = self._shown.get(v.id)
            if known is None:
                tween = _Tween(float(y_top if y_top is not None else y - sh))
                tween.start_time = t
                known = _Shown(entered=min(v.last_active, now), y=tween, sprite=sprite)
                self._shown[v.id] = known
            shown = known
            shown.sprite = sprite
            if y_top is None:  # no room left: the oldest are not drawn
                shown.rect = None
                continue
            shown.y.set(float(y_top), t, glide)
            shown.rect = Rect(x, y_top, sw, sh)
            column_w = max(column_w, sw)
            y = y_top - round(4 * u)

        with Canvas(frame, self.backend) as canvas:
            self._draw(canvas, scene, now, t, side, glide)
        return canvas.frame

    def _draw(self, canvas: Canvas, scene: Scene, now: float, t: float, side: str,
              glide: float) -> None:
        for vid, shown in self._shown.items():
            if shown.rect is None:
                continue
            if shown.leaving_since is not None:
                alpha = 1.0 - (now - shown.leaving_since) / max(self.entry_s, 1e-6)
                dx = 0
                yy = shown.rect.y
            else:
                p = ease_out((now - shown.entered) / self.entry_s if self.entry_s > 0 else 1.0)
                alpha = p
                slide = round((1.0 - p) * 0.5 * shown.rect.w)
                dx = -slide if side == "left" else slide
                yy = round(shown.y.value(t, glide))
            if alpha <= 0:
                continue
            x = shown.rect.x + dx
            canvas.sprite(shown.sprite, x, yy, min(alpha, 1.0),
                          *self._keys.key(vid, shown.sprite))
            drawn = Rect(x, yy, shown.rect.w, shown.rect.h)
            self.last_rects[vid] = drawn
            reserve(scene, drawn)

    def _choose_side(self, width: int, faces: Sequence[Rect]) -> str:
        if self.side != "auto":
            return self.side
        want = free_side(width, faces)
        if self._side is None or not faces:
            self._side = want
        elif want != self._side:
            room = {"left": min(f.x for f in faces),
                    "right": width - max(f.x2 for f in faces)}
            if room[want] > 1.3 * room[self._side]:  # hysteresis: no flip-flopping
                self._side = want
        return self._side

    @staticmethod
    def _free_y(rect: Rect, keep_out: Sequence[Rect], margin: int) -> int | None:
        """The lowest top y at or above ``rect.y`` where the row is clear (None: no room)."""
        r = rect
        while r.y >= margin:
            hits = [k for k in keep_out if r.intersects(k)]
            if not hits:
                return r.y
            r = Rect(r.x, min(k.y for k in hits) - r.h - 1, r.w, r.h)
        return None

    # -- sprites ------------------------------------------------------------------------
    def row(self, v: ViewerView, u: float, mirrored: bool = False) -> np.ndarray:
        """The cached sprite of one viewer: avatar, name and (optional) speech bubble.

        ``mirrored`` puts the avatar on the right (for a column at the right edge).
        """
        comment = v.last_comment if self.show_comments else None
        pic = hashlib.sha1(v.avatar).hexdigest() if v.avatar else None
        key = (v.id, v.name, comment, pic, round(u, 3), mirrored)
        return self._rows.get(key, lambda: self._render_row(v, comment, pic, u, mirrored))

    def picture(self, v: ViewerView, d: int, digest: str | None) -> np.ndarray:
        """The viewer's avatar disc of diameter ``d`` (uploaded or generated), cached."""
        return self._pictures.get((v.id, digest, v.name, d),
                                  lambda: self._render_picture(v, d))

    def _render_picture(self, v: ViewerView, d: int) -> np.ndarray:
        img = decode_avatar(v.avatar) if v.avatar else None
        if img is not None:
            disc = circle_crop(img, d)
        else:
            disc = from_mask(circle_mask(d), avatar_colour(v.id))
            letters = self.text.render(initials(v.name), max(8, round(d * 0.42)),
                                       (255, 255, 255), "bold")
            over(disc, letters, (d - letters.shape[1]) // 2, (d - letters.shape[0]) // 2)
        ring = np.clip(circle_mask(d) - np.pad(circle_mask(d - 4), 2), 0, 1)
        return over(disc, from_mask(ring, (255, 255, 255), 0.95), 0, 0)

    def _render_row(self, v: ViewerView, comment: str | None, digest: str | None,
                    u: float, mirrored: bool) -> np.ndarray:
        d = max(20, round(36 * u))
        gap = max(3, round(6 * u))
        name_px = max(12, round(15 * u))
        text_px = max(12, round(15 * u))
        pic = self.picture(v, d, digest)
        name = self.text.render(v.name, name_px, (255, 255, 255), "bold",
                                stroke=max(1, round(2 * u)), stroke_colour=(30, 30, 30),
                                max_width=round(220 * u))
        bubble = None
        if comment:
            pad = max(3, round(6 * u))
            words = self.text.render(comment, text_px, (40, 40, 40),
                                     max_width=round(self.bubble_width * 720 * u))
            bubble = rounded_rect(words.shape[0] + pad // 2, words.shape[1] + 2 * pad,
                                  (words.shape[0] + pad // 2) / 2, (255, 255, 255), 0.92)
            over(bubble, words, pad, pad // 4)
        right_w = max(name.shape[1], bubble.shape[1] if bubble is not None else 0)
        right_h = name.shape[0] + (bubble.shape[0] if bubble is not None else 0)
        h = max(d, right_h)
        width = d + gap + right_w
        out = np.zeros((h, width, 4), np.uint8)
        ty = (h - right_h) // 2
        if mirrored:
            over(out, pic, width - d, (h - d) // 2)
            over(out, name, right_w - name.shape[1], ty)
            if bubble is not None:
                over(out, bubble, right_w - bubble.shape[1], ty + name.shape[0])
        else:
            over(out, pic, 0, (h - d) // 2)
            over(out, name, d + gap, ty)
            if bubble is not None:
                over(out, bubble, d + gap, ty + name.shape[0])
        return out
