"""Metadata every table asset carries: row count, column schema, a preview, timings."""

import time
import warnings
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa

from ..method.matching import IndexShard, ShardVectors, shard_vectors
from ..pipeline.vectors import open_vectors, vectors_path
from ..pipeline.versions import embeddings_version, frame_version
from ..resources import GmvHome

# Content hashes as data versions drive the automation and the audit; Dagster 1.13 calls the parameter beta.
warnings.filterwarnings("ignore", message=r"Parameter `data_version` of initializer", category=dg.BetaWarning)

# Under the dagster-k8s executor these ask for one GPU for the op's pod (see README, Devices).
GPU_TAGS = {"dagster-k8s/config": {"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}}


def table_metadata(df: pl.DataFrame, preview_rows: int = 10, **extra) -> dict:
    """Row count and a preview; the IO manager adds the column schema, with each column's description, as it stores
    the table (resources/warehouse.py)."""
    shown = df.head(preview_rows).select([c for c, t in df.schema.items() if not isinstance(t, (pl.Array, pl.List))])
    return {
        "dagster/row_count": df.height,
        "preview": dg.MetadataValue.md(_markdown(shown)),
        **extra,
    }


def versioned(df: pl.DataFrame, version: str | None = None, **metadata) -> dg.Output[pl.DataFrame]:
    """The table with its content version (frame_version unless given) as Dagster's data version.

    Downstream assets follow a change of content, not a mere rerun (see automation.py), and the
    audit can tell which contents a number came from.
    """
    version = version or frame_version(df)
    return dg.Output(
        df, data_version=dg.DataVersion(version), metadata=table_metadata(df, content_version=version, **metadata)
    )


def config_metadata(config: dg.Config) -> dict:
    """The run config an asset was materialised with, for the lineage audit (`gmv audit`)."""
    return {"config": dg.MetadataValue.json(config.model_dump())}


def _markdown(df: pl.DataFrame) -> str:
    if df.width == 0:
        return "(no scalar columns)"
    fmt = lambda v: f"{v:.6g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * df.width]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join(lines)


class Progress:
    """Logs counts and rates for long loops, at most every `every` seconds."""

    def __init__(self, log, what: str, total: int, every: float = 5.0):
        self.log, self.what, self.total, self.every = log, what, total, every
        self.done, self.start, self.last = 0, time.perf_counter(), 0.0

    def __call__(self, n: int, total: int | None = None) -> None:
        """`n` more done (of `total`, when the loop learns it only once it starts)."""
        self.done += n
        if total is not None:
            self.total = total
        now = time.perf_counter()
        if now - self.last >= self.every or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            self.log.info(f"{self.what}: {self.done}/{self.total} ({rate:,.0f}/s)")

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


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


def latest_materialization(instance: dg.DagsterInstance, asset: str, partition: str | None = None):
    """The latest materialisation event of an asset, or of one of its partitions (None if there is none)."""
    if partition is None:
        return instance.get_latest_materialization_event(dg.AssetKey(asset))
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1, ascending=False
    ).records
    return records[0].event_log_entry if records else None


def latest_metadata(context, asset: str, partition: str | None = None) -> dict:
    """Plain values of the latest materialisation's metadata of `asset` (of its `partition`; {} if never
    materialised).

    Reports read the pipeline's settings (k, temperature, generator spec, timings) from here, so they
    describe the run that produced the tables they read.
    """
    event = latest_materialization(context.instance, asset, partition)
    if event is None or event.asset_materialization is None:
        return {}
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


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


def train_vectors_file(gmv_home: GmvHome, partition: str | None, version: str) -> Path:
    """Where train_embeddings (of shard `partition`) at embeddings `version` keeps its vectors (pipeline/vectors.py)."""
    return vectors_path(gmv_home.subdir("vectors"), train_vectors_name(partition), version)


def train_vectors_name(partition: str | None) -> str:
    return "train_embeddings" if partition is None else f"train_embeddings@{partition}"


def stored_train_vectors(
    gmv_home: GmvHome, train_embeddings: pl.DataFrame
) -> list[tuple[str | None, slice, str, np.ndarray]]:
    """(shard key, its rows, stored embeddings version, its vectors memory-mapped from the file that version names) of
    each shard of these train_embeddings rows (one, unsharded)."""
    out = []
    for key, start, stop in shard_slices(train_embeddings):
        version = stored_embeddings_version(gmv_home, "train_embeddings", key)
        vectors = open_vectors(train_vectors_file(gmv_home, key, version), stop - start)
        rows = train_embeddings[start:stop]
        where = f" shard {key}" if key else ""
        if "vector_row" in rows.columns and not (rows["vector_row"].to_numpy() == np.arange(stop - start)).all():
            raise ValueError(
                f"train_embeddings{where} rows are not in the order of their vectors file: materialise train_embeddings"
            )
        # Where the rows carry what the version hashes, they must be the rows that version names (another run may
        # have written the table between reading these rows and reading its version): exact, 1 s per 10^6 rows.
        if {"content_hash", "embedder"} <= set(rows.columns) and embeddings_version(rows) != version:
            raise ValueError(
                f"train_embeddings{where} changed while it was read (its stored version is not that of "
                "these rows): run again once the write in progress has finished"
            )
        out.append((key, slice(start, stop), version, vectors))
    return out


def train_vectors(gmv_home: GmvHome, train_embeddings: pl.DataFrame) -> np.ndarray | ShardVectors:
    """The (n, d) training vectors of these train_embeddings rows (one shard's, or every shard's in table order),
    memory-mapped: nothing n x d is read into memory."""
    return shard_vectors(
        [
            IndexShard(rows.start, rows.stop, vectors=vectors)
            for _, rows, _, vectors in stored_train_vectors(gmv_home, train_embeddings)
        ]
    )


def stored_embeddings_version(gmv_home: GmvHome, asset: str, partition: str | None = None) -> str:
    """The content version of an embeddings table (pipeline/versions.embeddings_version) that its latest write (of
    `partition`) computed and stored with its rows, so that readers need not hash a table that grows with the
    training set again."""
    version = gmv_home.content_version(asset, partition)
    if version is None:
        where = f" (partition {partition})" if partition else ""
        raise ValueError(
            f"{asset}{where} has no stored embeddings version (not materialised in this layout of shards "
            f"yet, or by a version of gmv-dagster that did not store it): materialise {asset}, then what "
            "was built from it (train_index); stored vectors are reused, nothing is embedded again"
        )
    return str(version)


def own_partition(context) -> str | None:
    """The asset's own partition key; None for an unpartitioned asset, also inside a partitioned run."""
    return context.partition_key if context.assets_def.partitions_def is not None else None
