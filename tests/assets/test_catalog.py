"""What Dagster shows of the code location: kinds, column descriptions, table names, sensor descriptions, and checks
that name the partition they judged, after what they judged."""

import dagster as dg
import duckdb

from gmv_dagster.assets.reports import CRITERIA, REPORT_ASSETS
from gmv_dagster.assets.reports.tables import REPORT_SCHEMA
from gmv_dagster.definitions import build_definitions
from gmv_dagster.resources.columns import column_description
from gmv_dagster.resources.warehouse import VERSIONS_TABLE
from gmv_dagster.runner import run_valuation

FAST = {"ops": {"quality_calibration": {"config": {"reference_size": 36}}}}
# Pipeline mechanics, not the embedder: pixels, so that no test trains a similarity it does not look at.
PIXELS = {"GMV_BACKBONE": "pixels"}
DEVICES = {"embedding_device", "matching_device", "quality_device", "generator_device"}
# Assets whose value is no table (a MaterializeResult), and what they and others keep besides a table.
NOT_TABLES = {"demo_generator", "embedding_model", "train_index"}
FILES = {"demo_generator": {"numpy"}, "train_embeddings": {"numpy"}, "train_index": {"usearch"}}
BATCH_CHECKS = [
    ("generated_embeddings", "generated_embeddings_finite"),
    ("quality_scores", "quality_in_unit_interval"),
    ("credits", "credits_name_known_images"),
]


def kinds(defs: dg.Definitions, key: dg.AssetKey) -> set[str]:
    return set(defs.resolve_assets_def(key).specs_by_key[key].kinds)


def test_every_asset_has_the_kinds_of_what_it_stores_and_runs(tmp_path):
    """A table asset is a polars frame in DuckDB; an asset given a torch device runs PyTorch (Dagster's kind
    `pytorch`, which has an icon)."""
    defs = build_definitions(tmp_path / "home")
    for key in defs.resolve_all_asset_keys():
        name = key.to_user_string()
        torch = defs.resolve_assets_def(key).required_resource_keys & DEVICES
        expected = (set() if name in NOT_TABLES else {"duckdb", "polars"}) | FILES.get(name, set())
        assert kinds(defs, key) == expected | ({"pytorch"} if torch else set()), name


def test_stored_tables_describe_every_column_and_carry_the_name_duckdb_knows_them_by(tmp_path, image_folders):
    train_dir, gen_dir = image_folders
    env = {**PIXELS, "GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir)}
    home, instance = tmp_path / "home", dg.DagsterInstance.ephemeral()
    defs = build_definitions(home, env)
    assert run_valuation(home, instance, FAST, env=env, defs=defs).success
    with duckdb.connect(str(home / "gmv.duckdb"), read_only=True) as con:
        stored = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_name != ? "
            "ORDER BY table_name, ordinal_position",
            [VERSIONS_TABLE],  # the IO manager's own bookkeeping, no asset
        ).fetchall()
        tables = sorted({table for table, _ in stored})
        for table in tables:
            metadata = instance.get_latest_materialization_event(dg.AssetKey(table)).asset_materialization.metadata
            name = metadata["dagster/table_name"].value
            assert name == f"gmv.main.{table}"
            con.execute(f"SELECT count(*) FROM {name}")  # the name SQL on the file takes
            schema = metadata["dagster/column_schema"].value.columns
            assert [(c.name, c.description) for c in schema] == [
                (column, column_description(table, column)) for t, column in stored if t == table
            ]
    assert [(table, column) for table, column in stored if not column_description(table, column)] == []
    # every valuation asset of kind duckdb is a stored table, and no other
    valuation = defs.resolve_job_def("valuation").asset_layer.executable_asset_keys
    assert tables == sorted(k.to_user_string() for k in valuation if "duckdb" in kinds(defs, k))
    # columns of layouts this run does not have: training shards
    assert column_description("train_embeddings", "shard")


def test_sensors_say_what_they_watch_and_what_they_leave(tmp_path):
    inbox = tmp_path / "drop zone"
    defs = build_definitions(tmp_path / "home", env={"GMV_INBOX": str(inbox)})
    watching = defs.get_sensor_def("inbox_sensor").description
    assert f"Watches {inbox.resolve()} (GMV_INBOX)" in watching and "_COMPLETE" in watching
    default = build_definitions(tmp_path / "other", env={}).get_sensor_def("inbox_sensor").description
    assert f"Watches {(tmp_path / 'other' / 'inbox').resolve()} " in default
    automation = defs.get_sensor_def("gmv_automation")
    assert "every asset but the reports" in automation.description and "`gmv report`" in automation.description
    targeted = automation.asset_selection.resolve(defs.resolve_asset_graph())
    assert dg.AssetKey("training_values") in targeted and dg.AssetKey("criterion_report") not in targeted


def test_checks_are_partitioned_as_their_assets(tmp_path):
    for shards in ("1", "3"):
        graph = build_definitions(tmp_path / shards, env={"GMV_TRAIN_SHARDS": shards}).resolve_asset_graph()
        for key in graph.asset_check_keys:
            assert graph.get(key).partitions_def == graph.get(key.asset_key).partitions_def, (shards, key)


def test_a_batch_check_names_its_batch_reads_only_it_and_comes_after_what_it_checked(
    tmp_path, image_folders, drop_batch
):
    train_dir, gen_dir = image_folders
    inbox = tmp_path / "inbox"
    env = {**PIXELS, "GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir), "GMV_INBOX": str(inbox)}
    home, instance = tmp_path / "home", dg.DagsterInstance.ephemeral()
    defs = build_definitions(home, env)
    assert run_valuation(home, instance, FAST, env=env, defs=defs).success
    # A bad row in the stored batch `generated` is not the fault of batch b2, whose checks must not read it.
    with duckdb.connect(str(home / "gmv.duckdb")) as con:
        con.execute("UPDATE main.quality_scores SET q = 7 WHERE batch = 'generated'")
    drop_batch(inbox, "b2", [2, 8])
    instance.add_dynamic_partitions("generated_batches", ["b2"])
    result = defs.resolve_job_def("value_batch").execute_in_process(instance=instance, partition_key="b2")
    assert result.success
    for asset, check in BATCH_CHECKS:
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(asset), check), limit=10
        )
        assert sorted(record.partition for record in history) == ["b2", "generated"], check
        [record] = [r for r in history if r.partition == "b2"]
        evaluation = record.event.dagster_event.event_specific_data
        assert (record.run_id, evaluation.partition, evaluation.passed) == (result.run_id, "b2", True), check
        target = evaluation.target_materialization_data
        [materialisation] = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=["b2"]), limit=1
        ).records
        assert (target.storage_id, target.run_id) == (materialisation.storage_id, result.run_id), check
        assert record.event.timestamp > target.timestamp, check


def test_the_criterion_tables_columns_are_described():
    """Each holds the long criterion table (the stored tables are checked in test_reports, which takes minutes)."""
    criteria = [key.to_user_string() for assets in REPORT_ASSETS for key in assets.keys]
    criteria = [name for name in criteria if name.startswith("criterion_")]
    registered = [key.to_user_string() for criterion in CRITERIA for key in criterion.asset.keys]
    assert criteria == [*registered, "criterion_report"]  # every criterion in the registry, then the report
    assert [(t, c) for t in criteria for c in REPORT_SCHEMA if not column_description(t, c)] == []
