"""What can be kept from a previous materialisation of the embeddings, so that new images cost only their own work.

Embeddings are reused for an image whose id and content hash are unchanged and that was embedded by
the same embedder (its fingerprint: backbone, weights hash, input size, dtype); anything else is
embedded again.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl


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
