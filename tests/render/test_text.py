"""Text must render in every language a room writes in: no tofu boxes, no question marks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from arengine.render import text as text_mod
from arengine.render.text import FontError, FontSpec, TextRenderer, default_renderer

SAMPLES = {
    "english": "Flash sale: 2 for $19.90!",
    "chinese": "这个颜色好看吗？限时优惠",
    "thai": "สวัสดีค่ะ ราคาพิเศษวันนี้",
    "vietnamese": "Xin chào! Sản phẩm này đẹp quá, giá bao nhiêu?",
    "indonesian": "Harga spesial hari ini, kak!",
}


@pytest.fixture(scope="module")
def tr() -> TextRenderer:
    return default_renderer()


def _glyph(spec: FontSpec, ch: str, size: int = 40) -> np.ndarray:
    font = ImageFont.truetype(spec.path, size, index=spec.index,
                              layout_engine=ImageFont.Layout.RAQM)
    im = Image.new("L", (size * 2, size * 2), 0)
    ImageDraw.Draw(im).text((size // 2, size // 2), ch, font=font, fill=255)
    return np.asarray(im)


@pytest.mark.parametrize("lang", list(SAMPLES))
def test_every_character_has_a_real_glyph(tr: TextRenderer, lang: str) -> None:
    s = SAMPLES[lang]
    assert tr.missing(s) == ""
    for ch in set(s) - {" "}:
        spec = tr.font_for(ch)
        assert spec is not None, f"no font for {ch!r}"
        # A missing glyph draws the font's .notdef box: compare against it.
        notdef = _glyph(spec, "\U0010fffd")
        glyph = _glyph(spec, ch)
        assert not np.array_equal(glyph, notdef), f"{ch!r} renders as a box in {spec.path}"


def test_scripts_pick_their_fonts(tr: TextRenderer) -> None:
    roles = {run: spec.role for spec, run in tr.runs("价格 price ราคา giá")}
    assert roles == {"价格 ": "cjk", "price ": "latin", "ราคา ": "thai", "giá": "latin"}
    # Thai vowel and tone marks stay with their consonants.
    assert [r for _, r in tr.runs("สวัสดี")] == ["สวัสดี"]


def test_strings_render_distinctly_and_marks_are_drawn(tr: TextRenderer) -> None:
    sprites = {k: tr.render(v, 24) for k, v in SAMPLES.items()}
    keys = list(sprites)
    for i, a in enumerate(keys):
        assert sprites[a][:, :, 3].max() == 255, a
        for b in keys[i + 1:]:
            sa, sb = sprites[a], sprites[b]
            assert sa.shape != sb.shape or not np.array_equal(sa, sb)
    # Dropping Thai marks or Vietnamese tone marks changes the picture (they are drawn).
    assert not np.array_equal(tr.render("สวัสดี", 30), tr.render("สวสด", 30))
    e_plain, e_marked = tr.render("e", 40), tr.render("ệ", 40)
    ink_rows = lambda s: int((s[:, :, 3] > 64).any(axis=1).sum())  # noqa: E731
    assert ink_rows(e_marked) > ink_rows(e_plain) * 1.5  # a mark above and one below


def test_same_size_same_height_across_scripts(tr: TextRenderer) -> None:
    heights = {tr.render(s, 20).shape[0] for s in SAMPLES.values()}
    assert len(heights) == 1


def test_text_is_cached(tr: TextRenderer) -> None:
    a = tr.render("cached?", 22, (10, 20, 30))
    assert tr.render("cached?", 22, (10, 20, 30)) is a
    assert tr.render("cached?", 22, (10, 20, 31)) is not a


def test_colour_and_stroke(tr: TextRenderer) -> None:
    s = tr.render("H", 40, (0, 0, 255), stroke=3, stroke_colour=(255, 0, 0))
    solid = s[s[:, :, 3] == 255]
    assert ((solid[:, 2] == 255) & (solid[:, 0] == 0)).any()  # red fill
    assert ((solid[:, 0] == 255) & (solid[:, 2] == 0)).any()  # blue outline
    assert (s[:, :, :3] <= s[:, :, 3:4]).all()  # premultiplied


def test_wrap_and_ellipsis(tr: TextRenderer) -> None:
    long = "Cantik banget kak, ada warna lain? " * 5
    lines = tr.wrap(long, 16, 200, max_lines=2)
    assert len(lines) == 2 and lines[1].endswith("…")
    assert all(tr.measure(line, 16) <= 200 for line in lines)
    cjk = tr.wrap("这个颜色真的很好看我想买两支可以吗" * 3, 16, 150, max_lines=3)
    assert len(cjk) == 3 and all(tr.measure(line, 16) <= 150 for line in cjk)
    thai = tr.wrap("สวัสดีค่ะราคาพิเศษวันนี้เท่านั้น" * 3, 16, 120, max_lines=1)
    assert thai[0].endswith("…") and tr.measure(thai[0], 16) <= 120
    assert not text_mod._is_mark(thai[0][0])
    sprite = tr.render(long, 16, max_width=200, max_lines=2)
    assert sprite.shape[1] <= 200 + 4 and sprite.shape[0] == 2 * sum(tr.metrics(16))


def test_missing_fonts_name_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    files = dict(text_mod._font_files())
    no_cjk = {k: v for k, v in files.items() if "CJK" not in k and "wqy" not in k}
    monkeypatch.setattr(text_mod, "_font_files", lambda: no_cjk)
    monkeypatch.setattr(text_mod, "_fc_match", lambda lang, bold: None)
    with pytest.raises(FontError, match="fonts-noto-cjk"):
        text_mod.find_fonts()
    monkeypatch.setattr(text_mod, "_font_files", lambda: {})
    with pytest.raises(FontError, match="apt-get install fonts-noto-core"):
        TextRenderer()


def test_bad_size(tr: TextRenderer) -> None:
    with pytest.raises(ValueError, match="at least 1 px"):
        tr.render("x", 0)


def test_chat_symbols_render_and_unknown_ones_are_dropped(tr: TextRenderer) -> None:
    with_symbols = tr.render("love it ❤👍★", 24)
    plain = tr.render("love it", 24)
    assert with_symbols.shape[1] > plain.shape[1] + 30  # the symbols take room: drawn
    assert tr.missing("❤👍★") == ""
    # A character no installed font has is left out, not drawn as a box.
    unknown = "\U0010fffd"
    assert tr.missing(f"ok{unknown}") == unknown
    np.testing.assert_array_equal(tr.render(f"ok{unknown}", 24), tr.render("ok", 24))


# -- colour emoji ------------------------------------------------------------------------
def _hue_bins(sprite: np.ndarray) -> set[int]:
    """30-degree hue bins of the strongly saturated, nearly opaque pixels of a sprite."""
    import cv2

    a = sprite[:, :, 3:4].astype(np.float32)
    straight = np.where(a > 0, sprite[:, :, :3] * 255.0 / np.maximum(a, 1.0), 0.0)
    hsv = cv2.cvtColor(np.clip(straight, 0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV)
    vivid = (sprite[:, :, 3] >= 200) & (hsv[:, :, 1] >= 120) & (hsv[:, :, 2] >= 60)
    if vivid.sum() < 20:  # a few fringe pixels are not a colour glyph
        return set()
    return {int(h) // 15 for h in hsv[:, :, 0][vivid]}  # OpenCV hue is 0..179


def _off_colour(sprite: np.ndarray, colour: tuple[int, int, int]) -> float:
    """Share of the opaque pixels that are far from the text colour (0 for an outline glyph
    or a box drawn in that colour)."""
    opaque = sprite[:, :, 3] >= 200
    if not opaque.any():
        return 0.0
    d = np.abs(sprite[:, :, :3][opaque].astype(np.int32) - np.array(colour)).max(axis=1)
    return float((d > 60).mean())


def _ink_cols(sprite: np.ndarray) -> np.ndarray:
    return np.flatnonzero((sprite[:, :, 3] > 64).any(axis=0))


def test_lipstick_emoji_is_drawn_in_colour(tr: TextRenderer) -> None:
    size = 32
    text = "💄 Try Ruby Velvet"
    assert tr.missing(text) == ""
    assert [spec.role for spec, run in tr.runs(text) if "💄" in run] == ["emoji"]
    sprite = tr.render(text, size, (40, 40, 40))
    emoji_w = tr.measure(text, size) - tr.measure(" Try Ruby Velvet", size)
    assert 0.9 * size <= emoji_w <= 1.4 * size  # one glyph about an em wide
    region = sprite[:, :emoji_w]
    assert (region[:, :, 3] > 200).sum() > size * size // 8  # not empty
    assert len(_hue_bins(region)) >= 2  # several strong hues: not grey text, not an outline
    assert _hue_bins(sprite[:, emoji_w + 2:]) == set()  # the words stay in the text colour
    # The same colour glyph with an outline (names are drawn stroked), and in a wrapped line.
    outlined = tr.render("Lucy 💄", size, (255, 255, 255), "bold", stroke=2)
    assert len(_hue_bins(outlined)) >= 2
    wrapped = tr.render("Try Ruby Velvet, so pretty 💄💄", size, max_width=8 * size,
                        max_lines=2)
    assert wrapped.shape[0] == 2 * sum(tr.metrics(size)) and len(_hue_bins(wrapped)) >= 2
    assert (sprite[:, :, :3] <= sprite[:, :, 3:4]).all()  # still premultiplied


@pytest.mark.parametrize("seq", [
    "\U0001f469\u200d\U0001f469\u200d\U0001f467",  # family: woman, woman, girl (ZWJ)
    "\U0001f1ef\U0001f1f5",  # flag of Japan (two regional indicators)
    "\U0001f44d\U0001f3fd",  # thumbs up, medium skin tone
    "\u2764\ufe0f",  # red heart with the emoji variation selector
    "#\ufe0f\u20e3",  # keycap number sign
])
def test_emoji_sequences_are_one_glyph(tr: TextRenderer, seq: str) -> None:
    size = 40
    assert text_mod.graphemes(f"a{seq}b") == ["a", seq, "b"]
    assert [(spec.role, run) for spec, run in tr.runs(f"ok {seq}")][-1] == ("emoji", seq)
    assert 0.9 * size <= tr.measure(seq, size) <= 1.4 * size  # not 2-4 glyphs side by side
    sprite = tr.render(seq, size)
    cols = _ink_cols(sprite)
    assert len(cols) and cols[-1] - cols[0] <= 1.4 * size
    # An outline or a box in the text colour scores 0; Japan's white flag 0.23.
    assert _off_colour(sprite, (255, 255, 255)) > 0.15, "drawn in the text colour"
    assert _off_colour(tr.render(seq, size, (0, 0, 255)), (0, 0, 255)) > 0.15


def test_graphemes_keep_marks_and_pair_flags() -> None:
    assert text_mod.graphemes("e\u0301x") == ["e\u0301", "x"]
    assert text_mod.graphemes("\U0001f1ef\U0001f1f5\U0001f1fa\U0001f1f8") == [
        "\U0001f1ef\U0001f1f5", "\U0001f1fa\U0001f1f8"]
    assert text_mod.graphemes("สวัสดี") == ["ส", "วั", "ส", "ดี"]
    assert text_mod.graphemes("") == []


def test_ellipsis_and_wrapping_cut_whole_clusters(tr: TextRenderer) -> None:
    thai = "สวัสดีค่ะราคาพิเศษวันนี้เท่านั้น" * 3
    for size, width in ((13, 100), (16, 120), (24, 150)):
        *_, last = tr.wrap(thai, size, width, max_lines=2)
        body = last.removesuffix("…")
        assert last.endswith("…") and body in thai
        after = thai[thai.index(body) + len(body)]
        assert not text_mod._is_mark(after), (body, after)  # no vowel left behind
    family = "\U0001f469\u200d\U0001f469\u200d\U0001f467"
    lines = tr.wrap("ok " + family * 12, 24, 100, max_lines=3)
    assert len(lines) == 3 and lines[0] == "ok" and lines[2].endswith("…")
    for line in lines[1:]:
        clusters = text_mod.graphemes(line.removesuffix("…"))
        assert clusters and set(clusters) == {family}, line  # no half sequences


def test_rtl_paragraph_lines_start_on_the_right(tr: TextRenderer) -> None:
    size = 24
    text = " ".join([HEBREW, HEBREW2] * 3 + [HEBREW])
    lines = tr.wrap(text, size, 150, max_lines=4)
    assert len(lines) >= 2 and tr.measure(lines[-1], size) < tr.measure(lines[0], size) - 20
    sprite = tr.render(text, size, max_width=150, max_lines=4)
    line_h = sum(tr.metrics(size))
    right = [int(_ink_cols(sprite[i * line_h:(i + 1) * line_h])[-1])
             for i in range(len(lines))]
    assert max(right) - min(right) <= 3  # every line ends on the right edge
    assert _ink_cols(sprite[-line_h:])[0] > 20  # the short last line leaves the left open


def test_text_presentation_stays_monochrome(tr: TextRenderer) -> None:
    # U+2764 alone defaults to text presentation: an outline in the text colour.
    assert [spec.role for spec, _ in tr.runs("\u2764")] != ["emoji"]
    assert _hue_bins(tr.render("\u2764", 40, (255, 255, 255))) == set()
    assert [spec.role for spec, _ in tr.runs("\u2764\ufe0f")] == ["emoji"]
    # Digits and spaces next to an emoji stay in the text font.
    assert [(s.role, r) for s, r in tr.runs("\U0001f484 2 for 1")] == [
        ("emoji", "\U0001f484"), ("latin", " 2 for 1")]


def test_missing_emoji_font_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    files = {k: v for k, v in text_mod._font_files().items() if "Emoji" not in k}
    monkeypatch.setattr(text_mod, "_font_files", lambda: files)
    monkeypatch.setattr(text_mod, "_fc_match", lambda lang, bold: None)
    with pytest.raises(FontError, match="apt-get install fonts-noto-color-emoji"):
        text_mod.find_fonts()


# -- right-to-left and mixed text --------------------------------------------------------
HEBREW = "\u05e9\u05dc\u05d5\u05dd"  # shalom
HEBREW2 = "\u05e2\u05d5\u05dc\u05dd"  # olam


def _profile(sprite: np.ndarray) -> np.ndarray:
    """Ink per column from the first inked column to the last (alpha sums, 0..1 scaled)."""
    cols = _ink_cols(sprite)
    return sprite[:, cols[0]:cols[-1] + 1, 3].astype(np.float32).sum(axis=0) / 255.0


def _close(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two column profiles (padded to the same length)."""
    n = max(len(a), len(b))
    return float(np.abs(np.pad(a, (0, n - len(a))) - np.pad(b, (0, n - len(b)))).mean())


