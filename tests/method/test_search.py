import numpy as np
import pytest

from gmv_dagster.method.index import load_index, save_index
from gmv_dagster.method.search import (
    HnswParams,
    build_hnsw,
    exact_topk,
    hnsw_search,
    recall_at_k,
    rescore,
)


def clustered(n, d=32, centres=20, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, d))
    return (c[rng.integers(0, centres, n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("metric", ["cos", "l2sq"])
def test_exact_topk_matches_brute_force_with_small_blocks(metric):
    train, queries = clustered(300), clustered(40, seed=1)
    idx, dist = exact_topk(train, queries, 7, metric, query_block=16, train_block=50)
    if metric == "cos":
        t = train / np.linalg.norm(train, axis=1, keepdims=True)
        q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        full = 1 - q.astype(np.float64) @ t.T
    else:
        full = ((queries[:, None, :].astype(np.float64) - train[None]) ** 2).sum(2)
    expected = np.argsort(full, axis=1, kind="stable")[:, :7]
    assert recall_at_k(idx, expected) == 1.0
    np.testing.assert_allclose(dist, np.take_along_axis(full, idx, 1), rtol=1e-4, atol=1e-4)
    assert (np.diff(dist, axis=1) >= 0).all()


def test_k_larger_than_n_returns_all_rows():
    idx, _ = exact_topk(clustered(5), clustered(2, seed=1), 10)
    assert idx.shape == (2, 5) and sorted(idx[0]) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
def test_hnsw_agrees_with_exact(tmp_path, dtype):
    train, queries = clustered(3000), clustered(200, seed=2)
    params = HnswParams(dtype=dtype)
    index = build_hnsw(train, params)
    exact, _ = exact_topk(train, queries, 10)
    assert recall_at_k(hnsw_search(index, queries, 10), exact) >= 0.95
    save_index(index, tmp_path / "i.usearch")
    restored = load_index(tmp_path / "i.usearch", params)
    np.testing.assert_array_equal(hnsw_search(restored, queries, 10), hnsw_search(index, queries, 10))
    viewed = load_index(tmp_path / "i.usearch", params, view=True)  # memory-mapped, as matches opens it
    np.testing.assert_array_equal(hnsw_search(viewed, queries, 50), hnsw_search(index, queries, 50))
    # After exact rescoring, the top-10 equals exact search wherever recall was complete.
    idx, _ = rescore(train, queries, hnsw_search(index, queries, 50), "cos")
    assert recall_at_k(idx[:, :10], exact) >= 0.98  # float32 vs float64 near-ties aside


@pytest.mark.parametrize("metric", ["cos", "l2sq"])
def test_rescore_is_exact_and_independent_of_its_block(metric):
    """The block only bounds memory: any block gives the same bits, and each distance is the float64 one."""
    train, queries = clustered(500), clustered(37, seed=3)
    candidates = np.random.default_rng(0).integers(0, len(train), (37, 20))
    candidates[0, 5] = -1  # a missing candidate (usearch's padding) sorts last
    rows, dist = rescore(train, queries, candidates, metric)
    for block in (1, 5, 128):
        other_rows, other_dist = rescore(train, queries, candidates, metric, block=block)
        np.testing.assert_array_equal(other_rows, rows)
        np.testing.assert_array_equal(other_dist, dist)
    t64, q64 = train.astype(np.float64), queries.astype(np.float64)
    if metric == "cos":
        t64, q64 = t64 / np.linalg.norm(t64, axis=1, keepdims=True), q64 / np.linalg.norm(q64, axis=1, keepdims=True)
        expected = 1.0 - q64 @ t64.T
    else:
        expected = ((q64[:, None, :] - t64[None]) ** 2).sum(-1)
    picked = np.take_along_axis(expected, np.where(rows < 0, 0, rows), axis=1)
    np.testing.assert_allclose(dist[rows >= 0], np.clip(picked, 0, None)[rows >= 0], rtol=1e-9, atol=1e-12)
    assert rows[0, -1] == -1 and np.isinf(dist[0, -1])
    assert (np.diff(dist[:, :-1], axis=1) >= 0).all()


def test_missing_index_file_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="rematerialise train_index"):
        load_index(tmp_path / "nope.usearch", HnswParams())


def test_invalid_index_params_are_refused():
    with pytest.raises(ValueError, match="dtype"):
        HnswParams(dtype="f64")
    with pytest.raises(ValueError, match="metric"):
        HnswParams(metric="hamming")
