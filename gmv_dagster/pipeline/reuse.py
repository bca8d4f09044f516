"""What can be kept from a previous materialisation of the embeddings, so that new images cost only their own work.

Embeddings are reused for an image whose id and content hash are unchanged and that was embedded by
the same embedder (its fingerprint: backbone, weights hash, input size, dtype); anything else is
embedded again.
"""

from __future__ import annotations

import polars as pl


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
    if reused.is_empty() and fresh["id"].equals(manifest["id"]):
        return fresh  # everything new, already in order: no second copy of every vector
    combined = pl.concat([reused.select(fresh.columns), fresh]) if reused.height else fresh
    order = manifest.select("id").with_row_index("_row")
    return combined.join(order, on="id").sort("_row").drop("_row")
