"""``arengine serve``: argument errors and a busy port are one line and exit code 2."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from arengine.cli import main


@pytest.mark.parametrize("argv", [
    ["serve", "--codec", "vp9"],
    ["serve", "--port", "0"],
    ["serve", "--size", "big"],
    ["serve", "--size", "101x100"],
    ["serve", "--fps", "0"],
    ["serve", "--bitrate", "5"],
    ["serve", "--ingest-bitrate", "100"],
    ["serve", "--ingest-bitrate", "lots"],
    ["serve", "--playout-delay", "0"],
    ["serve", "--playout-delay", "100,50"],
    ["serve", "--playout-delay", "soon"],
    ["serve", "--effects", "lipstick,nope"],
    ["serve", "--ice-server", "http://example.org"],
])
def test_bad_arguments_exit_2_on_one_line(argv, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        code = main(argv)
        raise SystemExit(code)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error" in err, err


def test_port_in_use_exit_2(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "arengine", "serve", "--port", str(port),
                            "--db", str(tmp_path / "x.db")],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "already in use" in lines[0], r.stderr


@pytest.mark.parametrize("wanted", [0.0005, None])
def test_media_server_sets_the_gil_switch_interval_while_started(wanted, tmp_path) -> None:
    import asyncio

    from arengine.interaction.hub import RoomHub
    from arengine.server import SWITCH_INTERVAL, MediaServer

    before = sys.getswitchinterval()
    assert SWITCH_INTERVAL == 0.0005 and before != SWITCH_INTERVAL

    async def main() -> float:
        media = MediaServer(RoomHub.open(tmp_path / "rooms.db"), switch_interval=wanted)
        await media.start()
        during = sys.getswitchinterval()
        await media.close()
        return during

    during = asyncio.run(main())
    assert during == (before if wanted is None else wanted)
    assert sys.getswitchinterval() == before  # restored on close
