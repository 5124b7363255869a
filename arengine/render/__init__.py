"""Compositing: premultiplied sprites, multilingual text, and the render backends."""

from arengine.render.sprites import Canvas, SpriteCache, blend_sprite
from arengine.render.text import FontError, TextRenderer, default_renderer

__all__ = ["Canvas", "FontError", "SpriteCache", "TextRenderer", "blend_sprite",
           "default_renderer"]
