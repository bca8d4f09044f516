"""Consecutive row blocks (memory-mapped files, one per training shard) read as one array."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class RowBlocks:
    """Consecutive 2-D blocks of rows as one read-only (n, d) array: slices and integer-array gathers read only the
    rows asked for from each block (a memory map is never read whole), and the method's functions take it wherever
    they take the training matrix."""

    def __init__(self, parts: Sequence[np.ndarray]):
        if not parts:
            raise ValueError("RowBlocks needs at least one block of rows")
        if len({int(p.shape[1]) for p in parts}) > 1 or len({p.dtype for p in parts}) > 1:
            raise ValueError("the blocks of rows must share their width and dtype")
        self.parts = list(parts)
        self.starts = np.cumsum([0, *(len(p) for p in parts[:-1])])
        self.shape = (int(sum(len(p) for p in parts)), int(parts[0].shape[1]))
        self.dtype = parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(len(self)))
        rows = np.asarray(rows)
        if rows.dtype.kind not in "iu":  # a boolean mask or a tuple would otherwise gather rows 0 and 1
            raise TypeError(f"{type(self).__name__} takes a slice or integer row indices, got {rows.dtype}")
        flat = rows.reshape(-1)
        if flat.size and (flat.min() < -len(self) or flat.max() >= len(self)):
            raise IndexError(f"training row out of range 0..{len(self) - 1}")
        flat = np.where(flat < 0, flat + len(self), flat)
        out = np.empty((flat.size, self.shape[1]), dtype=self.dtype)
        part = np.searchsorted(self.starts, flat, side="right") - 1
        for p in np.unique(part):
            at = part == p
            out[at] = self.parts[p][flat[at] - self.starts[p]]
        return out.reshape(*rows.shape, self.shape[1])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[slice(None)]
        return out if dtype is None else out.astype(dtype, copy=False)


def joined_rows(parts: Sequence[np.ndarray]) -> np.ndarray | RowBlocks:
    """The one block itself, or several as RowBlocks."""
    return parts[0] if len(parts) == 1 else RowBlocks(parts)
