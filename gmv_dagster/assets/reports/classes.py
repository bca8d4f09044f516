"""C1 and C2: each generated image's contributors share its class, and its attributes."""

import dagster as dg
import polars as pl
from pydantic import Field

from ...evaluation.attributes import derived_attributes
from ...evaluation.criteria import (
    agreement_at_k,
    attribute_keys,
)
from ...sources.images import ImageSequence
from .tables import (
    Criterion,
    Headline,
    Rows,
    Section,
    bar_plot,
    pivot_markdown,
    report_metadata,
)

C1 = "C1 identical class"
C2 = "C2 identical attributes"


class ClassesConfig(dg.Config):
    ks: list[int] = Field(default=[1, 5, 10, 30, 50], description="k of C1 (top-k contributors)")
    attribute_ks: list[int] = Field(default=[1, 10], description="k of C2")


def class_keys(manifest: pl.DataFrame, column: str = "label") -> pl.DataFrame:
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
    rows_c1, rows_c2 = Rows(C1), Rows(C2)
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
                    agreement_at_k(contributors, class_keys(generated_images), class_keys(training_images), k),
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


def mean_over_settings(rows: pl.DataFrame) -> pl.DataFrame:
    """C2's headline: each method's mean over the attributes."""
    return rows.group_by("method", maintain_order=True).agg(pl.col("value").mean())


CRITERION = Criterion(
    criterion_classes,
    (
        Section(
            C1,
            "C1@k",
            "setting",
            "Share of each generated image's top-k contributors with its class (mean over generated images).",
        ),
        Section(
            C2,
            "C2@10",
            "setting",
            (
                "Share of the top-10 contributors with the generated image's attribute (derived attributes are image "
                "statistics cut at the training median)."
            ),
        ),
        Section(
            C2,
            "C2@1",
            "setting",
            "The same for the top-1 contributor.",
        ),
    ),
    (
        Headline("C1@10", C1, "C1@k", "k=10", share=True),
        Headline("C2@10 (mean)", C2, "C2@10", reduce=mean_over_settings),
    ),
)
