"""Layered vector characters: the file format, its checks and an anti-aliased renderer.

A character is a JSON file (``assets/characters/<name>.json``; the format is described in
``assets/characters/README.md``): named parts, each a few vector shapes (paths, ellipses,
circles, rounded rectangles) with fills, gradients and strokes, a pivot, a parent, a
drawing order and a depth, and bindings from rig parameters to the part's transform
(move, turn, scale, fade) or to a path's shape (morph targets: a mouth's vowels). Depth
makes a head turn a parallax: parts in front slide further than parts behind.

Skia draws it (skia-python, the engine behind Chrome and Android), anti-aliased, straight
into the frame's region under the character, so a frame costs the shapes and one colour
conversion of that region and no alpha blending of our own.

A file that breaks a rule is refused whole with one line naming the file, the part and
the field, e.g. ``characters/mei.json: part "mouth": field "bind.mouth_open.scale_y" must
be a number``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import skia

from arengine.data import ASSETS_DIR

FORMAT = "arengine-character/1"
CHARACTERS_DIR = ASSETS_DIR / "characters"

# Parameters a part may bind to, with their range. The rig's (arengine.tracking.rig.Rig,
# angles normalised to -1..1) and what the virtual host adds: derived eye closure, the
# breathing and idle cycles, and the reactions.
PARAMS: dict[str, str] = {
    "yaw": "-1..1 head turn, positive toward the image's right (30 degrees = 1)",
    "pitch": "-1..1 head nod, positive looking down (20 degrees = 1)",
    "roll": "-1..1 head tilt, positive clockwise (30 degrees = 1)",
    "head_x": "-3..3 head shift from the neutral place, inter-ocular distances",
    "head_y": "-3..3 head shift down from the neutral place",
    "head_scale": "0.3..3 face size over the neutral one (leaning in > 1)",
    "eye_open_left": "0 closed .. 1 open as at rest .. 1.5 wide",
    "eye_open_right": "the same, right eye",
    "eye_close_left": "0 open .. 1 closed (1 - eye_open_left, clipped)",
    "eye_close_right": "the same, right eye",
    "blink": "1 while both eyes are shut",
    "gaze_x": "-1..1 where the eyes look, positive toward the image's right",
    "gaze_y": "-1..1 positive looking down",
    "brow_left": "-1 lowered .. 1 raised",
    "brow_right": "the same, right brow",
    "mouth_open": "0 closed .. 1 wide open",
    "mouth_width": "-1 pursed .. 1 wide",
    "smile": "0..1",
    "vowel_a": "0..1 weight of the A mouth", "vowel_i": "0..1 weight of the I mouth",
    "vowel_u": "0..1 weight of the U mouth", "vowel_e": "0..1 weight of the E mouth",
    "vowel_o": "0..1 weight of the O mouth",
    "hand_left": "0..1 the host's left hand raised", "hand_right": "0..1 right hand raised",
    "waving": "1 while the host waves",
    "breath": "-1..1 the breathing cycle (always running)",
    "sway": "-1..1 a slow idle sway (always running)",
    "wave": "-1..1 the arm's swing while waving (0 at rest)",
    "wave_on": "0..1 how far a wave is in (raise the waving arm with it)",
    "cheer": "0..1 how far a cheer is in (a like goal reached)",
    "talk": "0..1 while the character talks (tracked or scripted)",
}
TARGETS = ("translate_x", "translate_y", "rotate", "scale", "scale_x", "scale_y", "opacity")
SHAPES = ("path", "ellipse", "circle", "rect")
LIPS = "lips"  # the colour that follows the room's shade
_ARITY = {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6, "Q": 4, "Z": 0}
_TOKEN = re.compile(r"[MmLlHhVvCcQqZz]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_HEX = re.compile(r"^#([0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")


class CharacterError(ValueError):
    """A character file that breaks the format; the message names file, part and field."""


@dataclass(frozen=True)
class PathData:
    """A parsed path: its command letters (with their arity) and all numbers, flat."""

    commands: tuple[str, ...]
    numbers: np.ndarray

    def build(self, numbers: np.ndarray | None = None) -> skia.Path:
        """A skia path from these commands and ``numbers`` (default: this path's)."""
        v = self.numbers if numbers is None else numbers
        path = skia.Path()
        i = 0
        for c in self.commands:
            up = c.upper()
            n = _ARITY[up]
            a = v[i:i + n]
            i += n
            rel = c != up
            if up == "M":
                (path.rMoveTo if rel else path.moveTo)(a[0], a[1])
            elif up == "L":
                (path.rLineTo if rel else path.lineTo)(a[0], a[1])
            elif up == "H":
                last = path.getPoint(path.countPoints() - 1) if path.countPoints() else \
                    skia.Point(0, 0)
                path.lineTo(last.x() + a[0] if rel else a[0], last.y())
            elif up == "V":
                last = path.getPoint(path.countPoints() - 1) if path.countPoints() else \
                    skia.Point(0, 0)
                path.lineTo(last.x(), last.y() + a[0] if rel else a[0])
            elif up == "C":
                (path.rCubicTo if rel else path.cubicTo)(*a)
            elif up == "Q":
                (path.rQuadTo if rel else path.quadTo)(*a)
            else:
                path.close()
        return path


@dataclass(frozen=True)
class Fill:
    """A solid colour (a "#RRGGBB[AA]" or a palette name) or a gradient of colours."""

    colour: str | None = None  # resolved "#RRGGBBAA", or "$name" for a palette colour
    gradient: str | None = None  # "linear" or "radial"
    geometry: tuple[float, ...] = ()  # x1 y1 x2 y2 (linear) or cx cy r (radial)
    stops: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shape:
    kind: str
    geometry: tuple[float, ...] = ()  # ellipse: cx cy rx ry; circle: cx cy r; rect: x y w h r
    path: PathData | None = None
    morph: tuple[tuple[str, np.ndarray], ...] = ()  # (param, target numbers - base numbers)
    fill: Fill | None = None
    stroke: Fill | None = None
    stroke_width: float = 0.0
    opacity: float = 1.0


@dataclass(frozen=True)
class Part:
    name: str
    shapes: tuple[Shape, ...]
    parent: str | None = None
    z: float = 0.0
    depth: float = 0.0
    pivot: tuple[float, float] = (0.0, 0.0)
    clip: str | None = None
    opacity: float = 1.0
    bind: tuple[tuple[str, str, float], ...] = ()  # (param, target, amount per unit)


@dataclass(frozen=True)
class Character:
    """A loaded, checked character (see the module docstring)."""

    name: str
    title: str
    size: tuple[float, float]
    parts: tuple[Part, ...]  # in drawing order
    colours: Mapping[str, str] = field(default_factory=dict)
    parallax: tuple[float, float] = (0.0, 0.0)  # design px at depth 1 for yaw, pitch = 1
    breath_s: float = 4.0
    source: str = ""

    def part(self, name: str) -> Part:
        for p in self.parts:
            if p.name == name:
                return p
        raise KeyError(name)


# -- loading and checking -------------------------------------------------------------------

def character_names(folder: Path = CHARACTERS_DIR) -> list[str]:
    """The characters in ``folder``: one per ``*.json`` file, named by the file."""
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def character_path(name: str, folder: Path = CHARACTERS_DIR) -> Path:
    """The file of character ``name``; an unknown name lists the known ones."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,40}", name or ""):
        raise CharacterError(f"character names are lowercase letters, digits, - and _; "
                             f"not {name[:40]!r}")
    path = folder / f"{name}.json"
    if not path.is_file():
        known = ", ".join(character_names(folder)) or "(none)"
        raise CharacterError(f"unknown character {name!r}; known: {known}")
    return path


def load_character(name_or_path: str | Path, folder: Path = CHARACTERS_DIR) -> Character:
    """A checked character, by name (a file in ``folder``) or by path."""
    path = Path(name_or_path) if isinstance(name_or_path, Path) or \
        str(name_or_path).endswith(".json") else character_path(str(name_or_path), folder)
    shown = _shown(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CharacterError(f"{shown}: cannot read: {e.strerror or e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CharacterError(f"{shown}: not valid JSON: line {e.lineno} column {e.colno}: "
                             f"{e.msg}") from None
    return parse_character(data, path.stem, shown)


def _shown(path: Path) -> str:
    """``characters/mei.json`` for the shipped folder, else the path as given."""
    try:
        return str(path.resolve().relative_to(CHARACTERS_DIR.resolve().parent))
    except ValueError:
        return str(path)


class _Checker:
    """Where a check is (file, part, field), so every message says it the same way."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.part: str | None = None

    def fail(self, where: str, what: str) -> CharacterError:
        part = f'part "{self.part}": ' if self.part is not None else ""
        return CharacterError(f'{self.shown}: {part}field "{where}" {what}')

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not math.isfinite(float(value)):
            raise self.fail(where, "must be a number")
        return float(value)

    def numbers(self, value: Any, n: int, where: str) -> tuple[float, ...]:
        if not isinstance(value, list) or len(value) != n:
            raise self.fail(where, f"must be a list of {n} numbers")
        return tuple(self.number(v, f"{where}[{i}]") for i, v in enumerate(value))

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(where, "must be text")
        return value

    def keys(self, obj: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
        for k in obj:
            if k not in allowed:
                at = f"{where}.{k}" if where else k
                raise self.fail(at, f"is not a known field (known: {', '.join(allowed)})")


TOP_FIELDS = ("format", "title", "size", "colours", "parallax", "breath_s", "parts",
              "comment")
PART_FIELDS = ("part", "parent", "z", "depth", "pivot", "clip", "opacity", "bind", "shapes",
               "comment")
SHAPE_FIELDS = {
    "path": ("type", "d", "morph", "fill", "stroke", "stroke_width", "opacity"),
    "ellipse": ("type", "cx", "cy", "rx", "ry", "fill", "stroke", "stroke_width", "opacity"),
    "circle": ("type", "cx", "cy", "r", "fill", "stroke", "stroke_width", "opacity"),
    "rect": ("type", "x", "y", "w", "h", "r", "fill", "stroke", "stroke_width", "opacity"),
}
GEOMETRY = {"ellipse": ("cx", "cy", "rx", "ry"), "circle": ("cx", "cy", "r"),
            "rect": ("x", "y", "w", "h", "r")}


def parse_character(data: Any, name: str, shown: str = "character") -> Character:
    """Check a character's JSON data and build it; :class:`CharacterError` if it is bad."""
    ck = _Checker(shown)
    if not isinstance(data, dict):
        raise CharacterError(f"{shown}: must be a JSON object")
    ck.keys(data, TOP_FIELDS, "")
    if data.get("format") != FORMAT:
        raise ck.fail("format", f'must be "{FORMAT}"')
    size = ck.numbers(data.get("size"), 2, "size")
    if min(size) <= 0:
        raise ck.fail("size", "must be two positive numbers (width, height)")
    colours_raw = data.get("colours", {})
    if not isinstance(colours_raw, dict):
        raise ck.fail("colours", "must be an object of name -> colour")
    colours: dict[str, str] = {}
    for k, v in colours_raw.items():
        colours[k] = _colour(ck, v, f"colours.{k}", {})
    parallax = ck.numbers(data.get("parallax", [0, 0]), 2, "parallax")
    breath_s = ck.number(data.get("breath_s", 4.0), "breath_s")
    if breath_s <= 0:
        raise ck.fail("breath_s", "must be positive (seconds per breath)")
    title = ck.text(data.get("title", name), "title")
    raw_parts = data.get("parts")
    if not isinstance(raw_parts, list) or not raw_parts:
        raise ck.fail("parts", "must be a non-empty list of parts")
    parts: list[Part] = []
    names: set[str] = set()
    for i, raw in enumerate(raw_parts):
        ck.part = None
        if not isinstance(raw, dict):
            raise ck.fail(f"parts[{i}]", "must be an object")
        pname = raw.get("part")
        if not isinstance(pname, str) or not pname:
            raise ck.fail(f"parts[{i}].part", "must be the part's name (text)")
        ck.part = pname
        if pname in names:
            raise ck.fail("part", "is used by two parts; names must be unique")
        names.add(pname)
        parts.append(_part(ck, raw, colours))
    for p in parts:
        ck.part = p.name
        if p.parent is not None and p.parent not in names:
            raise ck.fail("parent", f'names no part ("{p.parent}")')
        if p.clip is not None and p.clip not in names:
            raise ck.fail("clip", f'names no part ("{p.clip}")')
    ck.part = None
    by_name = {p.name: p for p in parts}
    for p in parts:  # no part may be its own ancestor
        seen, cur = {p.name}, p.parent
        while cur is not None:
            if cur in seen:
                ck.part = p.name
                raise ck.fail("parent", "makes a loop of parents")
            seen.add(cur)
            cur = by_name[cur].parent
    order = sorted(range(len(parts)), key=lambda k: (parts[k].z, k))
    return Character(name, title, (size[0], size[1]), tuple(parts[k] for k in order),
                     colours, (parallax[0], parallax[1]), breath_s, shown)


def _part(ck: _Checker, raw: dict[str, Any], colours: Mapping[str, str]) -> Part:
    ck.keys(raw, PART_FIELDS, "")
    parent = raw.get("parent")
    if parent is not None:
        parent = ck.text(parent, "parent")
    clip = raw.get("clip")
    if clip is not None:
        clip = ck.text(clip, "clip")
    z = ck.number(raw.get("z", 0), "z")
    depth = ck.number(raw.get("depth", 0), "depth")
    pivot = ck.numbers(raw.get("pivot", [0, 0]), 2, "pivot")
    opacity = ck.number(raw.get("opacity", 1.0), "opacity")
    bind_raw = raw.get("bind", {})
    if not isinstance(bind_raw, dict):
        raise ck.fail("bind", "must be an object of parameter -> {target: amount}")
    bind: list[tuple[str, str, float]] = []
    for param, targets in bind_raw.items():
        if param not in PARAMS:
            raise ck.fail(f"bind.{param}", f"is not a parameter (known: {', '.join(PARAMS)})")
        if not isinstance(targets, dict) or not targets:
            raise ck.fail(f"bind.{param}", "must be an object of target -> amount")
        for target, amount in targets.items():
            if target not in TARGETS:
                raise ck.fail(f"bind.{param}.{target}",
                              f"is not a target (known: {', '.join(TARGETS)})")
            bind.append((param, target, ck.number(amount, f"bind.{param}.{target}")))
    shapes_raw = raw.get("shapes", [])
    if not isinstance(shapes_raw, list):
        raise ck.fail("shapes", "must be a list of shapes")
    shapes = tuple(_shape(ck, s, f"shapes[{i}]", colours) for i, s in enumerate(shapes_raw))
    return Part(str(raw["part"]), shapes, parent, z, depth, (pivot[0], pivot[1]), clip,
                opacity, tuple(bind))


def _shape(ck: _Checker, raw: Any, where: str, colours: Mapping[str, str]) -> Shape:
    if not isinstance(raw, dict):
        raise ck.fail(where, "must be an object")
    kind = raw.get("type")
    if kind not in SHAPES:
        raise ck.fail(f"{where}.type", f"must be one of {', '.join(SHAPES)}")
    ck.keys(raw, SHAPE_FIELDS[kind], where)
    fill = _paint(ck, raw.get("fill"), f"{where}.fill", colours)
    stroke = _paint(ck, raw.get("stroke"), f"{where}.stroke", colours)
    width = ck.number(raw.get("stroke_width", 2.0 if stroke else 0.0), f"{where}.stroke_width")
    opacity = ck.number(raw.get("opacity", 1.0), f"{where}.opacity")
    if fill is None and stroke is None:
        raise ck.fail(f"{where}.fill", "or stroke must be given (a shape draws something)")
    if kind == "path":
        d = ck.text(raw.get("d"), f"{where}.d")
        base = _parse_path(ck, d, f"{where}.d")
        morph_raw = raw.get("morph", {})
        if not isinstance(morph_raw, dict):
            raise ck.fail(f"{where}.morph", "must be an object of parameter -> path")
        morph: list[tuple[str, np.ndarray]] = []
        for param, target in morph_raw.items():
            at = f"{where}.morph.{param}"
            if param not in PARAMS:
                raise ck.fail(at, f"is not a parameter (known: {', '.join(PARAMS)})")
            t = _parse_path(ck, ck.text(target, at), at)
            if t.commands != base.commands:
                raise ck.fail(at, 'must have the same commands, in the same order, as "d"')
            morph.append((param, t.numbers - base.numbers))
        return Shape("path", (), base, tuple(morph), fill, stroke, width, opacity)
    geometry = []
    for key in GEOMETRY[kind]:
        default = 0.0 if key == "r" and kind == "rect" else None
        value = raw.get(key, default)
        geometry.append(ck.number(value, f"{where}.{key}"))
    if kind in ("ellipse", "circle") and min(geometry[2:]) < 0:
        raise ck.fail(f"{where}.{GEOMETRY[kind][2]}", "must not be negative")
    return Shape(kind, tuple(geometry), None, (), fill, stroke, width, opacity)


def _parse_path(ck: _Checker, d: str, where: str) -> PathData:
    tokens = _TOKEN.findall(d)
    if "".join(tokens).replace(" ", "") == "" or \
            len(re.sub(r"[\s,]", "", d)) != len("".join(tokens)):
        raise ck.fail(where, "must be path data: M, L, H, V, C, Q, Z (or lowercase) and "
                             "numbers")
    commands: list[str] = []
    numbers: list[float] = []
    i = 0
    current: str | None = None
    while i < len(tokens):
        tok = tokens[i]
        if tok.isalpha():
            current = tok
            i += 1
            if tok.upper() == "Z":
                commands.append(tok)
                continue
        elif current is None:
            raise ck.fail(where, "must start with a command (M)")
        assert current is not None
        n = _ARITY[current.upper()]
        if n == 0:
            raise ck.fail(where, "has numbers after Z")
        args = tokens[i:i + n]
        if len(args) < n or any(a.isalpha() for a in args):
            raise ck.fail(where, f"has a {current} with fewer than {n} numbers")
        commands.append(current)
        numbers.extend(float(a) for a in args)
        i += n
        if current in "Mm":  # numbers after a move are lines (SVG's rule)
            current = "L" if current == "M" else "l"
    if not commands or commands[0] not in "Mm":
        raise ck.fail(where, "must start with a command (M)")
    return PathData(tuple(commands), np.array(numbers, np.float64))


def _colour(ck: _Checker, value: Any, where: str, colours: Mapping[str, str]) -> str:
    if isinstance(value, str) and value.startswith("$"):
        key = value[1:]
        if key != LIPS and key not in colours:
            raise ck.fail(where, f'names no colour ("{value}"); add it to "colours"')
        return value
    if not isinstance(value, str) or not _HEX.match(value):
        raise ck.fail(where, 'must be a colour: "#RRGGBB", "#RRGGBBAA" or "$name"')
    return value if len(value) == 9 else value + "ff"


def _paint(ck: _Checker, value: Any, where: str, colours: Mapping[str, str]) -> Fill | None:
    if value is None or value == "none":
        return None
    if isinstance(value, str):
        return Fill(colour=_colour(ck, value, where, colours))
    if not isinstance(value, dict):
        raise ck.fail(where, "must be a colour or a gradient object")
    kinds = [k for k in ("linear", "radial") if k in value]
    if len(kinds) != 1:
        raise ck.fail(where, 'must have "linear": [x1, y1, x2, y2] or "radial": [cx, cy, r]')
    ck.keys(value, (kinds[0], "stops"), where)
    geometry = ck.numbers(value[kinds[0]], 4 if kinds[0] == "linear" else 3,
                          f"{where}.{kinds[0]}")
    stops = value.get("stops")
    if not isinstance(stops, list) or len(stops) < 2:
        raise ck.fail(f"{where}.stops", "must be a list of at least two colours")
    return Fill(None, kinds[0], geometry,
                tuple(_colour(ck, s, f"{where}.stops[{i}]", colours)
                      for i, s in enumerate(stops)))


# -- drawing -------------------------------------------------------------------------------

def hex_to_skia(hex_colour: str) -> int:
    """"#RRGGBB[AA]" as a skia ARGB colour."""
    h = hex_colour.lstrip("#")
    r, g, b = int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
    a = int(h[6:8], 16) if len(h) == 8 else 255
    return int(skia.ColorSetARGB(a, r, g, b))


def _affine(a: float, b: float, c: float, d: float, tx: float, ty: float) -> np.ndarray:
    return np.array([[a, c, tx], [b, d, ty], [0.0, 0.0, 1.0]])


def _to_skia(m: np.ndarray) -> skia.Matrix:
    return skia.Matrix.MakeAll(float(m[0, 0]), float(m[0, 1]), float(m[0, 2]),
                               float(m[1, 0]), float(m[1, 1]), float(m[1, 2]), 0.0, 0.0, 1.0)


@dataclass
class _Drawn:
    """A shape made ready for skia: its static path (or None: built per frame), paints."""

    shape: Shape
    path: skia.Path | None
    fill: skia.Paint | None
    stroke: skia.Paint | None
    fill_alpha: float
    stroke_alpha: float
    lips_fill: bool
    lips_stroke: bool


class CharacterRenderer:
    """Draws one character with given parameter values (see :data:`PARAMS`).

    Static paths and paints are made once; a frame computes each part's transform (its
    parent's, then its own pivot, bindings and parallax), rebuilds only morphing paths
    and draws the parts in order. ``colours`` overrides palette colours per call (the
    room's shade arrives as ``{"lips": "#RRGGBB"}``).
    """

    def __init__(self, character: Character) -> None:
        self.character = character
        self._drawn: dict[str, list[_Drawn]] = {}
        self._lips: dict[str, int] = {}
        for part in character.parts:
            self._drawn[part.name] = [self._prepare(s) for s in part.shapes]
        self._by_name = {p.name: p for p in character.parts}
        # Parents before children, for the transforms.
        self._topo: list[Part] = []
        done: set[str] = set()

        def visit(p: Part) -> None:
            if p.name in done:
                return
            if p.parent is not None:
                visit(self._by_name[p.parent])
            done.add(p.name)
            self._topo.append(p)

        for p in character.parts:
            visit(p)

    def _resolve(self, colour: str) -> str:
        if colour.startswith("$"):
            key = colour[1:]
            value = self.character.colours.get(key)
            if value is None:  # "$lips" with no palette entry: a natural rose
                return "#c8566eff"
            return value if not value.startswith("$") else "#c8566eff"
        return colour

    def _paint(self, fill: Fill | None, stroke: bool, width: float) -> tuple[
            skia.Paint | None, float, bool]:
        if fill is None:
            return None, 1.0, False
        paint = skia.Paint(AntiAlias=True)
        if stroke:
            paint.setStyle(skia.Paint.kStroke_Style)
            paint.setStrokeWidth(width)
            paint.setStrokeCap(skia.Paint.kRound_Cap)
            paint.setStrokeJoin(skia.Paint.kRound_Join)
        lips = fill.colour == f"${LIPS}"
        if fill.gradient is None:
            assert fill.colour is not None
            colour = hex_to_skia(self._resolve(fill.colour))
            paint.setColor(colour)
            return paint, skia.ColorGetA(colour) / 255.0, lips
        cols = [hex_to_skia(self._resolve(c)) for c in fill.stops]
        g = fill.geometry
        if fill.gradient == "linear":
            shader = skia.GradientShader.MakeLinear(
                points=[skia.Point(g[0], g[1]), skia.Point(g[2], g[3])], colors=cols)
        else:
            shader = skia.GradientShader.MakeRadial(center=skia.Point(g[0], g[1]),
                                                    radius=max(g[2], 1e-3), colors=cols)
        paint.setShader(shader)
        return paint, 1.0, False

    def _prepare(self, s: Shape) -> _Drawn:
        fill, fa, lf = self._paint(s.fill, False, 0.0)
        stroke, sa, ls = self._paint(s.stroke, True, s.stroke_width)
        path = self._static_path(s) if not s.morph else None
        return _Drawn(s, path, fill, stroke, fa, sa, lf, ls)

    @staticmethod
    def _static_path(s: Shape) -> skia.Path:
        g = s.geometry
        if s.kind == "path":
            assert s.path is not None
            return s.path.build()
        path = skia.Path()
        if s.kind == "ellipse":
            path.addOval(skia.Rect.MakeLTRB(g[0] - g[2], g[1] - g[3], g[0] + g[2], g[1] + g[3]))
        elif s.kind == "circle":
            path.addCircle(g[0], g[1], g[2])
        else:
            path.addRRect(skia.RRect.MakeRectXY(skia.Rect.MakeXYWH(g[0], g[1], g[2], g[3]),
                                                g[4], g[4]))
        return path

    # -- a frame ---------------------------------------------------------------------------
    def transforms(self, params: Mapping[str, float]) -> tuple[dict[str, np.ndarray],
                                                                dict[str, float]]:
        """Each part's design-space matrix (3x3) and opacity for ``params``."""
        px, py = self.character.parallax
        yaw, pitch = float(params.get("yaw", 0.0)), float(params.get("pitch", 0.0))
        world: dict[str, np.ndarray] = {}
        alpha: dict[str, float] = {}
        for p in self._topo:
            tx = ty = rot = 0.0
            sx = sy = 1.0
            op = p.opacity
            for param, target, amount in p.bind:
                v = float(params.get(param, 0.0)) * amount
                if target == "translate_x":
                    tx += v
                elif target == "translate_y":
                    ty += v
                elif target == "rotate":
                    rot += v
                elif target == "scale":
                    sx += v
                    sy += v
                elif target == "scale_x":
                    sx += v
                elif target == "scale_y":
                    sy += v
                else:
                    op += v
            parent_depth = 0.0
            parent_m = np.eye(3)
            parent_a = 1.0
            if p.parent is not None:
                parent_depth = self._by_name[p.parent].depth
                parent_m = world[p.parent]
                parent_a = alpha[p.parent]
            dd = p.depth - parent_depth
            tx += dd * px * yaw
            ty += dd * py * pitch
            cx, cy = p.pivot
            r = math.radians(rot)
            cos, sin = math.cos(r), math.sin(r)
            # T(t) . T(pivot) . R . S . T(-pivot)
            a, b, c, d = cos * sx, sin * sx, -sin * sy, cos * sy
            local = _affine(a, b, c, d, cx + tx - (a * cx + c * cy), cy + ty - (b * cx + d * cy))
            world[p.name] = parent_m @ local
            alpha[p.name] = float(np.clip(op, 0.0, 1.0)) * parent_a
        return world, alpha

    def draw(self, canvas: skia.Canvas, params: Mapping[str, float],
             screen: np.ndarray, colours: Mapping[str, str] | None = None) -> None:
        """Draw onto ``canvas``; ``screen`` maps design space to the canvas (3x3)."""
        world, alpha = self.transforms(params)
        lips = self._lips_colour(colours)
        for part in self.character.parts:
            a = alpha[part.name]
            if a <= 0.004:
                continue
            canvas.save()
            if part.clip is not None:
                canvas.setMatrix(_to_skia(screen @ world[part.clip]))
                for clip in self._drawn[part.clip]:
                    canvas.clipPath(self._path_of(clip, params), skia.ClipOp.kIntersect, True)
            canvas.setMatrix(_to_skia(screen @ world[part.name]))
            for dr in self._drawn[part.name]:
                path = self._path_of(dr, params)
                k = a * dr.shape.opacity
                for paint, base, is_lips in ((dr.fill, dr.fill_alpha, dr.lips_fill),
                                             (dr.stroke, dr.stroke_alpha, dr.lips_stroke)):
                    if paint is None:
                        continue
                    if is_lips and lips is not None:
                        paint.setColor(lips)
                        base = skia.ColorGetA(lips) / 255.0
                    paint.setAlphaf(base * k)
                    canvas.drawPath(path, paint)
            canvas.restore()

    def _lips_colour(self, colours: Mapping[str, str] | None) -> int | None:
        if not colours or LIPS not in colours:
            return hex_to_skia(self._resolve(f"${LIPS}"))
        hex_colour = colours[LIPS]
        got = self._lips.get(hex_colour)
        if got is None:
            got = self._lips[hex_colour] = hex_to_skia(hex_colour)
        return got

    @staticmethod
    def _path_of(dr: _Drawn, params: Mapping[str, float]) -> skia.Path:
        if dr.path is not None:
            return dr.path
        s = dr.shape
        assert s.path is not None
        numbers = s.path.numbers.copy()
        for param, delta in s.morph:
            w = float(params.get(param, 0.0))
            if w:
                numbers += delta * w
        return s.path.build(numbers)

    # -- onto pictures ---------------------------------------------------------------------
    def screen(self, rect: tuple[float, float, float, float]) -> np.ndarray:
        """The matrix that fits the design canvas into ``rect`` (x, y, w, h), keeping its
        aspect (centred horizontally, standing on the rect's bottom)."""
        x, y, w, h = rect
        cw, ch = self.character.size
        s = min(w / cw, h / ch)
        return _affine(s, 0.0, 0.0, s, x + (w - cw * s) / 2, y + h - ch * s)

    def composite(self, frame: np.ndarray, rect: tuple[float, float, float, float],
                  params: Mapping[str, float], colours: Mapping[str, str] | None = None,
                  margin: float = 0.08) -> None:
        """Draw the character into ``frame`` (BGR uint8, in place) fitted to ``rect``.

        Only the region under the character (``rect`` grown by ``margin`` for parts that
        swing out of the design canvas: a turned head's hair, a waving arm) is converted
        to BGRA and drawn on; the conversions cost about 0.1 ms per 100k pixels, a fifth
        of a frame's drawing at 720p, so the margin stays small.
        """
        fh, fw = frame.shape[:2]
        x, y, w, h = rect
        x1 = max(0, math.floor(x - margin * w))
        y1 = max(0, math.floor(y - margin * h))
        x2 = min(fw, math.ceil(x + w + margin * w))
        y2 = min(fh, math.ceil(y + h))
        if x2 <= x1 or y2 <= y1:
            return
        roi = frame[y1:y2, x1:x2]
        bgra = cv2.cvtColor(roi, cv2.COLOR_BGR2BGRA)
        surface = skia.Surface(bgra, colorType=skia.kBGRA_8888_ColorType,
                               alphaType=skia.kPremul_AlphaType)
        with surface as canvas:
            self.draw(canvas, params, _affine(1, 0, 0, 1, -x1, -y1) @ self.screen(rect),
                      colours)
        cv2.cvtColor(bgra, cv2.COLOR_BGRA2BGR, dst=roi)

    def sprite(self, frame_size: tuple[int, int], rect: tuple[float, float, float, float],
               params: Mapping[str, float], colours: Mapping[str, str] | None = None,
               margin: float = 0.08) -> tuple[np.ndarray, int, int]:
        """The character as a premultiplied BGRA sprite over the same region
        :meth:`composite` draws, and its top-left (x, y) in a frame of ``frame_size``
        (width, height): for render backends that blend sprites (a GPU)."""
        fw, fh = frame_size
        x, y, w, h = rect
        x1 = max(0, math.floor(x - margin * w))
        y1 = max(0, math.floor(y - margin * h))
        x2 = min(fw, math.ceil(x + w + margin * w))
        y2 = min(fh, math.ceil(y + h))
        out = np.zeros((max(1, y2 - y1), max(1, x2 - x1), 4), np.uint8)
        surface = skia.Surface(out, colorType=skia.kBGRA_8888_ColorType,
                               alphaType=skia.kPremul_AlphaType)
        with surface as canvas:
            self.draw(canvas, params, _affine(1, 0, 0, 1, -x1, -y1) @ self.screen(rect),
                      colours)
        return out, x1, y1

    def render(self, params: Mapping[str, float], width: int, height: int,
               background: tuple[int, int, int] = (235, 235, 235),
               colours: Mapping[str, str] | None = None) -> np.ndarray:
        """The character alone on a flat BGR ``background``, fitted to width x height."""
        out = np.empty((height, width, 3), np.uint8)
        out[:] = background
        self.composite(out, (0.0, 0.0, float(width), float(height)), params, colours, 0.0)
        return out


def bounds_on_screen(renderer: CharacterRenderer, rect: tuple[float, float, float, float]
                     ) -> tuple[int, int, int, int]:
    """The design canvas fitted into ``rect``, as integer (x, y, w, h) on screen."""
    m = renderer.screen(rect)
    cw, ch = renderer.character.size
    x1, y1 = m[0, 2], m[1, 2]
    return (round(x1), round(y1), round(cw * m[0, 0]), round(ch * m[1, 1]))
