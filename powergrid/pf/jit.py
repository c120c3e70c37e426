"""Say once, on stderr, when numba is about to compile kernels that are not cached yet.

Kernels are compiled with ``cache=True``: numba writes them next to the source
(``__pycache__``) or, when the install is read-only, to its user-wide cache
(``~/.cache/numba``, or ``NUMBA_CACHE_DIR``), so only the very first run compiles. That run
takes several seconds; this notice keeps it from looking like a hang.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_announced = False


def announce_compilation(*kernels: Any) -> None:
    """Print one line if any of ``kernels`` (numba dispatchers) has no cache index yet."""
    global _announced
    if _announced:
        return
    try:  # numba's cache locator; if its layout changes, stay silent rather than fail
        paths = [k._cache._cache_file._index_path for k in kernels]
    except AttributeError:
        return
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        _announced = True
        where = os.path.dirname(missing[0])
        print(f"heron-grid: compiling the numba power-flow kernels (first run only, about "
              f"10 s; cached in {where})", file=sys.stderr, flush=True)
