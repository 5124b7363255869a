"""Checks for text that viewers type: comments and display names.

Text is kept exactly as sent (no normalisation, no trimming inside), so Chinese, Thai,
Vietnamese combining marks and emoji sequences survive. Control characters and bidi
overrides are rejected: they break the on-screen layout or disguise text.
"""

from __future__ import annotations

import unicodedata

from arengine.interaction.errors import InvalidInputError

COMMENT_MAX_CHARS = 200
NAME_MAX_CHARS = 40
MAX_UTF8_BYTES_PER_CHAR = 4

# Bidi embeddings/overrides/isolates: invisible, and used to disguise text direction.
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


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
    return value


def check_comment(text: str) -> str:
    return check_text(text, "comment", COMMENT_MAX_CHARS)


def check_name(name: str) -> str:
    return check_text(name, "name", NAME_MAX_CHARS)
