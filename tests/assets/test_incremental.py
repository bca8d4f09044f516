"""Incremental revaluation: a new batch, new training images and a new backbone, each against a full recomputation."""

import dagster as dg
import numpy as np
import polars as pl
from usearch.index import Index

from gmv_dagster.definitions import build_definitions
from gmv_dagster.resources import EmbedderResource
from gmv_dagster.runner import run_valuation

# Pipeline mechanics, not the embedder: pixels, so that no test trains a similarity it does not look at.
PIXELS = {"GMV_BACKBONE": "pixels"}

HNSW = {"resources": {"method": {"config": {"index_mode": "hnsw"}}}}


def materialisations(instance, asset, partition=None):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None),
        limit=100,
    ).records
    return len(records)


def latest(instance, asset):
    mat = instance.get_latest_materialization_event(dg.AssetKey(asset)).asset_materialization
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


def execute_requested(defs, instance, evaluation):
    """Launch what the automation asked for, grouped by partition, as the daemon would."""
    by_partition: dict = {}
    for subset in evaluation.results:
        if not subset.true_subset.size:
            continue
        key = subset.key
        partitions = (
            subset.true_subset.expensively_compute_partition_keys() if subset.true_subset.is_partitioned else {None}
        )
        for p in partitions:
            by_partition.setdefault(p, []).append(key)
    job = defs.resolve_implicit_global_asset_job_def()
    for partition, keys in sorted(by_partition.items(), key=lambda kv: kv[0] is None):
        assert job.execute_in_process(instance=instance, partition_key=partition, asset_selection=keys).success
    return by_partition


def test_an_inbox_batch_alone_gives_the_values_of_a_full_recomputation(tmp_path, image_folders, drop_batch, read):
    train_dir, gen_dir = image_folders
    inbox = tmp_path / "inbox"
    env = {**PIXELS, "GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir), "GMV_INBOX": str(inbox)}
    home = tmp_path / "incremental"
    defs = build_definitions(home, env)
    instance = dg.DagsterInstance.ephemeral()
    assert run_valuation(home, instance, env=env, defs=defs).success
    before = read(home, "training_values")
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor

    # A batch arrives: the sensor adds its partition and requests its run; automation sums the values.
    drop_batch(inbox, "b2", [2, 8, 30])
    sensor = defs.get_sensor_def("inbox_sensor")
    tick = sensor(dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources))
    for request in tick.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    [request] = tick.run_requests
    assert (
        defs.resolve_job_def("value_batch")
        .execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags)
        .success
    )
    evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    launched = execute_requested(defs, instance, evaluation)
    assert launched == {None: [dg.AssetKey("training_values")]}  # the sum only; no batch recomputed
    assert (
        dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=evaluation.cursor).total_requested == 0
    )
    # the first batch was computed once, never again
    assert materialisations(instance, "credits", "generated") == 1
    assert materialisations(instance, "quality_scores", "generated") == 1
    incremental = read(home, "training_values")
    assert not incremental.equals(before)
    assert latest(instance, "training_values")["n_batches"] == 2

    # The nightly rescan (refresh_sources) finds nothing new: automation has nothing to do.
    assert defs.resolve_job_def("refresh_sources").execute_in_process(instance=instance).success
    evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=evaluation.cursor)
    assert evaluation.total_requested == 0

    # The same two batches valued from scratch in a fresh home: equal, bit for bit.
    fresh = tmp_path / "fresh"
    assert run_valuation(fresh, dg.DagsterInstance.ephemeral(), env=env).success
    assert read(fresh, "training_values").equals(incremental)
    assert read(fresh, "credits").sort("gen_id", "rank").equals(read(home, "credits").sort("gen_id", "rank"))
    q = read(home, "quality_scores")
    assert np.isclose(incremental["value"].sum(), q["q"].sum(), rtol=1e-12)
    assert set(q["batch"]) == {"generated", "b2"} and q.height == 6 + 3


