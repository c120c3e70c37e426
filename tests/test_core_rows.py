"""RowTable: a step's named outputs as rows of stacked arrays, read back row by row."""

from __future__ import annotations

import numpy as np

from powergrid.core.rows import RowLayout, RowTable

LAYOUT = RowLayout.build(("a", "b", "on", "extra"), [(0, 2), (0, 0), (1, 0), (2, None)])


def _arrays() -> tuple[np.ndarray, ...]:
    return (np.arange(12.0).reshape(3, 2, 2),  # 3 stacked keys, B = 2, N = 2
            np.array([[[True, False], [False, True]]]), np.array([[7.0, 8.0], [9.0, 10.0]]))


def test_a_name_is_a_view_of_its_row_of_the_bound_array():
    block = np.zeros((2, 1, 3))
    table = RowLayout.build(("x", "y"), [(0, 0), (0, 1)]).bind((block,))
    block[1, 0, 2] = 5.0
    assert table["y"].tolist() == [[0.0, 0.0, 5.0]]
    assert list(table) == ["x", "y"] and len(table) == 2


def test_row_gives_every_arrays_row_as_python_values_in_order():
    table = LAYOUT.bind(_arrays())
    expected = [table[name][1].tolist() for name in table]
    assert table.row(1) == expected == [[10.0, 11.0], [2.0, 3.0], [False, True], [9.0, 10.0]]
    assert type(table.row(0)[2][0]) is bool


def test_shared_arrays_give_scalars():
    table = RowLayout.build(("p", "ok"), [(0, 0), (1, None)]).bind(
        (np.array([[1.5, 2.5]]), np.array([True, False])))
    assert table.row(1) == [2.5, False] and type(table.row(1)[1]) is bool


def test_extending_with_a_known_name_keeps_its_place_and_takes_the_new_array():
    table = LAYOUT.bind(_arrays()).extended({"a": np.array([[0.5, 0.25], [1.0, 2.0]]),
                                             "z": np.array([[1.0, 1.0], [2.0, 2.0]])})
    assert list(table) == ["a", "b", "on", "extra", "z"]
    assert table.row(0)[0] == [0.5, 0.25] and table["a"].tolist()[0] == [0.5, 0.25]


def test_a_plain_mapping_is_read_as_a_table():
    arrays = {"x": np.array([[1.0, 2.0]]), "y": np.array([3.0])}
    assert RowTable.of(arrays).row(0) == [[1.0, 2.0], 3.0]
    table = LAYOUT.bind(_arrays())
    assert RowTable.of(table) is table


def test_lists_give_each_arrays_row_that_layout_slots_index():
    table = LAYOUT.bind(_arrays())
    lists = table.lists(1)
    assert len(lists) == 3 and table.layout is LAYOUT
    for name, value in zip(table, table.row(1)):
        a, row = table.layout.where[name]
        assert (lists[a] if row is None else lists[a][row]) == value


def test_a_swapped_table_gives_each_agents_values_as_rows_of_new_copies():
    stacked, extra = np.arange(12.0).reshape(2, 3, 2), np.arange(6.0).reshape(3, 2)
    table = RowLayout.build(["a", "b", "c"], [(0, 0), (0, 1), (1, None)]).bind(
        (stacked, extra))
    swapped = table.swapped()
    for name in ("a", "b", "c"):
        np.testing.assert_array_equal(swapped[name], table[name].T)
        assert swapped[name].flags.c_contiguous
    assert not any(np.shares_memory(s, a) for s, a in zip(swapped.arrays, table.arrays))
