"""Progress bars for long runs (benchmarks, soak tests): tqdm on stderr.

Bars go to stderr so that a script's stdout (tables, JSON) stays machine-readable; use
``bar.write`` for result lines printed while a bar is open.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None,
             desc: str = "", disable: bool = False, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, total=, desc=)`` writing to stderr."""
    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, disable=disable,
                dynamic_ncols=True, **kwargs)
