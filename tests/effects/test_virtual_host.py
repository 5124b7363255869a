"""The virtual host: goldens, no leaked host pixels, beside the face, idle, reactions, files.

Regenerate the golden pictures after a deliberate change to a character or the renderer:
``ARENGINE_REGENERATE_GOLDEN=1 pytest tests/effects/test_virtual_host.py -k golden``
(then look at them: they are what the tests hold the renderer to).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from arengine.effects.base import check_settings, create_effect
from arengine.effects.chain import EffectChain
from arengine.effects.layout import Rect, obstacles
from arengine.effects.lipstick import LipstickEffect
from arengine.effects.virtual_host import Life, VirtualHost, idle_params
from arengine.pipeline.compositor import Compositor, InlineTracking, WorkerTracking
from arengine.render.character import (
    CHARACTERS_DIR,
    CharacterError,
    CharacterRenderer,
    character_names,
    load_character,
)
from arengine.state import LikeGoalView, ProductView, RoomState
from arengine.tracking import FaceTracker
from arengine.tracking.rig import Rig
from arengine.tracking.segmentation import PERSON_MASK, BackgroundPlate, PersonSegmenter
from arengine.types import Scene

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("ARENGINE_REGENERATE_GOLDEN") == "1"
POSES: dict[str, dict[str, float]] = {
    "neutral": {},
    "mouth_a": {"mouth_open": 0.9, "vowel_a": 1.0, "talk": 1.0},
    "blink": {"eye_close_left": 1.0, "eye_close_right": 1.0, "blink": 1.0},
    "turned": {"yaw": 0.8, "pitch": 0.3, "roll": 0.2, "gaze_x": 0.7},
    "smile": {"smile": 1.0, "mouth_width": 0.6},
}
SIZE = (160, 200)
# Same renderer, same pictures: up to 1 level of rounding on anti-aliased edges; a part
# moved by one design pixel or a mouth 10% less open changes far more than this.
MEAN_TOLERANCE = 0.15
PIXEL_TOLERANCE = 0.001  # share of pixels allowed to differ by more than 16 levels


def golden_render(name: str, pose: dict[str, float]) -> np.ndarray:
    return CharacterRenderer(load_character(name)).render(pose, *SIZE)


def matches_golden(image: np.ndarray, golden: np.ndarray) -> bool:
    diff = np.abs(image.astype(np.int16) - golden.astype(np.int16))
    return bool(diff.mean() <= MEAN_TOLERANCE and
                (diff.max(axis=2) > 16).mean() <= PIXEL_TOLERANCE)


@pytest.mark.parametrize("pose", list(POSES))
@pytest.mark.parametrize("name", ["mei", "momo"])
def test_golden_pictures(name: str, pose: str) -> None:
    image = golden_render(name, POSES[pose])
    path = GOLDEN / f"{name}_{pose}.png"
    if REGENERATE:
        GOLDEN.mkdir(exist_ok=True)
        cv2.imwrite(str(path), image)
    golden = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert golden is not None, f"no golden {path.name}; regenerate (see the module docstring)"
    assert matches_golden(image, golden), f"{path.name} changed"


@pytest.mark.parametrize("change", [
    {"vowel_a": 0.9, "mouth_open": 0.8},  # the mouth 10% less open
    {"yaw": 0.05},  # a turn of 1.5 degrees
    {"eye_close_left": 0.3},  # one lid a third down
])
def test_a_golden_fails_when_the_picture_changes(change: dict[str, float]) -> None:
    base = dict(POSES["mouth_a"])
    golden = golden_render("mei", base)
    assert matches_golden(golden_render("mei", base), golden)
    assert not matches_golden(golden_render("mei", {**base, **change}), golden)


def test_the_poses_really_differ() -> None:
    pictures = {p: golden_render("mei", POSES[p]) for p in POSES}
    for a in POSES:
        for b in POSES:
            if a < b:
                assert not matches_golden(pictures[a], pictures[b]), (a, b)


# -- replace: the host never leaves the server ---------------------------------------------

@pytest.fixture(scope="module")
def two_faces(load_image: Callable[[str], np.ndarray]) -> list[tuple[np.ndarray, Scene]]:
    out = []
    with FaceTracker("image") as ft:
        for rel in ("faces/obama-720p.jpg", "mediapipe_samples/business-person.png"):
            picture = load_image(rel)
            k = 720 / picture.shape[0]
            picture = cv2.resize(picture, (round(picture.shape[1] * k), 720))
            image = np.full((720, 1280, 3), 90, np.uint8)  # letterboxed into 720p
            x = (1280 - picture.shape[1]) // 2
            image[:, x:x + picture.shape[1]] = picture[:, :1280]
            scene = ft.track(image, 1.0, 25)
            assert len(scene.faces) == 1
            out.append((image, scene))
    return out


FIXED = Rig(track_id=0, calibrated=True, yaw=8.0, mouth_open=0.6, vowel_a=0.5, vowel_e=0.2,
            smile=0.3, gaze_x=0.4)


def _fixed_rig(effect: VirtualHost) -> None:
    effect.solver.update = lambda scene: FIXED  # type: ignore[method-assign]


def test_replace_draws_the_same_picture_whoever_drives_it(
        two_faces: list[tuple[np.ndarray, Scene]]) -> None:
    """Two different faces, the same rig: the same output, to the bit (with lipstick
    after it in the chain: it finds no host lips to paint)."""
    outs = []
    for image, scene in two_faces:
        host = VirtualHost(character="mei", mode="replace", background="studio")
        _fixed_rig(host)
        chain = EffectChain(effects={"lipstick": LipstickEffect(shade="velvet-ruby"),
                                     "virtual_host": host})
        chain.enabled["virtual_host"] = True
        outs.append(chain.apply(image.copy(), scene, lambda t: None, lambda s: None))
    assert np.array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], two_faces[0][0])


@pytest.fixture(scope="module")
def room_frames(face_video: Path) -> list[np.ndarray]:
    with av.open(str(face_video)) as c:
        return [f.to_ndarray(format="bgr24") for f, _ in zip(c.decode(c.streams.video[0]),
                                                            range(40), strict=False)]


def test_replace_with_the_room_shows_no_pixel_of_the_person(
        room_frames: list[np.ndarray]) -> None:
    chain = EffectChain(effects={"virtual_host": VirtualHost(mode="replace",
                                                             background="room")})
    chain.enabled["virtual_host"] = True
    comp = Compositor(chain, InlineTracking("video"))
    segmenter = PersonSegmenter()
    try:
        for i, image in enumerate(room_frames):
            out = comp.process(image.copy(), i / 25, i)
        assert chain.effects["virtual_host"].report()["background"] == "room"
        last = room_frames[-1]
        # The person in the last frame, measured apart from the plate: even odds or more,
        # and the face box.
        prob = cv2.resize(segmenter.segment(last), (1280, 720))
        person = prob >= 0.5
        x1, y1, x2, y2 = (int(v) for v in out.scene.faces.boxes()[0])
        person[y1:y2, x1:x2] = True
        same = np.abs(out.image.astype(int) - last.astype(int)).max(axis=2) <= 2
        # Her black top and the shadows of her hair are the colour of the dark room
        # behind her, so a match there says nothing: count the pixels that show her.
        shows = cv2.cvtColor(last, cv2.COLOR_BGR2GRAY) > 40
        person &= shows
        assert person.sum() > 50_000
        assert (same & person).sum() / person.sum() < 0.001
    finally:
        comp.close()
        segmenter.close()


def test_the_plate_never_takes_a_pixel_under_the_mask(room_frames: list[np.ndarray]) -> None:
    """Whatever the person's pixels are, the plate is the same: none of them is used."""
    segmenter = PersonSegmenter()
    try:
        image = room_frames[10]
        prob = segmenter.segment(image)
    finally:
        segmenter.close()
    a = BackgroundPlate().update(image, prob)
    noisy = image.copy()
    rng = np.random.default_rng(1)
    under = a.mask > 0
    noisy[under] = rng.integers(0, 256, (int(under.sum()), 3), dtype=np.uint8)
    b = BackgroundPlate().update(noisy, prob)
    assert np.array_equal(a.plate, b.plate)
    assert 0.1 < under.mean() < 0.8  # a real person, a real room around


