"""The pages are served by the app itself and load nothing from elsewhere."""

from __future__ import annotations

import re

import httpx

from arengine.web.pages import WEB_DIR


def test_pages_served_without_cdn(live_server) -> None:
    with httpx.Client(base_url=live_server.url) as http:
        for path in ("/", "/host/demo", "/watch/demo"):
            r = http.get(path)
            assert r.status_code == 200, path
            assert "text/html" in r.headers["content-type"]
            for ref in re.findall(r'(?:src|href)="([^"]+)"', r.text):
                assert ref.startswith("/"), f"{path} loads {ref} from outside the app"
                if ref.startswith("/static/"):
                    assert http.get(ref).status_code == 200, ref
        assert http.get("/watch/no-such-room").status_code == 404
        assert http.get("/host/no-such-room").status_code == 404
        assert http.get("/static/../server.py").status_code == 404


def test_static_files_have_no_remote_urls() -> None:
    for f in (WEB_DIR / "static").iterdir():
        text = re.sub(r'xmlns="[^"]*"', "", f.read_text(encoding="utf-8"))  # a name, not a load
        assert not re.search(r"https?://(?!\$\{)", text), f"{f.name} references a remote URL"


def test_room_list_and_stats(live_server) -> None:
    with httpx.Client(base_url=live_server.url) as http:
        page = http.get("/api/rooms").json()
        assert [r["room_id"] for r in page["rooms"]] == ["demo"] and page["next"] is None
        assert page["rooms"][0]["status"] == "demo" and page["rooms"][0]["watching"] == 0
        host = {"Authorization": f"Bearer {live_server.token}"}
        stats = http.get("/api/rooms/demo/stats", headers=host).json()
        assert stats["status"] == "demo" and stats["viewers"] == 0
        assert http.get("/api/rooms/nope/stats", headers=host).status_code == 404
        metrics = http.get("/metrics").text
        assert "arengine_stage_seconds" in metrics  # media metrics (default registry)
        assert "arengine_room_events" in metrics  # the interaction hub's registry


def test_host_console_form_limits_match_the_api() -> None:
    """The poll form allowed 10-3600 s while the API takes 15-1800 s (and so on)."""
    from html.parser import HTMLParser

    from arengine.interaction import polls, room

    inputs: dict[str, dict[str, str]] = {}

    class Inputs(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = {k: v or "" for k, v in attrs}
            if tag == "input" and "id" in a:
                inputs[a["id"]] = a

    Inputs().feed((WEB_DIR / "templates" / "host.html").read_text(encoding="utf-8"))
    assert inputs["poll-duration"]["min"] == f"{polls.MIN_DURATION_S:g}"
    assert inputs["poll-duration"]["max"] == f"{polls.MAX_DURATION_S:g}"
    assert inputs["poll-q"]["maxlength"] == str(polls.QUESTION_MAX_CHARS)
    assert inputs["product-name"]["maxlength"] == str(room.PRODUCT_NAME_MAX_CHARS)
    assert inputs["product-price"]["maxlength"] == str(room.PRODUCT_PRICE_MAX_CHARS)
    assert inputs["product-url"]["maxlength"] == str(room.URL_MAX_CHARS)
    assert inputs["goal-target"]["max"] == str(room.LIKE_GOAL_MAX)
    assert inputs["goal-message"]["maxlength"] == str(room.GOAL_MESSAGE_MAX_CHARS)
    watch: dict[str, dict[str, str]] = {}
    inputs.clear()
    Inputs().feed((WEB_DIR / "templates" / "watch.html").read_text(encoding="utf-8"))
    watch.update(inputs)
    from arengine.interaction import text

    assert watch["comment"]["maxlength"] == str(text.COMMENT_MAX_CHARS)
    assert watch["name"]["maxlength"] == str(text.NAME_MAX_CHARS)


def test_pages_have_no_inline_script_or_style() -> None:
    """The Content-Security-Policy refuses both: a page that used them would break."""
    for f in (WEB_DIR / "templates").iterdir():
        text = f.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), f.name
        assert not re.search(r"\son\w+=", text), f.name
        assert " style=" not in text, f.name
