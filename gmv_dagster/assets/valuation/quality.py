"""q_j: quality of each generated image, in [0, 1], from a scorer calibrated once on the training images; the default
(matched_detail) compares each generated image with the training images it matched (method/detail.py)."""

import json

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from ...common.sampling import seeded_rows
from ...common.timing import timed
from ...method import detail
from ...method.quality import DEFAULT_METRIC, REFERENCE_SIZE, Calibration, QualityModel, load_quality_model
from ...resources import DeviceResource, GmvHome, QualityScorerResource
from ...sources.images import ImageSequence
from ..automation import BATCH_TABLE, FOLLOWS_INPUTS, TRAIN_URIS, generated_batches
from ..galleries import picture, quality_gallery_image, quality_histogram_image
from ..metadata import config_metadata, versioned
from ..steps import GPU_TAGS, Progress


class QualityConfig(dg.Config):
    reference_size: int = Field(default=REFERENCE_SIZE, ge=10, description="training images that calibrate the scorer")
    seed: int = Field(default=0, description="seed of the reference sample (and of niqe_refit's noise anchor)")


@dg.asset(
    group_name="quality",
    code_version="8",  # 8: matched_detail's margins and reference_ratio (2026-12-07)
    op_tags=GPU_TAGS,
    ins={"training_images": TRAIN_URIS},
    automation_condition=FOLLOWS_INPUTS,
    kinds={"duckdb", "polars", "pytorch"},
)
def quality_calibration(
    context,
    config: QualityConfig,
    training_images: pl.DataFrame,
    quality_scorer: QualityScorerResource,
    quality_device: DeviceResource,
    gmv_home: GmvHome,
) -> dg.Output[pl.DataFrame]:
    """The scorer fitted on a seeded sample of training images (one row; matched_detail: its fences, niqe_refit: its
    pristine model and anchors): every batch is scored with it."""
    rows = seeded_rows(training_images.height, config.reference_size, config.seed)
    timings: dict = {}
    with timed(timings, "fit_seconds"):
        reference = ImageSequence(training_images["uri"].gather(rows).to_list())
        calibration = quality_scorer.calibrate(
            reference,
            quality_device.torch_device(),
            config.seed,
            gmv_home.subdir("quality"),
            Progress(context.log, f"calibrating {quality_scorer.metric}", 0),
        )
    context.log.info(
        f"calibrated {calibration.metric} on {len(rows)} training images in {timings['fit_seconds']} s"
        + (f", NIQE block {calibration.niqe_block} px" if calibration.niqe_block else "")
    )
    df = pl.DataFrame(
        [{**calibration.to_dict(), "reference_size": len(rows), "seed": config.seed}],
        schema={
            "metric": pl.String,
            "good": pl.Float64,
            "bad": pl.Float64,
            "params_file": pl.String,
            "params_sha256": pl.String,
            "input_size": pl.Int64,
            "niqe_block": pl.Int64,
            "reference_size": pl.Int64,
            "seed": pl.Int64,
        },
    )
    return versioned(
        df,
        **timings,
        niqe_block=calibration.niqe_block,
        reference_size=config.reference_size,
        seed=config.seed,
        **config_metadata(config),
    )


DETAILS_SCHEMA = {
    "id": pl.String,
    "height": pl.Int64,
    "width": pl.Int64,
    **{name: pl.Float64 for name in detail.FEATURES},
}


@dg.asset(
    group_name="quality",
    code_version="1",
    ins={"training_images": TRAIN_URIS},
    automation_condition=FOLLOWS_INPUTS,
    kinds={"duckdb", "polars"},
)
def training_details(
    context, training_images: pl.DataFrame, quality_scorer: QualityScorerResource
) -> dg.Output[pl.DataFrame]:
    """matched_detail's statistics of every training image at its own size (id, height, width, detail, noise,
    blocking; method/detail.py), measured once: a batch's quality step then reads its references' statistics here
    instead of decoding their images (a reference is read only where a generated image's size differs). Empty for a
    no-reference metric, which has no use for them."""
    timings: dict = {}
    if quality_scorer.metric != DEFAULT_METRIC:
        df = pl.DataFrame(schema=DETAILS_SCHEMA)
        context.log.info(f"quality metric {quality_scorer.metric} takes no references: nothing to measure")
    else:
        progress = Progress(context.log, "measuring training images", training_images.height)
        with timed(timings, "seconds"):
            sizes, stats = detail.measure(ImageSequence(training_images["uri"].to_list()), progress)
        df = pl.DataFrame(
            {
                "id": training_images["id"],
                "height": sizes[:, 0],
                "width": sizes[:, 1],
                **{name: stats[:, i] for i, name in enumerate(detail.FEATURES)},
            },
            schema=DETAILS_SCHEMA,
        )
    return versioned(
        df,
        metric=quality_scorer.metric,
        **timings,
        images_per_second=round(df.height / timings["seconds"], 1) if timings.get("seconds") else 0.0,
    )