def test_a_failing_replace_sends_black_not_the_host(
        two_faces: list[tuple[np.ndarray, Scene]]) -> None:
    image, scene = two_faces[0]
    host = VirtualHost(mode="replace")

    def boom(*a: Any, **k: Any) -> None:
        raise RuntimeError("renderer crashed")

    host.renderer.composite = boom  # type: ignore[method-assign]
    errors: list[str] = []
    chain = EffectChain(effects={"virtual_host": host})
    chain.enabled["virtual_host"] = True
    out = chain.apply(image.copy(), scene, lambda t: None, errors.append)
    assert errors == ["effect:virtual_host"] and not out.any()


def test_replace_goes_first_and_lipstick_skips(two_faces: list[tuple[np.ndarray, Scene]]
                                              ) -> None:
    image, scene = two_faces[0]
    stages: list[str] = []
    chain = EffectChain(("lipstick", "virtual_host"))
    chain.set_state(RoomState("r", shade_id="velvet-ruby", effects={"virtual_host": True}))
    chain.apply(image.copy(), scene, lambda t: stages.append(t.stage), lambda s: None)
    assert stages == ["effect:virtual_host", "effect:lipstick"]
    assert chain.needs() == frozenset()  # the studio needs no person mask
    chain.set_state(RoomState("r", shade_id="velvet-ruby", effects={"virtual_host": True},
                              effect_settings={"virtual_host": {"background": "room"}}))
    assert chain.needs() == frozenset({PERSON_MASK})


