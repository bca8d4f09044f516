"""The results' DuckDB file without Dagster: connections that wait for another process's lock, and the content
versions each write stores beside its rows. The IO manager (resources/warehouse.py) and the command line share
these; the command line answers `gmv run` with nothing new, `gmv top` and `gmv sql` without importing Dagster."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import duckdb
import polars as pl

DATABASE = "gmv.duckdb"  # the results' file in GMV_HOME
DEFAULT_HOME = "gmv_home"  # GMV_HOME when unset, relative to the working directory
# The IO manager's connection options; a second connection in one process must use the same ones.
CONNECTION_CONFIG = {"custom_user_agent": "dagster"}
# Waiting for another process's lock on the file: attempts 0.1 s apart, doubling (about 100 s in all).
LOCK_RETRIES = 10
# Each write's content version (the asset's data version), stored in the write's own transaction: readers take a
# table's version from here instead of hashing a table that grows with the training set again.
VERSIONS_TABLE = "gmv_content_versions"


def home_folder(home: str | Path | None, env: Mapping[str, str]) -> Path:
    """The GMV_HOME in use, absolute: `home` when given, else $GMV_HOME, else ./gmv_home."""
    return Path(home or env.get("GMV_HOME", DEFAULT_HOME)).expanduser().resolve()


def connect(database: str | Path) -> duckdb.DuckDBPyConnection:
    """A connection to the DuckDB file, retried while another process holds its lock."""
    delay = 0.1
    for attempt in range(LOCK_RETRIES + 1):
        try:
            return duckdb.connect(str(database), read_only=False, config=CONNECTION_CONFIG)
        except (RuntimeError, duckdb.IOException):
            if attempt == LOCK_RETRIES:
                raise
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def table_exists(connection, schema: str, table: str) -> bool:
    return bool(
        connection.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, table]
        ).fetchall()
    )


def query_table(database: Path, table: str, sql: str, params: list, connect_with=connect) -> pl.DataFrame | None:
    """The result of `sql` (with `params`) as polars, or None while the database or its table `table` does not exist."""
    if not database.is_file():
        return None
    con = connect_with(database)
    try:
        if not table_exists(con, "main", table):
            return None
        return con.execute(sql, params).pl()
    finally:
        con.close()


def read_content_versions(database: Path, table: str, connect_with=connect) -> dict[str, str]:
    """{partition key ('' unpartitioned): content version} of every stored write of `table`."""
    rows = query_table(
        database,
        VERSIONS_TABLE,
        f"SELECT partition_key, content_version FROM main.{VERSIONS_TABLE} WHERE table_name = ?",
        [table],
        connect_with,
    )
    return {} if rows is None else dict(rows.iter_rows())


def read_content_version(database: Path, table: str, partition: str | None = None, connect_with=connect) -> str | None:
    """The content version the latest write of `table` (of `partition`) stored with its rows; None if none did."""
    return read_content_versions(database, table, connect_with).get(partition or "")
