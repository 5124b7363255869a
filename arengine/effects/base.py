"""The effect interface and its registry.

An effect is one small class: every setting goes to ``__init__`` and the only per-frame
call is :meth:`Effect.apply`, which reads a frame's pixels and its :class:`Scene` and
returns the composited pixels. Effects register by name so configs, the CLI and the
HTTP API can ask for them without importing their classes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import numpy as np

from arengine.types import Scene

_REGISTRY: dict[str, type[Effect]] = {}
E = TypeVar("E", bound="type[Effect]")


class Effect(ABC):
    """Draws one thing onto frames. Subclasses set ``name`` and implement ``apply``."""

    name: ClassVar[str] = ""

    @abstractmethod
    def apply(self, frame: np.ndarray, scene: Scene) -> np.ndarray:
        """Return ``frame`` (BGR uint8) with the effect drawn; may modify it in place."""


def register_effect(name: str) -> Callable[[E], E]:
    """Class decorator that makes an effect available by ``name``."""

    def deco(cls: E) -> E:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"effect {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def effect_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def create_effect(name: str, **settings: Any) -> Effect:
    """A new effect by registered name; unknown names list the known ones."""
    _load_builtin()
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown effect {name!r}; known: {', '.join(sorted(_REGISTRY))}") \
            from None
    return cls(**settings)


def _load_builtin() -> None:
    import importlib
    import pkgutil

    import arengine.effects as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name != "base":
            importlib.import_module(f"arengine.effects.{mod.name}")