def test_beside_keeps_the_host_and_lipstick(two_faces: list[tuple[np.ndarray, Scene]]
                                           ) -> None:
    image, scene = two_faces[0]
    chain = EffectChain(("virtual_host", "lipstick"))
    chain.set_state(RoomState("r", shade_id="velvet-ruby", effects={"virtual_host": True},
                              effect_settings={"virtual_host": {"mode": "beside"}}))
    for k in range(12):  # the shade fades in
        out = chain.apply(image.copy(), scene.at(1.0 + k * 0.04, k), lambda t: None,
                          lambda s: None)
    host = chain.effects["virtual_host"]
    assert isinstance(host, VirtualHost) and host.last_box is not None
    face = Rect.from_xyxy(scene.faces.boxes()[0])
    assert not host.last_box.intersects(face)
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [scene.faces.lips_outer()[0].astype(np.int32)], 255)
    cv2.fillPoly(mask, [scene.faces.lips_inner()[0].astype(np.int32)], 0)
    changed = np.abs(out.astype(int) - image).max(axis=2) > 10
    assert changed[mask > 0].mean() > 0.3  # lipstick painted the host's lips


def test_beside_never_covers_a_face(room_frames: list[np.ndarray]) -> None:
    host = VirtualHost(mode="beside", character="momo")
    with FaceTracker("video") as ft:
        for i, image in enumerate(room_frames[::4]):
            scene = ft.track(image, i * 0.16, i)
            host.apply(image.copy(), scene)
            assert host.last_box is not None
            for box in scene.faces.boxes():
                assert not host.last_box.intersects(Rect.from_xyxy(box))
    # A face that fills the frame: no room beside it, the character is not drawn.
    big = Scene(1280, 720).with_faces(room_frames and _face_box_scene(1280, 720).faces)
    host.apply(np.zeros((720, 1280, 3), np.uint8), big)
    assert host.last_box is None


def _face_box_scene(w: int, h: int) -> Scene:
    """A scene whose one face spans the frame (landmarks on a grid)."""
    from arengine.types import FaceLandmarks

    pts = np.zeros((1, 478, 3), np.float32)
    pts[0, :, 0] = np.linspace(0.05 * w, 0.95 * w, 478)
    pts[0, :, 1] = np.linspace(0.1 * h, 0.9 * h, 478)
    return Scene(w, h, FaceLandmarks(pts, pts.copy(), np.ones(1, np.float32),
                                     np.zeros(1, np.int64)))


def test_layers_keep_off_the_character(two_faces: list[tuple[np.ndarray, Scene]]) -> None:
    image, scene = two_faces[0]
    chain = EffectChain(("virtual_host", "lipstick", "avatars", "vote_sticker", "likes",
                         "product"))
    chain.set_state(RoomState("r", taken_at=1e9, product=ProductView("p", "Velvet Ruby",
                                                                      "$19"),
                              effects={"virtual_host": True}))
    s = scene.at(1.0, 1)
    chain.apply(image.copy(), s, lambda t: None, lambda e: None)
    host = chain.effects["virtual_host"]
    assert isinstance(host, VirtualHost) and host.last_box is not None
    assert host.last_box in obstacles(s)  # a subject, for every layer after it
    regions = chain.click_regions(1280, 720)
    assert regions, "the product card is drawn"
    for r in regions:
        card = Rect(round(r["x"] * 1280), round(r["y"] * 720), round(r["w"] * 1280),
                    round(r["h"] * 720))
        assert not card.intersects(host.last_box)


