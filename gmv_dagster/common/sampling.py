"""Seeded subsets and fixed-size chunks: every random choice in the project goes through `seeded_rows`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def seeded_rows(n: int, size: int | None, seed: int) -> np.ndarray:
    """Sorted row positions of a seeded sample of `size` out of `n` (all rows if size >= n)."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items, so that memory is bounded by the chunk."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
