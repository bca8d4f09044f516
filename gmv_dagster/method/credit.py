"""Credit and value: the GMValuator formulas (docs/DESIGN.md, method steps 4 and 5)."""

from __future__ import annotations

import numpy as np
import polars as pl

MATCH_SCHEMA = {"gen_id": pl.String, "train_id": pl.String, "rank": pl.Int32, "distance": pl.Float64}


def softmax_weights(distances: np.ndarray, temperature: float) -> np.ndarray:
    """w_ij = exp(-d_ij / tau) / sum_l exp(-d_lj / tau) along the last axis.

    Shifted by the row minimum so that tiny temperatures do not underflow to 0/0.
    """
    if not temperature > 0 or not np.isfinite(temperature):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    d = np.asarray(distances, dtype=np.float64)
    if not np.isfinite(d).all():
        raise ValueError("distances contain NaN or Inf: check the embeddings for non-finite values")
    logits = -(d - d.min(axis=-1, keepdims=True)) / temperature
    w = np.exp(logits)
    return w / w.sum(axis=-1, keepdims=True)


def compute_credits(matches: pl.DataFrame, quality: pl.DataFrame, temperature: float) -> pl.DataFrame:
    """credit_ij = q_j * w_ij over each generated image's matched top-k.

    `matches`: gen_id, train_id, rank, distance. `quality`: gen_id, q (in [0, 1]).
    Returns gen_id, train_id, rank, distance, weight, credit sorted by (gen_id, rank).
    """
    missing = matches.select("gen_id").unique().join(quality.select("gen_id"), on="gen_id", how="anti")
    if missing.height:
        raise ValueError(
            f"{missing.height} generated image(s) have matches but no quality score, "
            f"e.g. {missing['gen_id'][0]!r}: rematerialise quality_scores"
        )
    ordered = matches.sort(["gen_id", "rank"])
    sizes = ordered.group_by("gen_id", maintain_order=True).len()["len"].to_numpy().astype(np.int64)
    distances = ordered["distance"].to_numpy()
    weights = np.empty_like(distances, dtype=np.float64)
    # Groups of equal size (the usual case: k for everyone) are done as one 2-D softmax.
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for size in np.unique(sizes):
        rows = starts[sizes == size][:, None] + np.arange(size)[None, :]
        weights[rows] = softmax_weights(distances[rows], temperature)
    return (
        ordered.with_columns(weight=pl.Series(weights))
        .join(quality.select("gen_id", "q"), on="gen_id", how="left")
        .with_columns(credit=pl.col("weight") * pl.col("q"))
        .drop("q")
    )


def training_values(credits: pl.DataFrame, train_ids: pl.Series) -> pl.DataFrame:
    """phi_i = sum_j credit_ij for every training image (0 where never matched).

    Returns train_id, value, n_generated, rank (1 = most valuable; ties broken by train_id).
    """
    unknown = credits.select("train_id").unique().join(pl.DataFrame({"train_id": train_ids}), on="train_id", how="anti")
    if unknown.height:
        raise ValueError(
            f"credits name {unknown.height} training id(s) that are not in the training set, "
            f"e.g. {unknown['train_id'][0]!r}: the index is stale, rematerialise train_index"
        )
    # Summed in a fixed order (by train_id, then gen_id), so the values do not depend on the order in
    # which batches were stored: valuing batches one by one equals valuing them all at once, bit for bit.
    ordered = credits.select("train_id", "gen_id", "credit").sort(["train_id", "gen_id"])
    ids = ordered["train_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.empty(0, dtype=np.int64)
    per_image = pl.DataFrame(
        {
            "train_id": ids[starts] if len(ids) else pl.Series([], dtype=pl.String),
            "value": np.add.reduceat(ordered["credit"].to_numpy(), starts) if len(ids) else np.empty(0),
            "n_generated": ordered.group_by("train_id", maintain_order=True)
            .agg(pl.col("gen_id").n_unique())["gen_id"]
            .cast(pl.Int64),
        },
        schema={"train_id": pl.String, "value": pl.Float64, "n_generated": pl.Int64},
    )

    # Ordered by (value descending, train_id): only the valued images need sorting by value; the rest (most of a
    # large training set) are the unvalued ids in id order, so a batch does not sort 10^6 rows by value again.
    def by_value(df):
        return df.sort(["value", "train_id"], descending=[True, False])

    positive, negative = (
        by_value(per_image.filter(pl.col("value") > 0)),
        by_value(per_image.filter(pl.col("value") < 0)),
    )
    unvalued = (
        pl.DataFrame({"train_id": train_ids.cast(pl.String)})
        .filter(~pl.col("train_id").is_in(pl.concat([positive["train_id"], negative["train_id"]]).implode()))
        .with_columns(value=pl.lit(0.0), n_generated=pl.lit(0, dtype=pl.Int64))
    )
    zero = per_image.filter(pl.col("value") == 0)  # credited exactly 0 (q = 0): keeps its n_generated
    if zero.height:
        unvalued = unvalued.update(zero, on="train_id")
    values = pl.concat([positive, unvalued.sort("train_id"), negative])
    return values.with_columns(rank=pl.int_range(1, values.height + 1, dtype=pl.Int64))
