"""Named (B, ...) arrays kept as rows of a few stacked arrays: a step's outputs without a
view per key, and one row of all of them read back with one ``tolist()`` per array."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Slot = tuple[int, int | None]  # (array, its first-axis row), or (array, None): the whole array


@dataclass(frozen=True)
class RowLayout:
    """Where each name sits among a table's arrays; fixed once per configuration."""

    where: dict[str, Slot]      # in the table's order
    stacked: tuple[bool, ...]   # per array: names take rows of it (else it is one name)

    @classmethod
    def build(cls, names: Sequence[str], slots: Sequence[Slot]) -> RowLayout:
        """``names[k]`` is ``arrays[a][row]`` for ``slots[k] = (a, row)``; a name given
        twice keeps its first place and takes its last slot (as ``dict.update``)."""
        where = dict(zip(names, slots))
        n = 1 + max((a for a, _ in where.values()), default=-1)
        return cls(where, tuple(any(a == j and r is not None for a, r in where.values())
                                for j in range(n)))

    def bind(self, arrays: Sequence[np.ndarray]) -> RowTable:
        """The table of this layout over ``arrays`` (a step's new outputs)."""
        return RowTable(self, tuple(arrays))


class RowTable(Mapping[str, np.ndarray]):
    """``table[name]``: a (B, ...) array (a view of its stacked array, made on access).

    ``row(b)``: every array's row ``b`` as Python values (a list per (B, N) array, a scalar
    per (B,) one), in the table's order: what a single env reads, without a view and a
    conversion per key. ``lists(b)``: the same values per array rather than per name (name ``n`` is
    ``lists[a][r]`` for ``layout.where[n] = (a, r)``, ``lists[a]`` when ``r`` is None): for
    a reader that resolved the layout once.
    """

    __slots__ = ("_layout", "_arrays")

    def __init__(self, layout: RowLayout, arrays: tuple[np.ndarray, ...]) -> None:
        self._layout, self._arrays = layout, arrays

    @classmethod
    def of(cls, arrays: Mapping[str, np.ndarray]) -> RowTable:
        """``arrays`` as a table (itself if it is one)."""
        if isinstance(arrays, RowTable):
            return arrays
        return RowLayout.build(list(arrays), [(k, None) for k in range(len(arrays))]).bind(
            list(arrays.values()))

    def extended(self, more: Mapping[str, np.ndarray]) -> RowTable:
        """This table with ``more`` arrays after (or instead of) its own."""
        n, where = len(self._arrays), self._layout.where
        layout = RowLayout.build([*where, *more], [*where.values(),
                                                   *((n + k, None) for k in range(len(more)))])
        return layout.bind([*self._arrays, *more.values()])

    def __getitem__(self, name: str) -> np.ndarray:
        a, row = self._layout.where[name]
        return self._arrays[a] if row is None else self._arrays[a][row]

    def __iter__(self) -> Iterator[str]:
        return iter(self._layout.where)

    def __len__(self) -> int:
        return len(self._layout.where)

    @property
    def layout(self) -> RowLayout:
        return self._layout

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        """The stacked arrays, as :attr:`layout` places the names in them."""
        return self._arrays

    def swapped(self) -> RowTable:
        """This table over new contiguous copies with the last two axes swapped: (B, N)
        names become (N, B), so agent ``i``'s (B,) values are row views (``[..., i, :]``)
        of a few copies, not a copy per name (the vector env's per-agent infos)."""
        return RowTable(self._layout, tuple(
            a if a.ndim < 2 else np.ascontiguousarray(a.swapaxes(-1, -2))
            for a in self._arrays))

    def lists(self, b: int) -> list[Any]:
        """Row ``b`` of every array as Python values, one entry per array."""
        return [(a[:, b] if stacked else a[b]).tolist()
                for a, stacked in zip(self._arrays, self._layout.stacked)]

    def row(self, b: int) -> list[Any]:
        """Row ``b`` of every array, as Python values, in the table's order."""
        lists = self.lists(b)
        return [lists[a] if row is None else lists[a][row]
                for a, row in self._layout.where.values()]
