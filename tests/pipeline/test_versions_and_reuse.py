"""Content versions of tables, and the reuse of stored embeddings."""

import polars as pl

from gmv_dagster.pipeline.vectors import (
    in_manifest_order,
    reusable_embeddings,
    still_to_embed,
)
from gmv_dagster.pipeline.versions import frame_version


def test_frame_version_follows_content_only():
    df = pl.DataFrame({"id": ["a", "b"], "x": [1.0, 2.0], "v": [[1.0, 2.0], [3.0, 4.0]]})
    assert frame_version(df) == frame_version(df.clone())
    assert frame_version(df) != frame_version(df.with_columns(x=pl.Series([1.0, 2.0000001])))
    assert frame_version(df) != frame_version(df.reverse())
    assert frame_version(df) != frame_version(df.rename({"x": "y"}))
    assert frame_version(df.with_columns(id=pl.Series(["a", None]))) != frame_version(
        df.with_columns(id=pl.Series(["a", ""]))
    )


def test_embeddings_are_reused_only_for_the_same_image_and_embedder():
    manifest = pl.DataFrame({"id": ["a", "b", "c"], "content_hash": ["ha", "hb2", "hc"], "uri": ["", "", ""]})
    previous = pl.DataFrame(
        {
            "id": ["a", "b", "z"],
            "content_hash": ["ha", "hb", "hz"],
            "embedder": ["f1"] * 3,
            "embedding": [[1.0], [2.0], [3.0]],
        }
    )
    reused = reusable_embeddings(previous, manifest, "f1")
    assert reused["id"].to_list() == ["a"]  # b changed, z is gone
    assert reusable_embeddings(previous, manifest, "f2").is_empty()
    assert reusable_embeddings(None, manifest, "f1").is_empty()
    todo = still_to_embed(manifest, reused)
    assert todo["id"].to_list() == ["b", "c"]
    fresh = pl.DataFrame(
        {"id": ["c", "b"], "content_hash": ["hc", "hb2"], "embedder": ["f1"] * 2, "embedding": [[5.0], [4.0]]}
    )
    assert in_manifest_order(manifest, reused, fresh)["embedding"].to_list() == [[1.0], [4.0], [5.0]]