# -- never a dead screen ---------------------------------------------------------------

def test_with_no_face_the_character_keeps_moving() -> None:
    host = VirtualHost(mode="replace", character="mei")
    frames, shut = [], 0
    for i in range(250):  # 10 s at 25 fps, nobody in front of the camera
        out = host.apply(np.zeros((360, 640, 3), np.uint8), Scene.empty(640, 360, i / 25, i))
        frames.append(out)
        shut += host.last_params["eye_close_left"] > 0.9
    changed = [not np.array_equal(a, b) for a, b in pairwise(frames)]
    assert all(changed)  # breathing alone moves every frame
    assert shut >= 2  # it blinks
    gaze = [idle_params(t / 5)["gaze_x"] for t in range(300)]
    assert np.ptp(gaze) > 0.5  # and looks around
    talking = [idle_params(t / 25).get("mouth_open", 0.0) for t in range(15 * 25)]
    assert max(talking) > 0.4  # the idle loop talks now and then


def test_a_lost_face_fades_into_the_idle_loop(room_frames: list[np.ndarray]) -> None:
    host = VirtualHost(mode="beside")
    with FaceTracker("video") as ft:
        for i, image in enumerate(room_frames[:10]):
            host.apply(image.copy(), ft.track(image, i / 25, i))
    assert host.life.tracked == 1.0
    seen = []
    for i in range(10, 60):
        host.apply(np.zeros((720, 1280, 3), np.uint8), Scene.empty(1280, 720, i / 25, i))
        seen.append(host.life.tracked)
    assert 0 < seen[5] < 1 and seen[-1] == 0.0  # no snap: a fade over LOST_S


def test_the_demo_source_shows_the_character_alive() -> None:
    from arengine.demo import DemoSource

    demo = DemoSource(640, 360)
    chain = EffectChain(("virtual_host", "lipstick"))
    chain.set_state(RoomState("r", effects={"virtual_host": True}))
    comp = Compositor(chain, InlineTracking("video", hands=False))
    try:
        outs = [comp.process(demo.frame_at(i / 30), i / 30, i, None).image
                for i in range(0, 60, 6)]
    finally:
        comp.close()
    host = chain.effects["virtual_host"]
    assert isinstance(host, VirtualHost) and host.last_rig is not None  # follows the demo
    assert all(not np.array_equal(a, b) for a, b in pairwise(outs))


# -- reactions, once per event ----------------------------------------------------------

def test_a_thumbs_up_waves_once() -> None:
    life = Life()
    life.params(Rig(events=("thumbs_up",)), 1.0)
    for i in range(100):
        life.params(Rig(gestures=("thumbs_up",)), 1.0 + i * 0.04)
    assert life.reactions == [("wave", 1.0)]
    p = life.params(Rig(), 1.0 + 3.0)
    assert p["wave_on"] == 0.0  # over after WAVE_S


def test_a_like_goal_cheers_once_per_goal() -> None:
    host = VirtualHost()

    def state(count: int, target: int = 100) -> RoomState:
        return RoomState("r", like_goal=LikeGoalView(target, count, "coupon",
                                                     reached=count >= target))

    host.set_state(state(50))
    host.set_state(state(100))  # reached: one cheer
    host.set_state(state(120))  # still reached: nothing more
    host.set_state(state(130))
    for i in range(5):
        host.apply(np.zeros((360, 640, 3), np.uint8), Scene.empty(640, 360, i / 25, i))
    assert [k for k, _ in host.life.reactions] == ["cheer"]
    host.set_state(state(130, 200))  # a new goal, not reached
    host.set_state(state(200, 200))  # reached: a second cheer
    host.apply(np.zeros((360, 640, 3), np.uint8), Scene.empty(640, 360, 1.0, 30))
    assert [k for k, _ in host.life.reactions] == ["cheer", "cheer"]
    late = VirtualHost()  # started after the goal was reached: no cheer
    late.set_state(state(200, 200))
    late.apply(np.zeros((360, 640, 3), np.uint8), Scene.empty(640, 360, 0.0, 0))
    assert late.life.reactions == []


