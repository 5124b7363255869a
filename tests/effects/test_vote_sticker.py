"""Vote sticker: bars follow the votes, the winner stands out, the clock ticks, faces stay clear."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from arengine.effects import create_effect
from arengine.effects.layout import Rect
from arengine.effects.vote_sticker import WINNER, VoteSticker, countdown_text, ease_out
from arengine.state import PollOptionView, PollView, RoomState
from arengine.types import Scene

SWATCHES = ("#9B111E", "#FF69B4", "#2E8B57")


def make_poll(votes: tuple[int, ...] = (10, 30, 0), closed: bool = False,
              winner: int | None = None) -> PollView:
    labels = ("Velvet Ruby", "สีชมพู Pink", "Xanh lá cây 绿色")
    options = tuple(PollOptionView(label, v, None, sw)
                    for label, v, sw in zip(labels, votes, SWATCHES, strict=True))
    return PollView("p1", "Which shade should I try? 哪个颜色?", options, 999.0, 1060.0,
                    closed=closed, winner=winner)


def state(poll: PollView | None, taken_at: float = 1000.0) -> RoomState:
    return RoomState("room", taken_at=taken_at, poll=poll)


def draw(sticker: VoteSticker, t: float, w: int = 1280, h: int = 720,
         scene: Scene | None = None) -> np.ndarray:
    frame = np.full((h, w, 3), 90, np.uint8)
    sc = scene.at(t, int(t * 25)) if scene is not None else Scene.empty(w, h, t, int(t * 25))
    return sticker.apply(frame, sc)


def bar_lengths(sticker: VoteSticker, frame: np.ndarray, colours: list[tuple[int, ...]]
                ) -> list[int]:
    """How many pixels of each bar's middle row are exactly its fill colour."""
    assert sticker.last_rect is not None and sticker.last_layout is not None
    out = []
    for bar, colour in zip(sticker.last_layout.bars, colours, strict=True):
        b = bar.moved(sticker.last_rect.x, sticker.last_rect.y)
        row = frame[b.y + b.h // 2, b.x:b.x2]
        out.append(int((row == colour).all(axis=1).sum()))
    return out


def bgr(hex_: str) -> tuple[int, int, int]:
    v = hex_.lstrip("#")
    return int(v[4:6], 16), int(v[2:4], 16), int(v[0:2], 16)


def test_registered_and_validates() -> None:
    assert isinstance(create_effect("vote_sticker"), VoteSticker)
    with pytest.raises(ValueError, match="scale"):
        VoteSticker(scale=0)
    with pytest.raises(ValueError, match="anchor"):
        VoteSticker(anchors=("centre",))


def test_nothing_drawn_without_a_poll() -> None:
    s = VoteSticker()
    assert (draw(s, 1.0) == 90).all()
    s.set_state(state(None))
    assert (draw(s, 1.0) == 90).all() and s.last_rect is None


def test_bar_length_is_proportional_to_votes() -> None:
    s = VoteSticker(opacity=1.0)
    s.set_state(state(make_poll((10, 30, 0))))
    draw(s, 10.0)
    frame = draw(s, 10.5)  # easing done
    lengths = bar_lengths(s, frame, [bgr(c) for c in SWATCHES])
    assert s.last_layout is not None
    full = s.last_layout.bars[0].w
    assert lengths[0] == pytest.approx(full * 0.25, abs=1)
    assert lengths[1] == pytest.approx(full * 0.75, abs=1)
    assert lengths[2] == 0


def test_bars_ease_toward_new_votes() -> None:
    s = VoteSticker(opacity=1.0, ease_s=0.3)
    colours = [bgr(c) for c in SWATCHES]
    s.set_state(state(make_poll((10, 10, 0))))
    draw(s, 10.0)
    full_0 = bar_lengths(s, draw(s, 10.5), colours)[0]
    s.set_state(state(make_poll((30, 10, 0)), taken_at=1000.5))
    start = bar_lengths(s, draw(s, 10.6), colours)[0]  # the new target is seen here
    mid = bar_lengths(s, draw(s, 10.75), colours)[0]
    end = bar_lengths(s, draw(s, 10.95), colours)[0]
    assert start == full_0  # 50 %: the bar starts from where it was
    assert full_0 < mid < end
    assert s.last_layout is not None
    assert end == pytest.approx(s.last_layout.bars[0].w * 0.75, abs=1)
    assert ease_out(0.5) == pytest.approx(0.875)


def test_deterministic_for_the_same_frames() -> None:
    def run() -> list[np.ndarray]:
        s = VoteSticker()
        s.set_state(state(make_poll((3, 4, 5))))
        return [draw(s, 2.0 + i * 0.04) for i in range(10)]

    for a, b in zip(run(), run(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_countdown_text_and_card_change_each_second() -> None:
    assert countdown_text(61.2) == "01:02"
    assert countdown_text(60.0) == "01:00"
    assert countdown_text(0.4) == "00:01"
    assert countdown_text(-3) == "00:00"
    s = VoteSticker(opacity=1.0)
    s.set_state(state(make_poll()))
    draw(s, 19.0)  # room time 1000.0, bars start easing in
    a = draw(s, 19.5)  # 59.5 s left -> "01:00"
    b = draw(s, 19.9)  # 59.1 s left -> "01:00": the same card
    c = draw(s, 20.5)  # 58.5 s left -> "00:59"
    assert s.last_rect is not None and s.last_layout is not None
    r = s.last_rect
    card_a = a[r.y:r.y2, r.x:r.x2]
    np.testing.assert_array_equal(card_a, b[r.y:r.y2, r.x:r.x2])
    diff = np.abs(card_a.astype(int) - c[r.y:r.y2, r.x:r.x2]).sum(axis=2) > 0
    rows = np.flatnonzero(diff.any(axis=1))
    assert rows.size > 0
    assert rows.max() < s.last_layout.rows[0].y  # only the info line (above the options)


def test_winner_is_highlighted_when_closed() -> None:
    s = VoteSticker(opacity=1.0)
    s.set_state(state(make_poll((10, 30, 5), closed=True, winner=1)))
    draw(s, 5.0)
    frame = draw(s, 5.5)
    lengths = bar_lengths(s, frame, [bgr(SWATCHES[0]), WINNER, bgr(SWATCHES[2])])
    assert lengths[1] > 0 and lengths[0] > 0 and lengths[2] > 0  # winner bar in gold
    assert s.last_rect is not None and s.last_layout is not None
    row = s.last_layout.rows[1].moved(s.last_rect.x, s.last_rect.y)
    other = s.last_layout.rows[0].moved(s.last_rect.x, s.last_rect.y)

    def goldness(r: Rect) -> float:
        px = frame[r.y:r.y2, r.x:r.x2].astype(int)
        return float(((px[:, :, 2] - px[:, :, 0]) > 60).mean())  # red >> blue: gold tint

    assert goldness(row) > goldness(other) + 0.05
    # An open poll with the same votes has no gold anywhere on its bars.
    s2 = VoteSticker(opacity=1.0)
    s2.set_state(state(make_poll((10, 30, 5))))
    draw(s2, 5.0)
    assert bar_lengths(s2, draw(s2, 5.5), [WINNER] * 3) == [0, 0, 0]


def test_card_hides_after_close() -> None:
    s = VoteSticker(hide_after_close_s=2.0, fade_s=0.3)
    s.set_state(state(make_poll(closed=True, winner=0)))
    assert (draw(s, 1.0) != 90).any()
    assert (draw(s, 3.5) == 90).all()


def test_readable_at_480p_and_fits() -> None:
    s = VoteSticker()
    s.set_state(state(make_poll()))
    draw(s, 1.0, 854, 480)
    assert s.last_rect is not None and s.last_layout is not None
    r = s.last_rect
    assert r.x >= 0 and r.y >= 0 and r.x2 <= 854 and r.y2 <= 480
    # Option rows (label line + bar) at least 20 px: text of >= 13 px font.
    assert min(row.h for row in s.last_layout.rows) >= 20
    frame = draw(s, 1.5, 854, 480)
    label = s.last_layout.rows[0].moved(r.x, r.y)
    crop = frame[label.y:label.y2 - s.last_layout.bars[0].h, label.x:label.x2]
    bright = (crop.min(axis=2) > 200).any(axis=1)  # white glyph pixels per row
    assert bright.sum() >= 9  # the label's glyphs are at least 9 px tall


def test_set_state_from_another_thread() -> None:
    s = VoteSticker()
    th = threading.Thread(target=s.set_state, args=(state(make_poll()),))
    th.start()
    th.join()
    assert (draw(s, 1.0) != 90).any()


def test_never_covers_a_face_on_real_pictures(face_scenes) -> None:
    for name, (img, scene, faces) in face_scenes.items():
        s = VoteSticker()
        s.set_state(state(replace(make_poll(), question="Which shade?")))
        out = s.apply(img.copy(), scene.at(1.0, 1))
        assert s.last_rect is not None, name
        for f in faces:
            assert not s.last_rect.intersects(f), (name, s.last_rect, f)
        # The face pixels themselves are untouched.
        for f in faces:
            np.testing.assert_array_equal(out[f.y:f.y2, f.x:f.x2], img[f.y:f.y2, f.x:f.x2])


def test_card_fades_in_when_the_poll_opens() -> None:
    s = VoteSticker(fade_s=0.3)
    s.set_state(state(replace(make_poll(), opened_at=1000.0)))
    assert (draw(s, 1.0) == 90).all()  # opened this instant
    half = draw(s, 1.1)
    full = draw(s, 1.4)
    assert s.last_rect is not None
    r = s.last_rect
    d_half = np.abs(half[r.y:r.y2, r.x:r.x2].astype(int) - 90).mean()
    d_full = np.abs(full[r.y:r.y2, r.x:r.x2].astype(int) - 90).mean()
    assert 0 < d_half < d_full


def test_votes_redraw_only_the_numbers() -> None:
    s = VoteSticker(opacity=1.0)
    a, _ = s.card(make_poll((10, 30, 0)), 1.0, False, None)
    b, _ = s.card(make_poll((12, 31, 5)), 1.0, False, None)
    assert a is b  # same card: percentages and counts are drawn per frame
    c, _ = s.card(make_poll((10, 300, 0)), 1.0, False, None)
    assert c is not a  # a wider count column
    s.set_state(state(make_poll((10, 30, 0))))
    draw(s, 1.0)
    f1 = draw(s, 1.5)
    s.set_state(state(make_poll((10, 31, 0)), taken_at=1000.5))
    draw(s, 1.6)
    f2 = draw(s, 2.0)
    assert s.last_rect is not None and s.last_layout is not None
    r = s.last_rect
    right, top = s.last_layout.values[1]
    value = (slice(r.y + top, r.y + top + 20), slice(r.x + right - 90, r.x + right))
    assert not np.array_equal(f1[value], f2[value])  # "75%  (30)" -> "76%  (31)"


def test_many_options_shrink_to_fit_a_small_frame() -> None:
    options = tuple(PollOptionView(f"Shade number {i}", i) for i in range(8))
    s = VoteSticker()
    s.set_state(state(PollView("p8", "Pick one", options, 990.0, 1060.0)))
    draw(s, 1.0, 640, 360)
    assert s.last_rect is not None
    assert s.last_rect.y >= 0 and s.last_rect.y2 <= 360 and s.last_rect.h <= 0.9 * 360 + 1
