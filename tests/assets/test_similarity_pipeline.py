"""The learned similarity in the pipeline, on colour images of 40 px (not Fashion-MNIST's 28 px grey): trained by
the similarity_model asset into GMV_HOME, its hash in metadata, reused while the training images are unchanged,
retrained when they change; near-copies find their sources."""

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from PIL import Image

from gmv_dagster.common.files import sha256_file
from gmv_dagster.evaluation.near_copies import near_copy, photo_crops
from gmv_dagster.runner import run_valuation

SOURCES = [0, 7, 15, 22, 31, 40, 47, 55]
LEARNED = {
    "resources": {"embedder": {"config": {"backbone": "similarity"}}},
    "ops": {
        "quality_calibration": {"config": {"reference_size": 80}},
        "similarity_model": {"config": {"steps": 120, "dim": 32}},
    },
}


def write_images(folder: Path, images, prefix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{prefix}{i:03d}.png")
    return folder


def similarity_metadata(result) -> dict:
    return {
        k: getattr(v, "value", v)
        for k, v in result.asset_materializations_for_node("similarity_model")[0].metadata.items()
    }


def test_a_learned_similarity_values_colour_images_and_is_reused_until_the_training_images_change(tmp_path, read):
    crops = photo_crops(80, size=40, seed=3)
    rng = np.random.default_rng(0)
    write_images(tmp_path / "train" / "photos", crops, "t")
    write_images(tmp_path / "generated" / "photos", [near_copy(crops[s], 0.5, rng) for s in SOURCES], "g")
    env = {"GMV_TRAIN_SOURCE": str(tmp_path / "train"), "GMV_GENERATED_SOURCE": str(tmp_path / "generated")}
    home, instance = tmp_path / "home", dg.DagsterInstance.ephemeral()

    first = run_valuation(home, instance, LEARNED, env=env)
    assert first.success
    meta = similarity_metadata(first)
    weights = Path(meta["weights_file"])
    assert weights.parent == home / "similarity" and weights.is_file()
    assert meta["weights_sha256"] == sha256_file(weights) and meta["reused"] is False
    assert meta["channels"] == 3 and meta["dim"] == 32 and meta["training/train_images"] == 80
    embeddings = read(home, "train_embeddings")
    [vectors] = (home / "vectors").glob("train_embeddings.*.npy")  # the vector store: one file, this version's
    assert np.load(vectors).shape == (embeddings.height, 32) and embeddings["embedder"][0].startswith("similarity|")
    top1 = read(home, "credits").filter(pl.col("rank") == 1).sort("gen_id")
    assert [t.split("/")[-1] for t in top1["train_id"]] == [f"t{s:03d}.png" for s in SOURCES]
    values, q = read(home, "training_values"), read(home, "quality_scores")
    assert values["value"].sum() == pytest.approx(q["q"].sum(), rel=1e-9)

    again = run_valuation(home, instance, LEARNED, env=env)
    assert again.success
    reused = similarity_metadata(again)
    assert reused["reused"] is True and reused["weights_sha256"] == meta["weights_sha256"]

    Image.fromarray(crops[0][::-1]).save(tmp_path / "train" / "photos" / "t999.png")  # one more training image
    changed = run_valuation(home, instance, LEARNED, env=env)
    assert changed.success
    retrained = similarity_metadata(changed)
    assert retrained["reused"] is False and retrained["weights_file"] != meta["weights_file"]
    assert retrained["training/train_images"] == 81 and weights.is_file()  # the old file stays (older runs cite it)


def test_the_similarity_backbone_without_its_trained_weights_says_what_to_materialise():
    from gmv_dagster.common.tensors import WeightsNotFoundError
    from gmv_dagster.resources import EmbedderResource

    with pytest.raises(WeightsNotFoundError, match="materialise the similarity_model asset"):
        EmbedderResource(backbone="similarity").load(None)
