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
