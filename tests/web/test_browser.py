"""Real Chromium: a host page publishes a fake camera, a viewer page watches the result.

The fake camera plays a .y4m made at test time from the shared face video. The viewer's
<video> is read back through a canvas, so these tests check what a person would see:
lipstick on the host's lips, and the vote sticker changing when a viewer votes.
"""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from arengine.pipeline import RoomConfig
from tests.conftest import wait_for
from tests.web.conftest import launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PLUM = "#5B2140"
# The camera video's host makes hand gestures (fist, fingers) that would close or vote in
# the poll; these tests are about what viewers do, so gestures are off.
CONFIG = RoomConfig(demo_size=(480, 270), fps=15, hand_interval=0.2, gestures=False,
                    effects=("lipstick", "vote_sticker"))


@pytest.fixture(scope="module")
def fake_camera(tmp_path_factory: pytest.TempPathFactory, face_video: Path) -> Path:
    """The face video as a 640x360, 15 fps .y4m for Chromium's fake capture device."""
    out = tmp_path_factory.mktemp("camera") / "camera.y4m"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(face_video), "-t", "6",
                    "-vf", "scale=640:360,fps=15", "-pix_fmt", "yuv420p", str(out)],
                   check=True, timeout=120)
    return out


@pytest.fixture
def browser(fake_camera: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b: Any = launch_chromium(p, "--use-fake-device-for-media-stream",
                                 "--use-fake-ui-for-media-stream",
                                 f"--use-file-for-fake-video-capture={fake_camera}")
        try:
            yield b
        finally:
            b.close()


GRAB = """() => {
  const v = document.getElementById(arguments[0] || "video");
  if (!v || v.readyState < 2 || !v.videoWidth) return null;
  const c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  c.getContext("2d").drawImage(v, 0, 0);
  return c.toDataURL("image/png");
}"""


def grab(page, element: str = "video") -> np.ndarray | None:
    url = page.evaluate(GRAB.replace("arguments[0]", repr(element)))
    if url is None:
        return None
    data = base64.b64decode(url.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)



def assert_lips_carry_shade(page, source: np.ndarray, lip_distance, shade: str,
                            seen_as: str) -> None:
    """The lips in ``page``'s video are nearer ``shade`` than in ``source`` (the picture
    before any effect): median of three grabs, hue distance 4 less, full distance 40 %."""
    before = lip_distance(source, shade)
    afters = []
    for _ in range(3):
        frame = grab(page)
        assert frame is not None
        afters.append(lip_distance(frame, shade))
        time.sleep(0.3)
    hue, full = (float(np.median([a[i] for a in afters])) for i in (0, 1))
    print(f"lip colour distance to the shade (a-b, Lab): source {before[0]:.1f} "
          f"{before[1]:.1f}, {seen_as} {hue:.1f} {full:.1f}")
    assert hue < before[0] - 4, (before, afters)
    assert full < 0.6 * before[1], (before, afters)


def source_frame(face_video: Path, t: float = 1.0) -> np.ndarray:
    cap = cv2.VideoCapture(str(face_video))
    cap.set(cv2.CAP_PROP_POS_MSEC, t * 1000)
    ok, img = cap.read()
    cap.release()
    assert ok
    return cv2.resize(img, (640, 360), interpolation=cv2.INTER_AREA)


def go_live(browser, server) -> object:
    host = browser.new_page()
    host.goto(f"{server.url}/host/demo#token={server.token}")
    host.click("#live")
    with httpx.Client(base_url=server.url) as http:
        wait_for(lambda: http.get("/api/rooms/demo/status").json()["status"] == "live", 30,
                 "the host to go live")
    return host


def watch(browser, server) -> object:
    viewer = browser.new_page()
    console: list[str] = []
    viewer.on("console", lambda m: console.append(m.text))
    viewer.goto(f"{server.url}/watch/demo")

    def playing_host() -> bool:
        f = grab(viewer)
        return f is not None and f.shape[1] == 640

    try:
        wait_for(playing_host, 40, "the viewer to play the host's 640x360 picture")
    except BaseException:
        f = grab(viewer)
        print("viewer badge:", viewer.text_content("#badge"), "frame:",
              None if f is None else f.shape, "console:", console[-10:])
        raise
    return viewer


@pytest.mark.room_config(CONFIG)
def test_viewer_sees_lipstick_on_the_host(browser, live_server, face_video,
                                          lip_distance) -> None:
    with httpx.Client(base_url=live_server.url) as http:
        r = http.put("/api/rooms/demo/shade", json={"shade_id": "velvet-plum"},
                     headers={"Authorization": f"Bearer {live_server.token}"})
        assert r.status_code == 200, r.text
    host = go_live(browser, live_server)
    viewer = watch(browser, live_server)
    time.sleep(2.0)  # tracking locks on, the shade fades in
    assert_lips_carry_shade(viewer, source_frame(face_video), lip_distance, PLUM, "viewer")
    status = viewer.text_content("#badge")
    assert status == "LIVE", status
    host.close()
    viewer.close()


def _colour_pixels(frame: np.ndarray, rect, hex_colour: str) -> int:
    """Pixels of ``frame`` inside ``rect`` close to a colour (a bar is drawn in its swatch)."""
    bgr = np.array([int(hex_colour[i:i + 2], 16) for i in (5, 3, 1)])
    roi = frame[rect.y:rect.y2, rect.x:rect.x2].astype(np.int32)
    return int((np.abs(roi - bgr).max(axis=2) < 28).sum())


@pytest.mark.room_config(CONFIG)
def test_vote_in_viewer_page_changes_the_sticker(browser, live_server) -> None:
    host = go_live(browser, live_server)
    viewer = watch(browser, live_server)
    auth = {"Authorization": f"Bearer {live_server.token}"}
    with httpx.Client(base_url=live_server.url) as http:
        r = http.post("/api/rooms/demo/polls", headers=auth, json={
            "question": "Next shade?", "duration_s": 120,
            "options": [{"label": "Plum", "shade_id": "velvet-plum"},
                        {"label": "Ruby", "shade_id": "velvet-ruby"}]})
        assert r.status_code == 201, r.text
    sticker = live_server.media.pipelines["demo"].effects.effects["vote_sticker"]
    rect = wait_for(lambda: sticker.last_rect, 20, "the vote sticker to be drawn")
    viewer.wait_for_selector('#poll-options button[data-option="0"]', timeout=20000)
    time.sleep(1.5)
    before = grab(viewer)
    assert before is not None
    viewer.click('#poll-options button[data-option="0"]')
    with httpx.Client(base_url=live_server.url) as http:
        wait_for(lambda: http.get("/api/rooms/demo").json()["poll"]["total_votes"] == 1, 10,
                 "the vote to be counted")
    time.sleep(2.0)  # the bar eases to its new length
    rect = sticker.last_rect
    after = grab(viewer)
    assert after is not None
    swatch = PLUM  # option 0's swatch: its bar is drawn in that colour
    n_before, n_after = _colour_pixels(before, rect, swatch), _colour_pixels(after, rect, swatch)
    print(f"sticker bar pixels: before vote {n_before}, after {n_after}")
    assert n_after > n_before + 200, (n_before, n_after)
    viewer.wait_for_function(  # a function, not an expression: the page's CSP refuses eval
        "() => document.querySelector('#poll-meta').textContent.startsWith('1 votes')",
        timeout=10000)
    host.close()
    viewer.close()


CONSOLE = RoomConfig(demo_size=(480, 270), fps=15, gestures=False, track_hands=False,
                     effects=("lipstick", "vote_sticker", "product"))


@pytest.mark.parametrize("where", [
    pytest.param("thread", marks=pytest.mark.room_config(CONSOLE)),
    pytest.param("process", marks=pytest.mark.room_config(replace(CONSOLE,
                                                                  compositor="process")))])
def test_host_console_controls_and_product_click(browser, live_server, where: str) -> None:
    """The same with the compositor in a process of its own: the console's controls reach
    it, and its click areas reach the viewer's page."""
    http = httpx.Client(base_url=live_server.url)

    def state() -> dict:
        return http.get("/api/rooms/demo").json()

    host = go_live(browser, live_server)
    host.wait_for_selector('#shade option[value="velvet-plum"]', state="attached")
    host.select_option("#shade", "velvet-plum")
    host.click("#shade-set")
    wait_for(lambda: state()["shade_id"] == "velvet-plum", 10, "the shade from the console")

    host.select_option("#poll-shades", ["velvet-plum", "dew-berry"])
    host.fill("#poll-q", "Plum or berry?")
    host.click("#poll-start")
    poll = wait_for(lambda: state()["poll"], 10, "the poll from the console")
    assert [o["shade_id"] for o in poll["options"]] == ["velvet-plum", "dew-berry"]

    host.fill("#product-name", "Velvet Plum")
    host.fill("#product-price", "$19.90")
    host.fill("#product-url", "https://shop.example/lip-07")
    host.click("#product-set")
    wait_for(lambda: state()["product"], 10, "the product from the console")
    host.fill("#goal-target", "500")
    host.click("#goal-set")
    wait_for(lambda: (state()["like_goal"] or {}).get("target") == 500, 10, "the like goal")
    r = http.post("/api/rooms/demo/join", json={"name": "Linh"})
    viewer_token = r.json()["viewer_token"]
    http.post("/api/rooms/demo/comments", json={"text": "plum please"},
              headers={"Authorization": f"Bearer {viewer_token}"})
    host.wait_for_selector("#comments >> text=plum please", timeout=10000)

    host.wait_for_function(  # a compositor process takes a second to start
        "() => document.querySelector('#stages').textContent.includes('effect:lipstick')",
        timeout=20000)
    stages = host.text_content("#stages")
    assert "effect:lipstick" in stages and "encode:vp8" in stages
    assert "live" in host.text_content("#summary")
    if where == "process":
        host.wait_for_function("() => document.getElementById('summary').textContent"
                               ".includes('compositor process running')", timeout=10000)

    viewer = watch(browser, live_server)
    viewer.wait_for_selector("#poll-q >> text=Plum or berry?", timeout=10000)
    viewer.wait_for_selector("#regions div", timeout=20000)
    viewer.click("#regions div")
    viewer.wait_for_selector("#product[open]", timeout=5000)
    assert viewer.text_content("#product-name") == "Velvet Plum"
    assert viewer.get_attribute("#product-link", "href") == "https://shop.example/lip-07"
    wait_for(lambda: http.get("/api/rooms/demo/metrics").status_code == 200, 5, "metrics")

    host.uncheck("#fx-lipstick")
    wait_for(lambda: state()["effects"].get("lipstick", {}).get("enabled") is False, 10,
             "the lipstick toggle")
    pipeline = live_server.media.pipelines["demo"]
    wait_for(lambda: pipeline.stats()["effects"]["lipstick"] is False, 10,
             "the compositor to drop the lipstick")
    assert pipeline.stats()["compositor"]["where"] == where
    host.close()
    viewer.close()
    http.close()


@pytest.mark.server_codec("h264")
@pytest.mark.room_config(RoomConfig(demo_size=(480, 270), fps=15, track_hands=False,
                                    effects=("lipstick",)))
def test_viewer_plays_h264(browser, live_server) -> None:
    """Chromium offers VP8 first; a room that sends H.264 must still play."""
    viewer = browser.new_page()
    viewer.goto(f"{live_server.url}/watch/demo")
    wait_for(lambda: grab(viewer) is not None, 30, "the H.264 picture")
    frame = grab(viewer)
    assert frame.shape[:2] == (270, 480)
    assert live_server.media.pipelines["demo"].encoders.keys() == {"h264"}
    viewer.close()


@pytest.mark.room_config(RoomConfig(demo_size=(480, 270), fps=15, track_hands=False,
                                    effects=("lipstick", "avatars", "likes")))
def test_viewer_joins_comments_and_likes(browser, live_server) -> None:
    http = httpx.Client(base_url=live_server.url)
    viewer = browser.new_page()
    held: list[Any] = []  # the page's first join, held on the wire while the name is typed
    viewer.route("**/api/rooms/demo/join",
                 lambda route: route.continue_() if held else held.append(route))
    viewer.goto(f"{live_server.url}/watch/demo")
    wait_for(lambda: held or viewer.wait_for_timeout(50), 10, "the page's first join")
    viewer.fill("#name", "Mai")
    viewer.dispatch_event("#name", "change")
    held[0].continue_()

    def names() -> list[str]:
        viewer.wait_for_timeout(100)  # lets Playwright pass the page's next join on
        return [v["name"] for v in http.get("/api/rooms/demo").json()["viewers"]]
    wait_for(lambda: names() == ["Mai"], 10, "the viewer to join as Mai (and the first to leave)")
    viewer.fill("#comment", "love this shade!")
    viewer.click("#comment-form button[type=submit]")
    viewer.wait_for_selector("#comments >> text=love this shade!", timeout=10000)
    for _ in range(3):
        viewer.click("#like")
    wait_for(lambda: http.get("/api/rooms/demo").json()["likes"] == 3, 10, "three likes")
    viewer.wait_for_function(
        "() => document.querySelector('#likes').textContent === '3'",
                             timeout=10000)
    viewer.close()
    http.close()


@pytest.mark.room_config(RoomConfig(demo_size=(480, 270), fps=15, track_hands=False,
                                    effects=("lipstick",)))
def test_chromium_viewer_is_asked_for_zero_playout_delay(browser, live_server) -> None:
    """Chromium offers the playout-delay extension; the server negotiates it and sends it."""
    from arengine.transport.playout import PLAYOUT_DELAY_URI, PlayoutDelayMap
    from arengine.transport.whep import WhepSession

    viewer = browser.new_page()
    viewer.goto(f"{live_server.url}/watch/demo")
    wait_for(lambda: grab(viewer) is not None, 30, "the picture")
    sessions = [s for s in live_server.media.sessions.values() if isinstance(s, WhepSession)]
    assert len(sessions) == 1 and sessions[0].playout_delay_sent
    pc = sessions[0].pc
    assert PLAYOUT_DELAY_URI in pc.remoteDescription.sdp  # Chromium's offer had it
    assert PLAYOUT_DELAY_URI in pc.localDescription.sdp  # and the answer took it
    sender = next(t.sender for t in pc.getTransceivers() if t.kind == "video")
    ext_map = sender._RTCRtpSender__rtp_header_extensions_map
    assert isinstance(ext_map, PlayoutDelayMap) and ext_map.id is not None
    viewer.close()
