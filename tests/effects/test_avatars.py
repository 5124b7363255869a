"""Viewer avatars: capped count, oldest leave first, latest comment, entry, clear of faces/hands."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from arengine.effects import create_effect
from arengine.effects.avatars import Avatars, avatar_colour, decode_avatar, initials
from arengine.effects.layout import Rect
from arengine.render.sprites import blend_sprite
from arengine.state import RoomState, ViewerView
from arengine.types import HandLandmarks, Scene

NAMES = ["Mai Anh", "王小明", "สมชาย", "Budi Santoso", "Lucy", "陈静", "Nguyễn Văn A", "Siti",
         "Tom Lee", "Ploy", "李娜", "Rina", "Dewi", "Kenji", "Ana", "Wei", "Somsak", "Hoa",
         "Joko", "Lan"]


def viewers(n: int, base: float = 1000.0, comment: str | None = "hello") -> tuple[ViewerView, ...]:
    return tuple(ViewerView(f"v{i}", NAMES[i % len(NAMES)], None,
                            f"{comment} {i}" if comment else None, base + i, base)
                 for i in range(n))


def draw(layer: Avatars, t: float, w: int = 1280, h: int = 720,
         scene: Scene | None = None) -> np.ndarray:
    frame = np.full((h, w, 3), 60, np.uint8)
    sc = scene.at(t, int(t * 25)) if scene is not None else Scene.empty(w, h, t, int(t * 25))
    return layer.apply(frame, sc)


def test_registered_and_validates() -> None:
    assert isinstance(create_effect("avatars", max_visible=3), Avatars)
    with pytest.raises(ValueError, match="max_visible"):
        Avatars(max_visible=0)
    with pytest.raises(ValueError, match="side"):
        Avatars(side="top")  # type: ignore[arg-type]


def test_count_is_capped_and_newest_shown() -> None:
    layer = Avatars()  # default 12
    layer.set_state(RoomState("r", taken_at=1030.0, viewers=viewers(20)))
    draw(layer, 1.0)
    assert set(layer.last_rects) == {f"v{i}" for i in range(8, 20)}
    small = Avatars(max_visible=5)
    small.set_state(RoomState("r", taken_at=1030.0, viewers=viewers(20)))
    draw(small, 1.0)
    assert set(small.last_rects) == {f"v{i}" for i in range(15, 20)}
    # Newest at the bottom, each row above the one after it.
    ys = [small.last_rects[f"v{i}"].y for i in range(15, 20)]
    assert ys == sorted(ys)


def test_oldest_leaves_first_with_a_fade() -> None:
    layer = Avatars(max_visible=3, entry_s=0.3)
    layer.set_state(RoomState("r", taken_at=1010.0, viewers=viewers(3)))
    draw(layer, 1.0)
    assert set(layer.last_rects) == {"v0", "v1", "v2"}
    newcomer = ViewerView("new", "Newcomer", None, "hi!", 1010.5, 1010.5)
    layer.set_state(RoomState("r", taken_at=1010.5, viewers=(*viewers(3), newcomer)))
    draw(layer, 1.5)  # v0 starts leaving; the newcomer starts entering
    draw(layer, 1.6)
    assert "v0" in layer.last_rects and "new" in layer.last_rects  # both mid-animation
    draw(layer, 1.9)
    assert set(layer.last_rects) == {"v1", "v2", "new"}


def test_entry_slides_and_fades_in() -> None:
    layer = Avatars(entry_s=0.3, side="left")
    v = ViewerView("v1", "Lucy", None, "love it", 1000.0, 1000.0)
    layer.set_state(RoomState("r", taken_at=1000.0, viewers=(v,)))
    first = draw(layer, 5.0)
    assert (first == 60).all()  # at the very start the row is invisible
    draw(layer, 5.1)
    x_mid = layer.last_rects["v1"].x
    draw(layer, 5.4)
    x_end = layer.last_rects["v1"].x
    assert x_mid < x_end  # slides in from the left edge
    assert draw(layer, 5.5).sum() == draw(layer, 6.0).sum()  # settled


def test_bubble_shows_the_latest_comment() -> None:
    layer = Avatars(side="left")
    a = ViewerView("v1", "Lucy", None, "first comment", 1000.0, 990.0)
    layer.set_state(RoomState("r", taken_at=1001.0, viewers=(a,)))
    f1 = draw(layer, 3.0)
    r1 = layer.last_rects["v1"]
    b = ViewerView("v1", "Lucy", None, "这个多少钱？", 1001.0, 990.0)
    layer.set_state(RoomState("r", taken_at=1002.0, viewers=(b,)))
    f2 = draw(layer, 4.0)
    r2 = layer.last_rects["v1"]
    assert not np.array_equal(f1[r1.y:r1.y2, r1.x:r1.x2], f2[r2.y:r2.y2, r2.x:r2.x2])
    # The drawn row is exactly the row sprite for the new comment, and differs from the old.
    assert not np.array_equal(layer.row(a, 1.0), layer.row(b, 1.0))
    no_comment = layer.row(ViewerView("v1", "Lucy"), 1.0)
    assert no_comment.shape[0] < layer.row(b, 1.0).shape[0]  # no bubble, shorter row
    expected = np.full_like(f2, 60)
    blend_sprite(expected, layer.row(b, 1.0), r2.x, r2.y)
    np.testing.assert_array_equal(f2, expected)


def test_generated_and_uploaded_avatars(load_image) -> None:
    assert initials("Mai Anh") == "MA"
    assert initials("王小明") == "王"
    assert initials("สมชาย") == "ส"
    assert initials("  ") == "?"
    assert avatar_colour("v1") == avatar_colour("v1") != avatar_colour("v2")
    ok, png = cv2.imencode(".png", load_image("faces/astronaut.png"))
    assert ok
    layer = Avatars()
    up = ViewerView("v1", "Lucy", png.tobytes())
    gen = ViewerView("v1", "Lucy")
    pic_up = layer.picture(up, 40, "x")
    pic_gen = layer.picture(gen, 40, None)
    assert pic_up.shape == pic_gen.shape == (40, 40, 4)
    assert not np.array_equal(pic_up, pic_gen)
    assert pic_up[0, 0, 3] == 0 and pic_up[20, 20, 3] == 255  # cut to a disc
    assert layer.picture(up, 40, "x") is pic_up  # cached
    assert decode_avatar(b"not an image") is None
    broken = ViewerView("v2", "Broken", b"\x89PNG garbage")
    assert layer.picture(broken, 40, "y").shape == (40, 40, 4)  # falls back to generated


def test_rows_skip_a_raised_hand() -> None:
    layer = Avatars(side="right", max_visible=6, columns=1)
    layer.set_state(RoomState("r", taken_at=1030.0, viewers=viewers(6, comment=None)))
    draw(layer, 1.0)
    clear = dict(layer.last_rects)
    hand = np.zeros((1, 21, 3), np.float32)
    hand[0, :, 0] = np.linspace(1100, 1250, 21)
    hand[0, :, 1] = np.linspace(560, 690, 21)
    scene = Scene.empty(1280, 720).with_hands(
        HandLandmarks(hand, ("Right",), np.ones(1, np.float32)))
    draw(layer, 1.04, scene=scene)
    draw(layer, 2.0, scene=scene)  # after the glide
    box = Rect(1100, 560, 150, 130)
    assert layer.last_rects and all(not r.intersects(box) for r in layer.last_rects.values())
    assert any(clear[k].intersects(box) for k in clear)  # it would have been covered


def test_never_covers_a_face_on_real_pictures(face_scenes) -> None:
    for name, (img, scene, faces) in face_scenes.items():
        layer = Avatars()
        layer.set_state(RoomState("r", taken_at=1030.0, viewers=viewers(12)))
        out = layer.apply(img.copy(), scene.at(1.0, 1))
        assert layer.last_rects, name
        for r in layer.last_rects.values():
            for f in faces:
                assert not r.intersects(f), (name, r, f)
        for f in faces:
            np.testing.assert_array_equal(out[f.y:f.y2, f.x:f.x2], img[f.y:f.y2, f.x:f.x2])
    # On the 720p portrait all 12 fit beside the face.
    img, scene, _ = face_scenes["faces/obama-720p.jpg"]
    layer = Avatars()
    layer.set_state(RoomState("r", taken_at=1030.0, viewers=viewers(12)))
    layer.apply(img.copy(), scene.at(2.0, 2))  # a new frame: no reservations from above
    assert len(layer.last_rects) == 12


def test_readable_at_480p() -> None:
    layer = Avatars(side="left")
    v = ViewerView("v1", "Budi Santoso", None, "Bagus sekali!", 1000.0, 1000.0)
    layer.set_state(RoomState("r", taken_at=1010.0, viewers=(v,)))
    frame = draw(layer, 1.0, 854, 480)
    r = layer.last_rects["v1"]
    crop = frame[r.y:r.y2, r.x:r.x2]
    dark_text_rows = ((crop.max(axis=2) < 80) & (crop.min(axis=2) < 70)).any(axis=1)
    assert r.h >= 30 and dark_text_rows.sum() >= 8


def test_quiet_viewers_leave_after_linger() -> None:
    layer = Avatars(linger_s=60.0)
    vs = (ViewerView("old", "Quiet", None, None, 900.0, 900.0),
          ViewerView("new", "Chatty", None, "hi", 990.0, 900.0))
    layer.set_state(RoomState("r", taken_at=1000.0, viewers=vs))
    draw(layer, 1.0)
    assert set(layer.last_rects) == {"new"}
    assert {v.id for v in Avatars().visible(RoomState("r", viewers=vs), 1000.0)} == {"old", "new"}


def test_bubble_shows_a_colour_emoji() -> None:
    """The viewer page's Suggest button sends a lipstick emoji: it is drawn, in colour."""
    def vivid_hues(comment: str) -> dict[int, int]:
        layer = Avatars(side="left")
        v = ViewerView("v1", "Lucy", None, comment, 1000.0, 990.0)
        layer.set_state(RoomState("r", taken_at=1001.0, viewers=(v,)))
        frame = draw(layer, 3.0)
        r = layer.last_rects["v1"]
        hsv = cv2.cvtColor(frame[r.y:r.y2, r.x:r.x2], cv2.COLOR_BGR2HSV)
        vivid = (hsv[:, :, 1] >= 120) & (hsv[:, :, 2] >= 60)
        bins, counts = np.unique(hsv[:, :, 0][vivid] // 15, return_counts=True)
        return {int(b): int(c) for b, c in zip(bins, counts, strict=True) if c >= 10}

    plain = vivid_hues("Try Ruby Velvet (velvet-ruby)!")  # the avatar disc: one hue
    with_emoji = vivid_hues("\U0001f484 Try Ruby Velvet (velvet-ruby)!")
    assert len(set(with_emoji) - set(plain)) >= 2, (plain, with_emoji)  # red and gold


def _storm_state(frame: int, per_frame: int, base: float = 2000.0) -> RoomState:
    """Frame ``frame`` of a storm: ``per_frame`` viewers new to the column each frame, and
    a snapshot cut to them (as a room's is, to its most recently active), 2,000 present."""
    t = base + frame / 30
    fresh = tuple(ViewerView(f"s{frame}-{k}", NAMES[k % len(NAMES)], None, None, t, base)
                  for k in range(per_frame))
    return RoomState("r", taken_at=t, viewers=fresh, viewer_count=2000)


def test_a_storm_lets_newcomers_in_at_a_readable_pace() -> None:
    """1,000 actions/s: 33 new viewers a frame. Unpaced, every row changed every frame."""
    layer = Avatars(entries_per_s=4.0)
    ever: set[str] = set()
    for f in range(60):  # 2 s at 30 fps
        layer.set_state(_storm_state(f, 33))
        draw(layer, 10.0 + f / 30)
        ever |= set(layer.last_rects)
    # The first frame fills the column (12); then 4 a second for 2 s, give or take one.
    assert 12 + 7 <= len(ever) <= 12 + 9, len(ever)
    # Members that fell out of the cut snapshot stay: the column is full throughout.
    assert len(layer.members(_storm_state(61, 33), 2000.0 + 61 / 30)) == 12


def test_a_quiet_room_shows_each_newcomer_at_once() -> None:
    layer = Avatars(entries_per_s=4.0)
    vs: tuple[ViewerView, ...] = ()
    for i in range(20):  # one new viewer a second, each in the column on its first frame
        vs = (*vs, ViewerView(f"q{i}", "Lan", None, None, 3000.0 + i, 3000.0))
        column = layer.members(RoomState("r", taken_at=3000.0 + i, viewers=vs), 3000.0 + i)
        assert column[0].id == f"q{i}" and len(column) == min(i + 1, 12)


def test_a_viewer_who_left_leaves_the_column() -> None:
    layer = Avatars()
    layer.set_state(RoomState("r", taken_at=1010.0, viewers=viewers(3), viewer_count=3))
    draw(layer, 1.0)
    assert set(layer.last_rects) == {"v0", "v1", "v2"}
    layer.set_state(RoomState("r", taken_at=1011.0, viewers=viewers(3)[1:], viewer_count=2))
    draw(layer, 2.0)
    draw(layer, 2.5)  # after the fade
    assert set(layer.last_rects) == {"v1", "v2"}


def test_entries_per_s_must_be_positive() -> None:
    with pytest.raises(ValueError, match="entries_per_s"):
        Avatars(entries_per_s=0)