def _find(sprite: np.ndarray, part: np.ndarray) -> tuple[int, float]:
    """Where the ink of ``part`` sits in ``sprite`` (column of its first ink) and how far
    the best match is (:func:`_close` over the part's mean ink per column: "world" shaped
    inside "world 123" at another sub-pixel position scores 0.12), by sliding column
    profiles."""
    whole = sprite[:, :, 3].astype(np.float32).sum(axis=0) / 255.0
    q = _profile(part)
    errs = [_close(whole[x:x + len(q)], q) for x in range(len(whole) - len(q) + 1)]
    best = int(np.argmin(errs))
    return best, errs[best] / float(q.mean())


def _letters(spec: FontSpec, letters: str, size: int) -> np.ndarray:
    """``letters`` drawn one by one from left to right: a plain LTR path, no bidi, no
    shaping across letters."""
    font = ImageFont.truetype(spec.path, size, index=spec.index,
                              layout_engine=ImageFont.Layout.BASIC)
    im = Image.new("L", (size * len(letters) + 20, size * 2), 0)
    draw, x = ImageDraw.Draw(im), 10.0
    for ch in letters:
        draw.text((x, size), ch, font=font, fill=255, anchor="ls")
        x += font.getlength(ch)
    a = np.asarray(im)
    return np.dstack([a, a, a, a])


