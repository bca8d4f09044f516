"""Pieces of incremental revaluation: content versions, batches, reuse of embeddings, index plans."""

import numpy as np
import polars as pl
import pytest

from gmv_dagster.valuation.batches import batch_manifest, is_batch_key, scan_inbox, source_batch_key
from gmv_dagster.valuation.incremental import (
    in_manifest_order, index_plan, reusable_embeddings, rows_of_keys, still_to_embed,
)
from gmv_dagster.valuation.images import SourceError
from gmv_dagster.valuation.search import HnswParams, build_hnsw, hnsw_search, update_hnsw
from gmv_dagster.valuation.versions import frame_version


def test_frame_version_follows_content_only():
    df = pl.DataFrame({"id": ["a", "b"], "x": [1.0, 2.0], "v": [[1.0, 2.0], [3.0, 4.0]]})
    assert frame_version(df) == frame_version(df.clone())
    assert frame_version(df) != frame_version(df.with_columns(x=pl.Series([1.0, 2.0000001])))
    assert frame_version(df) != frame_version(df.reverse())
    assert frame_version(df) != frame_version(df.rename({"x": "y"}))
    assert frame_version(df.with_columns(id=pl.Series(["a", None]))) != frame_version(df.with_columns(id=pl.Series(["a", ""])))


def test_batch_keys_and_the_inbox(tmp_path):
    assert is_batch_key("2026-11-29_run.3") and not is_batch_key("bad name") and not is_batch_key(".hidden")
    assert source_batch_key("/data/my gen set/") == "my_gen_set" and source_batch_key("/x/samples.npz") == "samples"
    inbox = tmp_path / "inbox"
    for name, marker in (("b1", True), ("b2", False), ("no good", True)):
        (inbox / name).mkdir(parents=True)
        if marker:
            (inbox / name / "_COMPLETE").touch()
    ready, waiting = scan_inbox(inbox)
    assert ready == ["b1"] and set(waiting) == {"b2", "no good"} and "_COMPLETE" in waiting["b2"]
    assert scan_inbox(tmp_path / "missing") == ([], {})


def test_batch_manifest_prefixes_ids_with_the_batch(image_folders):
    df = batch_manifest("b7", image_folders[1]).manifest
    assert df["id"][0] == "b7/bar/g000.png" and set(df["batch"]) == {"b7"}
    with pytest.raises(SourceError, match="neither a folder"):
        batch_manifest("b8", image_folders[1] / "nope")


def test_embeddings_are_reused_only_for_the_same_image_and_embedder():
    manifest = pl.DataFrame({"id": ["a", "b", "c"], "content_hash": ["ha", "hb2", "hc"], "uri": ["", "", ""]})
    previous = pl.DataFrame({"id": ["a", "b", "z"], "content_hash": ["ha", "hb", "hz"], "embedder": ["f1"] * 3,
                             "embedding": [[1.0], [2.0], [3.0]]})
    reused = reusable_embeddings(previous, manifest, "f1")
    assert reused["id"].to_list() == ["a"]  # b changed, z is gone
    assert reusable_embeddings(previous, manifest, "f2").is_empty()
    assert reusable_embeddings(None, manifest, "f1").is_empty()
    todo = still_to_embed(manifest, reused)
    assert todo["id"].to_list() == ["b", "c"]
    fresh = pl.DataFrame({"id": ["c", "b"], "content_hash": ["hc", "hb2"], "embedder": ["f1"] * 2,
                          "embedding": [[5.0], [4.0]]})
    assert in_manifest_order(manifest, reused, fresh)["embedding"].to_list() == [[1.0], [4.0], [5.0]]


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
