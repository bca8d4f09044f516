"""Metadata every table asset carries: row count, column schema, a preview, timings."""

import warnings

import dagster as dg
import polars as pl

from ..pipeline.versions import frame_version

# Content hashes as data versions drive the automation and the audit; Dagster 1.13 calls the parameter beta.
warnings.filterwarnings("ignore", message=r"Parameter `data_version` of initializer", category=dg.BetaWarning)


def table_metadata(df: pl.DataFrame, preview_rows: int = 10, **extra) -> dict:
    """Row count and a preview; the IO manager adds the column schema, with each column's description, as it stores
    the table (resources/warehouse.py)."""
    shown = df.head(preview_rows).select([c for c, t in df.schema.items() if not isinstance(t, (pl.Array, pl.List))])
    return {
        "dagster/row_count": df.height,
        "preview": dg.MetadataValue.md(_markdown(shown)),
        **extra,
    }


def versioned(df: pl.DataFrame, version: str | None = None, **metadata) -> dg.Output[pl.DataFrame]:
    """The table with its content version (frame_version unless given) as Dagster's data version.

    Downstream assets follow a change of content, not a mere rerun (see automation.py), and the
    audit can tell which contents a number came from.
    """
    version = version or frame_version(df)
    return dg.Output(
        df, data_version=dg.DataVersion(version), metadata=table_metadata(df, content_version=version, **metadata)
    )


def config_metadata(config: dg.Config | None = None, method: dg.ConfigurableResource | None = None) -> dict:
    """The run config an asset was materialised with and the method's settings it read, for the lineage audit (`gmv
    audit`)."""
    out = {}
    if config is not None:
        out["config"] = dg.MetadataValue.json(config.model_dump())
    if method is not None:
        out["method"] = dg.MetadataValue.json(method.model_dump())
    return out


def _markdown(df: pl.DataFrame) -> str:
    if df.width == 0:
        return "(no scalar columns)"
    fmt = lambda v: f"{v:.6g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * df.width]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join(lines)


def latest_materialization(instance: dg.DagsterInstance, asset: str, partition: str | None = None):
    """The latest materialisation event of an asset, or of one of its partitions (None if there is none)."""
    if partition is None:
        return instance.get_latest_materialization_event(dg.AssetKey(asset))
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1, ascending=False
    ).records
    return records[0].event_log_entry if records else None


def latest_metadata(context, asset: str, partition: str | None = None) -> dict:
    """Plain values of the latest materialisation's metadata of `asset` (of its `partition`; {} if never
    materialised).

    Reports read the pipeline's settings (k, temperature, generator spec, timings) from here, so they
    describe the run that produced the tables they read.
    """
    event = latest_materialization(context.instance, asset, partition)
    if event is None or event.asset_materialization is None:
        return {}
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}
