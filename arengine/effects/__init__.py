"""On-frame effects (lipstick, stickers, avatars...), one module each, registered by name."""

from arengine.effects.base import (
    Effect,
    check_settings,
    create_effect,
    effect_names,
    register_effect,
    settings_of,
)

__all__ = ["Effect", "check_settings", "create_effect", "effect_names", "register_effect",
           "settings_of"]
