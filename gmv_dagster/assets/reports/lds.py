"""LDS: the linear datamodeling score over generators retrained on random halves of the training set."""

import time

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from ...evaluation.criteria import (
    Measure,
)
from ...evaluation.lds import (
    attribution_matrix,
    linear_datamodeling_score,
    model_outputs,
    random_subsets,
)
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
from .retrain import not_run_without_generator
from .tables import Criterion, Headline, Rows, Section, bar_plot, pivot_markdown, report_metadata

# Published LDS on CIFAR-2 generated samples (D-TRAK, Zheng et al., ICLR 2024, DDPM, S = 100 half subsets):
# validation-set samples in brackets. Another data set and generator: a scale to read ours against, not a target.
LDS_ANCHORS = {
    "pixel similarity": (0.05, 0.08),
    "CLIP similarity": (0.04, 0.09),
    "TRAK": (0.16, 0.24),
    "D-TRAK": (0.26, 0.34),
}

NAME = "LDS"  # the criterion column of its rows


class LdsConfig(dg.Config):
    subsets: int = Field(default=32, ge=2, description="S: random training subsets, each with a retrained generator")
    fraction: float = Field(default=0.5, gt=0, lt=1, description="share of the training set in each subset")
    seed: int = Field(default=0, description="seed of the subsets (the generator retrains from the pipeline's seed)")


@dg.asset(
    group_name="reports", code_version="2", op_tags=GPU_TAGS, deps=SETTINGS_FROM, kinds={"duckdb", "polars", "pytorch"}
)
def criterion_lds(
    context,
    config: LdsConfig,
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
    """Linear datamodeling score: the demo generator retrained on S random halves of the training set (cached by
    content); per generated sample, the Spearman correlation over subsets between a method's summed attribution
    to the subset and the retrained model's output on the sample (VAE: its ELBO; DDPM: minus its denoising loss,
    evaluation/lds.model_outputs); the mean with a bootstrap 95% interval. The DDPM retrains take its full
    training each (about 160 s on 2 cores at the default 2,000 steps)."""
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
    setting = f"S={config.subsets}, {config.fraction:.0%} subsets"
    if kit.generator_spec is None:
        return not_run_without_generator(context, rows, "LDS", setting)
    ids, hashes, labels = (training_images[c].to_list() for c in ("id", "content_hash", "label"))
    images = load_images(training_images["uri"].to_list())
    gen_ids, gen_labels = generated_images["id"].to_list(), generated_images["label"].to_list()
    gen = load_images(generated_images["uri"].to_list())
    masks = random_subsets(len(ids), config.subsets, config.fraction, config.seed)
    outputs = np.empty((config.subsets, len(gen_ids)))
    started = time.perf_counter()
    for s, mask in enumerate(masks):
        keep = np.flatnonzero(mask)
        generator = kit.generator(
            kit.generator_spec, [images[r] for r in keep], [hashes[r] for r in keep], [labels[r] for r in keep]
        )
        outputs[s] = model_outputs(generator, gen, gen_labels, seed=config.seed)
        kit.log(
            f"LDS: model {s + 1}/{config.subsets} on {len(keep)} training images "
            f"({(time.perf_counter() - started) / (s + 1):.1f} s per model)"
        )
    for (method,), contributors in method_contributors.group_by("method", maintain_order=True):
        if method == "uniform":
            rows.not_run("LDS", method, setting, "equal attribution to every image: every subset sums to the same")
            continue
        result = linear_datamodeling_score(
            attribution_matrix(contributors, gen_ids, ids), masks, outputs, seed=config.seed
        )
        undefined = len(gen_ids) - result.defined
        note = (
            f"{undefined} of {len(gen_ids)} samples undefined (no attribution varies over the subsets)"
            if undefined
            else None
        )
        rows.add(
            "LDS",
            method,
            setting,
            Measure(None if result.defined == 0 else result.mean, result.defined, result.low, result.high, note),
        )
    df = rows.frame()
    anchors = "; ".join(f"{name} {test:.2f} ({val:.2f})" for name, (test, val) in LDS_ANCHORS.items())
    output = (
        "minus the VAE's negative ELBO"
        if kit.generator_spec.family == "vae"
        else "minus the DDPM's denoising loss (10 fixed timesteps, seeded noise)"
    )
    summary = (
        f"LDS over {config.subsets} generators retrained on random {config.fraction:.0%} subsets; model output = "
        f"{output} of each generated sample.\n\n{pivot_markdown(df)}\n\nPublished on CIFAR-2 "
        f"(D-TRAK's protocol; validation samples in brackets): {anchors}."
    )
    plot = bar_plot(df, "setting", "LDS (Spearman, mean over generated samples)", "LDS")
    context.add_output_metadata(
        report_metadata(df, summary, plot, retrained=config.subsets, seconds=round(time.perf_counter() - started, 1))
    )
    return df


CRITERION = Criterion(
    criterion_lds,
    (
        Section(
            NAME,
            "LDS",
            "setting",
            (
                "Linear datamodeling score (TRAK; D-TRAK's protocol): the demo VAE retrained on S random halves of "
                "the training set; for each generated sample, the Spearman correlation over the subsets between the "
                "method's attribution summed over the subset and the retrained model's log-likelihood of the sample "
                "(minus its negative ELBO); the mean over samples, 95% bootstrap interval in `criterion_report`. "
                "Attributions are each method's listed contributors (GMValuator's credit is exactly its top k; TracIn"
                " is cut to its top 50). Published on CIFAR-2 generated samples (another data set and a DDPM, "
                "validation samples in brackets): pixel similarity 0.05 (0.08), CLIP similarity 0.04 (0.09), TRAK "
                "0.16 (0.24), D-TRAK 0.26 (0.34)."
            ),
        ),
    ),
    (Headline("LDS", NAME, "LDS"),),
)
