"""The effect interface and its registry.

An effect is one small class: every setting goes to ``__init__`` and the only per-frame
call is :meth:`Effect.apply`, which reads a frame's pixels and its :class:`Scene` and
returns the composited pixels. Effects register by name so configs, the CLI and the
HTTP API can ask for them without importing their classes.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from arengine.types import Scene

if TYPE_CHECKING:
    from arengine.render.sprites import SpriteBackend
    from arengine.state import RoomState

_REGISTRY: dict[str, type[Effect]] = {}
E = TypeVar("E", bound="type[Effect]")


@dataclass(frozen=True)
class ClickRegion:
    """A clickable area of the picture, normalized to 0..1 of the frame's width/height."""

    id: str
    x: float
    y: float
    w: float
    h: float
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("x", "y", "w", "h"):
            d[k] = float(d[k])  # plain JSON numbers, whatever arithmetic made them
        return d


    def contains(self, x: float, y: float) -> bool:
        """Whether the normalized point (x, y) falls inside."""
        return self.x <= x <= self.x + self.w and self.y <= y <= self.y + self.h


class Effect(ABC):
    """Draws one thing onto frames. Subclasses set ``name`` and implement ``apply``.

    The hooks below are explicit no-ops that an effect overrides to tell the chain and the
    compositor what it is (no attribute probing): whether a room starts with it on, whether
    it stands in for the host's picture, what it needs tracked, what it keeps when the
    chain remakes it with new settings, what it makes of the room's state and where it
    can be tapped.
    """

    name: ClassVar[str] = ""
    # Whether a room's chain starts with this effect on (the virtual host waits to be asked).
    enabled_by_default: ClassVar[bool] = True
    # The render backend it draws through (a GPU), or None: in place on the frame.
    backend: SpriteBackend | None = None

    @abstractmethod
    def apply(self, frame: np.ndarray, scene: Scene) -> np.ndarray:
        """Return ``frame`` (BGR uint8) with the effect drawn; may modify it in place."""

    def replaces_host(self) -> bool:
        """True while this effect draws a whole picture in place of the camera's (the
        virtual host in replace mode). The chain then draws it first and gives the effects
        after it a scene without the host's faces and hands, which are not in the picture
        any more (so lipstick paints nothing and layers keep off the new subject instead);
        and if it fails, the frame goes out blank rather than showing the host."""
        return False

    def needs(self) -> frozenset[str]:
        """What this effect needs tracked besides faces and hands, by scene-extras key
        (e.g. ``{"person_mask"}``); the compositor runs those models only while an enabled
        effect asks."""
        return frozenset()

    def adopt(self, previous: Effect) -> None:  # noqa: B027 (a hook: no-op by default)
        """Take over what ``previous`` (the instance this one replaces, same name) learned,
        when the chain remakes the effect with new settings: a calibration, a background,
        animation state. By default nothing is kept."""

    def set_state(self, state: RoomState) -> None:  # noqa: B027 (a hook: no-op by default)
        """A new snapshot of the room (votes, likes, viewers, product), on the effects
        thread; layers that show the room keep it for their next frames."""

    def click_regions(self, width: int, height: int) -> list[ClickRegion]:
        """Where viewers can tap what this effect drew (normalized to the frame; the
        stream is ``width`` x ``height``); none by default."""
        return []


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


def effect_class(name: str) -> type[Effect]:
    """The class registered as ``name``; unknown names list the known ones."""
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown effect {name!r}; known: {', '.join(sorted(_REGISTRY))}") \
            from None


def create_effect(name: str, **settings: Any) -> Effect:
    """A new effect by registered name; unknown names list the known ones."""
    return effect_class(name)(**settings)


# Constructor arguments that are wiring, not settings a host may change over the API:
# the render backend and text renderer are the server's, the shade is the room's.
WIRING = frozenset({"backend", "text", "catalog", "per_face", "shade"})


def settings_of(name: str) -> tuple[str, ...]:
    """The settings a host may give effect ``name`` (its constructor's own arguments)."""
    cls = effect_class(name)
    params = inspect.signature(cls.__init__).parameters
    return tuple(p for p in params if p != "self" and p not in WIRING
                 and params[p].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                        inspect.Parameter.KEYWORD_ONLY))


def check_settings(name: str, settings: Mapping[str, Any]) -> None:
    """Raise ValueError, in words for a host, unless ``settings`` make a working effect.

    The room API calls this before storing settings, so a bad value is a 422 at once
    instead of a setting that silently does nothing on the picture.
    """
    allowed = settings_of(name)
    params = inspect.signature(effect_class(name).__init__).parameters
    for key, value in settings.items():
        if key not in allowed:
            raise ValueError(f"effect {name!r} has no setting {key[:40]!r}; its settings: "
                             f"{', '.join(allowed) or '(none)'}")
        default = params[key].default
        kind = _kind(default)
        if kind is not None and value is not None and _kind(value) != kind:
            raise ValueError(f"effect {name!r}: {key} must be {kind}, not {_kind(value)}")
    try:
        create_effect(name, **settings)
    except (TypeError, ValueError) as e:
        raise ValueError(f"effect {name!r}: {e}") from None


def _kind(value: object) -> str | None:
    """A setting's kind in words, from its value (None: any kind is checked later)."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "a list"
    return None


def _load_builtin() -> None:
    import importlib
    import pkgutil

    import arengine.effects as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name != "base":
            importlib.import_module(f"arengine.effects.{mod.name}")
