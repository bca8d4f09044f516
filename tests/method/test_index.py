"""The index over training embeddings: plans that keep keys, an extended HNSW index found through them, and the saved
vectors that matching memory-maps."""

import numpy as np
import polars as pl
import pytest

from gmv_dagster.method.index import (
    build_or_extend,
    index_plan,
    index_spec,
    open_index,
    rows_of_keys,
)
from gmv_dagster.method.matching import (
    IndexShard,
    MatchParams,
    ShardVectors,
    search_shards,
    shard_vectors,
)
from gmv_dagster.method.search import (
    HnswParams,
    build_hnsw,
    exact_topk,
    hnsw_search,
    update_hnsw,
)


def test_an_index_plan_keeps_keys_removes_the_gone_and_adds_the_new():
    first = index_plan(None, pl.DataFrame({"id": ["a", "b", "c"], "content_hash": ["1", "2", "3"]}))
    assert first.keys["key"].to_list() == [0, 1, 2] and first.add_ids == ["a", "b", "c"]
    current = pl.DataFrame({"id": ["a", "c", "b", "d"], "content_hash": ["1", "3x", "2", "4"]})
    plan = index_plan(first.keys, current)
    assert plan.remove_keys.tolist() == [2]  # c changed
    assert plan.add_ids == ["c", "d"] and plan.add_keys.tolist() == [3, 4]  # keys never reused
    assert dict(zip(plan.keys["id"], plan.keys["key"])) == {"a": 0, "b": 1, "c": 3, "d": 4}
    assert rows_of_keys(plan.keys, current["id"]).tolist() == [0, 2, -1, 1, 3]
    assert index_plan(plan.keys, current).unchanged


def test_an_extended_hnsw_index_finds_rows_through_its_keys():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    params = HnswParams(metric="l2sq", dtype="f32")
    first = index_plan(None, pl.DataFrame({"id": [f"v{i}" for i in range(50)], "content_hash": ["h"] * 50}))
    index = build_hnsw(vectors[:50], params)
    # drop v0, add v50..v59, in a new row order
    ids = [f"v{i}" for i in range(59, 0, -1)]
    current = pl.DataFrame({"id": ids, "content_hash": ["h"] * len(ids)})
    plan = index_plan(first.keys, current)
    key_rows = rows_of_keys(plan.keys, current["id"])
    matrix = vectors[[int(i[1:]) for i in ids]]
    update_hnsw(index, plan.add_keys, matrix[key_rows[plan.add_keys.astype(np.int64)]], plan.remove_keys)
    found = hnsw_search(index, matrix, 1, key_rows=key_rows)
    assert (found[:, 0] == np.arange(len(ids))).all()  # every vector finds its own row


def _images(n: int) -> pl.DataFrame:
    return pl.DataFrame({"id": [f"v{i}" for i in range(n)], "content_hash": ["h"] * n})


def test_an_opened_index_searches_and_rescores_against_its_memory_mapped_vectors(tmp_path):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(40, 6)).astype(np.float32)
    np.save(tmp_path / "vectors.npy", vectors)
    mapped = np.load(tmp_path / "vectors.npy", mmap_mode="r")
    spec = index_spec(
        MatchParams(index_mode="hnsw", metric="l2sq"), HnswParams(metric="l2sq", dtype="f32"), mapped, "emb", "v1"
    )
    build = build_or_extend(tmp_path / "index", spec, mapped, _images(40))
    assert build.shard.vectors is mapped
    _, shard = open_index(tmp_path / "index", _images(40)["id"], "v1", mapped)
    queries = rng.normal(size=(7, 6)).astype(np.float32)
    params = MatchParams(k=5, candidates=10, metric="l2sq")
    # the matrix argument is not read where a shard carries its vectors
    from_file = search_shards(np.full((40, 6), np.nan, np.float32), queries, params, [shard])
    in_memory = search_shards(vectors, queries, params, [IndexShard(0, 40, shard.index, shard.key_rows)])
    assert np.array_equal(from_file[0], in_memory[0]) and np.array_equal(from_file[1], in_memory[1])
    with pytest.raises(ValueError, match=r"made from other training embeddings .*rematerialise train_index"):
        open_index(tmp_path / "index", _images(40)["id"], "v2", mapped)


def test_shard_vectors_read_rows_across_shards_as_one_matrix(tmp_path):
    whole = np.random.default_rng(4).normal(size=(50, 3)).astype(np.float32)
    shards = []
    for start, stop in [(0, 20), (20, 35), (35, 50)]:
        np.save(tmp_path / f"{start}.npy", whole[start:stop])
        shards.append(IndexShard(start, stop, vectors=np.load(tmp_path / f"{start}.npy", mmap_mode="r")))
    joined = shard_vectors(shards)
    assert len(joined) == 50 and joined.shape == (50, 3)
    rows = np.array([[49, 0, 20], [19, 35, 34]])
    assert np.array_equal(joined[rows], whole[rows])  # a 2-D gather, as the re-score asks
    assert np.array_equal(joined[15:40], whole[15:40]) and np.array_equal(joined[-1:], whole[-1:])
    assert np.array_equal(np.asarray(joined), whole)
    with pytest.raises(IndexError, match="out of range 0..49"):
        joined[np.array([50])]
    # exact search and the temperature fit read it as they read the matrix
    assert np.array_equal(
        exact_topk(joined, whole[:5], 4, "l2sq", train_block=7)[0], exact_topk(whole, whole[:5], 4, "l2sq")[0]
    )
    assert shard_vectors(shards[:1]) is shards[0].vectors
    with pytest.raises(ValueError, match="consecutively from row 0"):
        ShardVectors(shards[1:])
    with pytest.raises(TypeError, match="a slice or integer row indices, got bool"):
        joined[np.ones(50, dtype=bool)]
    no_queries = exact_topk(joined, whole[:0], 4, "l2sq")
    assert no_queries[0].shape == (0, 4) and no_queries[1].shape == (0, 4)