def _pillow(spec: FontSpec, text: str, size: int) -> np.ndarray:
    """``text`` in one font through Pillow's own raqm layout (the single-font reference)."""
    font = ImageFont.truetype(spec.path, size, index=spec.index,
                              layout_engine=ImageFont.Layout.RAQM)
    im = Image.new("L", (size * len(text) + 20, size * 2), 0)
    ImageDraw.Draw(im).text((10, size), text, font=font, fill=255, anchor="ls")
    a = np.asarray(im)
    return np.dstack([a, a, a, a])


@pytest.mark.parametrize("text", [f"{HEBREW} world", f"world {HEBREW}"])
def test_mixed_hebrew_latin_keeps_the_space(tr: TextRenderer, text: str) -> None:
    size = 40
    space = tr.measure(" ", size)
    assert space >= 8
    word = _ink_cols(tr.render("world", size))
    for s in (text, text.replace(" ", "")):
        sprite = tr.render(s, size)
        # Either paragraph direction shows "world" on the left, the Hebrew on its right.
        assert _ink_cols(sprite)[0] == word[0]
        np.testing.assert_array_equal(sprite[:, :word[-1] + 1, 3] > 64,
                                      tr.render("world", size)[:, :word[-1] + 1, 3] > 64)
    gap = lambda s: int(_ink_cols(s)[_ink_cols(s) > word[-1]][0]) - word[-1]  # noqa: E731
    with_space, without = gap(tr.render(text, size)), gap(tr.render(text.replace(" ", ""), size))
    assert abs((with_space - without) - space) <= 2, (with_space, without, space)
    assert tr.measure(text, size) == pytest.approx(
        tr.measure(text.replace(" ", ""), size) + space, abs=2)


