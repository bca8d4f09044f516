"""Training images split into shards: contiguous slices of the training manifest, each embedded and
indexed on its own (a static partition: its own run, on any worker) and searched together.

Slices are contiguous so that the shards read back in key order are the manifest in its own order, and a
training row keeps the position it has unsharded. Each shard's candidates are merged exactly
(method/matching.merge_candidates).
"""

from __future__ import annotations

import re

_KEY = re.compile(r"^(\d+)-of-(\d+)$")


def shard_keys(n_shards: int) -> list[str]:
    """Partition keys '0-of-4' ... '3-of-4', zero-padded so that key order is shard order."""
    if n_shards < 1:
        raise ValueError(f"the number of training shards must be >= 1, got {n_shards}")
    width = len(str(n_shards - 1))
    return [f"{i:0{width}d}-of-{n_shards}" for i in range(n_shards)]


def sibling_keys(key: str) -> list[str]:
    """Every key of the layout shard `key` ('i-of-n') belongs to, itself included."""
    match = _KEY.match(key)
    if not match:
        raise ValueError(f"{key!r} is not a training shard key (i-of-n, 0 <= i < n)")
    return shard_keys(int(match[2]))


def shard_slice(n_rows: int, key: str) -> slice:
    """The manifest rows of shard `key` ('i-of-n'): rows [i*n_rows//n, (i+1)*n_rows//n)."""
    match = _KEY.match(key)
    if not match or not int(match[1]) < int(match[2]):
        raise ValueError(f"{key!r} is not a training shard key (i-of-n, 0 <= i < n)")
    i, n = int(match[1]), int(match[2])
    return slice(i * n_rows // n, (i + 1) * n_rows // n)
