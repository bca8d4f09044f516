"""Seeded subsets: every random choice in the method goes through here."""

from __future__ import annotations

import numpy as np


def seeded_rows(n: int, size: int | None, seed: int) -> np.ndarray:
    """Sorted row positions of a seeded sample of `size` out of `n` (all rows if size >= n)."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