def test_hebrew_is_drawn_right_to_left(tr: TextRenderer) -> None:
    size = 40
    spec = tr.font_for(HEBREW[0])
    assert spec is not None and spec.role == "hebrew"
    ours = _profile(tr.render(HEBREW, size))
    right_to_left = _profile(_letters(spec, HEBREW[::-1], size))
    logical = _profile(_letters(spec, HEBREW, size))
    assert _close(ours, right_to_left) < 0.3 * _close(ours, logical)
    # A Hebrew-only sentence keeps its inner space and matches Pillow's own bidi layout.
    sentence = f"{HEBREW} {HEBREW2}"
    sprite = tr.render(sentence, size)
    assert _close(_profile(sprite), _profile(_pillow(spec, sentence, size))) < 0.2
    assert tr.measure(sentence, size) == pytest.approx(
        tr.measure(HEBREW + HEBREW2, size) + tr.measure(" ", size), abs=2)
    x1, _ = _find(sprite, tr.render(HEBREW2, size))
    x2, _ = _find(sprite, tr.render(HEBREW, size))
    assert x1 < x2  # the second word is on the left


def test_mixed_sentence_in_bidi_order(tr: TextRenderer) -> None:
    size = 40
    text = f"{HEBREW} world 123 {HEBREW2}"  # a right-to-left paragraph
    sprite = tr.render(text, size)
    space = tr.measure(" ", size)
    assert tr.measure(text, size) == pytest.approx(
        sum(tr.measure(w, size) for w in text.split()) + 3 * space, abs=3)
    # Visual order, left to right: olam, "world", "123", shalom, one space between each.
    words = [HEBREW2, "world", "123", HEBREW]
    pen = []
    for w in words:
        alone = tr.render(w, size)
        x, err = _find(sprite, alone)
        assert err < 0.15, w
        pen.append(x - int(_ink_cols(alone)[0]))  # where this word's pen starts
    assert pen == sorted(pen), pen
    for i in range(3):
        gap = pen[i + 1] - pen[i] - tr.measure(words[i], size)
        assert abs(gap - space) <= 2, (words[i], gap, space)


def test_arabic_letters_join(tr: TextRenderer) -> None:
    size = 40
    word = "\u0645\u0631\u062d\u0628\u0627"  # marhaba
    spec = tr.font_for(word[0])
    assert spec is not None and spec.role == "arabic"
    ours = tr.render(f"{word} world", size)
    joined = _pillow(spec, word, size)
    x, err = _find(ours, joined)
    assert err < 0.15
    assert x > _ink_cols(tr.render("world", size))[-1]  # right of "world": RTL paragraph
    _, unjoined = _find(ours, _letters(spec, word[::-1], size))
    assert unjoined > 0.5  # letters in their isolated forms look nothing like it