def test_new_training_images_extend_embeddings_and_index(tmp_path, image_folders, known_answer, read):
    train_dir, gen_dir = image_folders
    env = {**PIXELS, "GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir)}
    home = tmp_path / "incremental"
    instance = dg.DagsterInstance.ephemeral()
    assert run_valuation(home, instance, HNSW, env=env).success
    built = latest(instance, "train_index")
    # bf16 by default; the metadata names usearch's distance kernel for it on this CPU, as usearch reports it
    kernel = Index(ndim=built["dim"], metric="cos", dtype="bf16").hardware_acceleration
    assert (built["action"], built["dtype"], built["simd"]) == ("built", "bf16", kernel)
    assert run_valuation(home, instance, HNSW, env=env).success  # unchanged: nothing re-embedded, index kept
    assert latest(instance, "train_embeddings")["embedded"] == 0
    assert (latest(instance, "train_index")["action"], latest(instance, "train_index")["simd"]) == ("unchanged", kernel)

    # three new training images, one removed
    train, labels, *_ = known_answer
    for i, src in enumerate([1, 14, 22]):
        from PIL import Image

        Image.fromarray(np.flipud(train[src])).save(train_dir / labels[src] / f"new{i}.png")
    removed = sorted((train_dir / "bar").glob("t*.png"))[-1]
    removed.unlink()
    assert run_valuation(home, instance, HNSW, env=env).success
    embeddings = latest(instance, "train_embeddings")
    assert (embeddings["reused"], embeddings["embedded"]) == (35, 3)
    assert latest(instance, "train_index")["action"] == "extended: +3 -1"
    values = read(home, "training_values")
    assert values.height == 38 and f"bar/{removed.name}" not in values["train_id"].to_list()
    # the vector store keeps the stored version's file and this run's: the first version's is gone
    assert len(list((home / "vectors").glob("train_embeddings.*.npy"))) == 2

    fresh = tmp_path / "fresh"
    assert run_valuation(fresh, dg.DagsterInstance.ephemeral(), HNSW, env=env).success
    assert read(fresh, "training_values").equals(values)  # full recall on 38 vectors: same candidates

    # A new backbone configuration re-embeds everything and rebuilds the index.
    defs = build_definitions(home, env, embedder=EmbedderResource(backbone="pixels", image_size=16))
    assert run_valuation(home, instance, HNSW, env=env, defs=defs).success
    embeddings = latest(instance, "train_embeddings")
    assert (embeddings["reused"], embeddings["embedded"], embeddings["dim"]) == (0, 38, 256)
    assert latest(instance, "train_index")["action"] == "built"


def test_a_new_embedder_reembeds_every_batch_through_automation(tmp_path, image_folders, drop_batch):
    train_dir, gen_dir = image_folders
    inbox = tmp_path / "inbox"
    drop_batch(inbox, "b2", [2, 8])
    env = {**PIXELS, "GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir), "GMV_INBOX": str(inbox)}
    home = tmp_path / "home"
    instance = dg.DagsterInstance.ephemeral()
    assert run_valuation(home, instance, env=env).success
    cursor = dg.evaluate_automation_conditions(defs=build_definitions(home, env), instance=instance).cursor
    defs = build_definitions(home, env, embedder=EmbedderResource(backbone="pixels", image_size=16))
    assert defs.resolve_job_def("refresh_sources").execute_in_process(instance=instance).success
    evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    requested = {
        k.to_user_string(): evaluation.get_requested_partitions(k)
        for k in (dg.AssetKey("train_embeddings"), dg.AssetKey("generated_embeddings"))
    }
    assert requested == {"train_embeddings": {None}, "generated_embeddings": {"generated", "b2"}}


def test_a_home_from_before_the_vector_store_is_upgraded_without_embedding_again(tmp_path, image_folders, read):
    """A train_embeddings table that holds its vectors (the layout before GMV_HOME/vectors): the next run moves them
    to the store, embeds nothing, and every value stays the same."""
    import duckdb

    train_dir, gen_dir = image_folders
    env = {**PIXELS, "GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir)}
    home, instance = tmp_path / "home", dg.DagsterInstance.ephemeral()
    assert run_valuation(home, instance, env=env).success
    values = read(home, "training_values")
    [vectors_file] = (home / "vectors").glob("train_embeddings.*.npy")
    vectors = np.load(vectors_file)
    with duckdb.connect(str(home / "gmv.duckdb")) as con:  # the old layout: an embedding column, no vector_row
        old = con.execute("SELECT id, content_hash, embedder FROM train_embeddings ORDER BY rowid").pl()
        con.register(
            "old", old.with_columns(embedding=pl.Series(vectors.tolist(), dtype=pl.List(pl.Float32))).to_arrow()
        )
        con.execute("CREATE OR REPLACE TABLE train_embeddings AS SELECT * FROM old")
    vectors_file.unlink()

    assert run_valuation(home, instance, env=env).success
    assert (latest(instance, "train_embeddings")["reused"], latest(instance, "train_embeddings")["embedded"]) == (
        len(vectors),
        0,
    )
    assert np.array_equal(np.load(vectors_file), vectors)  # same version, same name, same vectors
    assert read(home, "training_values").equals(values)
