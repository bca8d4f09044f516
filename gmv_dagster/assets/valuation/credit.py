"""Credits (q_j * w_ij) and the value of every training image, with the invariant as a gate."""

import dagster as dg
import polars as pl
from pydantic import Field

from ...common.timing import timed
from ...method.credit import compute_credits
from ...method.credit import training_values as value_training_images
from ..automation import BATCH_TABLE, FOLLOWS_INPUTS, TRAIN_URIS, generated_batches
from ..galleries import contributors_image, picture, values_gallery_image, values_histogram_image
from ..metadata import config_metadata, latest_metadata, versioned

SUM_TOLERANCE = 1e-6  # relative


class CreditConfig(dg.Config):
    temperature: float | None = Field(
        default=None,
        gt=0,
        description="tau of the softmax over distances; unset: "
        "credit_temperature's, fitted to the similarity's distance scale",
    )
    gallery_size: int = Field(default=8, ge=0, description="generated images shown beside their contributors")


@dg.asset(
    group_name="credit",
    code_version="3",
    partitions_def=generated_batches,
    metadata=BATCH_TABLE,
    ins={"training_images": TRAIN_URIS},
    automation_condition=FOLLOWS_INPUTS,
    kinds={"duckdb", "polars"},
)
def credits(
    context,
    config: CreditConfig,
    matches: pl.DataFrame,
    quality_scores: pl.DataFrame,
    credit_temperature: pl.DataFrame,
    training_images: pl.DataFrame,
    generated_images: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """credit_ij = q_j * softmax(-d_ij / tau) over each generated image's top k, for one batch."""
    temperature = config.temperature or fitted_temperature(context, credit_temperature)
    timings: dict = {}
    with timed(timings, "seconds"):
        df = compute_credits(matches, quality_scores, temperature)
    top1 = df.filter(pl.col("rank") == 1)["weight"]
    shown = generated_images["id"].head(config.gallery_size).to_list()
    return versioned(
        df,
        temperature=temperature,
        temperature_source="config" if config.temperature else "credit_temperature",
        mean_top1_weight=float(top1.mean() or 0.0),
        **timings,
        **config_metadata(config),
        contributors=picture(
            context,
            "contributors",
            contributors_image(
                df,
                training_images,
                generated_images,
                shown,
                caption=f"The first {len(shown)} generated images of batch {context.partition_key} (by id), each beside"
                " its contributors by rank: weight w, credit = q * w.",
            ),
            "generated images beside their top contributors",
        ),
    )


def fitted_temperature(context, credit_temperature: pl.DataFrame) -> float:
    """credit_temperature's tau, refused where it was fitted to another ranking than this batch's matches had."""
    fit = credit_temperature.row(0, named=True)
    used = latest_metadata(context, "matches", context.partition_key)
    differs = {
        key: (fit[key], used[key]) for key in ("k", "candidates", "rerank") if key in used and fit[key] != used[key]
    }
    if differs:
        shown = ", ".join(f"{key} {a!r} there, {b!r} in matches" for key, (a, b) in differs.items())
        raise ValueError(
            f"credit_temperature was fitted to another ranking than batch {context.partition_key!r}'s matches "
            f"({shown}): give credit_temperature the matches' k, candidates and rerank and materialise it, "
            "or set credits.temperature"
        )
    return float(fit["temperature"])


@dg.asset(
    group_name="credit",
    code_version="2",
    ins={"training_images": TRAIN_URIS},
    automation_condition=FOLLOWS_INPUTS,
    kinds={"duckdb", "polars"},
)
def training_values(
    context, credits: pl.DataFrame, training_images: pl.DataFrame, generated_images: pl.DataFrame
) -> dg.Output[pl.DataFrame]:
    """Value of every training image: the sum of its credits over every batch (train_id, value, n_generated, rank).

    Reads the stored credits of all batches; only batches that changed were computed again.
    """
    df = value_training_images(credits, training_images["id"])
    batches = credits.group_by("batch").agg(pl.col("gen_id").n_unique()).sort("batch")
    context.log.info(
        f"summed the credits of {credits['gen_id'].n_unique()} generated images in {batches.height} batch(es)"
    )
    return versioned(
        df,
        total_value=float(df["value"].sum()),
        share_with_value=float((df["value"] > 0).mean()),
        n_generated=int(credits["gen_id"].n_unique()),
        n_batches=batches.height,
        batches=dg.MetadataValue.json(dict(batches.iter_rows())),
        histogram=picture(context, "histogram", values_histogram_image(df["value"].to_numpy()), "values histogram"),
        gallery=picture(
            context,
            "gallery",
            values_gallery_image(df, credits, training_images, generated_images),
            "top and bottom training images by value, beside the generated images that credit them",
        ),
    )


@dg.asset_check(asset=training_values, additional_ins={"quality_scores": dg.AssetIn()}, blocking=True)
def values_sum_to_quality(training_values: pl.DataFrame, quality_scores: pl.DataFrame) -> dg.AssetCheckResult:
    """Sum of values equals sum of q (every generated image hands out exactly its quality)."""
    total_value, total_q = float(training_values["value"].sum()), float(quality_scores["q"].sum())
    gap = abs(total_value - total_q) / max(abs(total_q), 1.0)
    return dg.AssetCheckResult(
        passed=gap <= SUM_TOLERANCE,
        metadata={"sum_value": total_value, "sum_q": total_q, "relative_gap": gap, "tolerance": SUM_TOLERANCE},
    )
