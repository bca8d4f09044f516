"""The DuckDB file behind every table asset: each write is one transaction, so a failed or killed run
leaves the last good table (or batch) as it was, and a table whose layout changed is replaced whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb.io_manager import (
    DuckDbClient,
    DuckDBIOManager,
    _get_cleanup_statement,
)
from dagster_duckdb_polars import DuckDBPolarsTypeHandler

from ..pipeline import database as database_files
from ..pipeline.database import VERSIONS_TABLE, connect, table_exists
from ..sources.batches import is_batch_key
from .columns import column_description


class LayoutChangedError(RuntimeError):
    """A partitioned table holds batches written with other columns than this batch has."""


# Waiting for another process's lock: pipeline/database.connect's back-off within a step, then the step itself is
# retried later, as a transient failure, this many times.
STEP_RETRY = {"max_retries": 3, "seconds_to_wait": 30}


def connect_in_step(database: str | Path):
    """connect(), inside a Dagster step: a lock still held after the back-off is a transient failure, so the step
    asks to be retried (STEP_RETRY) instead of failing; any other error fails it at once."""
    try:
        return connect(database)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise dg.RetryRequested(**STEP_RETRY) from exc


class _TransactionalClient(DuckDbClient):
    @staticmethod
    def delete_table_slice(context, table_slice: TableSlice, connection) -> None:
        """Deferred to the type handler, which deletes and writes in one transaction."""

    @staticmethod
    def get_table_name(table_slice: TableSlice) -> str:
        """`dagster/table_name`: catalog.schema.table as SQL on the file names it (DuckDB calls a file's catalog by
        its stem: gmv.main.training_values), not the file's path with the schema and table appended."""
        return f"{Path(table_slice.database).stem}.{table_slice.schema}.{table_slice.table}"

    @staticmethod
    @contextmanager
    def connect(context, _):
        # dagster-duckdb's own leaves the connection open when the write raises; this one always closes it.
        if context.resource_config["connection_config"]:
            raise ValueError("GmvDuckDBIOManager takes no connection_config")
        conn = connect_in_step(context.resource_config["database"])
        try:
            yield conn
        finally:
            conn.close()


def _check_partition_keys(table_slice: TableSlice) -> None:
    """dagster-duckdb writes partition keys into its SQL as literals; only keys that cannot end one pass: the rule
    batch names follow (shard keys, `0-of-4`, follow it too)."""
    for dimension in table_slice.partition_dimensions:
        for key in dimension.partitions:
            if not isinstance(key, str) or not is_batch_key(key):
                raise ValueError(
                    f"partition key {key!r} of {table_slice.table} may hold only letters, digits, '_', "
                    "'.' and '-' (starting with a letter or digit, at most 100): rename the batch folder"
                )


def _layout(connection, relation: str) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in connection.execute(f"DESCRIBE {relation}").fetchall()]


def _has_partition_column(connection, table: str, table_slice: TableSlice) -> bool:
    columns = {name for name, _ in _layout(connection, table)}
    return all(d.partition_expr in columns for d in table_slice.partition_dimensions)


def _partition_label(table_slice: TableSlice) -> str:
    """The written partition(s) as one key ('' for an unpartitioned table)."""
    return "|".join(",".join(map(str, d.partitions)) for d in table_slice.partition_dimensions or [])


def _record_version(connection, table_slice: TableSlice, version: str | None) -> None:
    """Replace the stored version of the written table (partition); a write without one leaves none, not a stale one."""
    versions = f"{table_slice.schema}.{VERSIONS_TABLE}"
    connection.execute(
        f"CREATE TABLE IF NOT EXISTS {versions} (table_name VARCHAR, partition_key VARCHAR, content_version VARCHAR)"
    )
    partition = _partition_label(table_slice)
    if partition:  # this partition's version replaces its own and any left from the table's unpartitioned days
        connection.execute(
            f"DELETE FROM {versions} WHERE table_name = ? AND partition_key IN (?, '')", [table_slice.table, partition]
        )
    else:
        connection.execute(f"DELETE FROM {versions} WHERE table_name = ?", [table_slice.table])
    if version is not None:
        connection.execute(f"INSERT INTO {versions} VALUES (?, ?, ?)", [table_slice.table, partition, version])


