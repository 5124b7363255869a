"""Compiled loops: cached where a cache can be written, still compiled where none can."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_kernels_compile_without_any_writable_cache() -> None:
    # IPython's locator is the only one allowed and it never applies outside IPython: numba
    # then refuses to cache, as in a read-only container with no writable home.
    code = ("import numpy as np\n"
            "import arengine.render.lip_kernels, arengine.effects.lip_kernels as k\n"
            "print(k.farthest_pair(np.float32([[0, 0], [5, 5], [1, 0]])))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                       text=True, timeout=300,
                       env={**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "IPythonCacheLocator"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "(0, 1)"
    assert "compiled loops are not cached" in r.stderr


def test_kernels_are_cached_beside_their_module() -> None:
    import arengine.effects.lip_kernels  # noqa: F401  (compiled, and cached, at import)

    cache = ROOT / "arengine" / "effects" / "__pycache__"
    assert any(p.name.startswith("lip_kernels.") and p.suffix == ".nbi"
               for p in cache.iterdir())
