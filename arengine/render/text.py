"""Multilingual text to cached premultiplied sprites (Chinese, English, Thai, Vietnamese...).

No single font covers every script a live-commerce room writes in, so a string is cut into
runs, each run drawn with the first font of a fallback chain whose character map has its
glyphs (Latin/Vietnamese -> Noto Sans, Thai -> Noto Sans Thai or TLWG, CJK -> Noto Sans
CJK, Hebrew and Arabic -> Noto Sans Hebrew/Arabic when installed, then symbol fonts).
Spaces, digits, punctuation and combining marks stay in the run they sit in, so a Thai word
keeps its vowel marks and a Vietnamese word its tone marks. Each run is shaped by Pillow's
raqm layout (HarfBuzz), which places Thai and Vietnamese stacked marks correctly.

Emoji are cut by grapheme cluster, not by code point, so a ZWJ family, a flag, a skin tone
or a keycap stays one sequence that HarfBuzz turns into one glyph, and are drawn in colour
from Noto Color Emoji: a bitmap font FreeType loads only at its strike size (109 px), so an
emoji run is drawn at that size and scaled to the line.

A line with right-to-left text is laid out by the Unicode Bidirectional Algorithm (FriBidi,
the library raqm itself uses): runs are also cut where the embedding level changes, each is
shaped in its own direction and the runs are placed in visual order, so every space keeps
its place between Hebrew or Arabic and Latin words.

Rendering costs milliseconds, blending a sprite microseconds: :meth:`TextRenderer.render`
caches its sprites (LRU keyed by text, size, colours and weight), so a layer pays for a
string once. Fonts come from Debian packages; a missing one is a start-up error that names
the package, never tofu boxes on air.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from arengine.errors import UserError
from arengine.render.sprites import SpriteCache, over

Weight = Literal["regular", "bold"]
BGR = tuple[int, int, int]
Direction = Literal["ltr", "rtl"] | None

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
    # One colour face for both weights (emoji have no bold).
    "emoji": [
        ("NotoColorEmoji.ttf", 0, "regular", "fonts-noto-color-emoji"),
    ],
}
# Optional script fonts tried before the symbol fonts (DejaVu Sans also has Hebrew and
# Arabic, but Noto's match the Latin font's weight and height).
_SCRIPTS: list[tuple[str, str, int, Weight]] = [
    ("hebrew", "NotoSansHebrew-Regular.ttf", 0, "regular"),
    ("hebrew", "NotoSansHebrew-Bold.ttf", 0, "bold"),
    ("arabic", "NotoSansArabic-Regular.ttf", 0, "regular"),
    ("arabic", "NotoSansArabic-Bold.ttf", 0, "bold"),
]
# Optional fonts tried after the required ones, for symbols and emoji that chat is full of
# (hearts, stars, arrows) in text presentation: monochrome outlines, drawn in the text
# colour.
_EXTRAS: list[tuple[str, int, Weight]] = [
    ("NotoSansSymbols2-Regular.ttf", 0, "regular"),
    ("NotoSansSymbols-Regular.ttf", 0, "regular"),
    ("NotoSansSymbols-Bold.ttf", 0, "bold"),
    ("DejaVuSans.ttf", 0, "regular"),
    ("DejaVuSans-Bold.ttf", 0, "bold"),
    ("NotoSansMath-Regular.ttf", 0, "regular"),
]
# One character that proves a role's font works, and what to tell the user otherwise.
_PROBES = {"latin": "Aệ", "thai": "ก", "cjk": "中", "emoji": "\U0001f484"}
_PACKAGES = {"latin": "fonts-noto-core", "thai": "fonts-thai-tlwg (or fonts-noto-core)",
             "cjk": "fonts-noto-cjk", "emoji": "fonts-noto-color-emoji"}
# The roles whose fonts set the line height (see TextRenderer.metrics).
_LINE_ROLES = ("latin", "thai", "cjk")
_FC_LANG = {"latin": "vi", "thai": "th", "cjk": "zh-cn", "emoji": "und-zsye"}


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


@lru_cache(maxsize=8)
def _strike(path: str, index: int) -> int | None:
    """The pixel size of a colour bitmap font's largest strike (None: a scalable font).

    FreeType opens a CBDT font only at one of its strikes ("invalid pixel size" otherwise);
    Noto Color Emoji has one, 109 px.
    """
    from fontTools.ttLib import TTFont

    with TTFont(path, fontNumber=index, lazy=True) as f:
        if "CBLC" not in f:
            return None
        return max(int(st.bitmapSizeTable.ppemY) for st in f["CBLC"].strikes)


def find_fonts(weight: Weight = "regular") -> list[FontSpec]:
    """The fallback chain for ``weight``: latin, thai and cjk, then the Hebrew and Arabic
    fonts and symbol fonts that are installed, then the colour emoji font. Latin, thai, cjk
    and emoji are required (:class:`FontError` naming the Debian package if one is missing).

    The emoji font comes last so that a character some text font has (a bare U+2764 heart)
    keeps its monochrome text presentation; emoji clusters are sent to it by
    :meth:`TextRenderer.runs` whatever its place.
    """
    files = _font_files()
    required: dict[str, FontSpec] = {}
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
        required[role] = spec
    emoji = required.pop("emoji")
    chain = list(required.values())
    have = {(c.path, c.index) for c in chain}
    for role in dict.fromkeys(r for r, *_ in _SCRIPTS):
        for want in (weight, "regular"):
            found = [n for r, n, _, w in _SCRIPTS if r == role and w == want and n in files]
            if found:
                chain.append(FontSpec(role, files[found[0]], 0))
                have.add((files[found[0]], 0))
                break
    for want in (weight, "regular"):
        for name, index, w in _EXTRAS:
            if w == want and name in files and (files[name], index) not in have:
                chain.append(FontSpec("symbols", files[name], index))
                have.add((files[name], index))
    chain.append(emoji)
    return chain


# -- grapheme clusters and emoji presentation (UAX #29, UTS #51) ----------------------------
_ZWJ = 0x200D
_VS_TEXT, _VS_EMOJI = 0xFE0E, 0xFE0F
_KEYCAP = 0x20E3
# Where an emoji cluster can start or what it must contain (U+203C up to the dingbats and
# arrows, 〰 〽 ㊗ ㊙, U+FE0F, U+1F000 up, tags): text without any is cut per character
# without the slower cluster pass (© and ® alone are text presentation).
_EMOJI_HINT = re.compile("[\u203c-\u2bff\u3030\u303d\u3297\u3299\ufe0f"
                         "\U0001f000-\U0001fffd\U000e0020-\U000e007f]")
# Emoji_Presentation=Yes below U+1F000 (emoji-data.txt): drawn in colour without U+FE0F.
_EMOJI_PRESENTATION_BMP = frozenset([
    0x231A, 0x231B, 0x23E9, 0x23EA, 0x23EB, 0x23EC, 0x23F0, 0x23F3, 0x25FD, 0x25FE, 0x2614,
    0x2615, *range(0x2648, 0x2654), 0x267F, 0x2693, 0x26A1, 0x26AA, 0x26AB, 0x26BD, 0x26BE,
    0x26C4, 0x26C5, 0x26CE, 0x26D4, 0x26EA, 0x26F2, 0x26F3, 0x26F5, 0x26FA, 0x26FD, 0x2705,
    0x270A, 0x270B, 0x2728, 0x274C, 0x274E, 0x2753, 0x2754, 0x2755, 0x2757, 0x2795, 0x2796,
    0x2797, 0x27B0, 0x27BF, 0x2B1B, 0x2B1C, 0x2B50, 0x2B55,
])


def _is_ri(cp: int) -> bool:
    """A regional indicator letter (two make a flag)."""
    return 0x1F1E6 <= cp <= 0x1F1FF


def _is_modifier(cp: int) -> bool:
    """An emoji skin-tone modifier."""
    return 0x1F3FB <= cp <= 0x1F3FF


def _is_tag(cp: int) -> bool:
    """A tag character (subdivision flags such as Scotland's)."""
    return 0xE0020 <= cp <= 0xE007F


def _pictographic(cp: int) -> bool:
    """Extended_Pictographic, approximated by the blocks that hold it (© ® ‼ ⁉ ™ ℹ, arrows
    to dingbats and supplemental arrows, the CJK symbols 〰 〽 ㊗ ㊙, and U+1F000 up). Only
    decides where a ZWJ joins two pictographs into one cluster; a superset is harmless."""
    return (0x1F000 <= cp <= 0x1FFFD and not _is_ri(cp) and not _is_modifier(cp)) \
        or 0x2190 <= cp <= 0x2BFF or cp in (0xA9, 0xAE, 0x203C, 0x2049, 0x2122, 0x2139,
                                            0x3030, 0x303D, 0x3297, 0x3299)


def _is_extend(ch: str) -> bool:
    """Characters that never start a cluster: marks, variation selectors, ZWNJ, skin tones
    and tags (Grapheme_Cluster_Break Extend or SpacingMark, from the general category)."""
    cp = ord(ch)
    return unicodedata.category(ch)[0] == "M" or cp == 0x200C or _is_modifier(cp) \
        or _is_tag(cp)


def graphemes(text: str) -> list[str]:
    """``text`` cut into extended grapheme clusters (UAX #29: a base and its marks, an emoji
    ZWJ sequence, a regional-indicator pair), simplified: Hangul jamo and Indic conjunct
    rules are left out; they only decide emoji runs here, other text keeps its marks by
    :func:`_is_mark`."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        cp = ord(text[i])
        j = i + 1
        if text[i] == "\r" and j < n and text[j] == "\n":
            j += 1
        elif unicodedata.category(text[i]) in ("Cc", "Zl", "Zp"):
            pass  # controls are clusters of their own
        else:
            if _is_ri(cp) and j < n and _is_ri(ord(text[j])):
                j += 1
            pict = _pictographic(cp)
            while j < n:
                nxt = ord(text[j])
                if nxt == _ZWJ:
                    j += 1
                    if pict and j < n and _pictographic(ord(text[j])):
                        j += 1
                elif _is_extend(text[j]):
                    j += 1
                else:
                    break
        out.append(text[i:j])
        i = j
    return out


# -- bidi levels (UAX #9, by FriBidi) --------------------------------------------------------
# FRIBIDI_PAR_LTR, _RTL and _ON (fribidi-bidi-types.h; fribidi_get_bidi_type gives 0x110
# for "A", 0x111 for Hebrew alef, 0x40 for "!").
_FRIBIDI_PAR_LTR, _FRIBIDI_PAR_RTL, _FRIBIDI_PAR_ON = 0x110, 0x111, 0x40
# Every character of bidi class R, AL or AN, and RLM, RLE, RLO, RLI, lies in these blocks
# (Hebrew to Arabic Extended, their presentation forms, the right-to-left SMP scripts): a
# line without them is left to right, and a regex finds that in 0.5 us where asking
# unicodedata per character takes 3.5 us (60 Latin characters). A superset is harmless:
# FriBidi decides.
_RTL_HINT = re.compile("[\u0590-\u08ff\u200f\u202b\u202e\u2067\ufb1d-\ufdff\ufe70-\ufefe"
                       "\U00010800-\U00010fff\U0001e800-\U0001efff]")


@lru_cache(maxsize=1)
def _fribidi() -> ctypes.CDLL | None:
    """FriBidi, the bidi library raqm (and so Pillow's layout) loads; None if absent."""
    for name in (ctypes.util.find_library("fribidi"), "libfribidi.so.0"):
        if name:
            try:
                lib = ctypes.CDLL(name)
            except OSError:
                continue
            u32p, i8p = ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_int8)
            lib.fribidi_get_bidi_types.argtypes = [u32p, ctypes.c_int, u32p]
            lib.fribidi_get_bidi_types.restype = None
            lib.fribidi_get_bracket_types.argtypes = [u32p, ctypes.c_int, u32p, u32p]
            lib.fribidi_get_bracket_types.restype = None
            lib.fribidi_get_par_embedding_levels_ex.argtypes = [u32p, u32p, ctypes.c_int,
                                                                u32p, i8p]
            lib.fribidi_get_par_embedding_levels_ex.restype = ctypes.c_int8
            return lib
    return None


def bidi_levels(text: str, rtl: bool | None = None) -> tuple[list[int], bool]:
    """Embedding levels of ``text``'s code points and whether its paragraph is right to left.

    ``rtl`` None takes the direction from the first strong character (rules P2-P3; LTR when
    there is none). Left-to-right text is all level 0 without asking FriBidi, and so is
    everything when FriBidi is missing (then Pillow's raqm is missing too).
    """
    n = len(text)
    if n == 0 or (not rtl and not _RTL_HINT.search(text)):
        return [0] * n, False
    lib = _fribidi()
    if lib is None:
        return [0] * n, False
    chars = (ctypes.c_uint32 * n)(*map(ord, text))
    types = (ctypes.c_uint32 * n)()
    brackets = (ctypes.c_uint32 * n)()
    levels = (ctypes.c_int8 * n)()
    lib.fribidi_get_bidi_types(chars, n, types)
    lib.fribidi_get_bracket_types(chars, n, types, brackets)
    base = ctypes.c_uint32(_FRIBIDI_PAR_ON if rtl is None
                           else _FRIBIDI_PAR_RTL if rtl else _FRIBIDI_PAR_LTR)
    if lib.fribidi_get_par_embedding_levels_ex(types, brackets, n, ctypes.byref(base),
                                               levels) == 0:
        return [0] * n, False
    return list(levels), base.value == _FRIBIDI_PAR_RTL


def _visual_order(levels: list[int]) -> list[int]:
    """Indices of runs at ``levels`` in display order (rule L2: from the highest level down
    to the lowest odd one, reverse every stretch at that level or above)."""
    order = list(range(len(levels)))
    if not levels:
        return order
    top, low = max(levels), min(levels)
    for lvl in range(top, low + (low % 2 == 0) - 1, -1):
        i = 0
        while i < len(order):
            if levels[order[i]] >= lvl:
                j = i
                while j < len(order) and levels[order[j]] >= lvl:
                    j += 1
                order[i:j] = order[i:j][::-1]
                i = j
            else:
                i += 1
    return order


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
    scripts line up. Emoji keep their own colours whatever the text colour.
    """

    def __init__(self, fonts: dict[Weight, list[FontSpec]] | None = None,
                 cache_size: int = 1024) -> None:
        self.fonts: dict[Weight, list[FontSpec]] = fonts or {
            "regular": find_fonts("regular"), "bold": find_fonts("bold")}
        self._cache: SpriteCache[np.ndarray] = SpriteCache(cache_size)
        self._faces: dict[tuple[str, int, int], ImageFont.FreeTypeFont] = {}
        # Scaled emoji runs, shared by every string that has them (chat repeats a few).
        self._emoji: SpriteCache[tuple[np.ndarray, float, float]] = SpriteCache(256)

    # -- fonts --------------------------------------------------------------------------
    def _face(self, spec: FontSpec, size: int) -> ImageFont.FreeTypeFont:
        """The face of ``spec`` at ``size`` px, or at its bitmap strike for a colour font."""
        size = _strike(spec.path, spec.index) or size
        key = (spec.path, spec.index, size)
        face = self._faces.get(key)
        if face is None:
            face = ImageFont.truetype(spec.path, size, index=spec.index,
                                      layout_engine=ImageFont.Layout.RAQM)
            self._faces[key] = face
        return face

    def _scale(self, spec: FontSpec, size: int) -> float:
        """How much a run of ``spec`` drawn by :meth:`_face` is scaled to be ``size`` px."""
        strike = _strike(spec.path, spec.index)
        return size / strike if strike else 1.0

    def font_for(self, ch: str, weight: Weight = "regular") -> FontSpec | None:
        """The first font of the chain that has a glyph for ``ch`` (None: nothing does)."""
        cp = ord(ch)
        for spec in self.fonts[weight]:
            if cp in _cmap(spec.path, spec.index):
                return spec
        return None

    def _emoji_font(self, weight: Weight) -> FontSpec | None:
        return next((spec for spec in self.fonts[weight] if spec.role == "emoji"), None)

    def is_emoji(self, cluster: str, weight: Weight = "regular") -> bool:
        """Whether a grapheme cluster is drawn as a colour emoji (UTS #51 presentation).

        Every sequence the emoji font starts is (flags, keycaps, skin tones, ZWJ sequences,
        anything with U+FE0F), unless U+FE0E asks for text presentation. A single character
        is when it defaults to emoji presentation, or lies at U+1F000 and up, where chat
        apps draw even the few text-default pictographs (🌡) in colour; a bare ❤ or ☺ stays
        a monochrome outline when a text font has it.
        """
        spec = self._emoji_font(weight)
        if spec is None or not cluster:
            return False
        cps = [ord(c) for c in cluster]
        base, rest = cps[0], cps[1:]
        if base not in _cmap(spec.path, spec.index) or rest[:1] == [_VS_TEXT]:
            return False
        if cluster[0] in "#*0123456789":
            return _KEYCAP in rest
        return base >= 0x1F000 or base in _EMOJI_PRESENTATION_BMP or any(
            c in (_VS_EMOJI, _ZWJ) or _is_modifier(c) or _is_tag(c) for c in rest)

    def missing(self, text: str, weight: Weight = "regular") -> str:
        """The characters of ``text`` no installed font can draw (they would be boxes)."""
        return "".join(dict.fromkeys(
            c for c in text if not c.isspace() and unicodedata.category(c) != "Cf"
            and self.font_for(c, weight) is None))

    def _spans(self, text: str, weight: Weight) -> list[tuple[FontSpec, int, int]]:
        """``text`` as (font, start, end) pieces in logical order: an emoji cluster whole,
        other characters one by one; characters no installed font has are left out."""
        chain = self.fonts[weight]
        emoji = self._emoji_font(weight)
        out: list[tuple[FontSpec, int, int]] = []
        i = 0
        whole = emoji is None or not _EMOJI_HINT.search(text)  # no emoji: no cluster pass
        for cluster in [text] if whole else graphemes(text):
            if not whole and _EMOJI_HINT.search(cluster) and self.is_emoji(cluster, weight):
                assert emoji is not None
                out.append((emoji, i, i + len(cluster)))
                i += len(cluster)
                continue
            for ch in cluster:
                cp = ord(ch)
                current = out[-1][0] if out else None
                # Spaces and digits after an emoji go back to a text font: the emoji font
                # has them too, but every one of its glyphs is 1.25 em wide.
                if current is not None and current.role != "emoji" \
                        and (_is_mark(ch) or _is_neutral(ch)) \
                        and (cp in _cmap(current.path, current.index) or _is_mark(ch)
                             or unicodedata.category(ch) == "Cf"):
                    spec = current
                else:
                    found = self.font_for(ch, weight)
                    if found is None and not ch.isspace():
                        i += 1
                        continue
                    spec = found or chain[0]
                out.append((spec, i, i + 1))
                i += 1
        return out

    def runs(self, text: str, weight: Weight = "regular") -> list[tuple[FontSpec, str]]:
        """``text`` cut into (font, substring) runs in logical order, each drawable by one
        font; an emoji sequence is never split.

        Characters no installed font has are left out rather than drawn as boxes;
        :meth:`missing` lists them.
        """
        out: list[tuple[FontSpec, str]] = []
        for spec, a, b in self._spans(text, weight):
            if out and out[-1][0] == spec:
                out[-1] = (spec, out[-1][1] + text[a:b])
            else:
                out.append((spec, text[a:b]))
        return out

    def layout(self, line: str, weight: Weight = "regular",
               rtl: bool | None = None) -> list[tuple[FontSpec, str, Direction]]:
        """One line as (font, substring, direction) runs in visual order, left to right.

        Runs are cut where the font or the bidi embedding level changes and ordered by rule
        L2; a run at an odd level is shaped right to left. ``rtl`` is the paragraph
        direction (None: from the line's first strong character). A line with no
        right-to-left text gets direction None: raqm shapes it as it always has.
        """
        spans = self._spans(line, weight)
        levels, _ = bidi_levels(line, rtl)
        bidi = any(levels)
        runs: list[tuple[FontSpec, str, int]] = []
        for spec, a, b in spans:
            lvl = levels[a]
            if runs and runs[-1][0] == spec and runs[-1][2] == lvl:
                runs[-1] = (spec, runs[-1][1] + line[a:b], lvl)
            else:
                runs.append((spec, line[a:b], lvl))
        order = _visual_order([r[2] for r in runs])
        return [(runs[k][0], runs[k][1],
                 ("rtl" if runs[k][2] % 2 else "ltr") if bidi else None) for k in order]

    @lru_cache(maxsize=64)  # noqa: B019 - one renderer per process; sizes are few
    def metrics(self, size: int, weight: Weight = "regular") -> tuple[int, int]:
        """(ascent, descent) in pixels shared by every string of this size.

        Only the Latin, Thai and CJK fonts count. Symbol fonts have outsized extents, and
        so has Noto Sans Arabic (1.38 and 0.74 em, which would make every line a third
        taller) while its letters stay within 0.72 em above the baseline and 0.40 below
        (only stacked vowel marks reach higher). Emoji scaled to the line stand 0.93 em
        above and 0.25 em below (Noto Color Emoji: 101 and 27 of 109 px), inside Noto Sans
        CJK's 1.16 and Thai's 0.45 em.
        """
        asc = des = 0
        for spec in self.fonts[weight]:
            if spec.role not in _LINE_ROLES:
                continue
            a, d = self._face(spec, size).getmetrics()
            asc, des = max(asc, a), max(des, d)
        return asc, des

    # -- measuring and wrapping ---------------------------------------------------------
    def _advance(self, spec: FontSpec, run: str, size: int, direction: Direction) -> float:
        return self._face(spec, size).getlength(run, direction=direction) \
            * self._scale(spec, size)

    def measure(self, text: str, size: int, weight: Weight = "regular") -> int:
        """Advance width of ``text`` in pixels (as drawn: shaped, with fallback and bidi)."""
        return round(sum(self._advance(spec, run, size, d)
                         for spec, run, d in self.layout(text, weight)))

    def wrap(self, text: str, size: int, max_width: int, max_lines: int = 1,
             weight: Weight = "regular", ellipsis: str = "…") -> list[str]:
        """Greedy line breaking to ``max_width``; the last line ends in ``ellipsis`` if cut.

        Lines break at spaces where there are any and between grapheme clusters otherwise
        (Chinese and Thai are written without spaces); a combining mark never starts a
        line and an emoji sequence is never split.
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
                last = last[:len(last) - len(graphemes(last)[-1])]
            lines[-1] = last.rstrip() + ellipsis
        return lines

    def _fit(self, text: str, size: int, max_width: int, weight: Weight) -> int:
        """The longest prefix length of ``text`` that fits (at least one character), moved
        on to the end of the grapheme cluster it cuts (marks stay with their base)."""
        lo, hi = 1, len(text)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.measure(text[:mid], size, weight) <= max_width:
                lo = mid
            else:
                hi = mid - 1
        end = 0
        for cluster in graphemes(text):
            end += len(cluster)
            if end >= lo:
                break
        return max(end, 1)

    # -- rendering ----------------------------------------------------------------------
    def render(self, text: str, size: int, colour: BGR = (255, 255, 255),
               weight: Weight = "regular", stroke: int = 0,
               stroke_colour: BGR = (0, 0, 0), max_width: int | None = None,
               max_lines: int = 1, align: Literal["left", "center"] = "left") -> np.ndarray:
        """``text`` as a premultiplied BGRA sprite (cached), optionally wrapped/ellipsized.

        ``align`` "left" is the start edge: the right one for a right-to-left paragraph.
        """
        if size < 1:
            raise ValueError(f"text size must be at least 1 px, got {size}")
        key = (text, size, colour, weight, stroke, stroke_colour, max_width, max_lines, align)
        return self._cache.get(key, lambda: self._render(*key))

    def _emoji_run(self, spec: FontSpec, run: str, size: int,
                   direction: Direction) -> tuple[np.ndarray, float, float]:
        """An emoji run as a premultiplied BGRA image scaled to ``size``, with the pen
        origin (left, baseline) inside it, cached."""
        key = (spec.path, spec.index, run, size, direction)
        return self._emoji.get(key, lambda: self._draw_emoji(spec, run, size, direction))

    def _draw_emoji(self, spec: FontSpec, run: str, size: int,
                    direction: Direction) -> tuple[np.ndarray, float, float]:
        face = self._face(spec, size)
        asc, des = face.getmetrics()
        pad = 4
        im = Image.new("RGBA", (math.ceil(face.getlength(run, direction=direction)) + 2 * pad,
                                asc + des + 2 * pad), (0, 0, 0, 0))
        ImageDraw.Draw(im).text((pad, pad + asc), run, font=face, anchor="ls",
                                embedded_color=True, direction=direction)
        # Pillow pastes a colour glyph through its own alpha, so on a transparent canvas the
        # pixels come out premultiplied (composited over white they match Pillow drawing on
        # white exactly; read as straight alpha the edges are off by up to 64 levels).
        rgba = np.asarray(im)
        scale = self._scale(spec, size)
        w = max(1, round(im.width * scale))
        h = max(1, round(im.height * scale))
        small = cv2.resize(rgba, (w, h), interpolation=cv2.INTER_AREA)  # averages: no ringing
        bgra = np.ascontiguousarray(small[:, :, [2, 1, 0, 3]])
        np.minimum(bgra[:, :, :3], bgra[:, :, 3:4], out=bgra[:, :, :3])
        return bgra, pad * w / im.width, (pad + asc) * h / im.height

    def _render(self, text: str, size: int, colour: BGR, weight: Weight, stroke: int,
                stroke_colour: BGR, max_width: int | None, max_lines: int,
                align: str) -> np.ndarray:
        lines = (self.wrap(text, size, max_width, max_lines, weight)
                 if max_width is not None else [text])
        lines = lines or [""]
        _, rtl = bidi_levels(text)
        asc, des = self.metrics(size, weight)
        line_h = asc + des
        laid = [self.layout(line, weight, rtl) for line in lines]
        widths = [round(sum(self._advance(spec, run, size, d) for spec, run, d in runs))
                  for runs in laid]
        w = max([*widths, 1]) + 2 * stroke + 2
        h = line_h * len(lines) + 2 * stroke
        fill = Image.new("L", (w, h), 0)
        edge = Image.new("L", (w, h), 0) if stroke > 0 else None
        df = ImageDraw.Draw(fill)
        de = ImageDraw.Draw(edge) if edge is not None else None
        emoji: list[tuple[np.ndarray, int, int]] = []
        for i, runs in enumerate(laid):
            x = float(stroke + 1)
            if align == "center":
                x += (w - 2 * stroke - 2 - widths[i]) / 2
            elif rtl:
                x += w - 2 * stroke - 2 - widths[i]
            baseline = stroke + asc + i * line_h
            for spec, run, d in runs:
                if spec.role == "emoji":
                    img, ox, oy = self._emoji_run(spec, run, size, d)
                    emoji.append((img, round(x - ox), round(baseline - oy)))
                else:
                    face = self._face(spec, size)
                    df.text((x, baseline), run, font=face, fill=255, anchor="ls",
                            direction=d)
                    if de is not None:
                        de.text((x, baseline), run, font=face, fill=255, anchor="ls",
                                stroke_width=stroke, stroke_fill=255, direction=d)
                x += self._advance(spec, run, size, d)
        fa = np.asarray(fill, np.float32) / 255.0
        ea = np.asarray(edge, np.float32) / 255.0 if edge is not None else np.zeros_like(fa)
        if emoji and stroke > 0:  # outline the emoji too, as the letters beside them
            cover = np.zeros((h, w, 4), np.uint8)
            for img, ex, ey in emoji:
                over(cover, img, ex, ey)
            ring = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * stroke + 1,) * 2)
            ea = np.maximum(ea, cv2.dilate(cover[:, :, 3], ring).astype(np.float32) / 255.0)
        alpha = fa + ea * (1.0 - fa)
        out = np.empty((h, w, 4), np.uint8)
        for c in range(3):
            out[:, :, c] = np.rint(colour[c] * fa + stroke_colour[c] * ea * (1.0 - fa))
        out[:, :, 3] = np.rint(alpha * 255)
        for img, ex, ey in emoji:
            over(out, img, ex, ey)
        return out


@lru_cache(maxsize=1)
def default_renderer() -> TextRenderer:
    """The process-wide renderer (fonts found once; :class:`FontError` if some are missing)."""
    return TextRenderer()
