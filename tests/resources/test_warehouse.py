"""The DuckDB IO manager: one transaction per write, batches side by side, rows read back in written order."""

import dagster as dg
import duckdb
import polars as pl
import pytest

from gmv_dagster.resources import GmvHome
from gmv_dagster.resources.warehouse import (
    GmvDuckDBIOManager,
    read_content_version,
    read_stored_rows,
)

batches = dg.DynamicPartitionsDefinition(name="test_batches")
ROWS = {"b1": 3, "b2": 2}
FAIL = {"on": False}


@dg.asset(partitions_def=batches, metadata={"partition_expr": "batch"})
def per_batch(context) -> pl.DataFrame:
    key = context.partition_key
    if FAIL["on"]:
        return pl.DataFrame({"x": [1.5], "batch": [key]})  # another layout
    return pl.DataFrame({"x": list(range(ROWS[key], 0, -1)), "batch": [key] * ROWS[key]})


@dg.asset
def summed(per_batch: pl.DataFrame) -> pl.DataFrame:
    return per_batch


def run(database, instance, key=None, selection=(per_batch,)):
    return dg.materialize(
        [per_batch, summed],
        selection=list(selection),
        partition_key=key,
        instance=instance,
        resources={"io_manager": GmvDuckDBIOManager(database=str(database), schema="main")},
        raise_on_error=False,
    )


def test_batches_share_a_table_and_a_failed_write_changes_nothing(tmp_path):
    database = tmp_path / "w.duckdb"
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("test_batches", ["b2", "b1"])
    assert run(database, instance, "b2").success and run(database, instance, "b1").success
    ROWS["b1"] = 4
    assert run(database, instance, "b1").success  # rewriting a batch replaces only its rows
    stored = read_stored_rows(database, "per_batch")
    assert stored.sort("batch", "x").to_dict(as_series=False) == {
        "x": [1, 2, 3, 4, 1, 2],
        "batch": ["b1"] * 4 + ["b2"] * 2,
    }
    assert read_stored_rows(database, "per_batch", batch="b2").height == 2
    # the downstream reads every batch, in batch order, each in the order it was written
    result = run(database, instance, selection=(summed,))
    assert result.success
    assert read_stored_rows(database, "summed")["x"].to_list() == [4, 3, 2, 1, 2, 1]

    FAIL["on"] = True
    try:
        failed = run(database, instance, "b1")
    finally:
        FAIL["on"] = False
    assert not failed.success
    message = "\n".join(e.event_specific_data.error.to_string() for e in failed.all_events if e.is_step_failure)
    assert "changed the table's layout" in message and "DROP TABLE main.per_batch" in message
    assert read_stored_rows(database, "per_batch").height == 6  # b1's old rows were not deleted


def test_a_table_from_before_batches_is_replaced(tmp_path):
    database = tmp_path / "w.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE TABLE main.per_batch AS SELECT 1 AS old_column")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("test_batches", ["b2"])
    ROWS["b2"] = 2
    assert run(database, instance, "b2").success
    assert read_stored_rows(database, "per_batch").columns == ["x", "batch"]
    assert read_stored_rows(database, "no_such_table") is None


def test_a_partition_key_that_could_end_an_sql_literal_is_refused_before_any_sql(tmp_path):
    database = tmp_path / "w.duckdb"
    instance = dg.DagsterInstance.ephemeral()
    evil = "b1') OR batch IS NOT NULL; --"
    instance.add_dynamic_partitions("test_batches", ["b2", evil])
    ROWS[evil] = 1
    try:
        assert run(database, instance, "b2").success
        failed = run(database, instance, evil)
    finally:
        del ROWS[evil]
    assert not failed.success
    message = "\n".join(e.event_specific_data.error.to_string() for e in failed.all_events if e.is_step_failure)
    assert "may hold only letters, digits" in message
    assert read_stored_rows(database, "per_batch", batch="b2").height == 2  # b2 untouched


def test_a_lock_held_by_another_process_is_a_transient_failure_and_the_step_is_retried(tmp_path, monkeypatch):
    import subprocess
    import sys

    from gmv_dagster.pipeline import database as database_files
    from gmv_dagster.resources import warehouse

    database = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(4)",
            str(database),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    monkeypatch.setattr(database_files, "LOCK_RETRIES", 1)  # give up within the step at once ...
    monkeypatch.setattr(warehouse, "STEP_RETRY", {"max_retries": 6, "seconds_to_wait": 1.5})  # ... and retry the step
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("test_batches", ["b1"])
    result = run(database, instance, "b1")
    holder.wait()
    assert result.success
    assert any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    assert read_stored_rows(database, "per_batch").height == ROWS["b1"]


VERSIONED = {"width": 1}


@dg.asset(partitions_def=batches, metadata={"partition_expr": "batch"})
def versioned_batch(context) -> dg.Output[pl.DataFrame]:
    key = context.partition_key
    df = pl.DataFrame(
        {"x": [1.0] * VERSIONED["width"], "y": ["a"] * VERSIONED["width"], "batch": [key] * VERSIONED["width"]}
    )
    if VERSIONED["width"] == 3:
        df = df.drop("y")  # another layout: the write fails
    if VERSIONED.get("unversioned"):
        return dg.Output(df)
    return dg.Output(df, metadata={"content_version": f"{key}-v{VERSIONED['width']}"})


@dg.asset(ins={"versioned_batch": dg.AssetIn(metadata={"columns": ["x"]})})
def narrow(versioned_batch: pl.DataFrame) -> pl.DataFrame:
    return versioned_batch


def test_each_write_stores_its_content_version_in_its_own_transaction(tmp_path):
    database = tmp_path / "gmv.duckdb"  # where GmvHome(tmp_path) keeps it
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("test_batches", ["b1", "b2"])
    resources = {"io_manager": GmvDuckDBIOManager(database=str(database), schema="main")}

    def write(key, width):
        VERSIONED["width"] = width
        return dg.materialize(
            [versioned_batch, narrow],
            selection=[versioned_batch],
            partition_key=key,
            instance=instance,
            resources=resources,
            raise_on_error=False,
        ).success

    assert read_content_version(database, "versioned_batch", "b1") is None  # no database yet
    assert write("b1", 1) and write("b2", 2) and write("b1", 2)
    assert [read_content_version(database, "versioned_batch", k) for k in ("b1", "b2")] == ["b1-v2", "b2-v2"]
    assert read_content_version(database, "versioned_batch") is None  # partitioned: no table-wide version
    assert not write("b1", 3)  # the failed write changes neither the rows nor the stored version
    assert read_content_version(database, "versioned_batch", "b1") == "b1-v2"
    VERSIONED["unversioned"] = True  # a write without a version leaves none, not the stale one
    try:
        assert write("b2", 2)
    finally:
        VERSIONED.pop("unversioned")
    assert read_content_version(database, "versioned_batch", "b2") is None
    with pytest.raises(
        ValueError,
        match=r"versioned_batch \(partition b2\) has no stored embeddings version .*"
        r"materialise versioned_batch, then what was built from it \(train_index\); stored vectors are reused",
    ):
        GmvHome(path=str(tmp_path)).vector_store.version("versioned_batch", "b2")
    assert GmvHome(path=str(tmp_path)).vector_store.version("versioned_batch", "b1") == "b1-v2"
    # an input that names columns reads only those, and the partition column
    assert dg.materialize([versioned_batch, narrow], selection=[narrow], instance=instance, resources=resources).success
    assert read_stored_rows(database, "narrow").columns == ["x", "batch"]
