"""Consistency: the values again with another generation seed and another generator family."""

from dataclasses import replace

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from ...evaluation.criteria import (
    rank_correlations,
)
from ...evaluation.methods import EmbeddedSets, similarity_method
from ...method.matching import IndexShard
from ...method.search import build_hnsw
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
from .baselines import SETTINGS_FROM, pipeline_generator, report_kit
from .retrain import NEEDS_GENERATOR, sample_generations
from .tables import Criterion, Headline, Rows, Section, bar_plot, pivot_markdown, report_metadata

NAME = "consistency"  # the criterion column of its rows


class ConsistencyConfig(dg.Config):
    second_seed: int = Field(default=1, description="generation seed compared with the pipeline's")
    other_family: str = Field(
        default="auto", description="generator family compared: auto = the one the pipeline did not use"
    )


@dg.asset(
    group_name="reports", code_version="1", op_tags=GPU_TAGS, deps=SETTINGS_FROM, kinds={"duckdb", "polars", "pytorch"}
)
def criterion_consistency(
    context,
    config: ConsistencyConfig,
    method_values: pl.DataFrame,
    training_images: pl.DataFrame,
    train_embeddings: pl.DataFrame,
    generated_embeddings: pl.DataFrame,
    quality_scores: pl.DataFrame,
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
    """Rank correlation of values across generation seeds, generator families, ANN vs exact and the index's precision
    (the pipeline's, bf16 by default) vs f32."""
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
    train_emb = np.asarray(gmv_home.vector_store.train_vectors(train_embeddings))
    base = {m: part for (m,), part in method_values.group_by("method", maintain_order=True)}

    def compare(setting: str, outputs, skipped) -> None:
        for out in outputs:
            if out.method in base:
                for metric, measure in rank_correlations(base[out.method], out.values).items():
                    rows.add(metric, out.method, setting, measure)
        for method, reason in skipped.items():
            rows.not_run("spearman", method, setting, reason)

    # Search settings, on the pipeline's own embeddings and quality scores.
    sets = EmbeddedSets(
        ids,
        generated_embeddings["id"].to_list(),
        train_emb,
        embedding_matrix(generated_embeddings),
        quality_scores.select("gen_id", "q"),
    )
    # Upright, whatever the pipeline's flips: these rows compare search precision, which a mirror image's search
    # shares (and this asset does not read the generated images to mirror them).
    setup = kit.suite.setup
    searched = {"exact": similarity_method("exact", sets, setup, exact=True, flips=False)}
    dtype = setup.settings.hnsw.dtype  # the pipeline's index precision, against exact search and against f32
    for each in dict.fromkeys([dtype, "f32"]):
        index = build_hnsw(train_emb, replace(setup.settings.hnsw, dtype=each))
        searched[each] = similarity_method(
            each, sets, setup, shards=[IndexShard(0, len(train_emb), index)], flips=False
        )
    for metric, measure in rank_correlations(searched[dtype].values, searched["exact"].values).items():
        rows.add(metric, "gmv", f"ANN (HNSW {dtype}) vs exact", measure)
    for metric, measure in rank_correlations(searched[dtype].values, searched["f32"].values).items():
        rows.add(metric, "gmv", f"HNSW {dtype} vs f32", measure)

    if kit.generator_spec is None:
        for setting in ("generation seed", "generator family"):
            rows.not_run("spearman", "all", setting, NEEDS_GENERATOR)
    else:
        images = load_images(training_images["uri"].to_list())
        quality = kit.fit_quality(images, "consistency")
        generator = pipeline_generator(kit, training_images, images)
        family = kit.generator_spec.family
        seeded = sample_generations(kit, generator, config.second_seed, f"seed{config.second_seed}-{family}")
        compare("generation seed", *kit.value(ids, images, labels, seeded, generator, quality, train_emb))
        other = config.other_family if config.other_family != "auto" else ("diffusion" if family == "vae" else "vae")
        kit.log(f"consistency: training the {other} generator on the same {len(ids)} images")
        second = kit.generator(
            replace(kit.generator_spec, family=other), images, training_images["content_hash"].to_list(), labels
        )
        compare(
            f"generator family ({family} vs {other})",
            *kit.value(
                ids,
                images,
                labels,
                sample_generations(kit, second, kit.generation_seed, other),
                second,
                quality,
                train_emb,
            ),
        )
    df = rows.frame()
    summary = (
        f"{pivot_markdown(df.filter(pl.col('metric') == 'spearman'))}\n\n### Kendall\n\n"
        f"{pivot_markdown(df.filter(pl.col('metric') == 'kendall'))}"
    )
    plot = bar_plot(df.filter(pl.col("metric") == "spearman"), "setting", "Consistency: Spearman of values", "rho")
    context.add_output_metadata(report_metadata(df, summary, plot))
    return df


CRITERION = Criterion(
    criterion_consistency,
    (
        Section(
            NAME,
            "spearman",
            "setting",
            "Spearman rank correlation of the values with the pipeline's run.",
        ),
        Section(
            NAME,
            "kendall",
            "setting",
            "Kendall tau-b of the same.",
        ),
    ),
    (Headline("consistency seeds", NAME, "spearman", "generation seed", share=True),),
)
