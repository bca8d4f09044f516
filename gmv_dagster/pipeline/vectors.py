"""The training vectors' store: one float32 `.npy` file per embeddings version, memory-mapped by its readers.

DuckDB holds the training embeddings' rows (id, content hash, embedder fingerprint, the row of the vector in the
file) and their version; the vectors live in `<name>.<version>.npy`, written a chunk at a time under a temporary
name and renamed when whole. A file's name is the version of what determines its vectors (pipeline/versions.py), so
it always holds what its name says, and a rerun whose version exists writes nothing. Readers memory-map it: a batch
gathers the rows of its candidates, a check or an index build reads it a block at a time, and no process holds the
n x d matrix in its own memory (docs/DESIGN.md "Storage at scale").

`VectorStore` is the one reader and naming of those files for a home (GmvHome.vector_store); the embeddings
tables' own `embedding` column (generated images' vectors, and tables written before the store) converts here too.

Reuse (reuse_plan and the helpers after it): what can be kept from a previous materialisation of the embeddings, so
that new images cost only their own work. Embeddings are reused for an image whose id and content hash are unchanged
and that was embedded by the same embedder (its fingerprint: backbone, weights hash, input size, dtype); anything
else is embedded again; `VectorStore.previous` finds the stored training vectors a new write may take.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from ..common.arrays import RowBlocks, joined_rows
from ..common.files import write_atomically
from .versions import embeddings_version

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


def embedding_frame(keys: pl.DataFrame, emb: np.ndarray) -> pl.DataFrame:
    """`keys` (id, ...) with an `embedding` column FLOAT[] from the rows of `emb`.

    A list, not a fixed-width array: while a new backbone is rolled out over the batches, one table holds
    batches of both widths.
    """
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    # Built as an Arrow list over the array's own buffer (offsets only are new): casts through a fixed-size array
    # would copy every vector twice.
    offsets = np.arange(len(emb) + 1, dtype=np.int64) * emb.shape[1]
    values = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(emb.reshape(-1)))
    return keys.with_columns(embedding=pl.Series("embedding", values))


def embedding_matrix(df: pl.DataFrame) -> np.ndarray:
    """The (n, d) float32 matrix of an embeddings table, in row order."""
    col = df["embedding"]
    if isinstance(col.dtype, pl.List):
        col = col.list.to_array(len(col[0]))
    return col.to_numpy().astype(np.float32, copy=False).reshape(df.height, -1)


def shard_slices(train_embeddings: pl.DataFrame) -> list[tuple[str | None, int, int]]:
    """(shard key, first row, row after the last) of each shard's rows of a training table read across shards (one
    slice with key None when unsharded), in table order."""
    if "shard" not in train_embeddings.columns:
        return [(None, 0, train_embeddings.height)]
    parts = (
        train_embeddings.with_row_index("_row")
        .group_by("shard", maintain_order=True)
        .agg(pl.col("_row").min().alias("start"), pl.col("_row").max().alias("last"))
    )
    return [(key, start, last + 1) for key, start, last in parts.iter_rows()]


@dataclass(frozen=True)
class StoredShard:
    """One shard's rows of a train_embeddings table (all of it, unsharded) and the vectors its stored version names."""

    key: str | None
    rows: slice
    version: str
    vectors: np.ndarray  # memory-mapped


TRAIN = "train_embeddings"


