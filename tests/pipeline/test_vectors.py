"""The training vectors' store: files written a chunk at a time and renamed when whole, refused when damaged, files
superseded by the stored version removed (never a newer one, nor another name's); and the plan that says where a
reused vector comes from."""

import os
import time

import numpy as np
import polars as pl
import pytest

from gmv_dagster.pipeline.shards import sibling_keys
from gmv_dagster.pipeline.vectors import (
    finite_rows,
    open_vectors,
    remove_superseded,
    reuse_plan,
    vectors_path,
    write_vectors,
)


def test_vectors_are_written_a_chunk_at_a_time_and_memory_mapped(tmp_path):
    whole = np.random.default_rng(0).normal(size=(23, 5)).astype(np.float32)
    asked = []

    def fill(start, stop):
        asked.append((start, stop))
        return whole[start:stop]

    path = write_vectors(vectors_path(tmp_path, "train_embeddings", "v1"), 23, 5, fill, chunk=10)
    assert path.name == "train_embeddings.v1.npy" and asked == [(0, 10), (10, 20), (20, 23)]
    mapped = open_vectors(path, 23, 5)
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, whole)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_embeddings.v1.npy"]


def test_a_failed_write_leaves_neither_a_file_nor_a_temporary_one(tmp_path):
    def fill(start, stop):
        if start >= 10:
            raise RuntimeError("killed")
        return np.zeros((stop - start, 3), np.float32)

    with pytest.raises(RuntimeError, match="killed"):
        write_vectors(vectors_path(tmp_path, "train_embeddings", "v2"), 30, 3, fill, chunk=10)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_or_misshapen_file_is_refused_naming_what_writes_it(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"train_embeddings\.v3\.npy is missing or unreadable .*materialise "
        r"train_embeddings",
    ):
        open_vectors(vectors_path(tmp_path, "train_embeddings", "v3"), 4)
    np.save(tmp_path / "x.npy", np.zeros((4, 3), np.float64))
    with pytest.raises(ValueError, match=r"holds float64 \(4, 3\), not float32 \(4, 3\): materialise train_embeddings"):
        open_vectors(tmp_path / "x.npy", 4, 3)
    np.save(tmp_path / "y.npy", np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match=r"holds float32 \(5, 3\), not float32 \(4, d\)"):
        open_vectors(tmp_path / "y.npy", 4)


def test_superseded_files_go_per_shard_and_another_layouts_when_older_than_every_stored_file(tmp_path):
    ages = {
        "train_embeddings@0-of-2.v1.npy": 30,
        "train_embeddings@0-of-2.v0.tmp7-ab.npy": 25,
        "train_embeddings@0-of-2.v2.npy": 20,
        "train_embeddings@0-of-2.v3.npy": 10,
        "train_embeddings@0-of-2.v4.tmp9-cd.npy": 5,
        "train_embeddings@1-of-2.v5.npy": 40,
        "train_embeddings@1-of-2.v6.npy": 45,
        "train_embeddings@1-of-2.v7.npy": 1,
        "train_embeddings.v8.npy": 60,
        "train_embeddings@0-of-3.v9.npy": 50,
        "train_embeddings@2-of-3.v9.npy": 2,
        "train_vectors_other.v1.npy": 90,
    }
    now = time.time()
    for name, age in ages.items():
        np.save(tmp_path / name, np.zeros((1, 1), np.float32))
        os.utime(tmp_path / name, (now - age, now - age))
    live = {
        "train_embeddings@0-of-2": tmp_path / "train_embeddings@0-of-2.v2.npy",
        "train_embeddings@1-of-2": tmp_path / "train_embeddings@1-of-2.v5.npy",
    }
    removed = remove_superseded(tmp_path, "train_embeddings", live)
    # shard 0: v2 is stored; v1 and a killed write before it go, v3 (a concurrent run's, uncommitted) and a write in
    # progress stay. Shard 1's stored file is older than shard 0's and stays (each shard against its own); its v6 is
    # superseded, its v7 newer. Files of no stored version (another layout's) go when older than every stored file
    # (v8, and 0-of-3's v9 at 50 s), not when newer (2-of-3's, being written); another name's file is not touched.
    gone = {
        "train_embeddings@0-of-2.v1.npy",
        "train_embeddings@0-of-2.v0.tmp7-ab.npy",
        "train_embeddings@1-of-2.v6.npy",
        "train_embeddings.v8.npy",
        "train_embeddings@0-of-3.v9.npy",
    }
    assert sorted(p.name for p in removed) == sorted(gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(ages) - gone)
    assert remove_superseded(tmp_path, "train_embeddings", {}) == []
    assert remove_superseded(tmp_path, "train_embeddings", {"train_embeddings": tmp_path / "gone.npy"}) == []


def test_a_first_sharded_run_keeps_its_shards_uncommitted_files_when_another_shard_committed_first(tmp_path):
    """The race a two-worker Celery run met: shard 1 committed while shard 0, whose file was written earlier, was
    still cleaning up; without its layout shard 0 took its own file for another layout's and deleted it."""
    ages = {
        "train_embeddings@0-of-3.v1.npy": 30,  # written first, not yet committed
        "train_embeddings@1-of-3.v2.npy": 20,  # committed: the only stored version
        "train_embeddings@2-of-3.v3.npy": 25,  # not yet committed
        "train_embeddings@0-of-2.v4.npy": 40,  # another layout's, older than every stored file
    }
    now = time.time()
    for name, age in ages.items():
        np.save(tmp_path / name, np.zeros((1, 1), np.float32))
        os.utime(tmp_path / name, (now - age, now - age))
    live = {"train_embeddings@1-of-3": tmp_path / "train_embeddings@1-of-3.v2.npy"}
    layout = [f"train_embeddings@{k}" for k in sibling_keys("0-of-3")]
    removed = remove_superseded(tmp_path, "train_embeddings", live, layout)
    assert [p.name for p in removed] == ["train_embeddings@0-of-2.v4.npy"]
    # Without the layout the two uncommitted shards' files would go with it.
    assert sorted(p.name for p in remove_superseded(tmp_path, "train_embeddings", live)) == [
        "train_embeddings@0-of-3.v1.npy",
        "train_embeddings@2-of-3.v3.npy",
    ]


def test_finite_rows_reads_block_by_block():
    vectors = np.ones((10, 2), np.float32)
    vectors[[3, 9], 1] = [np.nan, np.inf]
    assert np.flatnonzero(~finite_rows(vectors, block=4)).tolist() == [3, 9]


def test_a_reuse_plan_takes_each_vector_from_the_first_source_with_the_same_image_and_embedder():
    rows = pl.DataFrame({"id": ["a", "b", "c", "d"], "content_hash": ["1", "2", "3", "4"], "embedder": ["e"] * 4})
    first = pl.DataFrame({"id": ["x", "b", "c"], "content_hash": ["9", "2", "3x"], "embedder": ["e", "e", "e"]})
    second = pl.DataFrame(
        {"id": ["c", "b", "a", "d"], "content_hash": ["3", "2", "1", "4"], "embedder": ["e", "e", "e", "other"]}
    )
    plan = reuse_plan(rows, [(first, None), (second, None)])
    # a: second source row 2; b: first source row 1 (first wins); c: changed in the first, found in the second;
    # d: another embedder's vector is not reused
    assert plan.rows() == [(1, 2), (0, 1), (1, 0), (-1, -1)]
    assert reuse_plan(rows, []).rows() == [(-1, -1)] * 4
