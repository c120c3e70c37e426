"""Progress bars for long runs (benchmarks, soak tests, training): tqdm on stderr if present.

Bars go to stderr so that a script's stdout (tables, JSON) stays machine-readable. Without
tqdm (it is in the ``dev``/``train`` extras) the same calls print one line per stage.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class _Lines:
    """The part of tqdm's interface the scripts use, as plain stderr lines."""

    def __init__(self, iterable: Iterable[T] | None, total: int | None, desc: str):
        self.iterable, self.total, self.desc, self.n = iterable, total, desc, 0

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_description(self, desc: str) -> None:
        print(f"{self.desc}: {desc} ({self.n}/{self.total or '?'})", file=sys.stderr,
              flush=True)

    def set_postfix_str(self, s: str) -> None:
        pass

    @staticmethod
    def write(s: str) -> None:
        print(s, flush=True)

    def close(self) -> None:
        print(f"{self.desc}: done ({self.n})", file=sys.stderr, flush=True)

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None,
             desc: str = "", disable: bool = False, **kwargs: Any) -> Any:
    """``tqdm(iterable, total=, desc=)`` on stderr, or a line-printing stand-in."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Lines(iterable, total, desc)
    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, disable=disable,
                dynamic_ncols=True, **kwargs)
