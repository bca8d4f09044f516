"""C4: seconds per generated image, per stage and end to end."""

import dagster as dg
import polars as pl

from .tables import (
    Criterion,
    Headline,
    Rows,
    Section,
    bar_plot,
    pivot_markdown,
    report_metadata,
)

AMORTISED = {"embed_train", "index", "gradients"}

NAME = "C4 efficiency"  # the criterion column of its rows


@dg.asset(group_name="reports", code_version="1", kinds={"duckdb", "polars"})
def criterion_efficiency(context, method_timings: pl.DataFrame) -> pl.DataFrame:
    """C4: seconds per generated image for each stage of each method and end to end."""
    rows = Rows(NAME)
    for (method,), part in method_timings.group_by("method", maintain_order=True):
        m = int(part["n_generated"][0])
        for stage, seconds in part.select("stage", "seconds").iter_rows():
            note = "training-side work, divided by the generated images" if stage in AMORTISED else None
            rows.add("seconds per generated image", method, stage, seconds / m, m, note)
        rows.add("seconds per generated image", method, "end to end", float(part["seconds"].sum()) / m, m)
    df = rows.frame()
    summary = (
        f"{pivot_markdown(df, digits=5)}\n\nThe similarity methods' embedding, index and quality stages are the "
        "pipeline's own timings (asset metadata); search, re-rank and credit are timed here. TracIn's time "
        "excludes training the generator, which it also needs."
    )
    plot = bar_plot(df.filter(pl.col("setting") == "end to end"), "setting", "C4: seconds per generated image", "s")
    context.add_output_metadata(report_metadata(df, summary, plot))
    return df


CRITERION = Criterion(
    criterion_efficiency,
    (
        Section(
            NAME,
            None,
            "setting",
            (
                "Seconds per generated image, per stage and end to end (training-side stages divided by the generated"
                " images)."
            ),
            digits=5,
        ),
    ),
    (Headline("C4 s / image", NAME, "seconds per generated image", "end to end"),),
)
