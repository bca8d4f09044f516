"""Training images split into shards: contiguous slices of the training manifest, each embedded and
indexed on its own (a static partition: its own run, on any worker) and searched together.

Slices are contiguous so that the shards read back in key order are the manifest in its own order, and a
training row keeps the position it has unsharded. Each shard's candidates carry exact float64 distances
(see matching.recall_candidates); merged by (distance, training row), the top K' of all shards is the
unsharded top K' wherever each shard's search found its own share of it (always with exact search).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from .search import sort_neighbours

_KEY = re.compile(r"^(\d+)-of-(\d+)$")


def shard_keys(n_shards: int) -> list[str]:
    """Partition keys '0-of-4' ... '3-of-4', zero-padded so that key order is shard order."""
    if n_shards < 1:
        raise ValueError(f"the number of training shards must be >= 1, got {n_shards}")
    width = len(str(n_shards - 1))
    return [f"{i:0{width}d}-of-{n_shards}" for i in range(n_shards)]


def shard_slice(n_rows: int, key: str) -> slice:
    """The manifest rows of shard `key` ('i-of-n'): rows [i*n_rows//n, (i+1)*n_rows//n)."""
    match = _KEY.match(key)
    if not match or not int(match[1]) < int(match[2]):
        raise ValueError(f"{key!r} is not a training shard key (i-of-n, 0 <= i < n)")
    i, n = int(match[1]), int(match[2])
    return slice(i * n_rows // n, (i + 1) * n_rows // n)


def merge_candidates(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of several candidate lists per query, by (distance, row); rows are global, -1 pads.

    Each part is (rows, distances), (m, k_i), from one shard; the result has min(k, sum k_i) columns.
    """
    rows, dist = sort_neighbours(np.concatenate([p[0] for p in parts], axis=1),
                                 np.concatenate([p[1] for p in parts], axis=1))
    return rows[:, :k], dist[:, :k]
