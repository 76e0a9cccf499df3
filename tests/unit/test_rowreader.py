"""RowReader: scattered rows of a .npy matrix read with pread, equal to the array's own rows."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from lookalike.search.rowreader import RowReader


def test_rows_read_are_the_arrays_rows(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((1000, 24)).astype(np.float32)
    np.save(tmp_path / "m.npy", x)
    reader = RowReader(tmp_path / "m.npy")
    assert reader.shape == (1000, 24) and reader.dtype == np.float32 and len(reader) == 1000
    rows = np.array([999, 0, 17, 17, 500])  # out of order, repeated
    assert np.array_equal(reader[rows], x[rows])
    assert np.array_equal(reader[rows.reshape(1, 5)], x[rows.reshape(1, 5)])  # shaped like the index
    assert reader[np.zeros(0, np.int64)].shape == (0, 24)
    assert np.array_equal(pickle.loads(pickle.dumps(reader))[rows], x[rows])  # a new process opens it again
    with pytest.raises(IndexError, match="out of range"):
        reader[np.array([1000])]
    with pytest.raises(TypeError):
        reader[np.array([0.5])]


def test_only_c_ordered_2d_arrays(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.zeros(10, np.float32))
    np.save(tmp_path / "f.npy", np.asfortranarray(np.zeros((4, 3), np.float32)))
    for name in ("v.npy", "f.npy"):
        with pytest.raises(ValueError, match="C-ordered 2-D"):
            RowReader(tmp_path / name)
    (tmp_path / "short.npy").write_bytes(np.lib.format.MAGIC_PREFIX)
    with pytest.raises((OSError, ValueError)):
        RowReader(tmp_path / "short.npy")


def test_a_file_cut_short_is_a_clear_error(tmp_path: Path) -> None:
    np.save(tmp_path / "m.npy", np.ones((100, 8), np.float32))
    reader = RowReader(tmp_path / "m.npy")
    data = (tmp_path / "m.npy").read_bytes()
    (tmp_path / "m.npy").write_bytes(data[: len(data) - 40])
    with pytest.raises(OSError, match="short read of row 99"):
        reader[np.array([99])]
