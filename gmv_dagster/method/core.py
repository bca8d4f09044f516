"""The one core of GMValuator: match each generated image to training images, then credit and value them.

`value_training_set` (api.py), the `matches` / `credits` / `training_values` assets and every GMValuator variant
in the evaluation call these two functions, and the method's defaults are held here (and in the parameter classes
they gather) once: k, K', the metric, exact-versus-HNSW, the HNSW parameters and the temperature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import polars as pl
import torch

from ..common.timing import timed
from .credit import compute_credits, training_values
from .matching import IndexShard, MatchParams, search_shards
from .rerank import PairDistance, rerank
from .search import HnswParams

# tau of the softmax over distances; measured on the demo with the default embedder (docs/DESIGN.md, "Defaults").
DEFAULT_TEMPERATURE = 0.003


@dataclass(frozen=True)
class MethodSettings:
    """Every setting of the method between embeddings and values; the defaults are the project's defaults."""

    match: MatchParams = field(default_factory=MatchParams)
    hnsw: HnswParams = field(default_factory=HnswParams)
    temperature: float = DEFAULT_TEMPERATURE

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.hnsw.metric != self.match.metric:
            raise ValueError(f"the index metric ({self.hnsw.metric}) differs from the match metric ({self.match.metric})")


DEFAULTS = MethodSettings()


@dataclass
class Reranking:
    """A finer distance for the recalled candidates, and how to get the images it compares."""

    distance: PairDistance
    generated: list[np.ndarray]  # the generated images, in query order
    load_train: Callable[[np.ndarray], list[np.ndarray]]  # training rows -> their images
    on_row: Callable[[int], None] | None = None  # after each generated image (progress)


def match(
    train: np.ndarray, queries: np.ndarray, params: MatchParams, shards: Sequence[IndexShard],
    device: str | torch.device = "cpu", reranking: Reranking | None = None, timings: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """K' candidate training rows per generated image, sorted by distance (float64): searched over every shard
    and merged exactly, then re-ranked with `reranking` when given. `timings` receives search / rerank seconds."""
    timings = {} if timings is None else timings
    with timed(timings, "search_seconds", digits=None):
        idx, dist = search_shards(train, queries, params, shards, device)
    if reranking is not None:
        with timed(timings, "rerank_seconds", digits=None):
            idx, dist = rerank(reranking.generated, idx, reranking.load_train, reranking.distance, reranking.on_row)
    return idx, dist


def value(matches: pl.DataFrame, quality: pl.DataFrame, train_ids: pl.Series,
          temperature: float = DEFAULT_TEMPERATURE) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(credits, values): credit_ij = q_j * softmax(-d_ij / tau) over each generated image's matches, and
    phi_i = sum_j credit_ij for every training image (credit.py has the formulas and their invariant)."""
    credits = compute_credits(matches, quality, temperature)
    return credits, training_values(credits, train_ids)
