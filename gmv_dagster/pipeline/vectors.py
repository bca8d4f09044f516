"""The training vectors' store: one float32 `.npy` file per embeddings version, memory-mapped by its readers.

DuckDB holds the training embeddings' rows (id, content hash, embedder fingerprint, the row of the vector in the
file) and their version; the vectors live in `<name>.<version>.npy`, written a chunk at a time under a temporary
name and renamed when whole. A file's name is the version of what determines its vectors (pipeline/versions.py), so
it always holds what its name says, and a rerun whose version exists writes nothing. Readers memory-map it: a batch
gathers the rows of its candidates, a check or an index build reads it a block at a time, and no process holds the
n x d matrix in its own memory (docs/DESIGN.md "Storage at scale").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..common.files import write_atomically

SUFFIX = ".npy"


def vectors_path(folder: Path, name: str, version: str) -> Path:
    """The file of the vectors of `name` (an asset, or an asset@partition) at embeddings `version`. The dot keeps
    one name's files apart from another's that starts with it (`train_embeddings` and `train_embeddings@0-of-2`)."""
    return folder / f"{name}.{version}{SUFFIX}"


def open_vectors(path: Path, n: int, dim: int | None = None, what: str = "train_embeddings") -> np.ndarray:
    """The (n, dim) float32 vectors of `path`, memory-mapped read-only; refused (naming the asset that writes them)
    when missing or of another shape."""
    try:
        vectors = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise FileNotFoundError(
            f"{path} is missing or unreadable ({e}): materialise {what}, which writes it (vectors "
            "still stored under another version are reused, the rest embedded again)"
        ) from e
    if (
        vectors.dtype != np.float32
        or vectors.ndim != 2
        or len(vectors) != n
        or (dim is not None and vectors.shape[1] != dim)
    ):
        expected = f"({n}, {dim if dim is not None else 'd'})"
        raise ValueError(f"{path} holds {vectors.dtype} {vectors.shape}, not float32 {expected}: materialise {what}")
    return vectors


def write_vectors(path: Path, n: int, dim: int, fill: Callable[[int, int], np.ndarray], chunk: int) -> Path:
    """Write the (n, dim) float32 file at `path` from `fill(start, stop)` (rows start..stop-1), `chunk` rows at a
    time: memory holds one chunk, the file's pages go to the OS as they are written. Renamed into place when whole
    (write_atomically), so a killed run leaves no torn file under the final name."""

    def write(tmp: Path) -> None:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            out[start:stop] = fill(start, stop)
        out.flush()
        del out

    return write_atomically(path, write)


def remove_superseded(folder: Path, name: str, live: dict[str, Path], layout: Iterable[str] = ()) -> list[Path]:
    """Delete the vector files of `name` and of its partitions (`name@<key>`), and temporary files of killed writes,
    that no stored version names and that are out of date. `live`: {file name stem (`name` or `name@<key>`): the
    file its stored version names}, for every partition the table stores now. A partition's other files go when they
    are older than its stored file (a committed write superseded them); files of a partition with no stored version
    (another layout's, left when the table was replaced) go when older than every stored file. `layout`: the stems
    of the writer's own layout (every shard of it); a file of one of them that has no stored version yet is kept
    whatever its age: it is this run's or a concurrent shard's, written and not yet committed (on a first sharded
    run one shard commits while another is still cleaning up). A newer file is kept too: it may be a concurrent
    run's (a run that reuses a complete file touches it first). A reader that has a deleted file open keeps its
    pages (the file is unlinked, not truncated)."""
    mtimes = {}
    for stem, path in live.items():
        try:
            mtimes[stem] = path.stat().st_mtime
        except OSError:
            return []  # a stored version without its file: remove nothing, the readers will say what to do
    if not mtimes:
        return []
    oldest, named, pending = min(mtimes.values()), set(live.values()), set(layout) - set(live)
    removed = []
    for path in [*folder.glob(f"{name}.*{SUFFIX}"), *folder.glob(f"{name}@*{SUFFIX}")]:
        stem = path.name.split(".", 1)[0]
        if stem in pending:
            continue
        try:
            if path in named or path.stat().st_mtime >= mtimes.get(stem, oldest):
                continue
        except OSError:
            continue  # gone meanwhile (another run's cleanup, or a temporary file renamed)
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def finite_rows(vectors: np.ndarray, block: int = 65536) -> np.ndarray:
    """Which rows are all finite, read a block at a time (a memory map is never loaded whole)."""
    out = np.empty(len(vectors), dtype=bool)
    for s in range(0, len(vectors), block):
        out[s : s + block] = np.isfinite(vectors[s : s + block]).all(axis=1)
    return out
