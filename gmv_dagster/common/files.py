"""Files: content hashes, and writes that a killed process never leaves half done."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable


def sha256_file(*paths: Path | str) -> str:
    """SHA-256 (hex) of the files' bytes, end to end, read in 1 MiB blocks."""
    h = hashlib.sha256()
    for path in paths:
        with Path(path).open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` to a temporary name beside `path`, then rename it to `path` (atomic on one file system).

    A run killed mid-write leaves the previous file (or none), never a truncated one. The temporary name keeps
    `path`'s suffix, since some writers (numpy, scipy) choose the format by it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
