"""The one core of GMValuator: match each generated image to training images, then credit and value them.

`value_training_set` (api.py), the `matches` / `credits` / `training_values` assets and every GMValuator variant
in the evaluation call these two functions, and the method's defaults are held here (and in the parameter classes
they gather) once: k, K', the metric, exact-versus-HNSW, the HNSW parameters and the temperature rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch

from ..common.sampling import seeded_rows
from ..common.timing import timed
from .credit import compute_credits, training_values
from .matching import IndexShard, MatchParams, search_shards
from .rerank import PairDistance, rerank
from .search import HnswParams

# tau = (median over training images of d_k - d_1 among their nearest other training images) / TEMPERATURE_DIVISOR:
# the k-th contributor of a typical image then gets e^-4 (1.8%) of the first's weight, whatever the distance's
# scale (embedder, re-rank). On the demo's pixel cosine it gives 0.0031, the value once tuned there by hand
# (docs/DESIGN.md, "Temperature").
TEMPERATURE_DIVISOR = 4.0
TEMPERATURE_SAMPLE = 1000  # training images whose neighbours set the spread


@dataclass(frozen=True)
class MethodSettings:
    """Every setting of the method between embeddings and values; the defaults are the project's defaults."""

    match: MatchParams = field(default_factory=MatchParams)
    hnsw: HnswParams = field(default_factory=HnswParams)
    temperature: float | None = None  # None: fitted to the training set's distances (fit_temperature)

    def __post_init__(self) -> None:
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.hnsw.metric != self.match.metric:
            raise ValueError(
                f"the index metric ({self.hnsw.metric}) differs from the match metric ({self.match.metric})"
            )

    def temperature_or(self, fitted: Callable[[], float]) -> float:
        """tau: the configured one, else `fitted()` (the training set's: fit_temperature, or its stored fit)."""
        return self.temperature if self.temperature is not None else fitted()


DEFAULTS = MethodSettings()


@dataclass
class Reranking:
    """A finer distance for the recalled candidates, and how to get the images it compares."""

    distance: PairDistance
    generated: Sequence[np.ndarray]  # the generated images, in query order (loaded lazily or not)
    load_train: Callable[[np.ndarray], list[np.ndarray]]  # training rows -> their images
    on_row: Callable[[int], None] | None = None  # after each generated image (progress)


def match(
    train: np.ndarray,
    queries: np.ndarray,
    params: MatchParams,
    shards: Sequence[IndexShard],
    device: str | torch.device = "cpu",
    reranking: Reranking | None = None,
    timings: dict | None = None,
    mirrored: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """K' candidate training rows per generated image, sorted by distance (float64): searched over every shard
    and merged exactly, then re-ranked with `reranking` when given. `timings` receives search / rerank seconds
    ("*_seconds") and, with `mirrored`, a count (below).

    `mirrored`: the embeddings of the generated images' mirror images (left-right), where matching is to see through
    a flip (a generator trained with random flips emits its memorised images either way round). A generated image is
    then matched as a mirror image, all its candidates and the re-rank in that orientation, when its mirror image's
    nearest training image is nearer than `params.flip_ratio` x its own nearest's distance (`timings` receives how
    many were: "mirror_images"). One orientation per image, not the nearer of two per training image: that gives
    every training image two chances to look close, and on the demo, whose generator never mirrors, the top 10 took
    in more look-alikes of other classes (C1@10 0.773 -> 0.756; per image at the default ratio it stays within its
    paired interval: bench/flip_ratio.py)."""
    timings = {} if timings is None else timings
    with timed(timings, "search_seconds", digits=None):
        idx, dist = search_shards(train, queries, params, shards, device)
        turned = np.zeros(len(idx), bool)
        if mirrored is not None:
            flipped_idx, flipped_dist = search_shards(train, mirrored, params, shards, device)
            turned = flipped_dist[:, 0] < params.flip_ratio * dist[:, 0]
            idx = np.where(turned[:, None], flipped_idx, idx)
            dist = np.where(turned[:, None], flipped_dist, dist)
            timings["mirror_images"] = int(turned.sum())
    if reranking is not None:
        generated = reranking.generated if not turned.any() else Oriented(reranking.generated, turned)
        with timed(timings, "rerank_seconds", digits=None):
            idx, dist = rerank(generated, idx, reranking.load_train, reranking.distance, reranking.on_row)
    return idx, dist


def mirror(image: np.ndarray) -> np.ndarray:
    """The left-right mirror image of an (H, W[, C]) image."""
    return np.ascontiguousarray(np.asarray(image)[:, ::-1])


class Oriented(Sequence):
    """Generated images, those marked `turned` as their mirror images (read lazily, as the sequence they wrap)."""

    def __init__(self, images: Sequence[np.ndarray], turned: np.ndarray):
        self.images, self.turned = images, turned

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, j: int) -> np.ndarray:
        return mirror(self.images[j]) if self.turned[j] else self.images[j]


