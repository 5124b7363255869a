"""Comment text is kept exactly; control characters, bidi overrides, text that shows
nothing and names that pose as the host or the demo crowd are refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from arengine.demo_crowd import DEMO_TAG, DEMO_VIEWERS, DemoCrowd
from arengine.interaction.errors import InvalidInputError
from arengine.interaction.hub import RoomHub
from arengine.interaction.text import (
    COMMENT_MAX_CHARS,
    check_comment,
    check_name,
    check_text,
    reserved_for,
    skeleton,
)

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


# -- text that shows nothing --------------------------------------------------------------

INVISIBLE = {
    "zero-width space": "\u200b",
    "zero-width non-joiner": "\u200c",
    "zero-width joiner": "\u200d\u200d",
    "word joiner": "\u2060",
    "byte order mark": "\ufeff",
    "mongolian vowel separator": "\u180e",
    "hangul filler": "\u3164",
    "hangul choseong filler": "\u115f",
    "hangul jungseong filler": "\u1160",
    "halfwidth hangul filler": "\uffa0",
    "braille blank": "\u2800\u2800\u2800",
    "combining acute alone": "\u0301",
    "thai vowel mark alone": "\u0e31\u0e48",
    "variation selector alone": "\ufe0f",
    "ideographic variation selector": "\U000e0100",
    "combining grapheme joiner": "\u034f",
    "soft hyphen": "\u00ad",
    "tag characters": "\U000e0068\U000e0069\U000e007f",
    "mixed": "\u200b\u3164 \u2800\u00a0\ufe0f",
}
WHITESPACE = ["\u00a0", "\u1680", "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
              "\u200a", "\u202f", "\u205f", "\u3000", "\u2028", "\u2029"]


@pytest.mark.parametrize("text", list(INVISIBLE.values()), ids=list(INVISIBLE))
def test_text_of_only_invisible_characters_is_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match=r"^comment has no visible characters$"):
        check_comment(text)
    with pytest.raises(InvalidInputError, match=r"^name has no visible characters$"):
        check_name(text)
    with pytest.raises(InvalidInputError, match=r"^title has no visible characters$"):
        check_text(text, "title", 80)


@pytest.mark.parametrize("text", WHITESPACE)
def test_whitespace_of_every_kind_is_empty(text: str) -> None:
    with pytest.raises(InvalidInputError, match=r"must not be empty|has no visible characters"):
        check_comment(text)


KEPT = [
    "👩\u200d👩\u200d👧",  # ZWJ family
    "🏳\ufe0f\u200d🌈",  # variation selector + ZWJ
    "❤\ufe0f",  # VS16 after an emoji
    "1\ufe0f\u20e3",  # keycap
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # flag of Scotland
    "👍🏽",  # skin tone modifier
    "می\u200cخواهم",  # Persian with ZWNJ
    "क्\u200dष",  # Devanagari with ZWJ
    "Tiếng Việt có dấu",  # vi, precomposed
    "Tie\u0302\u0301ng Vie\u0323\u0302t",  # vi, decomposed marks after base letters
    "สวัสดีค่ะ",  # th, vowel and tone marks
    "a\u00adb",  # a soft hyphen inside a word
    "\U0001fae8",  # an emoji newer than Python's Unicode tables
]


@pytest.mark.parametrize("text", KEPT)
def test_invisible_characters_beside_visible_ones_are_kept_unchanged(text: str) -> None:
    assert check_comment(text) is text
    assert check_name(text) is text


# -- names that pose as the host or the demo crowd ----------------------------------------

POSE_AS_HOST = ["Host", "host", "HOST", "Ｈｏｓｔ", "H\u200bost", "H\u2060o\u00ads\ufefft",
                "H\u043est",  # Cyrillic o
                "\u041d\u043e\u0455\u0422",  # Cyrillic capitals and smalls: Н о ѕ Т
                "Hοst",  # Greek omicron
                "H0st", "Hóst", "ℍ𝕠𝕤𝕥", "Host!", "~ Host ~", "🎤 HOST 🎤", "主播", "主播 ✨",
                "the host", "The Host", "Admin", "ADMlN", "[Admin]", "adm1n", "arengine",
                "AR Engine", "moderator", "Moderator ✅", "官方", "客服", "官方客服", "管理员",
                "Official Host 👑", "Mei (host)", "小红【官方】", "Anna [admin]", "แอดมิน",
                "Quản trị viên"]
POSE_AS_DEMO = ["小红 (demo)", "Anna（demo）", "x [demo]", "(demo) Budi", "Emma (DEMO)",
                "Ploy ( demo )", "Lan【demo】", "Putri (dеmo)",  # Cyrillic е
                "Budi (d3mo)", "Anna demo", "Anna-demo", "小红demo", "Minh Anh (demo) 💄"]


@pytest.mark.parametrize("name", POSE_AS_HOST)
def test_names_posing_as_the_host_are_refused(name: str) -> None:
    with pytest.raises(InvalidInputError, match=r"^this name is reserved for the host"):
        check_name(name)


@pytest.mark.parametrize("name", POSE_AS_DEMO)
def test_names_posing_as_the_demo_crowd_are_refused(name: str) -> None:
    with pytest.raises(InvalidInputError, match=r"^names ending in \(demo\) are reserved for the "
                                                r"demo crowd"):
        check_name(name)
    assert check_name(name, reserved_ok=True) is name


ALLOWED_NAMES = [
    "Hostess Mei", "Ghost", "Host Mei", "Hosting Fan", "主播的粉丝", "Admiral", "Sadmin",
    "demo lover", "Demo", "Demos", "demolition crew", "Official fan of lipstick", "Mod",
    "小明", "王芳", "陈晨", "小红", "สมชาย", "มาลี", "Ploy", "Nok", "Nguyễn Thảo", "Minh Anh",
    "Lan", "Putri", "Budi", "Siti", "Dewi", "Agus", "Trần Thị Hồng", "Emma 💄", "🌸🌸",
    "👩\u200d🦰 Anna", "محمد", "سارا\u200cجون", "שרה", "Anna (Jakarta)", "Mei [Shanghai]",
]


@pytest.mark.parametrize("name", ALLOWED_NAMES)
def test_ordinary_names_are_allowed_unchanged(name: str) -> None:
    assert check_name(name) is name
    assert reserved_for(name) is None


def test_comments_may_mention_the_host() -> None:
    for text in ("Host", "主播涂得好美", "(demo)", "admin"):
        assert check_comment(text) is text


def test_skeleton_folds_width_case_lookalikes_and_invisibles() -> None:
    assert skeleton("Ｈ\u200bＯ\u043eＳt") == "hoost"
    assert skeleton("  Anna \u3000 Lee ") == "anna iee"  # l reads as i
    assert skeleton("Nguyễn") == "nguyen"


def test_room_join_refuses_reserved_names_and_the_demo_crowd_still_joins(
        make_hub: Callable[..., RoomHub]) -> None:
    async def main() -> None:
        hub = make_hub()
        room, _ = await hub.create_room("Launch")
        for name in ("Host", "小红 (demo)", "\u200b\u3164"):
            with pytest.raises(InvalidInputError):
                await room.join(name)
        crowd = DemoCrowd(room, seed=1)
        for _ in range(1 + len(DEMO_VIEWERS)):  # the first step opens a poll
            await crowd.step()
        names = sorted(v.name for v in room.viewers.values())
        assert names == sorted(n + DEMO_TAG for n in DEMO_VIEWERS)
        await hub.close()

    asyncio.run(main())
