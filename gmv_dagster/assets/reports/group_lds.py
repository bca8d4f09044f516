"""Group LDS: the linear datamodeling score over generators retrained on random halves of groups of training images
(their classes; random groups of a fixed size): whole groups kept or dropped, each method's attribution summed over
the kept groups' images. At this level a similarity's attribution was reported close to gradient methods' (GUDA,
ICML 2026: CLIP similarity 0.246, DAS 0.267, on classes)."""

import time

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from ...evaluation.lds import (
    attribution_matrix,
    group_subsets,
    linear_datamodeling_score,
    random_groups,
)
from ...evaluation.retrain import OutputOf, TrainingSet, retrain_seeds
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
from .lds import lds_measure
from .retrain import not_run_without_generator
from .tables import Criterion, Headline, Rows, Section, bar_plot, pivot_markdown, report_metadata

NAME = "group LDS"  # the criterion column of its rows
GROUPINGS = ("classes", "random")


class GroupLdsConfig(dg.Config):
    groupings: list[str] = Field(
        default=list(GROUPINGS), description="classes (the training images' labels) | random (groups of group_size)"
    )
    group_size: int = Field(default=100, ge=1, description="training images per random group")
    subsets: int = Field(default=16, ge=2, description="S per grouping: random halves of the groups, each retrained")
    fraction: float = Field(default=0.5, gt=0, lt=1, description="share of the groups in each subset")
    seed: int = Field(default=0, description="seed of the random groups and of the subsets")


@dg.asset(
    group_name="reports", code_version="2", op_tags=GPU_TAGS, deps=SETTINGS_FROM, kinds={"duckdb", "polars", "pytorch"}
)
def criterion_group_lds(
    context,
    config: GroupLdsConfig,
    method_contributors: pl.DataFrame,
    training_images: pl.DataFrame,
    generated_images: pl.DataFrame,
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
    """LDS at the level of groups: the demo VAE retrained on S random halves of the groups (cached by content); per
    generated sample, the Spearman correlation over subsets between a method's attribution summed over the kept
    groups' images and the retrained model's output on the sample (the ELBO of a uniform mixture of the classes it
    was trained on: a subset may lack the sample's class); the mean with a bootstrap 95% interval."""
    unknown = set(config.groupings) - set(GROUPINGS)
    if unknown or not config.groupings:
        raise ValueError(f"group LDS groupings must be some of {GROUPINGS}, got {config.groupings}")
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
        return not_run_without_generator(context, rows, NAME, "all")
    ids, hashes, labels = (training_images[c].to_list() for c in ("id", "content_hash", "label"))
    groups = {}
    for grouping in config.groupings:
        if grouping == "classes":
            groups["classes"] = np.array([str(label) for label in labels])
        else:
            groups[f"random groups of {config.group_size}"] = random_groups(len(ids), config.group_size, config.seed)
    if kit.generator_spec.family != "vae":
        for setting in groups:
            rows.not_run(NAME, "all", setting, "the output over a subset's classes is the demo VAE's; this is a DDPM")
        df = rows.frame()
        context.add_output_metadata(report_metadata(df, "not run: the generator is a DDPM", ""))
        return df
    train = TrainingSet(load_images(training_images["uri"].to_list()), hashes, labels)
    gen_ids = generated_images["id"].to_list()
    output = OutputOf(load_images(generated_images["uri"].to_list()), None)
    attributions = {
        name: attribution_matrix(contributors, gen_ids, ids)
        for (name,), contributors in method_contributors.group_by("method", maintain_order=True)
    }
    started, retrained = time.perf_counter(), 0
    for setting, group in groups.items():
        masks = group_subsets(group, config.subsets, config.fraction, config.seed)
        kit.log(f"group LDS ({setting}): {config.subsets} subsets")
        outputs = kit.retrained_outputs(train, masks, retrain_seeds(kit.generator_spec, 1), output)[0]
        retrained += len(masks)
        n_groups = len(np.unique(group))
        for name, attribution in attributions.items():
            if name == "uniform":
                rows.not_run(NAME, name, setting, "equal attribution to every image: only the subset's size varies")
                continue
            result = linear_datamodeling_score(attribution, masks, outputs, seed=config.seed)
            rows.add(NAME, name, setting, lds_measure(result, f"{n_groups} groups"))
    df = rows.frame()
    summary = (
        f"Group LDS over {config.subsets} generators per grouping, each retrained on a random "
        f"{config.fraction:.0%} of the groups; model output = the ELBO of a uniform mixture of the retrained VAE's "
        f"classes for each generated sample.\n\n{pivot_markdown(df)}"
    )
    plot = bar_plot(df, "setting", "Group LDS (Spearman, mean over generated samples)", "LDS")
    context.add_output_metadata(
        report_metadata(df, summary, plot, retrained=retrained, seconds=round(time.perf_counter() - started, 1))
    )
    return df


CRITERION = Criterion(
    criterion_group_lds,
    (
        Section(
            NAME,
            NAME,
            "setting",
            "LDS at the level of groups: the demo VAE retrained on S = 16 random halves of the groups of training "
            "images (their 10 classes; random groups of 100 images), whole groups kept or dropped; per generated "
            "sample, the Spearman correlation over the subsets between each method's attribution summed over the kept "
            "groups' images and the retrained model's ELBO of the sample under a uniform mixture of its classes (a "
            "subset may lack the sample's class); the mean over samples. Published on classes (GUDA, ICML 2026, "
            "another data set and generator): CLIP similarity 0.246, DAS 0.267.",
        ),
    ),
    (Headline("group LDS (classes)", NAME, NAME, "classes"),),
)