@dataclass(frozen=True)
class VectorStore:
    """The training vectors of one home: where each shard's file is, which one its stored embeddings version names,
    and the vectors of a train_embeddings table read through them. `content_version(table, partition)` and
    `stored_rows(table)` read the home's tables (GmvHome's, which retry a locked database inside a step)."""

    folder: Path
    content_version: Callable[[str, str | None], str | None]
    stored_rows: Callable[[str], pl.DataFrame | None]

    @staticmethod
    def name(partition: str | None) -> str:
        return TRAIN if partition is None else f"{TRAIN}@{partition}"

    def file(self, partition: str | None, version: str) -> Path:
        """Where train_embeddings (of shard `partition`) at embeddings `version` keeps its vectors."""
        return vectors_path(self.folder, self.name(partition), version)

    def version(self, asset: str, partition: str | None = None) -> str:
        """The content version of an embeddings table (versions.embeddings_version) that its latest write (of
        `partition`) computed and stored with its rows, so that readers need not hash a table that grows with the
        training set again."""
        version = self.content_version(asset, partition)
        if version is None:
            where = f" (partition {partition})" if partition else ""
            raise ValueError(
                f"{asset}{where} has no stored embeddings version (not materialised in this layout of shards "
                f"yet, or by a version of gmv-dagster that did not store it): materialise {asset}, then what "
                "was built from it (train_index); stored vectors are reused, nothing is embedded again"
            )
        return str(version)

    def shards(self, train_embeddings: pl.DataFrame) -> list[StoredShard]:
        """Each shard of these train_embeddings rows (one, unsharded) with its vectors memory-mapped from the file its
        stored version names; refused where the rows are not that version's (written meanwhile) or not in the file's
        order."""
        out = []
        for key, start, stop in shard_slices(train_embeddings):
            version = self.version(TRAIN, key)
            vectors = open_vectors(self.file(key, version), stop - start)
            rows = train_embeddings[start:stop]
            where = f" shard {key}" if key else ""
            if "vector_row" in rows.columns and not (rows["vector_row"].to_numpy() == np.arange(stop - start)).all():
                raise ValueError(
                    f"train_embeddings{where} rows are not in the order of their vectors file: materialise "
                    "train_embeddings"
                )
            # Where the rows carry what the version hashes, they must be the rows that version names (another run
            # may have written the table between reading these rows and reading its version): exact, 1 s per 10^6.
            if {"content_hash", "embedder"} <= set(rows.columns) and embeddings_version(rows) != version:
                raise ValueError(
                    f"train_embeddings{where} changed while it was read (its stored version is not that of "
                    "these rows): run again once the write in progress has finished"
                )
            out.append(StoredShard(key, slice(start, stop), version, vectors))
        return out

    def train_vectors(self, train_embeddings: pl.DataFrame) -> np.ndarray | RowBlocks:
        """The (n, d) training vectors of these train_embeddings rows (one shard's, or every shard's in table order),
        memory-mapped: nothing n x d is read into memory."""
        return joined_rows([shard.vectors for shard in self.shards(train_embeddings)])

    def complete(self, path: Path, n: int, dim: int) -> bool:
        """Whether `path` holds a whole (n, dim) vectors file."""
        try:
            open_vectors(path, n, dim)
            return True
        except (FileNotFoundError, ValueError):
            return False

    def previous(self, fingerprint: str, warn: Callable[[str], None]) -> list[tuple[pl.DataFrame, np.ndarray]]:
        """(keys: id, content_hash, embedder; their vectors) of every stored shard of train_embeddings by the embedder
        `fingerprint`, memory-mapped: what a new write may reuse (reuse.reuse_plan). A table written before the vector
        store (its vectors in an `embedding` column) is read whole, once: the upgrade re-embeds nothing. A shard that
        cannot be read is left out with a `warn`ing: it costs its own images, not every shard's."""
        stored = self.stored_rows(TRAIN)
        if stored is None or stored.is_empty() or not (stored["embedder"] == fingerprint).any():
            return []
        if "embedding" in stored.columns:
            stored = stored.filter(pl.col("embedder") == fingerprint)
            return [(stored.select("id", "content_hash", "embedder"), embedding_matrix(stored))]
        # In each shard's file order (vector_row), whatever order the table was read in.
        stored = stored.sort(["shard", "vector_row"] if "shard" in stored.columns else "vector_row")
        sources = []
        for key, start, stop in shard_slices(stored):
            try:
                [shard] = self.shards(stored[start:stop])
                sources.append((stored[start:stop].select("id", "content_hash", "embedder"), shard.vectors))
            except (FileNotFoundError, ValueError) as e:
                warn(
                    f"stored training vectors{f' of shard {key}' if key else ''} cannot be reused ({e}): "
                    "their images are embedded again"
                )
        return sources


def reuse_plan(rows: pl.DataFrame, sources: Sequence[tuple[pl.DataFrame, object]]) -> pl.DataFrame:
    """For each of `rows` (id, content_hash, embedder), where its vector can be copied from: `source` (the index of
    the first of `sources` whose keys (id, content_hash, embedder) hold the same triple; -1: none, embed it) and
    `row` (its row there), in `rows`' order."""
    plan = rows.select("id", "content_hash", "embedder").with_columns(
        source=pl.lit(-1, pl.Int64), row=pl.lit(-1, pl.Int64)
    )
    for s, (keys, _) in enumerate(sources):
        found = (
            keys.select("id", "content_hash", "embedder")
            .with_columns(found=pl.int_range(pl.len(), dtype=pl.Int64))
            .unique(["id", "content_hash", "embedder"], keep="first", maintain_order=True)
        )
        plan = (
            plan.join(found, on=["id", "content_hash", "embedder"], how="left", maintain_order="left")
            .with_columns(
                source=pl.when((pl.col("source") < 0) & pl.col("found").is_not_null()).then(s).otherwise("source"),
                row=pl.when((pl.col("source") < 0) & pl.col("found").is_not_null()).then("found").otherwise("row"),
            )
            .drop("found")
        )
    return plan.select("source", "row")


def reusable_embeddings(previous: pl.DataFrame | None, manifest: pl.DataFrame, fingerprint: str) -> pl.DataFrame:
    """Rows of `previous` (id, content_hash, embedder, embedding, ...) still valid for `manifest`."""
    needed = {"id", "content_hash", "embedder", "embedding"}
    if previous is None or not needed <= set(previous.columns):
        return pl.DataFrame()
    return (
        previous.filter(pl.col("embedder") == fingerprint)
        .join(manifest.select("id", "content_hash"), on=["id", "content_hash"], how="semi")
        .unique("id", keep="first", maintain_order=True)
    )


def still_to_embed(manifest: pl.DataFrame, reusable: pl.DataFrame) -> pl.DataFrame:
    """The manifest rows that have no reusable embedding, in manifest order."""
    if reusable.is_empty():
        return manifest
    return manifest.join(reusable.select("id"), on="id", how="anti", maintain_order="left")


def in_manifest_order(manifest: pl.DataFrame, reused: pl.DataFrame, fresh: pl.DataFrame) -> pl.DataFrame:
    """Reused and fresh rows together, one per manifest id, in the manifest's order (columns as in `fresh`)."""
    if reused.is_empty() and fresh["id"].equals(manifest["id"]):
        return fresh  # everything new, already in order: no second copy of every vector
    combined = pl.concat([reused.select(fresh.columns), fresh]) if reused.height else fresh
    order = manifest.select("id").with_row_index("_row")
    return combined.join(order, on="id").sort("_row").drop("_row")
