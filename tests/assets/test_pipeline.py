"""The whole graph materialised in-process into a DuckDB file under tmp_path, then read back."""

import dagster as dg
import numpy as np
import polars as pl
import pytest
from PIL import Image

from gmv_dagster.definitions import build_definitions
from gmv_dagster.method import ValuationConfig, value_training_set
from gmv_dagster.runner import run_valuation

FAST = {"ops": {"quality_calibration": {"config": {"reference_size": 36}}}}
# Where a test is about the pipeline's mechanics, not the embedder: no similarity to train.
PIXELS = {"GMV_BACKBONE": "pixels"}


def materialise(home, env, run_config=FAST, instance=None):
    return run_valuation(home, instance or dg.DagsterInstance.ephemeral(), run_config, env=env)


def failure_message(result) -> str:
    return "\n".join(e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure)


def test_definitions_load(asset_names):
    defs = build_definitions("/tmp/unused-gmv-home")
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert keys == asset_names
    valuation = defs.resolve_job_def("valuation").asset_layer.executable_asset_keys
    assert {k.to_user_string() for k in valuation} == {k for k in keys if not k.startswith(("method_", "criterion_"))}
    assert defs.resolve_job_def("criteria")


def test_user_folders_through_env_are_valued_like_the_api(tmp_path, image_folders, known_answer, read):
    train_dir, gen_dir = image_folders
    env = {"GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir)}
    home = tmp_path / "home"
    result = materialise(home, env)
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {
        name: True
        for name in (
            "train_embeddings_finite",
            "generated_embeddings_finite",
            "index_recall",
            "quality_in_unit_interval",
            "credits_name_known_images",
            "values_sum_to_quality",
        )
    }
    values_meta = result.asset_materializations_for_node("training_values")[0].metadata
    for key in ("histogram", "gallery"):
        assert values_meta[key].value.startswith("![") and "base64," in values_meta[key].value
    assert "base64," in result.asset_materializations_for_node("credits")[0].metadata["contributors"].value

    values, credits, q = read(home, "training_values"), read(home, "credits"), read(home, "quality_scores")
    assert values.height == 36 and credits.height == 6 * 10
    assert values["value"].sum() == pytest.approx(q["q"].sum(), rel=1e-9)
    # the default quality (matched_detail) records each image's departures from its matches: q = clip(1 - raw)
    assert q.select(pl.col("blur", "noise", "blocking").null_count()).row(0) == (0, 0, 0)
    np.testing.assert_array_equal(q["q"], np.clip(1 - q["raw_score"].to_numpy(), 0, 1))
    api = value_training_set(train_dir, gen_dir, ValuationConfig(quality_reference=36), work_dir=tmp_path)
    joined = values.join(api.values, on="train_id", suffix="_api")
    assert joined.height == 36
    np.testing.assert_allclose(joined["value"], joined["value_api"], rtol=1e-9, atol=1e-12)
    # the source of each near-copy is its top-1 match
    top1 = dict(credits.filter(pl.col("rank") == 1).select("gen_id", "train_id").iter_rows())
    sources = known_answer[4]
    assert {g.split("/")[-1]: t.split("/")[-1] for g, t in top1.items()} == {
        f"g{j:03d}.png": f"t{s:03d}.png" for j, s in enumerate(sources)
    }

    # a rerun reproduces ids and values exactly
    assert materialise(home, env).success
    assert read(home, "training_values").equals(values)


def test_credits_use_the_temperature_fitted_to_the_same_ranking(tmp_path, image_folders, read):
    train_dir, gen_dir = image_folders
    env = {**PIXELS, "GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir)}
    home = tmp_path / "home"
    assert materialise(home, env).success
    fit = read(home, "credit_temperature").row(0, named=True)
    api = value_training_set(
        train_dir, gen_dir, ValuationConfig(backbone="pixels", quality_reference=36), work_dir=tmp_path
    )
    assert fit["temperature"] == pytest.approx(api.temperature, rel=1e-12)
    assert fit["temperature"] == pytest.approx(fit["median_spread"] / 4, rel=1e-12)
    assert (fit["k"], fit["candidates"], fit["rerank"]) == (10, 50, "none")

    # one setting for every asset of a run: k = 5 in the method resource ranks the matches and fits tau alike
    other_k = {**FAST, "resources": {"method": {"config": {"k": 5}}}}
    result = materialise(home, env, other_k)
    assert result.success, failure_message(result)
    assert read(home, "credit_temperature").select("k", "candidates", "rerank").row(0) == (5, 50, "none")
    assert read(home, "credits").group_by("gen_id").len()["len"].to_list() == [5] * 6
    # a batch valued alone with other settings than the stored temperature's fit: refused, naming both and the fix
    batch = read(home, "generated_images")["batch"][0]
    result = run_valuation(home, dg.DagsterInstance.ephemeral(), FAST, env=env, batches=[batch])
    assert not result.success
    message = failure_message(result)
    assert "credit_temperature was fitted to another ranking than the method's settings (k 5 there, 10 now)" in message
    # an explicit temperature is used as given, and the metadata says where tau came from
    explicit = {**FAST, "resources": {"method": {"config": {"k": 5, "temperature": 0.02}}}}
    result = materialise(home, env, explicit)
    assert result.success, failure_message(result)
    meta = result.asset_materializations_for_node("credits")[0].metadata
    assert (meta["temperature"].value, meta["temperature_source"].value) == (0.02, "method")
    weights = read(home, "credits").filter(pl.col("rank") <= 2).sort("gen_id", "rank")
    first, second = weights["distance"].to_numpy().reshape(-1, 2).T
    ratio = weights["weight"].to_numpy().reshape(-1, 2).T
    np.testing.assert_allclose(ratio[1] / ratio[0], np.exp(-(second - first) / 0.02), rtol=1e-9)


def test_demo_on_a_small_fashion_mnist_subset(tmp_path, fashion_mnist_dir, read):
    home = tmp_path / "home"
    config = {
        "ops": {
            "training_images": {"config": {"demo_size": 400}},
            "demo_generator": {"config": {"epochs": 1, "n_samples": 20}},
            "quality_calibration": {"config": {"reference_size": 40}},
            "similarity_model": {"config": {"steps": 20}},  # the default backbone, trained briefly
        },
        "resources": {"method": {"config": {"index_mode": "hnsw"}}},
    }
    result = materialise(home, {"GMV_FASHION_MNIST_DIR": str(fashion_mnist_dir)}, config)
    assert result.success
    gen = read(home, "generated_images")
    assert gen.height == 20 and set(gen["label"]) <= set(read(home, "training_images")["label"])
    assert (home / "index" / "train_index.usearch").is_file()
    assert list((home / "checkpoints").glob("vae-*.pt"))
    index_meta = result.asset_materializations_for_node("train_index")[0].metadata
    assert index_meta["mode"].value == "hnsw" and index_meta["recall@10"].value >= 0.9
    assert index_meta["dim"].value == 128  # the learned similarity's compact embeddings
    values = read(home, "training_values")
    assert values["value"].sum() == pytest.approx(read(home, "quality_scores")["q"].sum())
    # the HNSW index is built the same way every time: a rerun gives identical values
    assert materialise(home, {"GMV_FASHION_MNIST_DIR": str(fashion_mnist_dir)}, config).success
    assert read(home, "training_values").equals(values)


def test_a_failed_run_leaves_the_last_good_tables(tmp_path, image_folders, read):
    train_dir, gen_dir = image_folders
    home = tmp_path / "home"
    env = {**PIXELS, "GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir)}
    assert materialise(home, env).success
    before = read(home, "training_values")
    bad = {**PIXELS, "GMV_TRAIN_SOURCE": str(tmp_path / "missing"), "GMV_GENERATED_SOURCE": str(gen_dir)}
    failed = materialise(home, bad)
    assert not failed.success and "neither a folder of images" in failure_message(failed)
    assert read(home, "training_values").equals(before)


def test_flips_match_mirror_images_to_their_sources_as_the_api_does(tmp_path, read):
    # Pictures a flip changes: noise with a bright bar at one of 8 columns; the generated images mirror 6 of them.
    rng = np.random.default_rng(3)
    train = rng.integers(0, 60, size=(36, 16, 16), dtype=np.uint8)
    for i in range(len(train)):
        train[i, 3:13, i % 8 : i % 8 + 3] = 255
    sources = [0, 5, 13, 20, 27, 33]
    mirrors = np.ascontiguousarray(train[sources][:, :, ::-1])
    train_dir, gen_dir = tmp_path / "train", tmp_path / "generated"
    for folder, images in ((train_dir, train), (gen_dir, mirrors)):
        folder.mkdir()
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{folder.name[0]}{i:03d}.png")
    env = {"GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir), **PIXELS}
    home = tmp_path / "home"

    def top1(run_config):
        result = materialise(home, env, run_config)
        assert result.success, failure_message(result)
        found = read(home, "matches", "gen_id, rank").filter(pl.col("rank") == 1)
        meta = result.asset_materializations_for_node("matches")[0].metadata
        return dict(zip(found["gen_id"], found["train_id"])), found["distance"].to_numpy(), meta

    plain, _, meta = top1({**FAST, "resources": {"method": {"config": {"flips": False}}}})
    assert meta["flips"].value is False
    training = read(home, "training_images", "id")
    ids = dict(zip(read(home, "generated_images", "id")["id"], [training["id"][s] for s in sources]))
    assert sum(plain[g] == t for g, t in ids.items()) < len(ids)  # the upright search misses some mirror images

    flipped, distance, meta = top1(FAST)  # the default: flips on
    assert flipped == ids
    np.testing.assert_allclose(distance, 0.0, atol=1e-6)  # each mirror image is its source, flipped back
    assert meta["flips"].value is True and meta["mirror_embed_seconds"].value >= 0

    config = ValuationConfig(backbone="pixels", quality_reference=36)  # flips on, the default
    api = value_training_set(train_dir, gen_dir, config, work_dir=tmp_path)
    api_top1 = api.credits.filter(pl.col("rank") == 1)
    # the pipeline names a generated image within its batch (here "generated/"), the api by its file alone
    assert dict(zip(api_top1["gen_id"], api_top1["train_id"])) == {
        g.removeprefix("generated/"): t for g, t in ids.items()
    }