@dataclass(frozen=True)
class TemperatureFit:
    """tau fitted to a similarity's distance scale, and the spread it came from (for metadata and the audit)."""

    temperature: float
    median_spread: float  # median over the sampled training images of d_k - d_1
    spread_quantiles: dict[str, float]  # p10, p50, p90 of the same
    queries: int
    k: int  # neighbours per query: the ranking's k, at most n - 1
    divisor: float

    def as_dict(self) -> dict:
        return {
            "temperature": self.temperature,
            "median_spread": self.median_spread,
            **self.spread_quantiles,
            "queries": self.queries,
            "spread_k": self.k,
            "divisor": self.divisor,
        }


def fit_temperature(
    train: np.ndarray,
    params: MatchParams,
    shards: Sequence[IndexShard],
    device: str | torch.device = "cpu",
    pair_distance: PairDistance | None = None,
    load_train: Callable[[np.ndarray], list[np.ndarray]] | None = None,
    sample: int = TEMPERATURE_SAMPLE,
    seed: int = 0,
    divisor: float = TEMPERATURE_DIVISOR,
    on_row: Callable[[int], None] | None = None,
) -> TemperatureFit:
    """tau = median_i (d_k - d_1) / divisor, where d_1..d_k are training image i's distances to its k nearest
    *other* training images, for a seeded sample of `sample` training images, found exactly the way generated
    images are matched (the same search, K' and re-rank `pair_distance`, whose images come from `load_train`).

    Tied to the similarity in use, not to one embedder: the softmax then spreads credit over a typical
    neighbourhood the same way for any distance scale, while a near-copy (far closer to its source than
    the source's own neighbours are) still takes nearly all of it.
    """
    if not divisor > 0:
        raise ValueError(f"the temperature divisor must be > 0, got {divisor}")
    n = len(train)
    if n < 3:
        raise ValueError(
            f"fitting the temperature needs at least 3 training images, got {n}: set a temperature "
            "(MethodSettings.temperature; in the pipeline, resources.method's)"
        )
    k = min(params.k, n - 1)
    # One more than needed: each query finds itself (or an identical image) among its neighbours.
    search = MatchParams(
        k=k + 1,
        candidates=min(max(params.candidates, k) + 1, n),
        metric=params.metric,
        index_mode=params.index_mode,
        exact_below=params.exact_below,
    )
    rows = seeded_rows(n, sample, seed)
    reranking = None if pair_distance is None else Reranking(pair_distance, load_train(rows), load_train, on_row)
    idx, dist = match(train, train[rows], search, shards, device, reranking)
    others = idx != rows[:, None]
    # Where the search missed the query itself, drop its farthest candidate instead, keeping k per row.
    others[others.all(axis=1), -1] = False
    kept = np.where(others, dist, np.inf)
    kept = np.sort(kept, axis=1)[:, :k]
    spread = kept[:, k - 1] - kept[:, 0]
    spread = spread[np.isfinite(spread)]
    median = float(np.median(spread)) if len(spread) else 0.0
    if not median > 0:
        raise ValueError(
            "the training images' nearest neighbours are all at one distance (duplicates?): "
            "the temperature cannot be fitted; set a temperature (MethodSettings.temperature; in the pipeline, "
            "resources.method's)"
        )
    quantiles = {f"spread_p{q}": float(np.quantile(spread, q / 100)) for q in (10, 50, 90)}
    return TemperatureFit(median / divisor, median, quantiles, len(rows), k, divisor)


def value(
    matches: pl.DataFrame, quality: pl.DataFrame, train_ids: pl.Series, temperature: float
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(credits, values): credit_ij = q_j * softmax(-d_ij / tau) over each generated image's matches, and
    phi_i = sum_j credit_ij for every training image (credit.py has the formulas and their invariant)."""
    credits = compute_credits(matches, quality, temperature)
    return credits, training_values(credits, train_ids)
