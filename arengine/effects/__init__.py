"""On-frame effects (lipstick, stickers, avatars...), one module each, registered by name."""

from arengine.effects.base import Effect, create_effect, effect_names, register_effect

__all__ = ["Effect", "create_effect", "effect_names", "register_effect"]
