"""Nearest-neighbour search: exact (blocked matmul + top-k) and usearch HNSW (docs/DESIGN.md, method step 2)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

METRICS = ("cos", "l2sq")
DEFAULT_METRIC = "cos"  # the one default of the index, the matching and the exact search
DTYPES = ("f32", "f16", "bf16", "i8")


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def _writable_f32(a: np.ndarray) -> np.ndarray:
    """Contiguous float32; arrays read from Arrow are read-only, and torch wants writable memory."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    return a if a.flags.writeable else a.copy()


def pairwise_distances(queries: torch.Tensor, train: torch.Tensor, metric: str) -> torch.Tensor:
    """Distances between rows of two float tensors: 1 - cosine, or squared L2."""
    _check_metric(metric)
    if metric == "cos":
        q = torch.nn.functional.normalize(queries, dim=1)
        t = torch.nn.functional.normalize(train, dim=1)
        return (1.0 - q @ t.T).clamp_min_(0.0)
    sq = (queries * queries).sum(1, keepdim=True) + (train * train).sum(1)[None, :]
    return (sq - 2.0 * queries @ train.T).clamp_min_(0.0)


def exact_topk(
    train: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str = DEFAULT_METRIC,
    device: str | torch.device = "cpu",
    query_block: int = 1024,
    train_block: int = 16384,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest training rows for each query, in (query_block x train_block) tiles.

    Memory is bounded by the block sizes, never n x m, and `train` is read a block at a time (it may be a
    memory map, or any array whose slices are arrays). Returns (indices, distances), each
    (m, k), sorted by (distance, index) so that ties are deterministic.
    """
    n = len(train)
    if n == 0:
        raise ValueError("the training set is empty: nothing to match against")
    k = min(k, n)
    m = len(queries)
    if m == 0:
        return np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=np.float64)
    # Training blocks outside, queries inside: each block of `train` is read (and converted) once, so `train` may be
    # a memory-mapped file larger than memory; every query still merges the blocks in row order.
    q_blocks = [
        torch.as_tensor(_writable_f32(queries[qs : qs + query_block]), device=device) for qs in range(0, m, query_block)
    ]
    best_d = [torch.full((len(q), 0), float("inf"), device=device) for q in q_blocks]
    best_i = [torch.empty((len(q), 0), dtype=torch.int64, device=device) for q in q_blocks]
    for ts in range(0, n, train_block):
        t = torch.as_tensor(_writable_f32(train[ts : ts + train_block]), device=device)
        for b, q in enumerate(q_blocks):
            d = pairwise_distances(q, t, metric)
            idx = torch.arange(ts, ts + d.shape[1], device=device).expand(len(q), -1)
            cat_d, cat_i = torch.cat([best_d[b], d], 1), torch.cat([best_i[b], idx], 1)
            top = torch.topk(cat_d, k=min(k, cat_d.shape[1]), dim=1, largest=False)
            best_d[b], best_i[b] = top.values, torch.gather(cat_i, 1, top.indices)
    out_idx = np.empty((m, k), dtype=np.int64)
    out_dist = np.empty((m, k), dtype=np.float64)
    for b, qs in enumerate(range(0, m, query_block)):
        out_idx[qs : qs + len(q_blocks[b])] = best_i[b].cpu().numpy()
        out_dist[qs : qs + len(q_blocks[b])] = best_d[b].double().cpu().numpy()
    return sort_neighbours(out_idx, out_dist)


def sort_neighbours(indices: np.ndarray, distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by (distance, index); padding (-1) goes last."""
    d = np.where(indices < 0, np.inf, distances)
    order = np.lexsort((indices, d), axis=-1)
    return np.take_along_axis(indices, order, 1), np.take_along_axis(distances, order, 1)


def rescore(
    train: np.ndarray, queries: np.ndarray, candidates: np.ndarray, metric: str, block: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Exact float64 distances of each query to its candidate rows, then sorted.

    Weights then depend only on the embeddings, not on the index's quantisation. Done `block` queries
    at a time, so the float64 copy of the candidates (8 x K' x d: 3.3 MB at K' = 50, d = 1,024) stays in
    cache; what is left is the gather of the candidate rows. Per query 0.13 ms at n = 60k and 0.14 ms at
    n = 1M (d = 1,024, K' = 50), against 0.25 / 0.26 ms in blocks of 128. The block does not change a bit
    of the result.
    """
    _check_metric(metric)
    distances = np.empty(candidates.shape, dtype=np.float64)
    q64 = np.asarray(queries, dtype=np.float64)
    for s in range(0, len(candidates), block):
        rows = candidates[s : s + block]
        cand = train[np.where(rows < 0, 0, rows)].astype(np.float64)  # (b, K', d)
        q = q64[s : s + block]
        if metric == "cos":
            dots = np.matmul(cand, q[:, :, None])[..., 0]
            norms = np.maximum(np.sqrt(np.einsum("bkd,bkd->bk", cand, cand)), 1e-12)
            q_norms = np.maximum(np.linalg.norm(q, axis=1), 1e-12)[:, None]
            distances[s : s + block] = np.clip(1.0 - dots / norms / q_norms, 0.0, None)
        else:
            diff = cand - q[:, None, :]
            distances[s : s + block] = np.einsum("bkd,bkd->bk", diff, diff)
    return sort_neighbours(candidates, np.where(candidates < 0, np.inf, distances))


@dataclass(frozen=True)
class HnswParams:
    metric: str = DEFAULT_METRIC
    # bf16 by measurement (docs/PERFORMANCE.md, "Index in bf16"): the same recall@10 as f16 once the K' candidates are
    # re-scored in float64 (demo 128-d, Fashion-MNIST pixels 1,024-d, 1M x 1,024); with AVX-512 BF16 it builds about
    # 1.25x and searches 1.2 to 1.6x faster at 60k, about as fast at 1M x 1,024 (memory-bound there). usearch's kernel
    # for the CPU is the index's `hardware_acceleration`, stored in train_index's metadata; where it says "serial",
    # f16 is the faster choice. Half the memory of f32, as f16.
    dtype: str = "bf16"
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 128

    def __post_init__(self) -> None:
        _check_metric(self.metric)
        if self.dtype not in DTYPES:
            raise ValueError(f"index dtype must be one of {DTYPES}, got {self.dtype!r}")
        for name in ("connectivity", "expansion_add", "expansion_search"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def as_dict(self) -> dict:
        return asdict(self)


def build_hnsw(vectors: np.ndarray, params: HnswParams, threads: int = 1, keys: np.ndarray | None = None):
    """A usearch HNSW index over `vectors`, keyed by row position (or by `keys`).

    threads=1 (default) builds the same graph every time, so reruns give identical values; more
    threads build faster (20k x 1024-d: 1.7 s instead of 3.7 s on 2 cores) but insert in a racy
    order, so the graph, and candidates where recall is incomplete, can differ between runs.
    """
    from usearch.index import Index

    index = Index(
        ndim=vectors.shape[1],
        metric=params.metric,
        dtype=params.dtype,
        connectivity=params.connectivity,
        expansion_add=params.expansion_add,
        expansion_search=params.expansion_search,
    )
    keys = np.arange(len(vectors), dtype=np.uint64) if keys is None else keys
    return update_hnsw(index, keys, vectors, np.empty(0, dtype=np.uint64), threads)


def update_hnsw(index, add_keys: np.ndarray, vectors: np.ndarray, remove_keys: np.ndarray, threads: int = 1):
    """Remove `remove_keys`, then insert `vectors` under `add_keys` (same thread caveat as build_hnsw)."""
    if len(remove_keys):
        index.remove(np.asarray(remove_keys, dtype=np.uint64))
    if len(add_keys):
        index.add(
            np.asarray(add_keys, dtype=np.uint64), np.ascontiguousarray(vectors, dtype=np.float32), threads=threads
        )
    return index


def hnsw_search(index, queries: np.ndarray, k: int, threads: int = 0, key_rows: np.ndarray | None = None) -> np.ndarray:
    """Candidate row indices (m, k), -1 where the index returned fewer than k.

    Keys are rows unless `key_rows` maps each key to its row (an index extended over time).
    """
    k = min(k, len(index))
    found = index.search(np.ascontiguousarray(queries, dtype=np.float32), k, threads=threads)
    keys = np.asarray(found.keys, dtype=np.int64).reshape(len(queries), -1)
    counts = np.asarray(found.counts).reshape(-1)
    mask = np.arange(keys.shape[1])[None, :] >= counts[:, None]
    keys = np.where(mask, -1, keys)
    if key_rows is None:
        return keys
    rows = np.where(keys >= 0, key_rows[np.clip(keys, 0, len(key_rows) - 1)], -1)
    if ((keys >= 0) & (rows < 0)).any():
        raise ValueError("the index returned keys of images no longer in the training set: rematerialise train_index")
    return rows


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact top-k found in its approximate top-k."""
    k = exact.shape[1]
    hits = [len(set(a[a >= 0].tolist()) & set(e.tolist())) for a, e in zip(approx[:, :k], exact)]
    return float(np.mean(hits) / k) if hits else 1.0
