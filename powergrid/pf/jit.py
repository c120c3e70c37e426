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


def _numba_cache_file(kernel: Any) -> Any:
    """The cache file object of a numba dispatcher.

    numba has no public API for it: this and the two reads of its fields below
    (``_index_path``, ``_source_stamp``) are the only places that touch numba internals;
    callers catch ``AttributeError`` and fall back to numba's own behaviour.
    """
    return kernel._cache._cache_file


def announce_compilation(*kernels: Any) -> None:
    """Print one line if any of ``kernels`` (numba dispatchers) has no cache index yet."""
    global _announced
    if _announced:
        return
    try:  # numba's cache locator; if its layout changes, stay silent rather than fail
        paths = [_numba_cache_file(k)._index_path for k in kernels]
    except AttributeError:
        return
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        _announced = True
        where = os.path.dirname(missing[0])
        print(f"heron-grid: compiling the numba power-flow kernels (first run only, about "
              f"10 s; cached in {where})", file=sys.stderr, flush=True)


def cache_depends_on(kernels: Any, *modules: str) -> None:
    """Invalidate the numba cache of ``kernels`` when any of ``modules`` changes too.

    Why: numba keys a cached kernel on its own source file only, so a kernel that calls
    compiled functions of other modules (the fused step calls the device twins, the
    clearing kernels and the batch power flow) would keep running their old code after
    those files change. Folding the other files' (mtime, size) into the cache stamp makes
    such a change recompile. ``modules`` are names of imported modules; call it before
    the kernels' first call.
    """
    try:
        files = [sys.modules[m].__file__ for m in modules]
        stamps = tuple((os.stat(f).st_mtime, os.stat(f).st_size) for f in files)
        for k in kernels:
            cache_file = _numba_cache_file(k)
            own = cache_file._source_stamp
            if not (isinstance(own, tuple) and len(own) == 2 and own[1] == stamps):
                cache_file._source_stamp = (own, stamps)
    except (AttributeError, KeyError, OSError, TypeError):  # numba's layout changed: caching as numba does it
        return
