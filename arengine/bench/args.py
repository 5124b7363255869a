"""Command-line values the benchmark scripts share, each refused with one readable line
(``argparse``'s exit 2) rather than a traceback."""

from __future__ import annotations

import argparse
import re

COMPOSITORS = ("thread", "process")


def frame_size(ap: argparse.ArgumentParser, text: str, smallest: tuple[int, int] = (320, 240),
               example: str = "1280x720") -> tuple[int, int]:
    """``WxH`` between ``smallest`` and 3840x2160, as (width, height)."""
    m = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not m or not (smallest[0] <= int(m.group(1)) <= 3840
                     and smallest[1] <= int(m.group(2)) <= 2160):
        ap.error(f"--size takes WxH from {smallest[0]}x{smallest[1]} to 3840x2160, "
                 f"e.g. {example}")
    return int(m.group(1)), int(m.group(2))


def compositors(ap: argparse.ArgumentParser, text: str) -> list[str]:
    """``thread``, ``process`` or both comma-separated: the compositors to run, in order."""
    names = [c.strip() for c in text.split(",")]
    if not 1 <= len(names) <= len(COMPOSITORS) or not set(names) <= set(COMPOSITORS) or \
            len(set(names)) != len(names):
        ap.error("--compositor takes thread, process, or both comma-separated")
    return names
