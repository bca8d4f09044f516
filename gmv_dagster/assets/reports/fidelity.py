"""Fidelity: remove the top / a random / the bottom share by value, retrain, and see what the generations lose."""

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from ...evaluation.experiments import fidelity_measures, removal_sets
from ...pipeline.vectors import embedding_matrix
from ...resources import (
    DeviceResource,
    EmbedderResource,
    GmvHome,
    MethodResource,
    QualityScorerResource,
    ReportSettings,
)
from ...sources.images import load_images
from ..steps import GPU_TAGS
from .baselines import SETTINGS_FROM, report_kit
from .retrain import not_run_without_generator, sample_generations
from .tables import Criterion, Headline, Rows, Section, bar_plot, pivot_markdown, report_metadata

NAME = "fidelity"  # the criterion column of its rows


class FidelityConfig(dg.Config):
    share: float = Field(default=0.10, gt=0, lt=1, description="share p of the training set removed")
    methods: list[str] = Field(
        default=["gmv", "gmv_q1", "gmv_exact", "gmv_rerank_l2", "tracin", "random"],
        description="methods whose top / bottom p% are removed (each: two retrains)",
    )
    seed: int = 0


@dg.asset(
    group_name="reports", code_version="1", op_tags=GPU_TAGS, deps=SETTINGS_FROM, kinds={"duckdb", "polars", "pytorch"}
)
def criterion_fidelity(
    context,
    config: FidelityConfig,
    method_values: pl.DataFrame,
    training_images: pl.DataFrame,
    train_embeddings: pl.DataFrame,
    generated_embeddings: pl.DataFrame,
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
    """Remove the top / a random / the bottom p% by value, retrain, regenerate from the same noise: how far do \
generations move?"""
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
    if kit.generator_spec is None:
        return not_run_without_generator(context, rows, "distance_to_removed_gain", "all")
    ids = training_images["id"].to_list()
    position = {i: r for r, i in enumerate(ids)}
    images = load_images(training_images["uri"].to_list())
    hashes, labels = training_images["content_hash"].to_list(), training_images["label"].to_list()
    train_emb, before = (
        np.asarray(gmv_home.vector_store.train_vectors(train_embeddings)),
        embedding_matrix(generated_embeddings),
    )
    measured: dict[tuple[str, ...], dict] = {}  # removal set -> measures (the random arm is shared)
    available = set(method_values["method"].unique())
    if "uniform" in available and "uniform" not in config.methods:
        rows.not_run(
            "distance_to_removed_gain",
            "uniform",
            f"top {config.share:.0%}",
            "every value is equal: there is no top or bottom",
        )
    for method in config.methods:
        if method not in available:
            rows.not_run("distance_to_removed_gain", method, "all", "this method did not run (see method_values)")
            continue
        sets = removal_sets(method_values.filter(pl.col("method") == method), config.share, config.seed)
        for arm in ("top", "random", "bottom"):
            removed = tuple(sets[arm])
            if removed not in measured:
                dropped = set(removed)
                keep = [r for r in range(len(ids)) if ids[r] not in dropped]
                kit.log(f"fidelity: {method} {arm} {config.share:.0%} removed; retraining on {len(keep)} images")
                generator = kit.generator(
                    kit.generator_spec, [images[r] for r in keep], [hashes[r] for r in keep], [labels[r] for r in keep]
                )
                after = kit.embed(sample_generations(kit, generator, kit.generation_seed, "retrained").images)
                measured[removed] = fidelity_measures(
                    before, after, train_emb[[position[i] for i in removed]], train_emb
                )
            for metric, value in measured[removed].items():
                rows.add(metric, method, f"{arm} {config.share:.0%}", value, len(removed))
    df = rows.frame()
    summary = (
        "Expected order: removing the top-valued images moves generations most (top > random > bottom).\n\n"
        + "\n\n".join(
            f"### {m}\n\n{pivot_markdown(df.filter(pl.col('metric') == m), digits=4)}"
            for m in dict.fromkeys(df["metric"].to_list())
        )
    )
    plot = bar_plot(
        df.filter(pl.col("metric") == "distance_to_removed_gain"),
        "setting",
        "Fidelity: gain in distance to the removed images",
        "cosine distance",
    )
    context.add_output_metadata(report_metadata(df, summary, plot, retrains=len(measured)))
    return df


def top_minus_bottom(rows: pl.DataFrame) -> pl.DataFrame:
    """Fidelity's headline: each method's gain from removing its top share minus that from removing its bottom."""
    return rows.group_by("method", maintain_order=True).agg(
        value=pl.col("value").filter(pl.col("setting").str.starts_with("top")).first()
        - pl.col("value").filter(pl.col("setting").str.starts_with("bottom")).first()
    )


CRITERION = Criterion(
    criterion_fidelity,
    (
        Section(
            NAME,
            "distance_to_removed_gain",
            "setting",
            (
                "Remove p% of the training set, retrain from the same seed, regenerate from the same noise: mean "
                "increase of each generation's distance to the nearest removed image. Expected: top > random > "
                "bottom."
            ),
        ),
        Section(
            NAME,
            "displacement",
            "setting",
            "Mean cosine distance between each generation and its counterpart from the same noise.",
        ),
        Section(
            NAME,
            "frechet_gain",
            "setting",
            "Change of the Fréchet distance (embedding space) from the generations to the full training set.",
        ),
    ),
    (Headline("fidelity top - bottom", NAME, "distance_to_removed_gain", reduce=top_minus_bottom),),
)
