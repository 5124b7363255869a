"""The README's quick start runs as written: its offline commands, on real inputs.

The block is read from README.md itself, so a shade renamed in the catalog or a command
that no longer parses fails here instead of on a newcomer's first try.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from arengine.catalog import default_catalog

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Quick start (30 seconds)"
# The placeholder file names the block uses, and the real inputs that stand in for them.
INPUTS = {"face.jpg": "faces/obama-720p.jpg",
          "host.mp4": "mediapipe_samples/gesture_recognizer_test_video.mp4"}


def quick_start_commands() -> list[list[str]]:
    """The ``arengine tryon`` lines of the quick start's shell block, split like a shell."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(SECTION) == 1, f"README.md has no single {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```", section, re.S | re.M)
    assert len(blocks) == 1, f"expected one ```sh block in {SECTION!r}, found {len(blocks)}"
    commands = [shlex.split(line, comments=True) for line in blocks[0].splitlines()]
    return [c for c in commands if c[:2] == ["arengine", "tryon"]]


COMMANDS = quick_start_commands()


def test_the_block_has_the_offline_commands() -> None:
    """Fails loudly if the block changes shape, rather than running nothing."""
    assert len(COMMANDS) == 3, COMMANDS
    words = [w for c in COMMANDS for w in c]
    assert set(INPUTS) <= set(words), "the placeholders face.jpg and host.mp4 are gone"
    assert ["arengine", "tryon", "--list-shades"] in COMMANDS
    for c in COMMANDS:
        if "--shade" in c:
            default_catalog().get(c[c.index("--shade") + 1])  # UserError if unknown


def run(command: list[str], data_dir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    args = [str(data_dir / INPUTS[w]) if w in INPUTS else w for w in command[1:]]
    return subprocess.run([sys.executable, "-m", "arengine", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def option(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c[2:4]) for c in COMMANDS])
def test_quick_start_command_runs(command: list[str], data_dir: Path, tmp_path: Path,
                                  lip_distance: Callable[[np.ndarray, str],
                                                         tuple[float, float]]) -> None:
    r = run(command, data_dir, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    if "--list-shades" in command:
        ids = [line.split()[0] for line in r.stdout.splitlines()[1:]]
        assert ids == [s.id for s in default_catalog()]
        return
    output, shade_id = option(command, "-o"), option(command, "--shade")
    assert output is not None and shade_id is not None
    out = tmp_path / output
    assert out.is_file(), r.stdout
    assert f"shade {shade_id}" in r.stdout
    shade = default_catalog().get(shade_id)
    source = data_dir / INPUTS[command[2]]
    if out.suffix == ".jpg":  # the picture: its lips moved towards the shade
        before = cv2.imread(str(source))
        after = cv2.imread(str(out))
        assert after is not None and after.shape == before.shape
        assert lip_distance(after, shade.hex)[0] < 0.7 * lip_distance(before, shade.hex)[0]
    report = option(command, "--report")
    if report is not None:  # the video: a report over every frame
        rep = json.loads((tmp_path / report).read_text())
        assert rep["frames"] == len(rep["per_frame"]) == 195
        assert rep["frames_with_face"] > 150 and rep["shade"] == shade_id
        assert rep["frames_missing"] == 0
