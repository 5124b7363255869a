"""The OpenAPI document is the truth: schemathesis, every check, over the whole API.

It runs against a real ``arengine serve`` (the demo room on, so operations reach a real
room) three times: as a stranger, and with the admin token so the stateful phase can make
rooms and follow them into the other operations, and with the demo room's host token
and every room id pinned to that room, so host operations run for real. Zero failures
allowed.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXAMPLES = int(os.environ.get("ARENGINE_SCHEMATHESIS_EXAMPLES", "30"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    tmp = tmp_path_factory.mktemp("openapi")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "arengine", "serve", "--port", str(port), "--db",
         str(tmp / "rooms.db"), "--no-demo-crowd", "--render", "cpu", "--size", "320x180",
         "--connect-timeout", "3", "--log-level", "warning",
         # A schema-valid RTMP body makes the server resolve and dial the host it names:
         # fuzzing it would send traffic off this machine. Its validation is tested with
         # a real nginx in tests/transport/test_rtmp.py; here recordings and the SFU are
         # on (both answer 409 on a server without a folder or a Janus).
         "--output-kinds", "record,janus"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    printed = ""
    try:
        deadline = time.monotonic() + 90
        while "viewer:" not in printed:
            assert time.monotonic() < deadline and proc.poll() is None, printed
            printed += proc.stdout.readline() if proc.stdout else ""
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/openapi.json", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        admin = re.search(r"#admin=(\S+)", printed)
        host = re.search(r"#token=(\S+)", printed)
        assert admin and host, printed
        yield url, admin.group(1), host.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode in (0, -15), printed


def _schemathesis(url: str, tmp: Path, *extra: str,
                  room: str | None = None) -> subprocess.CompletedProcess[str]:
    """``st run`` with our config; ``room`` pins every room_id (to reach a real room)."""
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    config = HERE / "schemathesis.toml"
    if room is not None:
        config = tmp / "schemathesis.toml"
        config.write_text(f'parameters = {{ room_id = "{room}", room = "{room}" }}\n'
                          + (HERE / "schemathesis.toml").read_text())
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
           "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [st, "--config-file", str(config), "run", f"{url}/openapi.json",
         "--checks", "all", "--max-examples", str(EXAMPLES), "--seed", "1", "--workers", "1",
         "--no-color", "--generation-database", "none", "--report-dir", str(tmp), *extra],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.timeout(1000)
@pytest.mark.parametrize("who", ["stranger", "admin", "host"])
def test_schemathesis_finds_nothing(server: tuple[str, str, str], tmp_path: Path,
                                    who: str) -> None:
    url, admin, host = server
    extra = {"stranger": (), "admin": ("-H", f"Authorization: Bearer {admin}"),
             "host": ("-H", f"Authorization: Bearer {host}")}[who]
    r = _schemathesis(url, tmp_path, *extra, room="demo" if who == "host" else None)
    out = r.stdout + r.stderr
    summary = out[out.find("SUMMARY"):] if "SUMMARY" in out else out[-3000:]
    assert r.returncode == 0, out[-12000:]
    assert re.search(r"Tested: +\d+", summary) and "Errors:" not in summary, summary
