"""Real Chromium as a hostile visitor: no payload runs, tokens leave the address bar, a
silent viewer stays present, colour emoji show in the chat."""

from __future__ import annotations

import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from arengine.pipeline import RoomConfig
from arengine.settings import Settings
from tests.conftest import wait_for
from tests.web.conftest import launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUIET = RoomConfig(demo_size=(320, 180), fps=10, track_hands=False, gestures=False,
                   effects=("lipstick", "avatars"))

# Each payload would set window.__pwned (or open a dialog) if it ever ran as markup.
PAYLOADS = [
    '<img src=x onerror="window.__pwned=1">',
    '"><svg onload="window.__pwned=2">',
    "<script>window.__pwned=3</script>",
    "javascript:window.__pwned=4",
    "<iframe srcdoc='<script>parent.__pwned=5</script>'></iframe>",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b: Any = launch_chromium(p)
        try:
            yield b
        finally:
            b.close()


def hostile_page(browser: Any, url: str) -> tuple[Any, list[str]]:
    """A page that records dialogs and CSP violations."""
    page = browser.new_page()
    seen: list[str] = []
    page.on("dialog", lambda d: (seen.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("console", lambda m: seen.append(f"console: {m.text}")
            if "Content Security Policy" in m.text else None)
    page.goto(url)
    return page, seen


def injected(page: Any) -> int:
    """Elements a payload would have created if it were parsed as HTML."""
    return int(page.evaluate("""() => document.querySelectorAll(
        'img[src="x"], svg, iframe, script:not([src])').length"""))



@pytest.mark.room_config(QUIET)
def test_hostile_strings_never_run(browser: Any, live_server: Any) -> None:
    host_auth = {"Authorization": f"Bearer {live_server.token}"}
    admin = {"Authorization": f"Bearer {live_server.admin_token}"}
    with httpx.Client(base_url=live_server.url) as http:
        r = http.post("/api/rooms", json={"title": PAYLOADS[0], "room_id": "hostile"},
                      headers=admin)
        assert r.status_code == 201, r.text
        for payload in PAYLOADS:
            j = http.post("/api/rooms/demo/join", json={"name": payload[:40]})
            assert j.status_code == 201, j.text
            viewer = {"Authorization": f"Bearer {j.json()['viewer_token']}"}
            assert http.post("/api/rooms/demo/comments", json={"text": payload},
                             headers=viewer).status_code == 201
        assert http.put("/api/rooms/demo/product", headers=host_auth, json={
            "name": PAYLOADS[1], "price": PAYLOADS[2][:24],
            "url": "https://shop.example/x?<script>"}).status_code == 200
        assert http.put("/api/rooms/demo/like-goal", headers=host_auth, json={
            "target": 100, "message": PAYLOADS[4][:120]}).status_code == 200
        r = http.post("/api/rooms/demo/polls", headers=host_auth, json={
            "question": PAYLOADS[0], "duration_s": 120,
            "options": [{"label": PAYLOADS[1][:40]}, {"label": PAYLOADS[2][:40]}]})
        assert r.status_code == 201, r.text

    pages = []
    for path in ("/", "/watch/demo", f"/host/demo#token={live_server.token}",
                 "/watch/" + urllib.parse.quote(PAYLOADS[0], safe=""),
                 "/host/" + urllib.parse.quote(PAYLOADS[1], safe="")):
        page, seen = hostile_page(browser, live_server.url + path)
        pages.append((path, page, seen))
    watch = pages[1][1]
    watch.wait_for_selector("#comments >> text=window.__pwned=3", timeout=15000)
    watch.wait_for_selector("#poll-q >> text=onerror", timeout=15000)
    pages[0][1].wait_for_selector("#rooms >> text=onerror", timeout=15000)
    pages[2][1].wait_for_selector("#comments >> text=window.__pwned=3", timeout=15000)
    time.sleep(1.5)  # give anything that would run the time to run
    for path, page, seen in pages:
        assert page.evaluate("() => window.__pwned === undefined"), path
        assert injected(page) == 0, path
        assert not [s for s in seen if s.startswith("dialog")], (path, seen)
    # The strings are there, as text: the viewer page shows them as people typed them.
    comments = watch.text_content("#comments") or ""
    for payload in PAYLOADS:
        assert payload in comments
    assert pages[3][1].text_content("h1") == f"No room “{PAYLOADS[0]}”"
    for _, page, _ in pages:
        page.close()


@pytest.mark.room_config(QUIET)
def test_tokens_leave_the_address_bar(browser: Any, live_server: Any) -> None:
    token = live_server.token
    for url in (f"{live_server.url}/host/demo#token={token}",
                f"{live_server.url}/host/demo?token={token}"):
        page, _ = hostile_page(browser, url)
        page.wait_for_function("() => !location.href.includes('token')", timeout=5000)
        assert token not in page.url
        assert page.evaluate("() => sessionStorage.getItem('host-token:demo')") == token
        assert page.evaluate("() => document.getElementById('token').value") == token
        # the console works with the token it took: the host-only stats show
        page.wait_for_function(
            "() => /demo|live/.test(document.getElementById('summary').textContent)",
            timeout=15000)
        page.close()
    admin = live_server.admin_token
    page, _ = hostile_page(browser, f"{live_server.url}/#admin={admin}")
    page.wait_for_function("() => !location.href.includes('admin')", timeout=5000)
    page.fill("#room-id", "created-here")
    page.click("#create button[type=submit]")
    page.wait_for_selector("#created a", timeout=10000)
    link = page.get_attribute("#created a", "href") or ""
    assert link.startswith("/host/created-here#token=") and "?token" not in link
    assert admin not in (page.text_content("body") or "")
    page.close()


@pytest.mark.server_settings(Settings(demo_crowd=False).with_limits(viewer_idle_s=3.0))
@pytest.mark.room_config(QUIET)
def test_a_silent_viewer_stays_present_and_comes_back(browser: Any, live_server: Any) -> None:
    """A viewer who only watched was marked as left after the idle time, and every later
    vote, like or comment failed with "has left the room" until a reload."""
    hub = live_server.app.state.hub
    room = hub.get("demo")
    page, _ = hostile_page(browser, f"{live_server.url}/watch/demo")
    viewer = wait_for(lambda: page.evaluate(
        "() => JSON.parse(localStorage.getItem('viewer:demo') || 'null')"), 15, "the join")
    vid = viewer["id"]
    wait_for(lambda: room.viewers[vid].connections > 0, 10, "the event stream with the token")
    time.sleep(12)  # four idle periods, two idle scans
    assert room.viewers[vid].present, "a silent viewer was marked as left"
    # Away long enough anyway (the stream cut, the laptop asleep): back on the next action.
    hub.run_threadsafe(room.leave(vid)).result(10)
    assert not room.viewers[vid].present
    likes = room.likes
    page.click("#like")
    wait_for(lambda: room.likes == likes + 1, 10, "the like")
    assert room.viewers[vid].present
    assert (page.text_content("#error") or "") == ""
    page.close()


@pytest.mark.room_config(QUIET)
def test_colour_emoji_show_in_the_chat(browser: Any, live_server: Any) -> None:
    with httpx.Client(base_url=live_server.url) as http:
        j = http.post("/api/rooms/demo/join", json={"name": "Mai"}).json()
        r = http.post("/api/rooms/demo/comments", json={"text": "💄💄💄 Try Ruby Velvet"},
                      headers={"Authorization": f"Bearer {j['viewer_token']}"})
        assert r.status_code == 201
    page, _ = hostile_page(browser, f"{live_server.url}/watch/demo")
    page.wait_for_selector("#comments >> text=Try Ruby Velvet", timeout=15000)
    time.sleep(1.0)  # the chat is redrawn on every room event: let it settle
    shot = page.locator("#comments").screenshot()  # the box stays; its lines are redrawn
    img = cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR)
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    vivid = hsv[(hsv[..., 1] > 120) & (hsv[..., 2] > 90)]
    hues = {int(h) // 20 for h in vivid[:, 0]}
    # The lipstick emoji in colour: many saturated pixels of several hues (the text is
    # pink-on-dark and white; a missing emoji font draws tofu or nothing).
    assert len(vivid) > 150 and len(hues) >= 2, (len(vivid), sorted(hues))
    page.close()



RECORD_DIR = Path(tempfile.gettempdir()) / "arengine-console-recordings"


@pytest.mark.server_settings(Settings(demo_crowd=False, record_dir=str(RECORD_DIR)))
@pytest.mark.room_config(QUIET)
def test_host_console_starts_and_stops_an_output(browser: Any, live_server: Any) -> None:
    """The Outputs panel: start a recording, see it live with its numbers, stop it."""
    name = f"console-{time.time_ns()}.mp4"
    page, _ = hostile_page(browser, f"{live_server.url}/host/demo#token={live_server.token}")
    page.wait_for_selector('#output-kind option[value="record"]', state="attached",
                           timeout=15000)
    page.select_option("#output-kind", "record")
    assert page.is_hidden("#output-url") and page.is_visible("#output-file")
    page.fill("#output-file", name)
    page.click("#output-start")
    page.wait_for_selector(f"#outputs >> text={name}", timeout=15000)
    page.wait_for_function(
        "() => /live · [1-9]/.test(document.getElementById('outputs').textContent)",
        timeout=20000)
    outputs = live_server.media.outputs["demo"].outputs
    assert [o.kind for o in outputs.values()] == ["record"]
    page.click("#outputs button")
    wait_for(lambda: not live_server.media.outputs["demo"].outputs, 15, "the output to stop")
    page.wait_for_function(
        "() => document.getElementById('outputs').textContent.includes('Only this page')",
        timeout=10000)
    assert (RECORD_DIR / name).stat().st_size > 10_000  # written and finished
    (RECORD_DIR / name).unlink()
    page.close()
