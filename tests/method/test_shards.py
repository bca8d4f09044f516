"""Shards of the training set: slices that cover it once, and an exact merge of per-shard candidates."""

import numpy as np
import pytest

from gmv_dagster.method.matching import (
    IndexShard,
    MatchParams,
    merge_candidates,
    search_shards,
)
from gmv_dagster.method.search import HnswParams, build_hnsw
from gmv_dagster.pipeline.shards import shard_keys, shard_slice


@pytest.mark.parametrize("n_shards", [1, 3, 12])
def test_shard_slices_cover_the_manifest_once_in_key_order(n_shards):
    keys = shard_keys(n_shards)
    assert keys == sorted(keys) and len(set(keys)) == n_shards
    for n_rows in (0, 5, 37):
        rows = np.concatenate([np.arange(n_rows)[shard_slice(n_rows, key)] for key in keys])
        assert rows.tolist() == list(range(n_rows))


@pytest.mark.parametrize("bad", ["3-of-3", "shard-1", "1-of-0", ""])
def test_a_key_that_is_not_a_shard_is_refused(bad):
    with pytest.raises(ValueError, match="not a training shard key"):
        shard_slice(10, bad)


def test_zero_shards_is_refused():
    with pytest.raises(ValueError, match=">= 1"):
        shard_keys(0)


@pytest.mark.parametrize("metric", ["cos", "l2sq"])
def test_sharded_exact_search_is_the_unsharded_search_row_for_row(metric):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(503, 16)).astype(np.float32)
    train[7] = train[400]  # a tie across shards: broken by training row, as unsharded
    queries = np.concatenate([rng.normal(size=(40, 16)), train[400:401]]).astype(np.float32)
    params = MatchParams(k=10, candidates=25, metric=metric)
    whole = search_shards(train, queries, params, [IndexShard(0, len(train))])
    cuts = [0, 100, 101, 350, 503]  # uneven, one shard of a single image
    sharded = search_shards(train, queries, params, [IndexShard(a, b) for a, b in zip(cuts, cuts[1:])])
    np.testing.assert_array_equal(sharded[0], whole[0])
    np.testing.assert_array_equal(sharded[1], whole[1])
    assert whole[0][-1, :2].tolist() == [7, 400]


def test_sharded_hnsw_finds_what_exact_finds_on_small_shards():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(300, 8)).astype(np.float32)
    queries = rng.normal(size=(30, 8)).astype(np.float32)
    params = MatchParams(k=5, candidates=20)
    shards = [IndexShard(a, b, build_hnsw(train[a:b], HnswParams())) for a, b in [(0, 150), (150, 300)]]
    exact = search_shards(train, queries, params, [IndexShard(0, 300)])
    np.testing.assert_array_equal(search_shards(train, queries, params, shards)[0], exact[0])


def test_merge_keeps_the_k_nearest_and_puts_padding_last():
    a = (np.array([[0, 2, -1]]), np.array([[0.1, 0.5, np.inf]]))
    b = (np.array([[10, 11]]), np.array([[0.05, 0.5]]))
    rows, dist = merge_candidates([a, b], 4)
    assert rows.tolist() == [[10, 0, 2, 11]] and dist.tolist() == [[0.05, 0.1, 0.5, 0.5]]
    assert merge_candidates([a], 5)[0].tolist() == [[0, 2, -1]]