def test_remade_with_new_settings_it_keeps_calibration_and_reactions(
        two_faces: list[tuple[np.ndarray, Scene]]) -> None:
    image, scene = two_faces[0]
    chain = EffectChain(("virtual_host",))
    goal = LikeGoalView(10, 10, "x", reached=True)
    chain.set_state(RoomState("r", like_goal=LikeGoalView(10, 5, "x"),
                              effects={"virtual_host": True}))
    chain.set_state(RoomState("r", like_goal=goal, effects={"virtual_host": True}))
    for k in range(20):
        chain.apply(image.copy(), scene.at(k / 25, k), lambda t: None, lambda e: None)
    first = chain.effects["virtual_host"]
    assert isinstance(first, VirtualHost) and first.solver.calibrated
    chain.set_state(RoomState("r", like_goal=goal, effects={"virtual_host": True},
                              effect_settings={"virtual_host": {"mode": "beside",
                                                                "character": "momo"}}))
    second = chain.effects["virtual_host"]
    assert isinstance(second, VirtualHost) and second is not first
    assert second.mode == "beside" and second.solver.calibrated
    assert [k for k, _ in second.life.reactions] == ["cheer"]  # not cheered again
    chain.set_state(RoomState("r", like_goal=goal, effects={"virtual_host": True},
                              effect_settings={"virtual_host": {"mode": "beside",
                                                                "calibration": 1}}))
    third = chain.effects["virtual_host"]
    assert isinstance(third, VirtualHost) and third.solver.calibrating  # asked again


def test_the_shade_colours_the_lips(two_faces: list[tuple[np.ndarray, Scene]]) -> None:
    image, scene = two_faces[0]
    pictures = []
    for shade in ("#9B111E", "#F4A6C0"):
        host = VirtualHost()
        _fixed_rig(host)
        host.set_state(RoomState("r", shade_id="x", shade_hex=shade))
        pictures.append(host.apply(image.copy(), scene))
    differ = np.abs(pictures[0].astype(int) - pictures[1]).max(axis=2) > 30
    assert 50 < differ.sum() < 20_000  # the lips, and only the lips


# -- settings and files ---------------------------------------------------------------

def test_settings_are_checked_like_every_effect() -> None:
    check_settings("virtual_host", {"character": "momo", "mode": "beside"})
    for bad, words in [({"mode": "sideways"}, "mode must be"),
                       ({"character": "nobody"}, "known: mei, momo"),
                       ({"background": "beach"}, "background must be"),
                       ({"scale": 9}, "scale must be")]:
        with pytest.raises(ValueError, match=words):
            check_settings("virtual_host", bad)
    assert not create_effect("virtual_host").enabled_by_default


def test_a_new_character_is_a_file_in_the_folder(tmp_path: Path) -> None:
    data = json.loads((CHARACTERS_DIR / "momo.json").read_text())
    data["title"] = "Momo too"
    (tmp_path / "momo2.json").write_text(json.dumps(data))
    assert character_names(tmp_path) == ["momo2"]
    assert load_character("momo2", tmp_path).title == "Momo too"
    assert set(character_names()) >= {"mei", "momo"}


def _mei() -> dict[str, Any]:
    return json.loads((CHARACTERS_DIR / "mei.json").read_text())


def _set(data: dict[str, Any], part: str, key: str, value: Any) -> dict[str, Any]:
    for p in data["parts"]:
        if p["part"] == part:
            p[key] = value
    return data


