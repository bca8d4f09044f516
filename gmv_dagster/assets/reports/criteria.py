"""Criteria read off the methods' outputs (C1, C2, C4, diversity) and the one long criterion_report."""

import dagster as dg
import polars as pl
from pydantic import Field

from ...evaluation.attributes import derived_attributes
from ...evaluation.criteria import (
    agreement_at_k,
    attribute_keys,
    coverage,
    gini,
    normalised_entropy,
    value_share_by_key,
)
from ...sources.images import ImageSequence
from .tables import (
    HEADLINE_SHARES,
    REPORT_SCHEMA,
    Rows,
    bar_plot,
    headline,
    pivot_markdown,
    report_metadata,
)


class ClassesConfig(dg.Config):
    ks: list[int] = Field(default=[1, 5, 10, 30, 50], description="k of C1 (top-k contributors)")
    attribute_ks: list[int] = Field(default=[1, 10], description="k of C2")


def _keys(manifest: pl.DataFrame, column: str = "label") -> pl.DataFrame:
    return manifest.select("id", pl.col(column).alias("key"))


@dg.asset(group_name="reports", code_version="1", kinds={"duckdb", "polars"})
def criterion_classes(
    context,
    config: ClassesConfig,
    method_contributors: pl.DataFrame,
    training_images: pl.DataFrame,
    generated_images: pl.DataFrame,
) -> pl.DataFrame:
    """C1 (contributors share the generated image's class) and C2 (its attributes), per method and k."""
    rows_c1, rows_c2 = Rows("C1 identical class"), Rows("C2 identical attributes")
    # Attributes derived from pixels (same function and cut points on both sides), plus any the data has.
    train_attr, gen_attr, cuts = derived_attributes(
        ImageSequence(training_images["uri"].to_list()), ImageSequence(generated_images["uri"].to_list())
    )
    derived_train = attribute_keys(training_images.with_columns(attributes=pl.Series(train_attr)))
    derived_gen = attribute_keys(generated_images.with_columns(attributes=pl.Series(gen_attr)))
    given_train, given_gen = attribute_keys(training_images), attribute_keys(generated_images)
    attributes = {f"derived:{a}": (derived_train[a], derived_gen[a]) for a in derived_train}
    attributes.update({a: (given_train[a], given_gen[a]) for a in given_train if a in given_gen})
    has_labels = generated_images["label"].is_not_null().any()
    for (method,), contributors in method_contributors.group_by("method", maintain_order=True):
        for k in config.ks:
            if has_labels:
                rows_c1.add(
                    "C1@k",
                    method,
                    f"k={k}",
                    agreement_at_k(contributors, _keys(generated_images), _keys(training_images), k),
                )
            else:
                rows_c1.not_run("C1@k", method, f"k={k}", "generated images have no class labels")
        for name, (train_keys, gen_keys) in attributes.items():
            for k in config.attribute_ks:
                rows_c2.add(f"C2@{k}", method, name, agreement_at_k(contributors, gen_keys, train_keys, k))
    c1, c2 = rows_c1.frame(), rows_c2.frame()
    df = pl.concat([c1, c2])
    c2_main = c2.filter(pl.col("metric") == f"C2@{max(config.attribute_ks)}")
    summary = (
        f"### C1: share of top-k contributors with the generated image's class\n\n{pivot_markdown(c1)}\n\n"
        f"### C2@{max(config.attribute_ks)}: share with the same attribute\n\n{pivot_markdown(c2_main)}\n\n"
        f"Derived attributes are cut at the training medians: {cuts}"
    )
    plot = bar_plot(c1, "setting", "C1: contributors with the generated image's class", "share")
    context.add_output_metadata(report_metadata(df, summary, plot))
    return df


@dg.asset(group_name="reports", code_version="1", kinds={"duckdb", "polars"})
def criterion_diversity(context, method_values: pl.DataFrame, training_images: pl.DataFrame) -> pl.DataFrame:
    """How widely each method spreads value: coverage, entropy, Gini, and the share of value per class."""
    rows = Rows("diversity")
    classes = _keys(training_images)
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


AMORTISED = {"embed_train", "index", "gradients"}


@dg.asset(group_name="reports", code_version="1", kinds={"duckdb", "polars"})
def criterion_efficiency(context, method_timings: pl.DataFrame) -> pl.DataFrame:
    """C4: seconds per generated image for each stage of each method and end to end."""
    rows = Rows("C4 efficiency")
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


@dg.asset(group_name="reports", code_version="1", kinds={"duckdb", "polars"})
def criterion_report(
    context,
    criterion_classes: pl.DataFrame,
    criterion_reasonableness: pl.DataFrame,
    criterion_diversity: pl.DataFrame,
    criterion_efficiency: pl.DataFrame,
    criterion_ood: pl.DataFrame,
    criterion_fidelity: pl.DataFrame,
    criterion_consistency: pl.DataFrame,
    criterion_lds: pl.DataFrame,
) -> pl.DataFrame:
    """Every criterion for every method in one long table (criterion, metric, method, setting, value, n, 95% CI, \
note)."""
    df = pl.concat(
        [
            criterion_classes,
            criterion_reasonableness,
            criterion_diversity,
            criterion_efficiency,
            criterion_ood,
            criterion_fidelity,
            criterion_consistency,
            criterion_lds,
        ]
    ).select(list(REPORT_SCHEMA))
    heads = headline(df)
    context.add_output_metadata(
        report_metadata(
            df,
            pivot_markdown(heads, columns="setting"),
            bar_plot(
                heads.filter(pl.col("setting").is_in(HEADLINE_SHARES)),
                "setting",
                "Headline criteria (higher is better)",
                "",
            ),
        )
    )
    return df
