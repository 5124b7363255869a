"""The layers: a package imports only packages below it (no cycles, nothing reaching up).

Two circles and two upward arrows were cut to get here: the lips kernel moved to render/,
the shade catalog and RoomState to modules below everything, the effect chain to
effects/, and the room asks its hub through a protocol instead of importing it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "arengine"

LAYERS: dict[str, int] = {
    "errors": 0, "data": 0,  # messages for people, where files are
    "types": 1, "state": 1, "catalog": 1,  # plain data shared by all
    "compiled": 1,  # how every compiled loop is built (numba), for render/ and effects/
    # backends and kernels, tracking, transport, media files, the demo picture
    "render": 2, "tracking": 2, "transport": 2, "media": 2, "demo": 2, "keys": 2, "logs": 2,
    # rooms and their API | effects on the picture
    "interaction": 3, "effects": 3,
    # source -> compositor -> outputs, room wiring; the demo crowd acts on a room
    "pipeline": 4, "demo_crowd": 4,
    # the media server, settings, pages
    "server": 5, "settings": 5, "web": 5,
    "app": 6,  # the one app factory
    "bench": 7,  # the benchmark harness
    "commands": 8, "cli": 9, "__main__": 10,  # entry points
}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] != "__init__" else "arengine"


def _imports() -> dict[str, set[str]]:
    deps: dict[str, set[str]] = {}
    for f in ROOT.rglob("*.py"):
        rel = f.relative_to(ROOT.parent).with_suffix("")
        unit = _unit(".".join(rel.parts))
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("arengine.") and _unit(name) != unit:
                    deps.setdefault(f"{unit} ({rel})", set()).add(_unit(name))
    return deps


def test_every_package_has_a_layer() -> None:
    units = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or
             (p.is_dir() and (p / "__init__.py").exists())}
    assert units <= set(LAYERS), f"give these a layer in tests/test_layers.py: " \
                                 f"{sorted(units - set(LAYERS))}"


def test_no_package_reaches_up() -> None:
    bad = []
    for who, targets in _imports().items():
        unit = who.split(" ")[0]
        if unit == "arengine":  # the package's own __init__
            continue
        level = LAYERS[unit]
        for t in sorted(targets):
            if t != "arengine" and LAYERS[t] >= level:
                bad.append(f"{who} imports {t} (layer {LAYERS[t]} >= {level})")
    assert not bad, "\n".join(bad)
