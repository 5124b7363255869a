"""Comment text is kept exactly; control characters and bidi overrides are refused."""

from __future__ import annotations

import pytest

from arengine.interaction.errors import InvalidInputError
from arengine.interaction.text import COMMENT_MAX_CHARS, check_comment, check_name

SAMPLES = [
    "这个颜色太好看了！想要",  # zh
    "Love this shade 💄🔥",  # en + emoji
    "สีนี้สวยมากค่ะ",  # th (combining vowels)
    "Màu này đẹp quá, giá bao nhiêu ạ?",  # vi (precomposed + tone marks)
    "Warnanya cantik banget, kak!",  # id
    "Cafe\u0301 👩\u200d🦰",  # combining accent and a ZWJ emoji sequence
]


@pytest.mark.parametrize("text", SAMPLES)
def test_multilingual_text_is_returned_unchanged(text: str) -> None:
    assert check_comment(text) is text


@pytest.mark.parametrize("bad", ["hi\x00", "line\nbreak", "tab\there", "\x1b[31mred",
                                 "abc\u202edcba", "\u2066isolate\u2069", "\x85nel"])
def test_control_and_bidi_characters_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="control character U\\+"):
        check_comment(bad)


def test_length_is_counted_in_characters_not_bytes() -> None:
    assert check_comment("好" * COMMENT_MAX_CHARS)
    with pytest.raises(InvalidInputError, match="201 characters; the limit is 200"):
        check_comment("好" * (COMMENT_MAX_CHARS + 1))


@pytest.mark.parametrize("empty", ["", "   ", "\u3000"])
def test_blank_text_is_rejected(empty: str) -> None:
    with pytest.raises(InvalidInputError, match="must not be empty"):
        check_name(empty)
