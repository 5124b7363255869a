"""Multilingual text to cached premultiplied sprites (Chinese, English, Thai, Vietnamese...).

No single font covers every script a live-commerce room writes in, so a string is cut into
runs, each run drawn with the first font of a fallback chain whose character map has its
glyphs (Latin/Vietnamese -> Noto Sans, Thai -> Noto Sans Thai or TLWG, CJK -> Noto Sans
CJK). Spaces, digits, punctuation and combining marks stay in the run they sit in, so a
Thai word keeps its vowel marks and a Vietnamese word its tone marks. Each run is shaped by
Pillow's raqm layout (HarfBuzz), which places Thai and Vietnamese stacked marks correctly.

Rendering costs milliseconds, blending a sprite microseconds: :meth:`TextRenderer.render`
caches its sprites (LRU keyed by text, size, colours and weight), so a layer pays for a
string once. Fonts come from Debian packages; a missing one is a start-up error that names
the package, never tofu boxes on air.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from arengine.errors import UserError
from arengine.render.sprites import SpriteCache

Weight = Literal["regular", "bold"]
BGR = tuple[int, int, int]

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")


@dataclass(frozen=True)
class FontSpec:
    """One font file (and face index in a collection) plus the Debian package it comes in."""

    role: str
    path: str
    index: int = 0


# Candidates per role, best first: (file name, face index in a .ttc, weight, package).
_CANDIDATES: dict[str, list[tuple[str, int, Weight, str]]] = {
    "latin": [
        ("NotoSans-Regular.ttf", 0, "regular", "fonts-noto-core"),
        ("NotoSans-Bold.ttf", 0, "bold", "fonts-noto-core"),
        ("DejaVuSans.ttf", 0, "regular", "fonts-dejavu-core"),
        ("DejaVuSans-Bold.ttf", 0, "bold", "fonts-dejavu-core"),
    ],
    "thai": [
        ("NotoSansThai-Regular.ttf", 0, "regular", "fonts-noto-core"),
        ("NotoSansThai-Bold.ttf", 0, "bold", "fonts-noto-core"),
        ("Loma.ttf", 0, "regular", "fonts-thai-tlwg"),
        ("Loma-Bold.ttf", 0, "bold", "fonts-thai-tlwg"),
        ("Garuda.ttf", 0, "regular", "fonts-thai-tlwg"),
        ("Garuda-Bold.ttf", 0, "bold", "fonts-thai-tlwg"),
    ],
    "cjk": [
        # Face 2 of the collection is Simplified Chinese (fc-list shows "CJK SC:index=2").
        ("NotoSansCJK-Regular.ttc", 2, "regular", "fonts-noto-cjk"),
        ("NotoSansCJK-Bold.ttc", 2, "bold", "fonts-noto-cjk"),
        ("wqy-microhei.ttc", 0, "regular", "fonts-wqy-microhei"),
    ],
}
# Optional fonts tried after the required ones, for symbols and emoji that chat is full of
# (hearts, stars, thumbs): monochrome outlines, drawn in the text colour.
_EXTRAS: list[tuple[str, int, Weight]] = [
    ("NotoSansSymbols2-Regular.ttf", 0, "regular"),
    ("NotoSansSymbols-Regular.ttf", 0, "regular"),
    ("NotoSansSymbols-Bold.ttf", 0, "bold"),
    ("DejaVuSans.ttf", 0, "regular"),
    ("DejaVuSans-Bold.ttf", 0, "bold"),
    ("NotoSansMath-Regular.ttf", 0, "regular"),
]
# One character that proves a role's font works, and what to tell the user otherwise.
_PROBES = {"latin": "Aệ", "thai": "ก", "cjk": "中"}
_PACKAGES = {"latin": "fonts-noto-core", "thai": "fonts-thai-tlwg (or fonts-noto-core)",
             "cjk": "fonts-noto-cjk"}
_FC_LANG = {"latin": "vi", "thai": "th", "cjk": "zh-cn"}


class FontError(UserError):
    """No installed font can draw a script the engine must support."""


@lru_cache(maxsize=1)
def _font_files() -> dict[str, str]:
    """File name -> path for every font under the usual font folders (walked once)."""
    found: dict[str, str] = {}
    extra = os.environ.get("ARENGINE_FONT_DIRS", "")
    dirs = [d for d in extra.split(os.pathsep) if d] + list(FONT_DIRS)
    for d in dirs:
        root = Path(d).expanduser()
        if not root.is_dir():
            continue
        for dirpath, _, files in os.walk(root):
            for f in files:
                if f.lower().endswith((".ttf", ".otf", ".ttc")):
                    found.setdefault(f, os.path.join(dirpath, f))
    return found


def _fc_match(lang: str, bold: bool) -> FontSpec | None:
    """Ask fontconfig for a sans font for ``lang`` (used when no known file is present)."""
    if shutil.which("fc-match") is None:
        return None
    pattern = f"sans:lang={lang}" + (":weight=bold" if bold else "")
    try:
        out = subprocess.run(["fc-match", "-f", "%{file}\n%{index}", pattern],
                             capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.strip().splitlines()
    if len(lines) != 2 or not Path(lines[0]).is_file():
        return None
    return FontSpec("fc", lines[0], int(lines[1] or 0))


@lru_cache(maxsize=32)
def _cmap(path: str, index: int) -> frozenset[int]:
    """The code points a font face has glyphs for."""
    from fontTools.ttLib import TTFont

    with TTFont(path, fontNumber=index, lazy=True) as f:
        cmap = f["cmap"].getBestCmap() or {}
    return frozenset(cmap)


def find_fonts(weight: Weight = "regular") -> list[FontSpec]:
    """The fallback chain for ``weight``: latin, thai and cjk (required; :class:`FontError`
    if one is missing), then whatever symbol fonts are installed."""
    files = _font_files()
    chain: list[FontSpec] = []
    for role, candidates in _CANDIDATES.items():
        spec = None
        for want in (weight, "regular"):
            for name, index, w, _ in candidates:
                if w == want and name in files:
                    spec = FontSpec(role, files[name], index)
                    break
            if spec is not None:
                break
        if spec is None:
            fc = _fc_match(_FC_LANG[role], weight == "bold")
            if fc is not None and all(ord(c) in _cmap(fc.path, fc.index)
                                      for c in _PROBES[role]):
                spec = FontSpec(role, fc.path, fc.index)
        if spec is None or not all(ord(c) in _cmap(spec.path, spec.index)
                                   for c in _PROBES[role]):
            raise FontError(f"no font for {role} text found; install the Debian package "
                            f"{_PACKAGES[role]} (apt-get install {_PACKAGES[role].split()[0]})")
        chain.append(spec)
    have = {(c.path, c.index) for c in chain}
    for want in (weight, "regular"):
        for name, index, w in _EXTRAS:
            if w == want and name in files and (files[name], index) not in have:
                chain.append(FontSpec("symbols", files[name], index))
                have.add((files[name], index))
    return chain


def _is_neutral(ch: str) -> bool:
    """Characters that belong to whatever run they sit in (spaces, digits, marks...)."""
    cat = unicodedata.category(ch)
    return cat[0] in "MZPN" or cat in ("Sm", "Sc", "Sk", "Cc", "Cf")


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "M"


class TextRenderer:
    """Draws strings with per-script font fallback into cached premultiplied BGRA sprites.

    ``size`` is the font size in pixels. Colours are BGR like frames. Every string of one
    size has the same height (the chain's tallest ascent plus descent), so rows of mixed
    scripts line up.
    """

    def __init__(self, fonts: dict[Weight, list[FontSpec]] | None = None,
                 cache_size: int = 1024) -> None:
        self.fonts: dict[Weight, list[FontSpec]] = fonts or {
            "regular": find_fonts("regular"), "bold": find_fonts("bold")}
        self._cache: SpriteCache[np.ndarray] = SpriteCache(cache_size)
        self._faces: dict[tuple[str, int, int], ImageFont.FreeTypeFont] = {}

    # -- fonts --------------------------------------------------------------------------
    def _face(self, spec: FontSpec, size: int) -> ImageFont.FreeTypeFont:
        key = (spec.path, spec.index, size)
        face = self._faces.get(key)
        if face is None:
            face = ImageFont.truetype(spec.path, size, index=spec.index,
                                      layout_engine=ImageFont.Layout.RAQM)
            self._faces[key] = face
        return face

    def font_for(self, ch: str, weight: Weight = "regular") -> FontSpec | None:
        """The first font of the chain that has a glyph for ``ch`` (None: nothing does)."""
        cp = ord(ch)
        for spec in self.fonts[weight]:
            if cp in _cmap(spec.path, spec.index):
                return spec
        return None

    def missing(self, text: str, weight: Weight = "regular") -> str:
        """The characters of ``text`` no installed font can draw (they would be boxes)."""
        return "".join(dict.fromkeys(
            c for c in text if not c.isspace() and unicodedata.category(c) != "Cf"
            and self.font_for(c, weight) is None))

    def runs(self, text: str, weight: Weight = "regular") -> list[tuple[FontSpec, str]]:
        """``text`` cut into (font, substring) runs, each drawable by one font.

        Characters no installed font has (a colour emoji without an emoji font) are left
        out rather than drawn as boxes; :meth:`missing` lists them.
        """
        chain = self.fonts[weight]
        out: list[tuple[FontSpec, str]] = []
        for ch in text:
            cp = ord(ch)
            current = out[-1][0] if out else None
            if current is not None and (_is_mark(ch) or _is_neutral(ch)) \
                    and (cp in _cmap(current.path, current.index) or _is_mark(ch)
                         or unicodedata.category(ch) == "Cf"):
                spec = current
            else:
                found = self.font_for(ch, weight)
                if found is None and not ch.isspace():
                    continue
                spec = found or chain[0]
            if out and out[-1][0] == spec:
                out[-1] = (spec, out[-1][1] + ch)
            else:
                out.append((spec, ch))
        return out

    @lru_cache(maxsize=64)  # noqa: B019 - one renderer per process; sizes are few
    def metrics(self, size: int, weight: Weight = "regular") -> tuple[int, int]:
        """(ascent, descent) in pixels shared by every string of this size."""
        asc = des = 0
        for spec in self.fonts[weight]:
            if spec.role == "symbols":  # math and symbol fonts have outsized extents
                continue
            a, d = self._face(spec, size).getmetrics()
            asc, des = max(asc, a), max(des, d)
        return asc, des

    # -- measuring and wrapping ---------------------------------------------------------
    def measure(self, text: str, size: int, weight: Weight = "regular") -> int:
        """Advance width of ``text`` in pixels (as drawn: shaped, with fallback)."""
        return round(sum(self._face(spec, size).getlength(run)
                             for spec, run in self.runs(text, weight)))

    def wrap(self, text: str, size: int, max_width: int, max_lines: int = 1,
             weight: Weight = "regular", ellipsis: str = "…") -> list[str]:
        """Greedy line breaking to ``max_width``; the last line ends in ``ellipsis`` if cut.

        Lines break at spaces where there are any and between characters otherwise (Chinese
        and Thai are written without spaces); a combining mark never starts a line.
        """
        text = " ".join(text.split())
        lines: list[str] = []
        rest = text
        while rest and len(lines) < max_lines:
            if self.measure(rest, size, weight) <= max_width:
                lines.append(rest)
                rest = ""
                break
            cut = self._fit(rest, size, max_width, weight)
            space = rest.rfind(" ", 0, cut + 1)
            if space > 0 and len(lines) < max_lines - 1:
                cut = space
            lines.append(rest[:cut].rstrip())
            rest = rest[cut:].lstrip()
        if rest and lines:
            last = lines[-1]
            while last and self.measure(last + ellipsis, size, weight) > max_width:
                last = last[:-1]
                while last and _is_mark(last[-1]):
                    last = last[:-1]
            lines[-1] = last.rstrip() + ellipsis
        return lines

    def _fit(self, text: str, size: int, max_width: int, weight: Weight) -> int:
        """The longest prefix length of ``text`` that fits (at least one character)."""
        lo, hi = 1, len(text)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.measure(text[:mid], size, weight) <= max_width:
                lo = mid
            else:
                hi = mid - 1
        cut = lo
        while cut < len(text) and _is_mark(text[cut]):
            cut += 1  # keep marks with their base character
        return max(cut, 1)

    # -- rendering ----------------------------------------------------------------------
    def render(self, text: str, size: int, colour: BGR = (255, 255, 255),
               weight: Weight = "regular", stroke: int = 0,
               stroke_colour: BGR = (0, 0, 0), max_width: int | None = None,
               max_lines: int = 1, align: Literal["left", "center"] = "left") -> np.ndarray:
        """``text`` as a premultiplied BGRA sprite (cached), optionally wrapped/ellipsized."""
        if size < 1:
            raise ValueError(f"text size must be at least 1 px, got {size}")
        key = (text, size, colour, weight, stroke, stroke_colour, max_width, max_lines, align)
        return self._cache.get(key, lambda: self._render(*key))

    def _render(self, text: str, size: int, colour: BGR, weight: Weight, stroke: int,
                stroke_colour: BGR, max_width: int | None, max_lines: int,
                align: str) -> np.ndarray:
        lines = (self.wrap(text, size, max_width, max_lines, weight)
                 if max_width is not None else [text])
        lines = lines or [""]
        asc, des = self.metrics(size, weight)
        line_h = asc + des
        widths = [self.measure(line, size, weight) for line in lines]
        w = max([*widths, 1]) + 2 * stroke + 2
        h = line_h * len(lines) + 2 * stroke
        fill = Image.new("L", (w, h), 0)
        edge = Image.new("L", (w, h), 0) if stroke > 0 else None
        df = ImageDraw.Draw(fill)
        de = ImageDraw.Draw(edge) if edge is not None else None
        for i, line in enumerate(lines):
            x = float(stroke + 1)
            if align == "center":
                x += (w - 2 * stroke - 2 - widths[i]) / 2
            baseline = stroke + asc + i * line_h
            for spec, run in self.runs(line, weight):
                face = self._face(spec, size)
                df.text((x, baseline), run, font=face, fill=255, anchor="ls")
                if de is not None:
                    de.text((x, baseline), run, font=face, fill=255, anchor="ls",
                            stroke_width=stroke, stroke_fill=255)
                x += face.getlength(run)
        fa = np.asarray(fill, np.float32) / 255.0
        ea = np.asarray(edge, np.float32) / 255.0 if edge is not None else np.zeros_like(fa)
        alpha = fa + ea * (1.0 - fa)
        out = np.empty((h, w, 4), np.uint8)
        for c in range(3):
            out[:, :, c] = np.rint(colour[c] * fa + stroke_colour[c] * ea * (1.0 - fa))
        out[:, :, 3] = np.rint(alpha * 255)
        return out


@lru_cache(maxsize=1)
def default_renderer() -> TextRenderer:
    """The process-wide renderer (fonts found once; :class:`FontError` if some are missing)."""
    return TextRenderer()
