"""Product sticker: the featured product's name and price, clickable on the viewer page.

The card is rendered once per product (cached) and placed clear of faces and hands. Where
it went is exported by :meth:`ProductSticker.click_regions` as fractions of the frame, so a
viewer page can lay a link over the video at the same spot whatever size it plays at.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from arengine.effects.base import ClickRegion, Effect, register_effect
from arengine.effects.layout import Placer, Rect, StateClock, obstacles, reserve, ui_scale
from arengine.effects.vote_sticker import ease_out
from arengine.render.sprites import (
    Canvas,
    SpriteBackend,
    SpriteCache,
    SpriteVersions,
    hex_to_bgr,
    over,
    rounded_rect,
)
from arengine.render.text import TextRenderer, default_renderer
from arengine.state import ProductView, RoomState
from arengine.types import Scene


@register_effect("product")
class ProductSticker(Effect):
    """Draws the room's featured product. Feed it with :meth:`set_state`."""

    def __init__(self, scale: float = 1.0, width: float = 0.42,
                 anchors: Sequence[str] = ("bottom-left", "bottom-right", "top-left",
                                           "top-right"),
                 call_to_action: str | None = "Tap to buy", accent: str = "#FF4D8D",
                 fade_s: float = 0.3, text: TextRenderer | None = None,
                 backend: SpriteBackend | None = None) -> None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if not 0.1 <= width <= 1.0:
            raise ValueError(f"width (a fraction of the frame height) must be 0.1..1, "
                             f"got {width}")
        self.scale = scale
        self.width = width
        self.call_to_action = call_to_action
        self.accent = hex_to_bgr(accent)
        self.fade_s = fade_s
        self.text = text or default_renderer()
        self.backend = backend  # a render backend to draw through (GPU), or None: in place
        self._keys = SpriteVersions("product")
        self.placer = Placer(anchors)
        self._clock = StateClock()
        self._cards: SpriteCache[np.ndarray] = SpriteCache(8)
        self._shown: tuple[str, float] | None = None  # (product id, scene time it appeared)
        self._lock = threading.Lock()
        self._last: tuple[ProductView, Rect, int, int] | None = None

    def set_state(self, state: RoomState) -> None:
        """Swap in the latest room snapshot (atomic; called from any thread)."""
        self._clock.set_state(state)

    def apply(self, frame: np.ndarray, scene: Scene) -> np.ndarray:
        state, _ = self._clock.read(scene.timestamp)
        product = state.product if state is not None else None
        if product is None:
            with self._lock:
                self._last = None
            self._shown = None
            return frame
        h, w = frame.shape[:2]
        u = ui_scale(w, h, self.scale)
        if self._shown is None or self._shown[0] != product.id:
            self._shown = (product.id, scene.timestamp)
        card = self.card(product, u)
        rect = self.placer.place(card.shape[1], card.shape[0], w, h, obstacles(scene))
        reserve(scene, rect)
        k = (scene.timestamp - self._shown[1]) / self.fade_s if self.fade_s > 0 else 1.0
        p = ease_out(k)
        with Canvas(frame, self.backend) as canvas:
            canvas.sprite(card, rect.x, rect.y + round((1 - p) * 0.3 * rect.h), p,
                          *self._keys.key("card", card))
        with self._lock:
            self._last = (product, rect, w, h)
        return canvas.frame

    def click_regions(self, width: int = 0, height: int = 0) -> list[ClickRegion]:
        """Where the product card is, normalized 0..1 (empty when none is shown).

        The card's place was decided on the last frame drawn; ``width``/``height`` (the
        stream's size) only matter before any frame was drawn, when the default place for
        that size is reported.
        """
        with self._lock:
            last = self._last
        if last is not None:
            product, rect, w, h = last
        else:
            state = self._clock.state
            if state is None or state.product is None or not width or not height:
                return []
            product, w, h = state.product, width, height
            card = self.card(product, ui_scale(w, h, self.scale))
            rect = Placer(self.placer.anchors).place(card.shape[1], card.shape[0], w, h, [])
        x, y, rw, rh = rect.normalized(w, h)
        x2, y2 = min(x + rw, 1.0), min(y + rh, 1.0)
        x, y = max(x, 0.0), max(y, 0.0)
        return [ClickRegion(product.id, x, y, x2 - x, y2 - y, product.url)]

    def card(self, product: ProductView, u: float) -> np.ndarray:
        """The cached product card for this size."""
        key = (product.id, product.name, product.price, self.call_to_action, round(u, 3))
        return self._cards.get(key, lambda: self._render(product, u))

    def _render(self, product: ProductView, u: float) -> np.ndarray:
        pad = max(6, round(12 * u))
        width = round(self.width * 720 * u)
        inner = width - 2 * pad
        name = self.text.render(product.name, max(13, round(19 * u)), (255, 255, 255), "bold",
                                max_width=inner, max_lines=2)
        price = self.text.render(product.price, max(16, round(30 * u)), (120, 230, 255),
                                 "bold", max_width=inner)
        cta = None
        if self.call_to_action:
            label = self.text.render(self.call_to_action, max(12, round(16 * u)),
                                     (255, 255, 255), "bold")
            cta = rounded_rect(label.shape[0] + pad // 2, label.shape[1] + 2 * pad,
                               (label.shape[0] + pad // 2) / 2, self.accent)
            over(cta, label, pad, pad // 4)
        row_h = max(price.shape[0], cta.shape[0] if cta is not None else 0)
        height = pad + name.shape[0] + pad // 2 + row_h + pad
        card = rounded_rect(height, width, 14 * u, (40, 24, 30), 0.82,
                            border=max(1.0, 2 * u), border_bgr=self.accent)
        over(card, name, pad, pad)
        y = pad + name.shape[0] + pad // 2
        over(card, price, pad, y + (row_h - price.shape[0]) // 2)
        if cta is not None:
            over(card, cta, width - pad - cta.shape[1], y + (row_h - cta.shape[0]) // 2)
        return card
