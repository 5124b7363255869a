"""Vote sticker: the open poll as an on-screen card with live bars and a countdown.

The card (question, option labels and swatches, percentages, counts, total, countdown) is
rendered into one cached sprite that is redrawn only when one of its texts changes - at
most once a second while the countdown runs, and when votes arrive. The bars are the only
thing drawn every frame: plain rectangles whose length eases toward the new share over
``ease_s`` (driven by ``scene.timestamp``, so the same frames give the same pictures).

The card scales with the frame height (readable at 480p) and is placed by
:class:`~arengine.effects.layout.Placer` so it never covers a face or a raised hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from arengine.effects.base import Effect, register_effect
from arengine.effects.layout import Placer, Rect, StateClock, obstacles, reserve, ui_scale
from arengine.render.sprites import (
    Canvas,
    SpriteBackend,
    SpriteCache,
    SpriteVersions,
    circle_mask,
    from_mask,
    hex_to_bgr,
    over,
    rounded_rect,
)
from arengine.render.text import TextRenderer, default_renderer
from arengine.state import PollView, RoomState
from arengine.types import Scene

BGR = tuple[int, int, int]
ACCENT: BGR = (180, 105, 255)  # pink
WINNER: BGR = (0, 200, 255)  # gold
DEFAULT_LABELS = {"votes": "votes", "closed": "Poll closed", "winner": "WINNER",
                  "ends_in": "ends in"}


def ease_out(t: float) -> float:
    """Cubic ease-out: fast start, gentle landing; 0 -> 0, 1 -> 1."""
    t = min(max(t, 0.0), 1.0)
    return 1.0 - (1.0 - t) ** 3


def countdown_text(seconds: float) -> str:
    """Remaining time as mm:ss (rounded up, so "00:00" shows only at the end)."""
    s = max(0, int(np.ceil(max(seconds, 0.0) - 1e-9)))
    return f"{s // 60:02d}:{s % 60:02d}"


@dataclass(frozen=True)
class StickerLayout:
    """Where things are inside the card (pixels, card coordinates)."""

    width: int
    height: int
    bars: tuple[Rect, ...]  # the full-length track of each option's bar
    rows: tuple[Rect, ...]  # each option's row (label + bar)
    info: tuple[int, int]  # top-left of the status line (countdown, total votes)
    info_px: int  # its font size
    values: tuple[tuple[int, int], ...]  # per option: right edge and top of "45%  (12)"
    value_px: int


class _Tween:
    """One eased value: restarts from where it is whenever the target changes."""

    def __init__(self, value: float = 0.0) -> None:
        self.start_value = value
        self.target = value
        self.start_time = 0.0

    def set(self, target: float, now: float, duration: float) -> None:
        if target != self.target:
            self.start_value = self.value(now, duration)
            self.target = target
            self.start_time = now

    def value(self, now: float, duration: float) -> float:
        if duration <= 0:
            return self.target
        k = ease_out((now - self.start_time) / duration)
        return self.start_value + (self.target - self.start_value) * k


@register_effect("vote_sticker")
class VoteSticker(Effect):
    """Draws the room's poll. Feed it snapshots with :meth:`set_state`."""

    def __init__(self, scale: float = 1.0, width: float = 0.5,
                 anchors: Sequence[str] = ("top-right", "top-left", "bottom-right",
                                           "bottom-left", "right", "left"),
                 ease_s: float = 0.3, fade_s: float = 0.3, hide_after_close_s: float = 15.0,
                 accent: str | None = None, opacity: float = 0.92,
                 labels: dict[str, str] | None = None,
                 text: TextRenderer | None = None,
                 backend: SpriteBackend | None = None) -> None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if not 0.1 <= width <= 1.0:
            raise ValueError(f"width (a fraction of the frame height) must be 0.1..1, "
                             f"got {width}")
        self.scale = scale
        self.width = width
        self.ease_s = ease_s
        self.fade_s = fade_s
        self.hide_after_close_s = hide_after_close_s
        self.accent = hex_to_bgr(accent) if accent else ACCENT
        self.opacity = opacity
        self.labels = {**DEFAULT_LABELS, **(labels or {})}
        self.text = text or default_renderer()
        self.backend = backend  # a render backend to draw through (GPU), or None: in place
        self._keys = SpriteVersions("vote_sticker")
        self.placer = Placer(anchors)
        self._clock = StateClock()
        self._cache: SpriteCache[tuple[np.ndarray, StickerLayout]] = SpriteCache(8)
        self._poll_id: str | None = None
        self._tweens: list[_Tween] = []
        self._closed_seen: float | None = None
        self._advances: dict[tuple[str, int], int] = {}
        self.last_rect: Rect | None = None  # where the card was drawn last (frame pixels)
        self.last_layout: StickerLayout | None = None  # its inside (card pixels)

    def set_state(self, state: RoomState) -> None:
        """Swap in the latest room snapshot (atomic; called from any thread)."""
        self._clock.set_state(state)

    # -- per frame ----------------------------------------------------------------------
    def apply(self, frame: np.ndarray, scene: Scene) -> np.ndarray:
        state, now = self._clock.read(scene.timestamp)
        poll = state.poll if state is not None else None
        self.last_rect = None
        self.last_layout = None
        if poll is None or not poll.options:
            self._poll_id = None
            return frame
        t = scene.timestamp
        if poll.id != self._poll_id:
            self._poll_id = poll.id
            self._tweens = [_Tween(0.0) for _ in poll.options]
            self._closed_seen = None
        if len(self._tweens) != len(poll.options):
            self._tweens = [_Tween(0.0) for _ in poll.options]
        closed = poll.closed or now >= poll.closes_at
        if closed and self._closed_seen is None:
            self._closed_seen = now
        elif not closed:
            self._closed_seen = None
        # Fading only; the card's own see-through opacity is baked into its sprite.
        alpha = ease_out((now - poll.opened_at) / self.fade_s if self.fade_s > 0 else 1.0)
        if self._closed_seen is not None and self.hide_after_close_s >= 0:
            left = self._closed_seen + self.hide_after_close_s - now
            if left <= 0:
                return frame
            if self.fade_s > 0:
                alpha *= min(1.0, left / self.fade_s)
        if alpha <= 0:
            return frame

        h = frame.shape[0]
        u = ui_scale(frame.shape[1], h, self.scale)
        total = poll.total_votes
        shares = [o.votes / total if total else 0.0 for o in poll.options]
        for tw, s in zip(self._tweens, shares, strict=True):
            tw.set(s, t, self.ease_s)
        winner = self._winner(poll) if closed else None
        sprite, lay = self.card(poll, u, closed, winner)
        room_h, room_w = 0.9 * h, 0.95 * frame.shape[1]
        if lay.height > room_h or lay.width > room_w:  # many options on a small frame
            u *= min(room_h / lay.height, room_w / lay.width)
            sprite, lay = self.card(poll, u, closed, winner)
        # The status line changes every second: it is drawn per frame from cached pieces
        # (prefix, each digit, suffix), so neither the card nor any text is re-rendered
        # as the countdown runs.
        if closed:
            pieces = [self.labels["closed"]]
        else:
            pieces = [self.labels["ends_in"] + " ",
                      *countdown_text(poll.closes_at - now)]
        pieces.append(f"  ·  {total} {self.labels['votes']}")

        rect = self.placer.place(lay.width, lay.height, frame.shape[1], h, obstacles(scene))
        self.last_rect, self.last_layout = rect, lay
        reserve(scene, rect)
        grey = (200, 200, 200)
        with Canvas(frame, self.backend) as canvas:
            canvas.sprite(sprite, rect.x, rect.y, alpha, *self._keys.key("card", sprite))
            x = rect.x + lay.info[0]
            for piece in pieces:
                text = self.text.render(piece, lay.info_px, grey)
                canvas.sprite(text, x - 1, rect.y + lay.info[1], alpha,  # 1 px pad
                              key=("text", piece, lay.info_px, grey))
                x += self._advance(piece, lay.info_px)
            white = (255, 255, 255)
            for opt, (right, top) in zip(poll.options, lay.values, strict=True):
                pct = round(100 * opt.votes / total) if total else 0
                value = f"{pct}%  ({opt.votes})"
                text = self.text.render(value, lay.value_px, white, "bold")
                canvas.sprite(text, rect.x + right - text.shape[1] + 1, rect.y + top, alpha,
                              key=("text-bold", value, lay.value_px))
            for i, (bar, tw) in enumerate(zip(lay.bars, self._tweens, strict=True)):
                length = round(bar.w * min(max(tw.value(t, self.ease_s), 0.0), 1.0))
                canvas.rect(rect.x + bar.x, rect.y + bar.y, length, bar.h,
                            self._bar_colour(poll, i, winner), alpha)
        return canvas.frame

    def _advance(self, piece: str, px: int) -> int:
        key = (piece, px)
        adv = self._advances.get(key)
        if adv is None:
            if len(self._advances) > 512:  # vote totals keep changing: stay bounded
                self._advances.clear()
            adv = self._advances[key] = self.text.measure(piece, px)
        return adv

    @staticmethod
    def _winner(poll: PollView) -> int | None:
        if poll.winner is not None and 0 <= poll.winner < len(poll.options):
            return poll.winner
        votes = [o.votes for o in poll.options]
        if not any(votes):
            return None
        best = max(votes)
        return votes.index(best) if votes.count(best) == 1 else None

    def _bar_colour(self, poll: PollView, i: int, winner: int | None) -> BGR:
        if winner is not None and i == winner:
            return WINNER
        sw = poll.options[i].swatch_hex
        if sw:
            try:
                return hex_to_bgr(sw)
            except ValueError:
                pass
        return self.accent

    # -- the card -----------------------------------------------------------------------
    def card(self, poll: PollView, u: float, closed: bool,
             winner: int | None) -> tuple[np.ndarray, StickerLayout]:
        """The cached card sprite (all but the texts that change with votes and time) and
        its layout: it is redrawn only when the poll itself changes or closes."""
        digits = len(str(max(o.votes for o in poll.options)))  # widens at 10, 100...
        key = (poll.question, tuple((o.label, o.swatch_hex) for o in poll.options),
               round(u, 3), closed, winner, digits)
        return self._cache.get(key, lambda: self._render_card(poll, u, closed, winner,
                                                              digits))

    def _render_card(self, poll: PollView, u: float, closed: bool, winner: int | None,
                     digits: int) -> tuple[np.ndarray, StickerLayout]:
        tr = self.text
        title_px = max(14, round(24 * u))
        body_px = max(13, round(20 * u))
        small_px = max(12, round(16 * u))
        pad = max(6, round(14 * u))
        gap = max(3, round(6 * u))
        bar_h = max(5, round(10 * u))
        sw_d = max(10, round(18 * u))
        w = round(self.width * 720 * u)
        inner = w - 2 * pad

        parts: list[tuple[np.ndarray, int, int]] = []  # (sprite, x, y)
        y = pad
        q = tr.render(poll.question, title_px, (255, 255, 255), "bold", max_width=inner,
                      max_lines=2)
        parts.append((q, pad, y))
        y += q.shape[0] + gap
        info_at = (pad, y)
        y += sum(tr.metrics(small_px)) + gap  # the status line goes here, drawn per frame

        # Percentages and counts change with every vote: drawn per frame (one cached text
        # each), right-aligned in a column wide enough for "100%  (" + the count's digits.
        value_w = tr.measure(f"100%  ({'8' * digits})", body_px, "bold") + 2
        value_h = sum(tr.metrics(body_px, "bold"))
        values: list[tuple[int, int]] = []
        bars: list[Rect] = []
        rows: list[Rect] = []
        highlight: Rect | None = None
        for i, opt in enumerate(poll.options):
            row_top = y
            x = pad
            swatch = None
            if opt.swatch_hex:
                try:
                    swatch = hex_to_bgr(opt.swatch_hex)
                except ValueError:
                    swatch = None
            is_win = winner is not None and i == winner
            badge = (tr.render(self.labels["winner"], small_px, (0, 0, 0), "bold")
                     if is_win else None)
            label_w = inner - value_w - gap - (sw_d + gap if swatch else 0) \
                - (badge.shape[1] + 2 * gap if badge is not None else 0)
            label = tr.render(opt.label, body_px, (255, 255, 255), "bold" if is_win else
                              "regular", max_width=max(label_w, body_px))
            line_h = max(label.shape[0], value_h)
            if swatch is not None:
                parts.append((_swatch(sw_d, swatch), x, y + (line_h - sw_d) // 2))
                x += sw_d + gap
            parts.append((label, x, y + (line_h - label.shape[0]) // 2))
            if badge is not None:
                bx = x + label.shape[1] + gap
                pill = rounded_rect(badge.shape[0], badge.shape[1] + 2 * gap,
                                    badge.shape[0] / 2, WINNER)
                over(pill, badge, gap, 0)
                parts.append((pill, bx, y + (line_h - badge.shape[0]) // 2))
            values.append((w - pad, y + (line_h - value_h) // 2))
            y += line_h
            bar = Rect(pad, y, inner, bar_h)
            bars.append(bar)
            y += bar_h + gap * 2
            rows.append(Rect(pad, row_top, inner, y - row_top - gap))
            if is_win:
                highlight = Rect(pad // 2, row_top - gap // 2, w - pad, y - row_top)
        height = y + pad - gap

        card = rounded_rect(height, w, 14 * u, (40, 24, 30), 0.78,
                            border=max(1.0, 2 * u), border_bgr=self.accent)
        if highlight is not None:
            glow = rounded_rect(highlight.h, highlight.w, 8 * u, WINNER, 0.25,
                                border=max(1.0, 2 * u), border_bgr=WINNER)
            over(card, glow, highlight.x, highlight.y)
        for bar in bars:
            over(card, rounded_rect(bar.h, bar.w, bar.h / 2, (255, 255, 255), 0.18),
                 bar.x, bar.y)
        for sprite, px, py in parts:
            over(card, sprite, px, py)
        if self.opacity < 1.0:
            card = np.rint(card * self.opacity).astype(np.uint8)
        return card, StickerLayout(w, height, tuple(bars), tuple(rows), info_at, small_px,
                                   tuple(values), body_px)


def _swatch(d: int, bgr: BGR) -> np.ndarray:
    disc = from_mask(circle_mask(d), bgr)
    ring = np.clip(circle_mask(d) - np.pad(circle_mask(d - 2), 1), 0, 1)
    return over(disc, from_mask(ring, (255, 255, 255), 0.9), 0, 0)
