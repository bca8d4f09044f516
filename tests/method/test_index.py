"""The index over training embeddings: plans that keep keys, and an extended HNSW index found through them."""

import numpy as np
import polars as pl

from gmv_dagster.method.index import (
    index_plan,
    rows_of_keys,
)
from gmv_dagster.method.search import HnswParams, build_hnsw, hnsw_search, update_hnsw


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