@dg.asset(
    group_name="quality",
    code_version="9",  # 9: the worst departure, references as near as the nearest (2026-12-07)
    op_tags=GPU_TAGS,
    partitions_def=generated_batches,
    metadata=BATCH_TABLE,
    ins={"training_images": TRAIN_URIS},
    automation_condition=FOLLOWS_INPUTS,
    kinds={"duckdb", "polars", "pytorch"},
)
def quality_scores(
    context,
    generated_images: pl.DataFrame,
    quality_calibration: pl.DataFrame,
    matches: pl.DataFrame,
    training_images: pl.DataFrame,
    training_details: pl.DataFrame,
    quality_device: DeviceResource,
) -> dg.Output[pl.DataFrame]:
    """Quality q of each generated image of a batch (gen_id, raw_score, q, blur, noise, blocking, note, batch);
    images are read a scoring batch at a time. matched_detail compares each with its top matches (blur, noise,
    blocking: its departures from them, detail.py); a no-reference metric leaves those null, and an image it cannot
    score gets q = 0 and a note saying why (logged with its id)."""
    row = quality_calibration.row(0, named=True)
    calibration = Calibration.from_row(row)
    device = quality_device.torch_device()
    timings: dict = {}
    with timed(timings, "load_seconds"):  # the fitted parameters, and NIQE's compiled CPU loops (niqe_kernels)
        model = load_quality_model(calibration, device)
    references, counts = reference_images(generated_images, matches, training_images, model)
    measured = measured_references(matches, training_images, training_details, model.references)
    with timed(timings, "score_seconds"):
        raw, q, parts = model.score_parts(
            ImageSequence(generated_images["uri"].to_list()),
            Progress(context.log, f"scoring with {model.metric}", 0),
            references,
            measured,
        )
    context.log.info(f"scored {len(q)} generated images with {model.metric} in {timings['score_seconds']} s")
    notes = model.unscored(raw)
    for gen_id, note in zip(generated_images["id"], notes):
        if note is not None:
            context.log.warning(f"generated image {gen_id}: {note}")
    zero = float(np.mean(q == 0)) if len(q) else 0.0
    if zero >= 0.5:  # the batch hands out little or no credit: say why, where a user looks first
        why = (
            ""
            if parts is None
            else " (median departures from their matches: "
            + ", ".join(f"{name} {value:.2f}" for name, value in zip(detail.DEPARTURES, np.median(parts, axis=0)))
            + ")"
        )
        context.log.warning(
            f"{zero:.0%} of batch {context.partition_key!r} has q = 0{why}: its images hand out no "
            "credit; see README, 'Quality scorer'"
        )
    parts = np.full((len(q), 3), np.nan) if parts is None else parts
    df = pl.DataFrame(
        {
            "gen_id": generated_images["id"],
            "raw_score": raw,
            "q": q,
            **{name: pl.Series(parts[:, i]).fill_nan(None) for i, name in enumerate(detail.DEPARTURES)},
            "note": pl.Series(notes, dtype=pl.String),
            "batch": generated_images["batch"],
        }
    )
    return versioned(
        df,
        **{k: str(v) for k, v in model.describe().items()},
        mean_q=float(q.mean()) if len(q) else 0.0,
        # how many matches served as references (detail.reference_counts): 1 where the source stands out (a copy)
        **({} if counts is None or not len(counts) else {"mean_references": round(float(counts.mean()), 3)}),
        share_q_zero=zero,
        unscored=sum(n is not None for n in notes),
        device=str(device),
        reference_size=row["reference_size"],
        seed=row["seed"],
        **timings,
        calibration=dg.MetadataValue.json(json.loads(json.dumps(row))),
        q_histogram=picture(context, "q_histogram", quality_histogram_image(q, context.partition_key), "q histogram"),
        # a handful of images: the extremes, where a wrong q shows first
        gallery=picture(
            context,
            "gallery",
            quality_gallery_image(df, matches, training_images, generated_images, references=model.references or 3),
            "lowest-q and highest-q generated images beside their matched training images",
        ),
    )


def reference_images(
    generated_images: pl.DataFrame, matches: pl.DataFrame, training_images: pl.DataFrame, model: QualityModel
) -> tuple[list[ImageSequence], np.ndarray] | tuple[None, None]:
    """Per generated image (in `generated_images`' order), the matched training images that serve as its references,
    best first, loaded when read (`model.reference_counts` of its top `model.references`), and how many each has;
    (None, None) where the metric takes none."""
    top = model.references
    if not top:
        return None, None
    uris = (
        matches.filter(pl.col("rank") <= top)
        .join(training_images.select("id", "uri"), left_on="train_id", right_on="id", how="left")
        .sort("gen_id", "rank")
        .group_by("gen_id", maintain_order=True)
        .agg("uri", "distance")
    )
    unknown = uris.filter(pl.col("uri").list.eval(pl.element().is_null()).list.any())
    if unknown.height:
        raise ValueError(
            f"quality: generated image {unknown['gen_id'][0]} matched training images that are no longer "
            "in training_images: rematerialise matches for this batch first"
        )
    by_gen = {g: (u, d) for g, u, d in uris.iter_rows()}
    missing = [g for g in generated_images["id"] if g not in by_gen]
    if missing:
        raise ValueError(
            f"quality: {len(missing)} generated image(s) of the batch have no matches (first: {missing[0]}):"
            " rematerialise matches for this batch first"
        )
    rows = [by_gen[g] for g in generated_images["id"]]
    distances = np.full((len(rows), top), np.inf)
    for j, (_, d) in enumerate(rows):
        distances[j, : len(d)] = d
    counts = model.reference_counts(distances)
    return [ImageSequence(list(u[:c])) for (u, _), c in zip(rows, counts)], counts


def measured_references(
    matches: pl.DataFrame, training_images: pl.DataFrame, training_details: pl.DataFrame, top: int
) -> dict | None:
    """{(uri, (height, width)): statistics} of the batch's references, from training_details (what
    detail.reference_features reads before it reads an image); None where the metric takes none."""
    if not top:
        return None
    rows = (
        matches.filter(pl.col("rank") <= top)
        .select("train_id")
        .unique()
        .join(training_images.select("id", "uri"), left_on="train_id", right_on="id")
        .join(training_details, left_on="train_id", right_on="id")
    )
    return {
        (uri, (h, w)): np.array(stats)
        for uri, h, w, *stats in rows.select("uri", "height", "width", *detail.FEATURES).iter_rows()
    }
