"""Readers of the vector store take the file their stored version names, and refuse rows that are not that version's
(another run wrote the table between reading the rows and reading the version)."""

import duckdb
import numpy as np
import polars as pl
import pytest

from gmv_dagster.pipeline.vectors import write_vectors
from gmv_dagster.pipeline.versions import embeddings_version
from gmv_dagster.resources import GmvHome


def _store(home: GmvHome, rows: pl.DataFrame, vectors: np.ndarray, shard: str | None = None) -> str:
    """What train_embeddings leaves: the vectors file of the rows' version, and that version stored in DuckDB."""
    version = embeddings_version(rows)
    write_vectors(home.vector_store.file(shard, version), len(vectors), vectors.shape[1], lambda a, b: vectors[a:b], 4)
    with duckdb.connect(str(home.database)) as con:
        con.execute(
            "CREATE TABLE IF NOT EXISTS gmv_content_versions (table_name VARCHAR, partition_key VARCHAR, "
            "content_version VARCHAR)"
        )
        con.execute("INSERT INTO gmv_content_versions VALUES ('train_embeddings', ?, ?)", [shard or "", version])
    return version


def _rows(ids: list[str], shard: str | None = None) -> pl.DataFrame:
    df = pl.DataFrame(
        {
            "id": ids,
            "content_hash": [f"h{i}" for i in ids],
            "embedder": ["e"] * len(ids),
            "vector_row": list(range(len(ids))),
        }
    )
    return df if shard is None else df.with_columns(shard=pl.lit(shard))


def test_readers_map_each_shards_file_and_refuse_rows_of_another_version(tmp_path):
    home = GmvHome(path=str(tmp_path))
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    a, b = _rows(list("abcde"), "0-of-2"), _rows(list("fghi"), "1-of-2")
    _store(home, a.drop("vector_row", "shard"), first, "0-of-2")
    _store(home, b.drop("vector_row", "shard"), second, "1-of-2")
    both = pl.concat([a, b])
    assert np.array_equal(np.asarray(home.vector_store.train_vectors(both)), np.concatenate([first, second]))
    assert [(s.key, s.rows.start, s.rows.stop) for s in home.vector_store.shards(both)] == [
        ("0-of-2", 0, 5),
        ("1-of-2", 5, 9),
    ]
    # ids only (matches' narrow read): the file of the stored version, its rows checked by vector_row
    assert np.array_equal(
        np.asarray(home.vector_store.train_vectors(both.select("id", "vector_row", "shard"))),
        np.concatenate([first, second]),
    )
    changed = pl.concat([a.with_columns(content_hash=pl.lit("new")), b])  # rows of a version not stored
    with pytest.raises(ValueError, match=r"train_embeddings shard 0-of-2 changed while it was read"):
        home.vector_store.train_vectors(changed)
    shuffled = pl.concat([a.reverse(), b])
    with pytest.raises(ValueError, match=r"shard 0-of-2 rows are not in the order of their vectors file"):
        home.vector_store.train_vectors(shuffled)
