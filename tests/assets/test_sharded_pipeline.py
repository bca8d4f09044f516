"""The training side split into static partitions gives the unsharded values, bit for bit."""

import shutil

import dagster as dg
import pytest

from gmv_dagster.definitions import build_definitions
from gmv_dagster.resources.storage import GmvHome
from gmv_dagster.runner import run_valuation

# Pipeline mechanics, not the embedder: pixels, so that no test trains a similarity it does not look at.
PIXELS = {"GMV_BACKBONE": "pixels"}

HNSW = {"resources": {"method": {"config": {"index_mode": "hnsw"}}}}


def materialisations(instance, asset):
    return instance.fetch_materializations(dg.AssetKey(asset), limit=100).records


@pytest.mark.parametrize("run_config", [{}, HNSW], ids=["exact", "hnsw"])
def test_three_shards_value_like_one(tmp_path, image_folders, run_config, read):
    train_dir, gen_dir = image_folders
    env = {**PIXELS, "GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir)}
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    assert run_valuation(whole, dg.DagsterInstance.ephemeral(), run_config, env=env).success
    instance = dg.DagsterInstance.ephemeral()
    assert run_valuation(sharded, instance, run_config, env={**env, "GMV_TRAIN_SHARDS": "3"}).success

    embeddings = read(sharded, "train_embeddings", "shard, rowid")
    assert embeddings["shard"].unique(maintain_order=True).to_list() == ["0-of-3", "1-of-3", "2-of-3"]
    assert embeddings["id"].to_list() == read(whole, "train_embeddings", "rowid")["id"].to_list()
    index_runs = materialisations(instance, "train_index")
    assert sorted(r.partition_key for r in index_runs) == ["0-of-3", "1-of-3", "2-of-3"]
    mode = "hnsw" if run_config else "exact"
    assert {r.asset_materialization.metadata["mode"].value for r in index_runs} == {mode}
    if mode == "hnsw":
        assert all(
            (sharded / "index" / key / "train_index.usearch").is_file() for key in ("0-of-3", "1-of-3", "2-of-3")
        )
    [match_run] = materialisations(instance, "matches")
    assert match_run.asset_materialization.metadata["shards"].value == 3

    order = "gen_id, rank"
    assert read(sharded, "matches", order).equals(read(whole, "matches", order))
    assert read(sharded, "training_values", "train_id").equals(read(whole, "training_values", "train_id"))


def test_a_new_training_image_reruns_every_shard_and_a_stale_shard_is_refused(tmp_path, image_folders):
    """A training image added after the shards were embedded: automation asks for every shard again, and
    matches, run before they are, names what to rematerialise."""
    train_dir, gen_dir = image_folders
    env = {**PIXELS, "GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir), "GMV_TRAIN_SHARDS": "2"}
    home = tmp_path / "home"
    instance = dg.DagsterInstance.ephemeral()
    defs = build_definitions(home, env)
    assert run_valuation(home, instance, env=env, defs=defs).success
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
    (train_dir / "bar" / "late.png").write_bytes(next((train_dir / "bar").glob("*.png")).read_bytes())
    assert defs.resolve_job_def("refresh_sources").execute_in_process(instance=instance).success
    evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    [embeddings] = [r.true_subset for r in evaluation.results if r.key == dg.AssetKey("train_embeddings")]
    assert set(embeddings.get_internal_value().get_partition_keys()) == {"0-of-2", "1-of-2"}

    result = defs.resolve_job_def("value_batch").execute_in_process(
        instance=instance, partition_key="generated", raise_on_error=False
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "materialise every shard of train_embeddings" in failure.event_specific_data.error.to_string()


def test_a_shard_run_checks_its_own_shard_while_another_is_unfinished(tmp_path, image_folders, read):
    """Shard runs run at once: shard 1's checks must not read shard 0, whose index may not be written yet
    (under Celery it was not, and shard 1's run failed)."""
    train_dir, gen_dir = image_folders
    env = {**PIXELS, "GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir), "GMV_TRAIN_SHARDS": "2"}
    home, instance = tmp_path / "home", dg.DagsterInstance.ephemeral()
    defs = build_definitions(home, env)
    assert defs.resolve_job_def("refresh_sources").execute_in_process(instance=instance).success
    train_shard = defs.resolve_job_def("train_shard")
    assert train_shard.execute_in_process(instance=instance, partition_key="0-of-2", run_config=HNSW).success
    shutil.rmtree(home / "index" / "0-of-2")  # shard 0's embeddings are stored, its index is not (yet)

    result = train_shard.execute_in_process(instance=instance, partition_key="1-of-2", run_config=HNSW)
    checks = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}
    assert checks["index_recall"].passed and checks["train_embeddings_finite"].passed
    n_shard_1 = read(home, "train_embeddings", "1").filter(shard="1-of-2").height
    assert 0 < n_shard_1 < read(home, "train_embeddings", "1").height
    assert checks["index_recall"].metadata["vectors"].value == n_shard_1  # judged on shard 1's rows only


def test_audit_names_each_shard_a_value_came_through(tmp_path, image_folders, monkeypatch, capsys, read):
    """`gmv audit` lists the shard of a training image (and every shard for a generated image), not whichever shard
    was materialised last."""
    from gmv_dagster.cli import main

    train_dir, gen_dir = image_folders
    env = {**PIXELS, "GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir), "GMV_TRAIN_SHARDS": "3"}
    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    dagster_home.mkdir()
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        assert run_valuation(home, instance, env=env).success
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    first = read(home, "train_embeddings", "rowid").filter(shard="0-of-3")["id"][0]
    last = read(home, "train_embeddings", "rowid").filter(shard="2-of-3")["id"][-1]

    assert main(["--home", str(home), "audit", "train", last]) == 0
    out = capsys.readouterr().out
    assert "training shard 2-of-3" in out
    assert "train_embeddings[2-of-3]" in out and "train_index[2-of-3]" in out and "[0-of-3]" not in out

    gen_id = read(home, "credits", "1").filter(train_id=first)["gen_id"][0]
    assert main(["--home", str(home), "audit", "generated", gen_id]) == 0
    lineage = [line.split()[0] for line in capsys.readouterr().out.splitlines() if " run " in line]
    assert [a for a in lineage if a.startswith("train_index")] == [f"train_index[{k}-of-3]" for k in range(3)]
    assert "credits[generated]" in lineage


def test_a_change_of_shard_layout_leaves_no_file_that_no_stored_version_names(tmp_path, image_folders, read):
    """Unsharded, then two shards: the unsharded vectors file is named by no stored version once the shards have
    written theirs, and goes with the next write; the values equal the unsharded run's."""
    train_dir, gen_dir = image_folders
    env = {**PIXELS, "GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir)}
    home, instance = tmp_path / "home", dg.DagsterInstance.ephemeral()
    assert run_valuation(home, instance, env=env).success
    [unsharded] = (home / "vectors").glob("train_embeddings.*.npy")
    values = read(home, "training_values", "train_id")
    sharded = {**env, "GMV_TRAIN_SHARDS": "2"}
    assert run_valuation(home, instance, env=sharded).success
    assert read(home, "training_values", "train_id").equals(values)
    (train_dir / "bar" / "late.png").write_bytes(next((train_dir / "bar").glob("*.png")).read_bytes())
    assert run_valuation(home, instance, env=sharded).success  # every shard written again
    files = sorted(p.name for p in (home / "vectors").glob("train_embeddings*.npy"))
    assert not unsharded.exists()
    # each shard's stored version's file; a shard written again also keeps the one it superseded until its next write
    named = {
        f"train_embeddings@{key}.{version}.npy"
        for key, version in GmvHome(path=str(home)).content_versions("train_embeddings").items()
    }
    assert len(named) == 2 and named <= set(files) and all(name.startswith("train_embeddings@") for name in files), (
        files
    )
