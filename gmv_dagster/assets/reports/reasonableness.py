"""Reasonableness: training images planted as generated near-copies, which should credit their source first."""

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from ...common.sampling import seeded_rows
from ...evaluation.criteria import (
    Measure,
    wilson_interval,
)
from ...evaluation.experiments import Generations
from ...evaluation.pollution import (
    near_copy,
)
from ...method.quality import Calibration, load_quality_model
from ...resources import (
    DeviceResource,
    EmbedderResource,
    GmvHome,
    MethodResource,
    QualityScorerResource,
    ReportSettings,
)
from ...sources.images import ImageSequence
from ..steps import GPU_TAGS
from .baselines import SETTINGS_FROM, pipeline_generator, report_kit
from .tables import Criterion, Headline, Rows, Section, bar_plot, pivot_markdown, report_metadata

NAME = "reasonableness"  # the criterion column of its rows


class ReasonablenessConfig(dg.Config):
    n_copies: int = Field(default=200, gt=0, description="training images planted as generated near-copies")
    seed: int = 0


@dg.asset(
    group_name="reports", code_version="1", op_tags=GPU_TAGS, deps=SETTINGS_FROM, kinds={"duckdb", "polars", "pytorch"}
)
def criterion_reasonableness(
    context,
    config: ReasonablenessConfig,
    training_images: pl.DataFrame,
    train_embeddings: pl.DataFrame,
    gmv_home: GmvHome,
    method: MethodResource,
    embedder: EmbedderResource,
    quality_scorer: QualityScorerResource,
    report_settings: ReportSettings,
    embedding_device: DeviceResource,
    quality_device: DeviceResource,
    generator_device: DeviceResource,
    matching_device: DeviceResource,
) -> pl.DataFrame:
    """Reasonableness: generated near-copies of known training images must name their source as top contributor."""
    kit = report_kit(
        context,
        gmv_home,
        method,
        embedder,
        quality_scorer,
        report_settings,
        embedding_device,
        quality_device,
        generator_device,
        matching_device,
    )
    rows = Rows(NAME)
    ids, labels = training_images["id"].to_list(), training_images["label"].to_list()
    # Loaded a row at a time where a method asks for one (the demo generator, retrained on all of them, reads all).
    images = ImageSequence(training_images["uri"].to_list())
    rng = np.random.default_rng(config.seed)
    sources = seeded_rows(len(ids), config.n_copies, config.seed)
    planted = Generations(
        [f"copy:{ids[r]}" for r in sources], [near_copy(images[r], rng) for r in sources], [labels[r] for r in sources]
    )
    generator = pipeline_generator(kit, training_images, images)
    # Rankings do not depend on q, so the copies are not scored (q = 1) and no scorer is fit here.
    unit_quality = load_quality_model(Calibration("none"))
    outputs, skipped = kit.value(
        ids,
        images,
        labels,
        planted,
        generator,
        unit_quality,
        np.asarray(gmv_home.vector_store.train_vectors(train_embeddings)),
    )
    truth = pl.DataFrame({"gen_id": planted.ids, "source": [ids[r] for r in sources]})
    for out in outputs:
        found = out.contributors.join(truth, on="gen_id").filter(pl.col("train_id") == pl.col("source"))
        for k in (1, 10):
            hits = found.filter(pl.col("rank") <= k)["gen_id"].n_unique()
            lo, hi = wilson_interval(hits, len(sources))
            rows.add(
                f"source in top-{k}", out.method, "near-copies", Measure(hits / len(sources), len(sources), lo, hi)
            )
    for method, reason in skipped.items():
        rows.not_run("source in top-1", method, "near-copies", reason)
    df = rows.frame()
    summary = (
        f"{len(sources)} training images planted as generated images (shifted one pixel, contrast 0.9, noise "
        "sd 8); share whose source is the top-1 / in the top-10 contributors.\n\n"
        f"{pivot_markdown(df, columns='metric')}"
    )
    plot = bar_plot(df, "metric", "Reasonableness: near-copies credit their source", "share")
    context.add_output_metadata(report_metadata(df, summary, plot))
    return df


CRITERION = Criterion(
    criterion_reasonableness,
    (
        Section(
            NAME,
            None,
            "metric",
            (
                "Generated near-copies of known training images (shifted one pixel, contrast 0.9, noise sd 8): share "
                "whose source is the top-1 / in the top-10 contributors."
            ),
        ),
    ),
    (Headline("near-copy source top-1", NAME, "source in top-1", "near-copies", share=True),),
)
