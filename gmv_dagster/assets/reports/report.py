"""criterion_report: every criterion of the registry (assets/reports/__init__.py) in one long table."""

from collections.abc import Sequence

import dagster as dg
import polars as pl

from .tables import REPORT_SCHEMA, Criterion, bar_plot, headline, headline_shares, pivot_markdown, report_metadata


def criterion_report_asset(criteria: Sequence[Criterion]) -> dg.AssetsDefinition:
    """The report over `criteria`: one input per criterion's table, concatenated in their order."""
    names = [key.to_user_string() for criterion in criteria for key in criterion.asset.keys]

    @dg.asset(
        group_name="reports",
        code_version="1",
        kinds={"duckdb", "polars"},
        ins={name: dg.AssetIn() for name in names},
    )
    def criterion_report(context, **tables: pl.DataFrame) -> pl.DataFrame:
        """Every criterion for every method in one long table (criterion, metric, method, setting, value, n, 95% \
CI, note)."""
        df = pl.concat([tables[name] for name in names]).select(list(REPORT_SCHEMA))
        heads = headline(df, criteria)
        context.add_output_metadata(
            report_metadata(
                df,
                pivot_markdown(heads, columns="setting"),
                bar_plot(
                    heads.filter(pl.col("setting").is_in(headline_shares(criteria))),
                    "setting",
                    "Headline criteria (higher is better)",
                    "",
                ),
            )
        )
        return df

    return criterion_report
