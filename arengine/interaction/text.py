"""Checks for text that viewers type: comments, display names, titles, poll options.

Text is kept exactly as sent (no normalisation, no trimming inside), so Chinese, Thai,
Vietnamese combining marks and emoji sequences survive. Control characters and bidi
overrides are rejected: they break the on-screen layout or disguise text.

Visible characters. Text must contain at least one visible character, or it shows as an
empty bubble. Not visible on their own: whitespace and separators (Z*), format characters
(Cf: zero-width space and joiners, word joiner, BOM, soft hyphen, Mongolian vowel
separator, tag characters), combining marks and variation selectors (M*), and letters that
fonts draw as nothing (Hangul fillers U+115F U+1160 U+3164 U+FFA0, Braille blank U+2800).
All of these are fine *beside* a visible character: the ZWJ in 👩‍👩‍👧, the ZWNJ in a Persian
word, VS16 after ❤, tone marks in Vietnamese and Thai.

Reserved names. A display name may not pose as the host or as the built-in demo crowd. It is
compared on its *skeleton*: NFKC (full-width letters become ASCII), Cyrillic and Greek
look-alikes folded to Latin (о а е і ѕ с р х у, ο α ρ ι ν ...; also ``l`` and ``ı`` to ``i``),
casefolded, accents and invisible characters removed. Then a name is refused when

1. its skeleton's letters and digits alone (spaces, punctuation, symbols and emoji dropped,
   with ``0 1 3 $ @`` read as ``o i e s a`` or dropped, either way) spell one or more
   :data:`HOST_WORDS` run together, optionally after "the": ``Host``, ``HOST!``, ``Ｈｏｓｔ``,
   ``H`` U+200B ``ost``, ``H`` U+043E ``st`` (Cyrillic o), ``the host``, ``Official Host 👑``,
   ``官方客服``;
2. a host word or "demo" stands in brackets of any kind: ``Mei (host)``, ``小红【官方】``,
   ``小红 (demo)``, ``Anna（demo）``, ``x [demo]``, ``(demo) Budi``;
3. it ends in the word "demo" after something else: ``Anna demo``, ``Anna-demo``, ``小红demo``.

Names that merely contain those words are allowed: ``Hostess Mei``, ``Ghost``, ``Host Mei``,
``主播的粉丝``, ``Admiral``, ``demo lover``, ``Demo``, ``Demos``. The demo crowd itself joins
with ``reserved_ok=True``.
"""

from __future__ import annotations

import re
import unicodedata

from arengine.interaction.errors import InvalidInputError

COMMENT_MAX_CHARS = 200
NAME_MAX_CHARS = 40
MAX_UTF8_BYTES_PER_CHAR = 4

# Bidi embeddings/overrides/isolates: invisible, and used to disguise text direction.
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}

# Letters and symbols that render as blank space although Unicode calls them letters (Lo)
# or symbols (So): Hangul choseong/jungseong/compatibility/half-width fillers, Braille blank.
_FILLERS = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"}

# Words a name may not consist of (rule 1) or put in brackets (rule 2): the host, staff and
# the product, in the languages of the rooms (zh host/anchor, MC, official, customer service,
# administrator; Thai "admin"; Vietnamese "administrator").
HOST_WORDS = ("host", "admin", "administrator", "moderator", "arengine", "official", "staff",
              "system", "streamer", "主播", "主持人", "官方", "客服", "管理员", "แอดมิน",
              "quản trị viên")
DEMO_WORD = "demo"

# Look-alikes of Latin letters, folded before casefolding so both cases are covered.
_LOOKALIKES = str.maketrans({
    # Cyrillic
    "а": "a", "А": "a", "в": "b", "В": "b", "с": "c", "С": "c", "ԁ": "d", "е": "e", "Е": "e",
    "ё": "e", "Ё": "e", "һ": "h", "Н": "h", "і": "i", "І": "i", "ӏ": "i", "Ӏ": "i", "ј": "j",
    "Ј": "j", "к": "k", "К": "k", "М": "m", "о": "o", "О": "o", "р": "p", "Р": "p", "ԛ": "q",
    "ѕ": "s", "Ѕ": "s", "Т": "t", "у": "y", "У": "y", "ԝ": "w", "х": "x", "Х": "x",
    # Greek
    "α": "a", "Α": "a", "Β": "b", "ε": "e", "Ε": "e", "Η": "h", "ι": "i", "Ι": "i", "κ": "k",
    "Κ": "k", "Μ": "m", "ν": "v", "Ν": "n", "ο": "o", "Ο": "o", "ρ": "p", "Ρ": "p", "τ": "t",
    "Τ": "t", "υ": "u", "Υ": "y", "χ": "x", "Χ": "x", "Ζ": "z",
    # Latin that passes for another Latin letter
    "ı": "i", "ɪ": "i", "ʜ": "h", "ɴ": "n", "ᴏ": "o",
})
_SUBSTITUTES = str.maketrans({"0": "o", "1": "i", "3": "e", "$": "s", "@": "a"})
_OPEN = "([{<【〔〖「『〈《"
_CLOSE = ")]}>】〕〗」』〉》"
_BRACKETED = re.compile(f"[{re.escape(_OPEN)}]([^{re.escape(_OPEN + _CLOSE)}]*)"
                        f"[{re.escape(_CLOSE)}]")