BROKEN: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "bind_not_a_number": (lambda d: _set(d, "mouth", "bind", {"mouth_open": {"scale_y": "x"}}),
                          'part "mouth": field "bind.mouth_open.scale_y" must be a number'),
    "unknown_parameter": (lambda d: _set(d, "nose", "bind", {"nose_wiggle": {"rotate": 1}}),
                          'part "nose": field "bind.nose_wiggle" is not a parameter'),
    "unknown_target": (lambda d: _set(d, "nose", "bind", {"yaw": {"skew": 1}}),
                       'part "nose": field "bind.yaw.skew" is not a target'),
    "missing_parent": (lambda d: _set(d, "nose", "parent", "hat"),
                       'part "nose": field "parent" names no part ("hat")'),
    "missing_clip": (lambda d: _set(d, "teeth", "clip", "jaw"),
                     'part "teeth": field "clip" names no part ("jaw")'),
    "bad_colour": (lambda d: _set(d, "nose", "shapes", [{"type": "circle", "cx": 1, "cy": 2,
                                                          "r": 3, "fill": "pink"}]),
                   'part "nose": field "shapes[0].fill" must be a colour'),
    "morph_mismatch": (lambda d: _set(d, "nose", "shapes", [
        {"type": "path", "d": "M 0 0 L 10 10", "morph": {"smile": "M 0 0 C 1 1 2 2 3 3"},
         "stroke": "#000000"}]),
        'part "nose": field "shapes[0].morph.smile" must have the same commands'),
    "bad_path": (lambda d: _set(d, "nose", "shapes", [{"type": "path", "d": "M 0 0 A 5 5",
                                                        "stroke": "#000000"}]),
                 'part "nose": field "shapes[0].d" must be path data'),
    "parent_loop": (lambda d: _set(_set(d, "head", "parent", "nose"), "nose", "parent", "head"),
                    'field "parent" makes a loop of parents'),
    "bad_format": (lambda d: {**d, "format": "svg"}, 'field "format" must be'),
    "no_size": (lambda d: {k: v for k, v in d.items() if k != "size"},
                'field "size" must be a list of 2 numbers'),
    "duplicate_part": (lambda d: {**d, "parts": [*d["parts"], d["parts"][0]]},
                       'field "part" is used by two parts'),
    "unknown_shape_field": (lambda d: _set(d, "nose", "shapes", [{"type": "circle", "cx": 1,
                                                                   "cy": 2, "r": 3,
                                                                   "fill": "#fff000",
                                                                   "radius": 4}]),
                            'part "nose": field "shapes[0].radius" is not a known field'),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_character_is_refused_with_file_part_and_field(tmp_path: Path,
                                                                case: str) -> None:
    make, message = BROKEN[case]
    path = tmp_path / f"{case}.json"
    path.write_text(json.dumps(make(_mei())))
    with pytest.raises(CharacterError) as e:
        load_character(path)
    text = str(e.value)
    assert text.startswith(f"{path}: "), text
    assert message in text, text
    assert "\n" not in text


def test_broken_json_and_the_shipped_folder_name(tmp_path: Path) -> None:
    path = tmp_path / "half.json"
    path.write_text('{"format": "arengine-character/1", "size": [1, ')
    with pytest.raises(CharacterError, match=r"half\.json: not valid JSON: line 1"):
        load_character(path)
    bad = _mei()
    _set(bad, "mouth", "bind", {"mouth_open": {"scale_y": "x"}})
    shipped = CHARACTERS_DIR / "zz_broken_test.json"
    shipped.write_text(json.dumps(bad))
    try:
        with pytest.raises(CharacterError) as e:
            load_character("zz_broken_test")
        assert str(e.value) == ('characters/zz_broken_test.json: part "mouth": field '
                                '"bind.mouth_open.scale_y" must be a number')
    finally:
        shipped.unlink()


def test_the_live_room_gets_a_person_mask_from_a_worker(room_frames: list[np.ndarray]
                                                       ) -> None:
    import time

    chain = EffectChain(effects={"virtual_host": VirtualHost(background="room")})
    chain.enabled["virtual_host"] = True
    tracking = WorkerTracking(None, None, segment_interval=0.0)
    comp = Compositor(chain, tracking)
    try:
        got = None
        for i in range(200):
            image = room_frames[i % len(room_frames)]
            out = comp.process(image.copy(), i / 25, i)
            got = out.scene.extras.get(PERSON_MASK)
            if got is not None:
                break
            time.sleep(0.02)  # a frame never waits for the model: the worker catches up
        assert got is not None and got.plate.shape == (720, 1280, 3)
        assert tracking.segmentation is not None
    finally:
        comp.close()


def test_beside_through_a_render_backend_draws_the_same(
        two_faces: list[tuple[np.ndarray, Scene]]) -> None:
    """Given the chain's backend, beside mode joins its frame as a sprite (a GPU keeps one
    upload and one readback); the picture is the one drawn in place."""
    from arengine.effects.chain import BackendChain
    from arengine.render.cpu import CPUBackend

    image, scene = two_faces[0]
    backend = CPUBackend()
    outs = []
    for b in (None, backend):
        host = VirtualHost(mode="beside", backend=b)
        _fixed_rig(host)
        chain = BackendChain({"virtual_host": host}, b)
        assert chain.shares_frame(host) == (b is not None)
        outs.append(chain.apply(image.copy(), scene))
    diff = np.abs(outs[0].astype(int) - outs[1])
    assert diff.max() <= 3 and (diff > 0).mean() < 0.05
    assert not np.array_equal(outs[0], image)
