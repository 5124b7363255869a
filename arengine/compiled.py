"""One way to compile the engine's per-pixel loops (numba), used by every kernel module.

Kernels are compiled when their module is imported (each has its signature, so never on
a live frame: about 4 s the first time) and kept in numba's on-disk cache, beside the
module or in the user's cache directory. Where neither can be written (a read-only
container with no writable home), numba refuses to cache at all; the kernels are then
compiled at every start instead of the import failing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from numba import njit

logger = logging.getLogger(__name__)

_warned = False


def kernel(signature: Any = None, **options: Any) -> Callable[[Callable[..., Any]],
                                                             Callable[..., Any]]:
    """``numba.njit(signature, cache=True, nogil=True, **options)``, uncached where no
    cache can be written."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        global _warned
        try:
            return njit(signature, cache=True, nogil=True, **options)(fn)
        except RuntimeError as e:  # "cannot cache function ...: no locator available"
            if not _warned:
                logger.warning("compiled loops are not cached (%s); they compile at every "
                               "start", e)
                _warned = True
            return njit(signature, cache=False, nogil=True, **options)(fn)

    return wrap
