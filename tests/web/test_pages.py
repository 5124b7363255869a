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
