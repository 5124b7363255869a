"""``arengine simulate``: bounded runs in-process and against a real server; bad args."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from arengine.cli import main
from arengine.commands.simulate import COMMENTS
from arengine.interaction.hub import RoomHub
from tests.conftest import LOAD_SERVER_ENV


def test_in_process_run_fills_the_room(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    db = tmp_path / "sim.db"
    code = main(["simulate", "--db", str(db), "--viewers", "15", "--rate", "400",
                 "--duration", "5", "--max-actions", "300", "--seed", "3", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["actions"] == 300  # bounded by --max-actions before --duration
    assert summary["accepted"]["join"] >= 15

    async def check() -> None:
        hub = RoomHub.open(db)
        room = hub.get(summary["room_id"])
        assert room.unique_viewers == 15
        texts = {c.text for c in room.snapshot().recent_comments}
        langs = {lang for lang, lines in COMMENTS.items() if texts & set(lines)}
        assert len(langs) >= 3  # comments in several languages, stored exactly
        poll = room.polls["p1"]
        assert poll.view().total_votes == len(poll.ballots) > 0
        assert room.counts["vote"] + room.counts["like"] + room.counts["comment"] \
            == summary["accepted"]["vote"] + summary["accepted"]["like"] \
            + summary["accepted"]["comment"]
        await hub.close()

    asyncio.run(check())


def test_duration_bounds_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    assert main(["simulate", "--db", str(tmp_path / "s.db"), "--rate", "5", "--duration",
                 "1", "--no-poll", "--json"]) == 0
    assert time.monotonic() - t0 < 10
    summary = json.loads(capsys.readouterr().out)
    assert 1 <= summary["actions"] <= 6


@pytest.mark.parametrize(("argv", "message"), [
    (["--rate", "0"], "--rate must be 0.1 to 5000"),
    (["--viewers", "0"], "--viewers must be 1 to 10000"),
    (["--duration", "-1"], "--duration must be above 0"),
    (["--languages", "fr"], "--languages: unknown fr"),
    (["--host-token", "x"], "--host-token needs --room"),
    (["--room", "nope"], "no room 'nope'"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            argv: list[str], message: str) -> None:
    assert main(["simulate", "--db", str(tmp_path / "x.db"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_unreachable_server_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["simulate", "--url", f"http://127.0.0.1:{port}", "--duration", "1"]) == 2
    assert "cannot reach the server" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_against_a_running_server(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, **LOAD_SERVER_ENV, "ARENGINE_DB": str(tmp_path / "srv.db")}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "arengine.app:from_env",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/api/rooms", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        r = subprocess.run(
            [sys.executable, "-m", "arengine", "simulate", "--url", url, "--viewers", "10",
             "--rate", "100", "--duration", "2", "--seed", "1", "--json"],
            capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stdout)
        with urllib.request.urlopen(f"{url}/api/rooms/{summary['room_id']}/metrics") as resp:
            metrics = json.loads(resp.read())
        assert metrics["viewers"] == 10
        assert metrics["votes"] == summary["accepted"].get("vote", 0) > 0
        assert metrics["comments"] == summary["accepted"].get("comment", 0)
    finally:
        server.terminate()
        server.wait(timeout=30)
