"""From embeddings to matches P_j: recall K' candidates, re-rank, keep the top k."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from ..common.arrays import RowBlocks
from ..common.sampling import seeded_rows
from .credit import MATCH_SCHEMA
from .search import DEFAULT_METRIC, exact_topk, hnsw_search, recall_at_k, rescore, sort_neighbours

INDEX_MODES = ("auto", "exact", "hnsw")


@dataclass(frozen=True)
class MatchParams:
    k: int = 10
    candidates: int = 50  # K': recalled before re-ranking; >= k
    metric: str = DEFAULT_METRIC
    index_mode: str = "auto"  # auto: exact below `exact_below` training images, HNSW above
    exact_below: int = 5000
    # Matching through a left-right flip (core.match, which takes the mirror images' embeddings from its caller): a
    # generated image is matched as a mirror image when its mirror image's nearest training image is nearer than
    # flip_ratio x its own nearest's distance. Both chosen by bench/attribution.py on its tuning domains (the smallest
    # ratio giving mirror top-1 >= 0.95 there at a cost of <= 0.015 in near-copy top-1); bench/flip_ratio.py checks
    # that the demo's C1@10 does not fall.
    flips: bool = True
    flip_ratio: float = 0.8

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.candidates < self.k:
            raise ValueError(f"candidates (K'={self.candidates}) must be >= k ({self.k})")
        if not 0 < self.flip_ratio <= 1:
            raise ValueError(f"flip_ratio must be in (0, 1], got {self.flip_ratio}")
        if self.index_mode not in INDEX_MODES:
            raise ValueError(f"index_mode must be one of {INDEX_MODES}, got {self.index_mode!r}")

    def uses_exact(self, n_train: int) -> bool:
        return self.index_mode == "exact" or (self.index_mode == "auto" and n_train < self.exact_below)

    def at_depth(self, k: int) -> MatchParams:
        """These settings keeping the top `k`, recalling K' = max(candidates, k) (never fewer than kept)."""
        return replace(self, k=k, candidates=max(self.candidates, k))


def recall_candidates(
    train: np.ndarray,
    queries: np.ndarray,
    params: MatchParams,
    index=None,
    device="cpu",
    threads: int = 0,
    key_rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """K' nearest training rows per query with float64 distances, sorted.

    Exact search or HNSW proposes the candidates; their distances are then recomputed in
    float64, so the weights depend on neither the search method nor the index's
    quantisation, only on which candidates were found.
    """
    if index is None:
        found, _ = exact_topk(train, queries, params.candidates, params.metric, device)
    else:
        found = hnsw_search(index, queries, params.candidates, threads, key_rows)
    return rescore(train, queries, found, params.metric)


@dataclass(frozen=True)
class IndexShard:
    """Training rows [start, stop) and their HNSW index (None: exact search), keys mapped to rows of the slice, and
    (from a saved index) the slice's vectors, memory-mapped."""

    start: int
    stop: int
    index: object | None = None
    key_rows: np.ndarray | None = None
    vectors: np.ndarray | None = None


class ShardVectors(RowBlocks):
    """The (n, d) training vectors of consecutive shards as one read-only array (common.arrays.RowBlocks): slices and
    integer-array gathers read only the rows asked for from each shard's memory-mapped vectors."""

    def __init__(self, shards: Sequence[IndexShard]):
        if not shards or any(s.vectors is None for s in shards):
            raise ValueError("every shard needs its vectors (open the saved index with open_index)")
        if [s.start for s in shards] != [0, *(s.stop for s in shards[:-1])]:
            raise ValueError("shards must cover the training rows consecutively from row 0")
        super().__init__([s.vectors for s in shards])


def shard_vectors(shards: Sequence[IndexShard]) -> np.ndarray | ShardVectors:
    """The training matrix of saved shards: the one shard's memory map, or several as a ShardVectors."""
    return (
        shards[0].vectors
        if len(shards) == 1 and shards[0].start == 0 and shards[0].vectors is not None
        else ShardVectors(shards)
    )


def search_shards(
    train: np.ndarray,
    queries: np.ndarray,
    params: MatchParams,
    shards: Sequence[IndexShard],
    device="cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """K' nearest training rows per query over every shard, merged exactly (merge_candidates).

    Refuses k above the number of training images: the weights would silently be over fewer than k.
    """
    n = sum(shard.stop - shard.start for shard in shards)
    if params.k > n:
        raise ValueError(
            f"k = {params.k} nearest training images asked for, but there are only {n}: "
            f"set k (matches.k) to at most {n}"
        )
    parts = []
    for shard in shards:
        vectors = train[shard.start : shard.stop] if shard.vectors is None else shard.vectors
        rows, dist = recall_candidates(vectors, queries, params, shard.index, device, key_rows=shard.key_rows)
        parts.append((np.where(rows < 0, -1, rows + shard.start), dist))
    return merge_candidates(parts, params.candidates)


def sample_recall(
    train: np.ndarray,
    queries: np.ndarray,
    shards: Sequence[IndexShard],
    k: int,
    metric: str,
    sample: int,
    seed: int,
    device="cpu",
) -> float:
    """recall@k of the search over `shards` against exact search, on a seeded sample of the queries."""
    rows = seeded_rows(len(queries), sample, seed)
    exact, _ = exact_topk(train, queries[rows], k, metric, device)
    found, _ = search_shards(train, queries[rows], MatchParams(k=k, candidates=k, metric=metric), shards, device)
    return recall_at_k(found, exact)


def matches_table(
    gen_ids: list[str] | pl.Series, train_ids: list[str] | pl.Series, idx: np.ndarray, dist: np.ndarray, k: int
) -> pl.DataFrame:
    """The top k of each sorted candidate row as (gen_id, train_id, rank, distance)."""
    idx, dist = idx[:, :k], dist[:, :k]
    m, kk = idx.shape
    valid = (idx >= 0).reshape(-1)
    train_arr = np.asarray(list(train_ids), dtype=object)
    return pl.DataFrame(
        {
            "gen_id": np.repeat(np.asarray(list(gen_ids), dtype=object), kk)[valid],
            "train_id": train_arr[np.where(idx < 0, 0, idx).reshape(-1)][valid],
            "rank": np.tile(np.arange(1, kk + 1, dtype=np.int32), m)[valid],
            "distance": dist.reshape(-1)[valid],
        },
        schema=MATCH_SCHEMA,
    )


def merge_candidates(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of several candidate lists per query, by (distance, row); rows are global, -1 pads.

    Each shard's candidates carry exact float64 distances (recall_candidates), so the top k of all shards is the
    unsharded top k wherever each shard's search found its own share of it (always with exact search).

    Each part is (rows, distances), (m, k_i), from one shard; the result has min(k, sum k_i) columns.
    """
    rows, dist = sort_neighbours(
        np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=1)
    )
    return rows[:, :k], dist[:, :k]
