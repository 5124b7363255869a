"""The lipstick shade catalog: named colours, their finish and the product line they belong to.

Shades live in ``assets/shades.json`` so merchandisers can add products without touching
code. Every field is checked on load and a bad entry is reported by shade id and field, so
a typo in the catalog fails loudly at start-up instead of rendering a wrong colour live.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal, get_args

import cv2
import numpy as np

from arengine.data import ASSETS_DIR
from arengine.errors import UserError

Finish = Literal["matte", "satin", "sheer", "gloss", "shimmer", "metallic"]
FINISHES: tuple[str, ...] = get_args(Finish)
LANGUAGES = ("zh", "en", "th", "vi", "id")

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_FIELDS = {"id", "name", "line", "hex", "finish", "opacity", "liner_hex", "liner_width",
           "ombre_inner_hex", "ombre_ratio", "names"}


class UnknownShadeError(KeyError, UserError):
    """A shade id that is not in the catalog; the message lists the valid ones."""

    def __init__(self, shade_id: str, valid: list[str]) -> None:
        super().__init__(shade_id)
        self.shade_id = shade_id
        self.valid = valid

    def __str__(self) -> str:  # KeyError would quote the bare id
        return f"unknown shade {self.shade_id!r}; valid ids: {', '.join(self.valid)}"


def hex_to_bgr(value: str) -> tuple[int, int, int]:
    """``"#RRGGBB"`` to an OpenCV (B, G, R) tuple."""
    r, g, b = (int(value[i:i + 2], 16) for i in (1, 3, 5))
    return (b, g, r)


def bgr_to_lab(bgr: tuple[int, int, int]) -> tuple[float, float, float]:
    """CIELAB (L 0..100, a, b) of an sRGB colour given as 8-bit BGR (D65 white)."""
    px = np.array([[bgr]], np.float32) / 255.0
    lab = cv2.cvtColor(px, cv2.COLOR_BGR2Lab)[0, 0]
    return (float(lab[0]), float(lab[1]), float(lab[2]))


@dataclass(frozen=True)
class Shade:
    """One lipstick product.

    ``opacity`` (0..1] is how much of the lip's own colour the product covers.
    ``liner_width`` is the liner band as a fraction of the mouth width, and
    ``ombre_ratio`` the share of the mouth (from its centre outwards) that the ombre's
    inner colour fills; both scale with the face, so a shade looks the same near and far.
    """

    id: str
    name: str
    line: str
    hex: str
    finish: Finish
    opacity: float = 0.9
    liner_hex: str | None = None
    liner_width: float = 0.0
    ombre_inner_hex: str | None = None
    ombre_ratio: float = 0.0
    names: Mapping[str, str] = field(default_factory=dict)

    @property
    def bgr(self) -> tuple[int, int, int]:
        return hex_to_bgr(self.hex)

    @property
    def lab(self) -> tuple[float, float, float]:
        return bgr_to_lab(self.bgr)

    @property
    def liner_lab(self) -> tuple[float, float, float] | None:
        return None if self.liner_hex is None else bgr_to_lab(hex_to_bgr(self.liner_hex))

    @property
    def ombre_inner_lab(self) -> tuple[float, float, float] | None:
        if self.ombre_inner_hex is None:
            return None
        return bgr_to_lab(hex_to_bgr(self.ombre_inner_hex))

    def display_name(self, lang: str = "en") -> str:
        """The name in ``lang`` when the catalog has it, else the catalog name."""
        return self.names.get(lang, self.name)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "shade") -> Shade:
        """A validated shade; errors name the shade and the field."""
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: expected an object, got {type(d).__name__}")
        sid = d.get("id")
        label = f"shade {sid!r}" if isinstance(sid, str) else where
        unknown = set(d) - _FIELDS
        if unknown:
            raise ValueError(f"{label}: unknown field(s) {', '.join(sorted(unknown))}")

        def need(key: str) -> Any:
            if key not in d:
                raise ValueError(f"{label}: missing field {key!r}")
            return d[key]

        def text(key: str) -> str:
            v = need(key)
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"{label}: field {key!r} must be a non-empty string, got {v!r}")
            return v

        def colour(key: str, optional: bool = False) -> str | None:
            v = d.get(key) if optional else need(key)
            if v is None and optional:
                return None
            if not isinstance(v, str) or not _HEX.match(v):
                raise ValueError(f"{label}: field {key!r} must be a colour like '#B0223A', "
                                 f"got {v!r}")
            return v.upper()

        def number(key: str, lo: float, hi: float, default: float | None = None,
                   lo_open: bool = False) -> float:
            v = d.get(key, default) if default is not None else need(key)
            if isinstance(v, bool) or not isinstance(v, int | float) or not (
                    (lo < v if lo_open else lo <= v) and v <= hi):
                bracket = "(" if lo_open else "["
                raise ValueError(f"{label}: field {key!r} must be a number in "
                                 f"{bracket}{lo}, {hi}], got {v!r}")
            return float(v)

        shade_id = text("id")
        if not _ID.match(shade_id):
            raise ValueError(f"{label}: field 'id' must be lowercase letters, digits and '-'")
        finish = text("finish")
        if finish not in FINISHES:
            raise ValueError(f"{label}: field 'finish' must be one of {', '.join(FINISHES)}, "
                             f"got {finish!r}")
        liner_hex = colour("liner_hex", optional=True)
        ombre_hex = colour("ombre_inner_hex", optional=True)
        liner_width = number("liner_width", 0.0, 0.1, default=0.0)
        ombre_ratio = number("ombre_ratio", 0.0, 1.0, default=0.0)
        if liner_hex is not None and liner_width <= 0:
            raise ValueError(f"{label}: field 'liner_width' must be > 0 when 'liner_hex' is set")
        if ombre_hex is not None and ombre_ratio <= 0:
            raise ValueError(f"{label}: field 'ombre_ratio' must be > 0 when "
                             "'ombre_inner_hex' is set")
        names = d.get("names", {})
        if not isinstance(names, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) and v.strip()
                for k, v in names.items()):
            raise ValueError(f"{label}: field 'names' must map language codes to names")
        return cls(id=shade_id, name=text("name"), line=text("line"),
                   hex=colour("hex") or "", finish=finish,  # type: ignore[arg-type]
                   opacity=number("opacity", 0.0, 1.0, lo_open=True),
                   liner_hex=liner_hex, liner_width=liner_width if liner_hex else 0.0,
                   ombre_inner_hex=ombre_hex, ombre_ratio=ombre_ratio if ombre_hex else 0.0,
                   names=dict(names))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "name": self.name, "line": self.line,
                             "hex": self.hex, "finish": self.finish, "opacity": self.opacity}
        if self.liner_hex:
            d.update(liner_hex=self.liner_hex, liner_width=self.liner_width)
        if self.ombre_inner_hex:
            d.update(ombre_inner_hex=self.ombre_inner_hex, ombre_ratio=self.ombre_ratio)
        if self.names:
            d["names"] = dict(self.names)
        return d


class ShadeCatalog:
    """An ordered, validated set of shades, looked up by id."""

    def __init__(self, shades: list[Shade]) -> None:
        self._shades: dict[str, Shade] = {}
        for s in shades:
            if s.id in self._shades:
                raise ValueError(f"shade {s.id!r}: duplicate id")
            self._shades[s.id] = s

    @classmethod
    def load(cls, path: str | Path | None = None) -> ShadeCatalog:
        """Read and validate a catalog file (default: the bundled ``assets/shades.json``)."""
        p = Path(path) if path is not None else ASSETS_DIR / "shades.json"
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"shade catalog {p} not found") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"shade catalog {p.name} is not valid JSON: {e.msg} "
                             f"(line {e.lineno}, column {e.colno})") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Any) -> ShadeCatalog:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("shades"), list):
            raise ValueError('shade catalog must be an object with a "shades" list')
        if not raw["shades"]:
            raise ValueError("shade catalog has no shades")
        return cls([Shade.from_dict(d, f"shade #{i}") for i, d in enumerate(raw["shades"])])

    def get(self, shade_id: str) -> Shade:
        try:
            return self._shades[shade_id]
        except KeyError:
            raise UnknownShadeError(shade_id, self.ids()) from None

    def ids(self) -> list[str]:
        return list(self._shades)

    def lines(self) -> list[str]:
        """Product line names in catalog order."""
        return list(dict.fromkeys(s.line for s in self._shades.values()))

    def in_line(self, line: str) -> list[Shade]:
        return [s for s in self._shades.values() if s.line == line]

    @cached_property
    def finishes(self) -> list[str]:
        return list(dict.fromkeys(s.finish for s in self._shades.values()))

    def __iter__(self) -> Iterator[Shade]:
        return iter(self._shades.values())

    def __len__(self) -> int:
        return len(self._shades)

    def __contains__(self, shade_id: object) -> bool:
        return shade_id in self._shades


@cache
def default_catalog() -> ShadeCatalog:
    """The bundled catalog, read once per process."""
    return ShadeCatalog.load()
