"""Credits (q_j * w_ij) and the value of every training image, with the invariant as a gate."""

import dagster as dg
import polars as pl
from pydantic import Field

from ...common.timing import timed
from ...method.credit import compute_credits
from ...method.credit import training_values as value_training_images
from ...resources import MethodResource
from ..automation import BATCH_TABLE, FOLLOWS_INPUTS, TRAIN_URIS, generated_batches
from ..galleries import contributors_image, picture, values_gallery_image, values_histogram_image
from ..metadata import config_metadata, versioned

SUM_TOLERANCE = 1e-6  # relative


class CreditConfig(dg.Config):
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
    method: MethodResource,
) -> dg.Output[pl.DataFrame]:
    """credit_ij = q_j * softmax(-d_ij / tau) over each generated image's top k, for one batch; tau is the method's,
    else credit_temperature's."""
    check_ranking(context.partition_key, matches, training_images.height, credit_temperature, method)
    settings = method.settings()
    temperature = settings.temperature_or(lambda: float(credit_temperature["temperature"][0]))
    timings: dict = {}
    with timed(timings, "seconds"):
        df = compute_credits(matches, quality_scores, temperature)
    top1 = df.filter(pl.col("rank") == 1)["weight"]
    shown = generated_images["id"].head(config.gallery_size).to_list()
    return versioned(
        df,
        temperature=temperature,
        temperature_source="method" if settings.temperature is not None else "credit_temperature",
        mean_top1_weight=float(top1.mean() or 0.0),
        **timings,
        **config_metadata(config, method),
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


def check_ranking(
    batch: str, matches: pl.DataFrame, n_train: int, credit_temperature: pl.DataFrame, method: MethodResource
) -> None:
    """Refuses to credit a batch whose stored matches or fitted temperature belong to another ranking than the method's
    settings now: the top k of the matches table (k per generated image, or every training image where there are
    fewer), and the ranking credit_temperature recorded beside its fit (a temperature holds only for its ranking)."""
    ranking = method.ranking()
    expected = min(ranking["k"], n_train)
    k = int(matches["rank"].max()) if matches.height else expected
    if k != expected:
        raise ValueError(
            f"batch {batch!r}'s matches keep the top {k}, the method's k is {ranking['k']}: materialise the batch's "
            "matches with the current settings (resources.method), then its credits"
        )
    if method.temperature is not None:
        return
    fit = credit_temperature.row(0, named=True)
    differs = {key: (fit[key], value) for key, value in ranking.items() if fit[key] != value}
    if differs:
        shown = ", ".join(f"{key} {a!r} there, {b!r} now" for key, (a, b) in differs.items())
        raise ValueError(
            f"credit_temperature was fitted to another ranking than the method's settings ({shown}): materialise "
            "credit_temperature with the current settings (resources.method), or set resources.method's temperature"
        )


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
