"""Wall-clock timing of a block, into a dict of stage -> seconds (added to what the stage already took)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def timed(into: dict, key: str, digits: int | None = 3) -> Iterator[None]:
    """Add the block's seconds to `into[key]`, rounded to `digits` (None: unrounded, for sums of many blocks)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds = into.get(key, 0.0) + time.perf_counter() - start
        into[key] = seconds if digits is None else round(seconds, digits)
