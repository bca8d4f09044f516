"""The asset checks fail on the bad inputs they guard against, and name what is wrong."""

import numpy as np
import polars as pl

from gmv_dagster.assets.valuation.checks import (
    credits_name_known_images,
    generated_embeddings_finite,
    quality_in_unit_interval,
)
from gmv_dagster.pipeline.vectors import embedding_frame
from gmv_dagster.resources import EmbedderResource, GmvHome


def test_embeddings_check_flags_non_finite_rows_and_a_wrong_dimension(tmp_path):
    embedder = EmbedderResource(backbone="pixels")  # 32 px: 1024 dimensions
    home = GmvHome(path=str(tmp_path))
    good = embedding_frame(pl.DataFrame({"id": ["a", "b"]}), np.ones((2, 1024), np.float32))
    assert generated_embeddings_finite(generated_embeddings=good, embedder=embedder, gmv_home=home).passed
    bad = np.ones((2, 1024), np.float32)
    bad[1, 5] = np.nan
    result = generated_embeddings_finite(
        generated_embeddings=embedding_frame(pl.DataFrame({"id": ["a", "b"]}), bad),
        embedder=embedder,
        gmv_home=home,
    )
    assert not result.passed and result.metadata["first_non_finite_ids"].value == "b"
    short = embedding_frame(pl.DataFrame({"id": ["a"]}), np.ones((1, 16), np.float32))
    result = generated_embeddings_finite(generated_embeddings=short, embedder=embedder, gmv_home=home)
    assert not result.passed and result.metadata["dim"].value == 16


def test_quality_check_flags_q_outside_the_unit_interval():
    ok = pl.DataFrame({"gen_id": ["g0", "g1"], "raw_score": [1.0, 2.0], "q": [0.0, 1.0], "batch": ["b1", "b1"]})
    assert quality_in_unit_interval(quality_scores=ok).passed
    bad = ok.with_columns(q=pl.Series([1.5, float("nan")]))
    result = quality_in_unit_interval(quality_scores=bad)
    assert not result.passed and result.metadata["out_of_range"].value == 2


def test_credit_check_flags_unknown_training_and_generated_ids():
    train = pl.DataFrame({"id": ["t0", "t1"]})
    gen = pl.DataFrame({"id": ["g0"]})
    credits = pl.DataFrame({"gen_id": ["g0", "g0"], "train_id": ["t0", "t1"], "credit": [0.5, 0.5]})
    assert credits_name_known_images(credits=credits, training_images=train, generated_images=gen).passed
    stale = credits.with_columns(train_id=pl.Series(["t0", "t9"]))
    result = credits_name_known_images(credits=stale, training_images=train, generated_images=gen)
    assert (
        not result.passed
        and result.metadata["unknown_train_ids"].value == 1
        and "t9" in result.metadata["examples"].value
    )
