"""GMValuator and its baselines behind one shape, so that every criterion treats them alike.

A method gives a value per training image and, per generated image, its contributors ranked
strongest first (C1 / C2 read the ranking). The similarity variants share the embeddings and
quality scores; random, uniform and TracIn are the baselines the issue names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ..common.timing import timed
from ..method.core import MethodSettings, Reranking, fit_temperature, match, value
from ..method.matching import IndexShard, matches_table
from ..method.search import build_hnsw

# score: the method's attribution of gen_id to train_id (higher = stronger; LDS sums it over training subsets).
CONTRIBUTOR_SCHEMA = {"gen_id": pl.String, "train_id": pl.String, "rank": pl.Int32, "score": pl.Float64}


@dataclass
class MethodOutput:
    method: str
    values: pl.DataFrame  # train_id, value
    contributors: pl.DataFrame  # gen_id, train_id, rank (1 = strongest), up to `depth` per generated image
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> seconds, for C4


@dataclass(frozen=True)
class SimilaritySetup:
    """What the pipeline was configured with (the method's settings), and how deep the reports rank contributors;
    the method's variants change one thing each."""

    settings: MethodSettings = field(default_factory=MethodSettings)
    depth: int = 50  # contributors kept for C1 at large k


@dataclass
class EmbeddedSets:
    train_ids: list[str]
    gen_ids: list[str]
    train: np.ndarray  # (n, d) embeddings
    gen: np.ndarray  # (m, d)
    quality: pl.DataFrame  # gen_id, q
    gen_mirrored: np.ndarray | None = None  # (m, d) the generated images' mirror images, for matching with flips


def timed_call(seconds: dict, key: str, fn: Callable, *args, **kwargs):
    with timed(seconds, key, digits=None):
        return fn(*args, **kwargs)


def similarity_method(
    name: str,
    sets: EmbeddedSets,
    setup: SimilaritySetup,
    *,
    exact: bool = False,
    shards: Sequence[IndexShard] | None = None,
    unit_quality: bool = False,
    pair_distance=None,
    load_train: Callable | None = None,
    gen_images: list[np.ndarray] | None = None,
    device="cpu",
    seed: int = 0,
    flips: bool | None = None,
) -> MethodOutput:
    """GMValuator with one change: exact search, given indexes, q = 1, a re-rank distance, or `flips` (None: as
    `setup`'s settings say; matching then needs `sets.gen_mirrored`).

    The temperature is `setup.settings.temperature`, or where that is None fitted to this variant's own
    distances (fit_temperature, seeded by `seed`), as the pipeline fits it to its own.

    Without `shards` and `exact`, an HNSW index with `setup.settings.hnsw` is built (and timed); `shards` are the
    pipeline's own indexes (see matching.IndexShard), so that its values are reproduced exactly.
    """
    seconds: dict[str, float] = {}
    settings = setup.settings
    depth = min(max(setup.depth, settings.match.k), len(sets.train))  # the reports' listing depth, at most every image
    params = settings.match.at_depth(depth)  # flips and flip_ratio too
    if exact:
        shards = [IndexShard(0, len(sets.train))]
    elif shards is None:
        shards = [IndexShard(0, len(sets.train), timed_call(seconds, "index", build_hnsw, sets.train, settings.hnsw))]
    reranking = None if pair_distance is None else Reranking(pair_distance, gen_images, load_train)
    mirrored = None
    if settings.match.flips if flips is None else flips:
        if sets.gen_mirrored is None:
            raise ValueError(f"{name} matches with flips: give the generated images' mirror images' embeddings")
        mirrored = sets.gen_mirrored
    timings: dict[str, float] = {}
    idx, dist = match(sets.train, sets.gen, params, shards, device, reranking, timings, mirrored)
    seconds["match"] = timings["search_seconds"]
    if reranking is not None:
        seconds["rerank"] = timings["rerank_seconds"]

    def fitted() -> float:
        with timed(seconds, "temperature", digits=None):
            return fit_temperature(
                sets.train, settings.match, shards, device, pair_distance, load_train, seed=seed
            ).temperature

    temperature = settings.temperature_or(fitted)
    with timed(seconds, "credit", digits=None):
        matches = matches_table(sets.gen_ids, sets.train_ids, idx, dist, settings.match.k)
        quality = sets.quality.with_columns(q=pl.lit(1.0)) if unit_quality else sets.quality
        credits, values = value(matches, quality, pl.Series(sets.train_ids), temperature)
    # Attribution = the credit (q_j w_ij) within the top k; contributors ranked deeper get none.
    contributors = (
        matches_table(sets.gen_ids, sets.train_ids, idx, dist, depth)
        .join(credits.select("gen_id", "rank", score="credit"), on=["gen_id", "rank"], how="left")
        .with_columns(pl.col("score").fill_null(0.0))
        .select(list(CONTRIBUTOR_SCHEMA))
    )
    return MethodOutput(name, values.select("train_id", "value"), contributors, seconds)


def _random_contributors(
    train_ids: list[str], gen_ids: list[str], depth: int, rng: np.random.Generator, scores: np.ndarray | None = None
) -> pl.DataFrame:
    """`depth` random contributors per generated image, with `scores` (m, depth) in rank order (default: random,
    descending)."""
    depth = min(depth, len(train_ids))
    rows = (
        np.stack([rng.choice(len(train_ids), size=depth, replace=False) for _ in gen_ids])
        if gen_ids
        else np.empty((0, depth), int)
    )
    if scores is None:
        scores = -np.sort(-rng.random((len(gen_ids), depth)), axis=1)
    train_arr = np.asarray(train_ids, dtype=object)
    return pl.DataFrame(
        {
            "gen_id": np.repeat(np.asarray(gen_ids, dtype=object), depth),
            "train_id": train_arr[rows.reshape(-1)],
            "rank": np.tile(np.arange(1, depth + 1, dtype=np.int32), len(gen_ids)),
            "score": scores.reshape(-1),
        },
        schema=CONTRIBUTOR_SCHEMA,
    )


def random_method(train_ids: list[str], gen_ids: list[str], total: float, depth: int, seed: int) -> MethodOutput:
    """Values drawn uniformly at random (scaled to the same total); random contributors."""
    rng = np.random.default_rng(seed)
    v = rng.random(len(train_ids))
    values = pl.DataFrame({"train_id": train_ids, "value": v / v.sum() * total})
    return MethodOutput("random", values, _random_contributors(train_ids, gen_ids, depth, rng))


def uniform_method(train_ids: list[str], gen_ids: list[str], total: float, depth: int, seed: int) -> MethodOutput:
    """Every training image gets total / n; contributors are all tied, so C1 / C2 see a random order."""
    values = pl.DataFrame({"train_id": train_ids, "value": np.full(len(train_ids), total / len(train_ids))})
    equal = np.full((len(gen_ids), min(depth, len(train_ids))), total / max(len(gen_ids), 1) / len(train_ids))
    return MethodOutput(
        "uniform", values, _random_contributors(train_ids, gen_ids, depth, np.random.default_rng(seed + 1), equal)
    )


def score_method(
    name: str, scores: np.ndarray, train_ids: list[str], gen_ids: list[str], depth: int, seconds: dict[str, float]
) -> MethodOutput:
    """A method given as an (m, n) score matrix (higher = stronger): value = sum over generated images."""
    depth = min(depth, scores.shape[1])
    top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
    order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, 1)
    contributors = (
        matches_table(gen_ids, train_ids, top, np.take_along_axis(scores, top, 1).astype(np.float64), depth)
        .rename({"distance": "score"})
        .select(list(CONTRIBUTOR_SCHEMA))
    )
    values = pl.DataFrame({"train_id": train_ids, "value": scores.sum(axis=0)})
    return MethodOutput(name, values, contributors, seconds)


def method_values_table(outputs: list[MethodOutput]) -> pl.DataFrame:
    return pl.concat([o.values.select(pl.lit(o.method).alias("method"), "train_id", "value") for o in outputs])


def method_contributors_table(outputs: list[MethodOutput]) -> pl.DataFrame:
    return pl.concat([o.contributors.select(pl.lit(o.method).alias("method"), *CONTRIBUTOR_SCHEMA) for o in outputs])