_TRAILING_DEMO = re.compile(r"[^a-z0-9]demo[^\w]*$")


def _is_invisible(ch: str) -> bool:
    """True for a character that shows nothing on its own (see the module docstring)."""
    cat = unicodedata.category(ch)
    return ch in _FILLERS or (cat[0] in "ZMC" and cat not in ("Co", "Cn"))


def has_visible(value: str) -> bool:
    """Whether ``value`` shows anything: a character that is not invisible on its own.

    Private-use (custom emoji fonts) and unassigned code points (emoji newer than Python's
    Unicode tables) count as visible.
    """
    return any(not _is_invisible(ch) for ch in value)


def skeleton(value: str) -> str:
    """``value`` reduced to what it looks like, for comparing names (see the module docstring):
    NFKC, look-alikes folded, casefolded, accents and invisible characters removed, every
    run of separators one space."""
    text = unicodedata.normalize("NFKC", value).translate(_LOOKALIKES).casefold()
    text = unicodedata.normalize("NFKD", text).translate(_LOOKALIKES)
    out: list[str] = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat.startswith("Z"):
            if out and out[-1] != " ":
                out.append(" ")
        elif ch == "l":
            out.append("i")  # l, I and 1 look alike in many fonts
        elif not _is_invisible(ch):
            out.append(ch)
    return "".join(out).strip()


def _alnum(text: str) -> str:
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def _letters(text: str) -> set[str]:
    """The letters and digits of a skeleton, with look-alike digits and symbols read as
    letters and, separately, dropped."""
    return {_alnum(text), _alnum(text.translate(_SUBSTITUTES))}


# One or more host words run together, optionally after "the" (the words as skeletons too).
_HOST_RE = re.compile("(?:the)?(?:" + "|".join(sorted(
    {re.escape(_alnum(skeleton(w))) for w in HOST_WORDS}, key=len, reverse=True)) + ")+")


def reserved_for(name: str) -> str | None:
    """``"host"`` or ``"demo"`` when ``name`` poses as the host or the demo crowd, else None."""
    sk = skeleton(name)
    if any(_HOST_RE.fullmatch(letters) for letters in _letters(sk)):
        return "host"
    for inner in _BRACKETED.findall(sk):
        letters = _letters(inner)
        if DEMO_WORD in letters:
            return "demo"
        if any(_HOST_RE.fullmatch(x) for x in letters):
            return "host"
    if any(_TRAILING_DEMO.search(t) for t in (sk, sk.translate(_SUBSTITUTES))):
        return "demo"
    return None


def check_text(value: str, what: str, max_chars: int) -> str:
    """``value`` unchanged, or :class:`InvalidInputError` saying what is wrong with it."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string")
    if not value.strip():
        raise InvalidInputError(f"{what} must not be empty")
    if len(value) > max_chars:
        raise InvalidInputError(
            f"{what} is {len(value)} characters; the limit is {max_chars}")
    for ch in value:
        cat = unicodedata.category(ch)
        if cat == "Cc" or cat == "Cs" or ch in _BIDI:
            raise InvalidInputError(
                f"{what} contains a control character U+{ord(ch):04X}; send plain text")
    if not has_visible(value):
        raise InvalidInputError(f"{what} has no visible characters")
    return value


def check_comment(text: str) -> str:
    return check_text(text, "comment", COMMENT_MAX_CHARS)


def check_name(name: str, *, reserved_ok: bool = False) -> str:
    """``name`` unchanged if a viewer may use it; ``reserved_ok`` lets the built-in demo
    crowd use its "(demo)" names."""
    check_text(name, "name", NAME_MAX_CHARS)
    if not reserved_ok:
        reserved = reserved_for(name)
        if reserved == "host":
            raise InvalidInputError("this name is reserved for the host; choose another")
        if reserved == "demo":
            raise InvalidInputError(
                "names ending in (demo) are reserved for the demo crowd; choose another")
    return name
