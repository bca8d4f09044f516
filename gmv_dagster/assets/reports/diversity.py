"""Diversity: how widely each method spreads value over the training images."""

import dagster as dg
import polars as pl

from ...evaluation.criteria import (
    coverage,
    gini,
    normalised_entropy,
    value_share_by_key,
)
from .classes import class_keys
from .tables import (
    Criterion,
    Headline,
    Rows,
    Section,
    bar_plot,
    pivot_markdown,
    report_metadata,
)

NAME = "diversity"  # the criterion column of its rows


@dg.asset(group_name="reports", code_version="1", kinds={"duckdb", "polars"})
def criterion_diversity(context, method_values: pl.DataFrame, training_images: pl.DataFrame) -> pl.DataFrame:
    """How widely each method spreads value: coverage, entropy, Gini, and the share of value per class."""
    rows = Rows(NAME)
    classes = class_keys(training_images)
    for (method,), values in method_values.group_by("method", maintain_order=True):
        v = values["value"].to_numpy()
        note = "negative values counted as 0" if (v < 0).any() else None
        rows.add("coverage (share with value > 0)", method, "all", coverage(v), len(v))
        rows.add("entropy / log n", method, "all", normalised_entropy(v), len(v), note)
        rows.add("Gini", method, "all", gini(v), len(v), note)
        for key, share, n in value_share_by_key(values, classes).iter_rows():
            rows.add("value share by class", method, str(key), share, n)
    df = rows.frame()
    headline = df.filter(pl.col("setting") == "all")
    summary = (
        f"{pivot_markdown(headline, columns='metric')}\n\n### Share of value by class\n\n"
        f"{pivot_markdown(df.filter(pl.col('metric') == 'value share by class'))}"
    )
    plot = bar_plot(headline, "metric", "Diversity of values", "")
    context.add_output_metadata(report_metadata(df, summary, plot))
    return df


CRITERION = Criterion(
    criterion_diversity,
    (
        Section(
            NAME,
            None,
            "metric|all",
            "How widely value spreads over the training images.",
        ),
        Section(
            NAME,
            "value share by class",
            "setting",
            "Share of the total value by class.",
        ),
    ),
    (Headline("Gini", NAME, "Gini", "all"),),
)
