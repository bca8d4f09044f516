"""LDS: the linear datamodeling score over generators retrained on random halves of the training set."""

import time

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from ...evaluation.criteria import Measure
from ...evaluation.lds import (
    LdsResult,
    attribution_matrix,
    linear_datamodeling_score,
    random_subsets,
    ridge_datamodel_lds,
    seed_noise,
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
AVERAGED, ONE_SEED = "against the seeds' mean", "against one seed"  # the settings: which retrains' outputs
CEILING = "LDS ceiling"  # the metric of the rows that bound what LDS can show here


class LdsConfig(dg.Config):
    subsets: int = Field(default=32, ge=8, description="S: random training subsets, each with retrained generators")
    fraction: float = Field(default=0.5, gt=0, lt=1, description="share of the training set in each subset")
    seeds: int = Field(
        default=2,
        ge=1,
        description="retrains per subset (the pipeline's seed, then the next ones): LDS correlates with the mean of "
        "their outputs, as D-TRAK does; two or more also measure the ceiling that seed noise leaves",
    )
    seed: int = Field(default=0, description="seed of the subsets")


def lds_measure(result: LdsResult, note: str) -> Measure:
    """A method's LDS as a report row's measure (no value where no sample has a correlation), its note followed by
    how many samples are undefined, where any are."""
    undefined = len(result.per_sample) - result.defined
    if undefined:
        note += f"; {undefined} of {len(result.per_sample)} samples undefined (no attribution varies over the subsets)"
    return Measure(None if result.defined == 0 else result.mean, result.defined, result.low, result.high, note)


def lds_rows(
    rows: Rows, attributions: dict[str, np.ndarray], masks: np.ndarray, outputs: np.ndarray, seed: int
) -> None:
    """Each method's LDS against the seeds' mean and against the first seed's retrains, and beside them the
    ceilings: what seed noise permits (two or more seeds) and what a ridge datamodel fitted to the other subsets'
    retrains reaches (cross-fitted); each method's row names both in its note, so the headline carries them."""
    targets = {AVERAGED: outputs.mean(0), ONE_SEED: outputs[0]} if len(outputs) > 1 else {ONE_SEED: outputs[0]}
    noise = seed_noise(outputs) if len(outputs) > 1 else None
    beside = {}
    for setting, target in targets.items():
        ridge = ridge_datamodel_lds(masks, target, seed=seed)
        fitted = "fitted on 3/4 of the subsets, held out"
        rows.add(
            CEILING,
            "ceiling: ridge datamodel",
            setting,
            Measure(ridge.mean, ridge.defined, ridge.low, ridge.high, fitted),
        )
        beside[setting] = f"ridge datamodel {ridge.mean:.3f}"
        if noise is not None:
            averaged = len(outputs) if setting == AVERAGED else 1
            agreement = (
                f"the retrains' agreement: mean Spearman of two seeds' outputs per sample r = {noise.agreement:.3f}"
            )
            rows.add(CEILING, "ceiling: seed noise", setting, noise.ceiling(averaged), len(noise.per_sample), agreement)
            beside[setting] = f"seed noise {noise.ceiling(averaged):.3f}, {beside[setting]}"
    for method, attribution in attributions.items():
        for setting, target in targets.items():
            if method == "uniform":
                rows.not_run(NAME, method, setting, "equal attribution to every image: every subset sums to the same")
                continue
            result = linear_datamodeling_score(attribution, masks, target, seed=seed)
            rows.add(NAME, method, setting, lds_measure(result, f"ceilings {setting}: {beside[setting]}"))


@dg.asset(
    group_name="reports", code_version="3", op_tags=GPU_TAGS, deps=SETTINGS_FROM, kinds={"duckdb", "polars", "pytorch"}
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
    """Linear datamodeling score: the demo generator retrained on S random halves of the training set with each of
    `seeds` seeds (cached by content); per generated sample, the Spearman correlation over subsets between a
    method's attribution summed over the subset and the retrained models' mean output on the sample (VAE: its ELBO;
    DDPM: minus its denoising loss, evaluation/lds.model_outputs); the mean with a bootstrap 95% interval. Beside
    it, the ceilings of the protocol: what seed noise permits, what a cross-fitted ridge datamodel reaches. The DDPM
    retrains take its full training each (about 160 s on 2 cores at the default 2,000 steps)."""
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
        return not_run_without_generator(context, rows, NAME, ONE_SEED)
    ids = training_images["id"].to_list()
    train = TrainingSet(
        load_images(training_images["uri"].to_list()),
        training_images["content_hash"].to_list(),
        training_images["label"].to_list(),
    )
    gen_ids = generated_images["id"].to_list()
    output = OutputOf(load_images(generated_images["uri"].to_list()), generated_images["label"].to_list(), config.seed)
    masks = random_subsets(len(ids), config.subsets, config.fraction, config.seed)
    started = time.perf_counter()
    seeds = retrain_seeds(kit.generator_spec, config.seeds)
    outputs = kit.retrained_outputs(train, masks, seeds, output)
    attributions = {
        name: attribution_matrix(contributors, gen_ids, ids)
        for (name,), contributors in method_contributors.group_by("method", maintain_order=True)
    }
    lds_rows(rows, attributions, masks, outputs, config.seed)
    df = rows.frame()
    anchors = "; ".join(f"{name} {test:.2f} ({val:.2f})" for name, (test, val) in LDS_ANCHORS.items())
    output_name = (
        "minus the VAE's negative ELBO"
        if kit.generator_spec.family == "vae"
        else "minus the DDPM's denoising loss (10 fixed timesteps, seeded noise)"
    )
    summary = (
        f"LDS over {config.subsets} random {config.fraction:.0%} subsets, the generator retrained on each with seeds "
        f"{seeds}; model output = {output_name} of each generated sample.\n\n{pivot_markdown(df)}\n\nPublished on "
        f"CIFAR-2 (D-TRAK's protocol; validation samples in brackets): {anchors}."
    )
    plot = bar_plot(df, "setting", "LDS (Spearman, mean over generated samples)", "LDS")
    context.add_output_metadata(
        report_metadata(
            df,
            summary,
            plot,
            retrained=outputs.shape[0] * outputs.shape[1],
            seconds=round(time.perf_counter() - started, 1),
        )
    )
    return df


CRITERION = Criterion(
    criterion_lds,
    (
        Section(
            NAME,
            None,
            "setting",
            (
                "Linear datamodeling score (TRAK; D-TRAK's protocol): the demo VAE retrained on S = 32 random halves "
                "of the training set, twice each (seeds 0 and 1); for each generated sample, the Spearman correlation "
                "over the subsets between the method's attribution summed over the subset and the retrained models' "
                "log-likelihood of the sample (minus its negative ELBO), against the mean of the two seeds' outputs "
                "(D-TRAK averages seeds too) and against seed 0's alone; the mean over samples, 95% bootstrap "
                "interval in `criterion_report`. Attributions are each method's listed contributors (GMValuator's "
                "credit is exactly its top k; TracIn is cut to its top 50). The ceiling rows bound what this protocol "
                "can show: `ceiling: seed noise` is the LDS that an attribution predicting the retrains' expected "
                "output exactly would reach, given how little two seeds' outputs agree (r in the note); `ceiling: "
                "ridge datamodel` is what a linear attribution fitted (ridge) to the outputs of 3/4 of the subsets "
                "reaches on the other 1/4. How the ceiling and the interval move with S (and which S brings "
                "GMValuator's interval within +-0.01), the k and temperature sweep and the DDPM's LDS: "
                "`bench/lds_ceiling.py` below. Published on CIFAR-2 generated samples (another data set and a DDPM, "
                "validation samples in brackets): pixel similarity 0.05 (0.08), CLIP similarity 0.04 (0.09), TRAK "
                "0.16 (0.24), D-TRAK 0.26 (0.34)."
            ),
        ),
    ),
    (Headline("LDS", NAME, NAME, AVERAGED),),
)