class _TransactionalPolarsHandler(DuckDBPolarsTypeHandler):
    def handle_output(self, context, table_slice: TableSlice, obj: pl.DataFrame, connection):
        table = f"{table_slice.schema}.{table_slice.table}"
        _check_partition_keys(table_slice)
        connection.register("gmv_output", obj.to_arrow())
        connection.execute("BEGIN TRANSACTION")
        try:
            if not table_exists(connection, table_slice.schema, table_slice.table):
                connection.execute(f"CREATE TABLE {table} AS SELECT * FROM gmv_output")
            elif not table_slice.partition_dimensions or not _has_partition_column(connection, table, table_slice):
                # unpartitioned, or written before the asset had batches: the new rows replace it whole
                connection.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM gmv_output")
            else:
                existing, new = _layout(connection, table), _layout(connection, "SELECT * FROM gmv_output")
                if existing != new:
                    raise LayoutChangedError(
                        f"{table} holds batches written with columns {existing}, but this batch has {new}: the code "
                        "changed the table's layout. "
                        f"Drop it (DROP TABLE {table} in {context.resource_config['database']}) "
                        "and rematerialise every batch of it (a backfill in the UI)."
                    )
                connection.execute(_get_cleanup_statement(table_slice))
                connection.execute(f"INSERT INTO {table} SELECT * FROM gmv_output")
            version = (context.output_metadata or {}).get("content_version")
            _record_version(
                connection, table_slice, None if version is None else str(getattr(version, "value", version))
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        finally:
            connection.unregister("gmv_output")
        return {"dagster/column_schema": column_schema(table_slice.table, obj)}

    def load_input(self, context, table_slice: TableSlice, connection) -> pl.DataFrame:
        """Rows in the order they were written (batch by batch, in key order): SQL promises no order otherwise,
        and consumers line tables up row by row.

        An input that names `columns` (AssetIn metadata, Dagster's convention) reads only those, plus the
        partition columns (a consumer of every shard or batch tells them apart by it): tables that grow with the
        training set are read as narrow as the consumer needs.
        """
        if table_slice.partition_dimensions and len(context.asset_partition_keys) == 0:
            return pl.DataFrame()
        _check_partition_keys(table_slice)
        if table_slice.columns:
            partition_columns = [d.partition_expr for d in table_slice.partition_dimensions or []]
            table_slice = table_slice._replace(columns=list(dict.fromkeys([*table_slice.columns, *partition_columns])))
        order = " ORDER BY " + ", ".join([d.partition_expr for d in table_slice.partition_dimensions] + ["rowid"])
        return connection.execute(DuckDbClient.get_select_statement(table_slice) + order).pl()


class GmvDuckDBIOManager(DuckDBIOManager):
    """DuckDB tables of polars frames; partitions (batches) share a table, selected by `partition_expr`."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [_TransactionalPolarsHandler()]

    @staticmethod
    def default_load_type():
        return pl.DataFrame

    def create_io_manager(self, context) -> DbIOManager:
        return DbIOManager(
            db_client=_TransactionalClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="GmvDuckDBIOManager",
        )


def column_schema(table: str, df: pl.DataFrame) -> dg.TableSchema:
    """The stored table's columns, their types and what each holds (columns.py)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, str(dtype), description=column_description(table, name))
            for name, dtype in df.schema.items()
        ]
    )


def read_content_version(database: Path, table: str, partition: str | None = None) -> str | None:
    """The content version the latest write of `table` (of `partition`) stored with its rows; None if none did."""
    return database_files.read_content_version(database, table, partition, connect_in_step)


def read_content_versions(database: Path, table: str) -> dict[str, str]:
    """{partition key ('' unpartitioned): content version} of every stored write of `table`."""
    return database_files.read_content_versions(database, table, connect_in_step)


def read_stored_rows(database: Path, table: str, batch: str | None = None) -> pl.DataFrame | None:
    """The rows a table asset holds now (one batch's when given), or None if there is no such table yet.

    `table` is one of our asset names, never user input; the batch is a query parameter.
    """
    if batch is None:
        return database_files.query_table(database, table, f"SELECT * FROM main.{table}", [], connect_in_step)
    return database_files.query_table(
        database, table, f"SELECT * FROM main.{table} WHERE batch = ?", [batch], connect_in_step
    )
