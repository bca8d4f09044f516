"""What can be kept from a previous materialisation, so that new images cost only their own work.

Embeddings are reused for an image whose id and content hash are unchanged and that was embedded by
the same embedder (its fingerprint: backbone, weights hash, input size, dtype); anything else is
embedded again. The index keeps a persistent key per training image, so it can be extended with new
images and lose removed ones without a rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

KEYS_SCHEMA = {"key": pl.UInt64, "id": pl.String, "content_hash": pl.String}


def reusable_embeddings(previous: pl.DataFrame | None, manifest: pl.DataFrame, fingerprint: str) -> pl.DataFrame:
    """Rows of `previous` (id, content_hash, embedder, embedding, ...) still valid for `manifest`."""
    needed = {"id", "content_hash", "embedder", "embedding"}
    if previous is None or not needed <= set(previous.columns):
        return pl.DataFrame()
    return previous.filter(pl.col("embedder") == fingerprint).join(
        manifest.select("id", "content_hash"), on=["id", "content_hash"], how="semi"
    ).unique("id", keep="first", maintain_order=True)


def still_to_embed(manifest: pl.DataFrame, reusable: pl.DataFrame) -> pl.DataFrame:
    """The manifest rows that have no reusable embedding, in manifest order."""
    if reusable.is_empty():
        return manifest
    return manifest.join(reusable.select("id"), on="id", how="anti", maintain_order="left")


def in_manifest_order(manifest: pl.DataFrame, reused: pl.DataFrame, fresh: pl.DataFrame) -> pl.DataFrame:
    """Reused and fresh rows together, one per manifest id, in the manifest's order (columns as in `fresh`)."""
    combined = pl.concat([reused.select(fresh.columns), fresh]) if reused.height else fresh
    order = manifest.select("id").with_row_index("_row")
    return combined.join(order, on="id").sort("_row").drop("_row")


@dataclass(frozen=True)
class IndexPlan:
    """How to turn the index over `previous` keys into one over the current training images."""

    keys: pl.DataFrame  # key, id, content_hash of every image in the new index
    add_keys: np.ndarray  # keys to insert (new or changed images)
    add_ids: list[str]
    remove_keys: np.ndarray  # keys of images gone or changed

    @property
    def unchanged(self) -> bool:
        return len(self.add_keys) == 0 and len(self.remove_keys) == 0


def index_plan(previous: pl.DataFrame | None, current: pl.DataFrame) -> IndexPlan:
    """Keep the keys of unchanged images, remove gone or changed ones, give new keys to the rest.

    `current` has id and content_hash; new keys continue after the largest key ever used, so a key
    never names two images.
    """
    current = current.select("id", "content_hash")
    if previous is None or previous.is_empty():
        keys = current.with_row_index("key").with_columns(pl.col("key").cast(pl.UInt64)).select(KEYS_SCHEMA.keys())
        return IndexPlan(keys, keys["key"].to_numpy(), keys["id"].to_list(), np.empty(0, dtype=np.uint64))
    kept = previous.join(current, on=["id", "content_hash"], how="semi")
    removed = previous.join(kept.select("key"), on="key", how="anti")
    new = current.join(kept.select("id"), on="id", how="anti", maintain_order="left")
    start = int(previous["key"].max()) + 1
    added = new.with_columns(key=pl.int_range(start, start + new.height, dtype=pl.UInt64)).select(KEYS_SCHEMA.keys())
    keys = pl.concat([kept.select(KEYS_SCHEMA.keys()).cast(KEYS_SCHEMA), added]).sort("key")
    return IndexPlan(keys, added["key"].to_numpy(), added["id"].to_list(), removed["key"].to_numpy().astype(np.uint64))


def rows_of_keys(keys: pl.DataFrame, ids: pl.Series) -> np.ndarray:
    """An array mapping each index key to its row in `ids` (-1 for keys of images not there)."""
    size = int(keys["key"].max()) + 1 if keys.height else 0
    rows = np.full(size, -1, dtype=np.int64)
    position = pl.DataFrame({"id": ids}).with_row_index("row").join(keys.select("id", "key"), on="id")
    rows[position["key"].to_numpy().astype(np.int64)] = position["row"].to_numpy()
    return rows
