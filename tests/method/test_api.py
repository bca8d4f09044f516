"""The method end to end on data with a known answer."""

import numpy as np
import polars as pl
import pytest

from gmv_dagster.method import (
    MatchParams,
    MethodSettings,
    ValuationConfig,
    value_training_set,
)

CFG = ValuationConfig(backbone="pixels", quality_metric="none")


def test_source_is_top1_and_the_sources_are_the_most_valuable(known_answer, tmp_path):
    train, labels, gen, gen_labels, sources = known_answer
    # 36 images in 3 shape classes: k = 3 keeps a neighbourhood inside its class, as k = 10 does in real data
    # sets, so the temperature fitted to it (d_k - d_1) is the within-class scale.
    cfg = ValuationConfig(backbone="pixels", quality_metric="none", method=MethodSettings(MatchParams(k=3)))
    result = value_training_set(train, gen, cfg, train_labels=labels, work_dir=tmp_path)
    top1 = result.credits.filter(pl.col("rank") == 1).sort("gen_id")
    assert top1["train_id"].to_list() == [f"train:{s:06d}" for s in sources]
    # (how much of its credit a near-copy takes under the fitted temperature: tests/method/test_temperature.py)
    # the sources are the most valuable training images
    assert set(result.values.head(len(sources))["train_id"]) == {f"train:{s:06d}" for s in sources}
    assert result.values["value"].sum() == pytest.approx(len(gen))
    assert result.attribution("generated:000000")["train_id"][0] == f"train:{sources[0]:06d}"


def test_the_default_learned_similarity_finds_every_source_and_repeats_exactly(known_answer, tmp_path):
    train, labels, gen, gen_labels, sources = known_answer
    default = ValuationConfig(quality_metric="none")
    assert default.backbone == "similarity"
    a = value_training_set(train, gen, default, work_dir=tmp_path)  # trains the similarity on `train` first
    top1 = a.credits.filter(pl.col("rank") == 1).sort("gen_id")
    assert top1["train_id"].to_list() == [f"train:{s:06d}" for s in sources]
    b = value_training_set(train, gen, default, work_dir=tmp_path)  # same seed: same weights, same values
    assert a.values.equals(b.values) and a.temperature == b.temperature


def test_hnsw_and_exact_give_the_same_values_on_small_data(known_answer, tmp_path):
    train, labels, gen, *_ = known_answer
    exact = value_training_set(train, gen, CFG, work_dir=tmp_path)
    ann = value_training_set(
        train,
        gen,
        ValuationConfig(
            backbone="pixels", quality_metric="none", method=MethodSettings(MatchParams(index_mode="hnsw"))
        ),
        work_dir=tmp_path,
    )
    assert exact.values.equals(ann.values)


def test_folders_and_arrays_give_each_training_image_the_same_value(known_answer, image_folders, tmp_path):
    """Training image i is `train:<i>` given as an array and `<label>/t<i>.png` in its folder (conftest.write_folder):
    joined on that id, every image has the same value and count of generated images either way (not the same rank:
    ties among zero values are broken by id, and the ids sort differently)."""
    train, labels, gen, *_ = known_answer
    from_arrays = value_training_set(train, gen, CFG, work_dir=tmp_path)
    from_folders = value_training_set(*image_folders, CFG, work_dir=tmp_path)
    folder_id = pl.DataFrame(
        {
            "train_id": [f"train:{i:06d}" for i in range(len(train))],
            "folder_id": [f"{label}/t{i:03d}.png" for i, label in enumerate(labels)],
        }
    )
    assert sorted(from_folders.values["train_id"]) == sorted(folder_id["folder_id"])
    joined = from_arrays.values.join(folder_id, on="train_id", how="full", coalesce=True).join(
        from_folders.values, left_on="folder_id", right_on="train_id", how="full", suffix="_folder"
    )
    assert joined.height == len(train) and joined.null_count().sum_horizontal().item() == 0
    np.testing.assert_allclose(joined["value_folder"], joined["value"], rtol=0, atol=1e-12)
    assert joined["n_generated_folder"].to_list() == joined["n_generated"].to_list()


def test_l2_rerank_keeps_the_source_first(known_answer, tmp_path):
    train, labels, gen, _, sources = known_answer
    result = value_training_set(
        train, gen, ValuationConfig(backbone="pixels", quality_metric="none", rerank="l2"), work_dir=tmp_path
    )
    top1 = result.credits.filter(pl.col("rank") == 1).sort("gen_id")["train_id"].to_list()
    assert top1 == [f"train:{s:06d}" for s in sources]


def test_empty_generated_set_is_refused(known_answer, tmp_path):
    train, *_ = known_answer
    with pytest.raises(Exception, match="holds no images|empty"):
        value_training_set(train, np.zeros((0, 24, 24), np.uint8), CFG, work_dir=tmp_path)
