"""The linear datamodeling score (LDS; TRAK, Park et al. 2023; D-TRAK, Zheng et al. 2024), the computation only.

Given attributions tau(z_j)_i of generated sample j to training image i, S random training subsets (masks) and,
for each subset s, the output f_s(z_j) of a model retrained on it, LDS_j is the Spearman correlation over s of
sum_{i in S_s} tau(z_j)_i and f_s(z_j); LDS is the mean over j, with a bootstrap interval over the samples.
The output must grow with attribution (TRAK uses the log-probability): for a loss, pass its negative.
Retraining the generator on the subsets belongs to the caller (the criterion_lds asset); the output of a retrained
demo generator is `model_outputs` (the VAE's `vae_log_likelihoods`, the DDPM's `ddpm_log_likelihoods`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from ..common.tensors import to_tensor_batch
from ..demo.diffusion import cosine_alpha_bar
from ..demo.generator import IMAGE_SIZE, DemoGenerator
from .tracin import vae_losses


@dataclass(frozen=True)
class LdsResult:
    mean: float  # LDS: mean over the samples with a defined correlation
    low: float  # bootstrap 95% interval of the mean
    high: float
    per_sample: np.ndarray  # (m,) Spearman per generated sample; NaN where undefined (constant predictions)
    defined: int  # samples with a defined correlation


def random_subsets(n: int, count: int, fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """(count, n) boolean masks, each exactly round(fraction * n) training images drawn without replacement,
    seeded: the same masks for the same arguments (D-TRAK: half of the training set, S >= 32)."""
    if not 0 < fraction < 1 or count < 2 or n < 2:
        raise ValueError(f"subsets need 0 < fraction < 1, count >= 2 and n >= 2 (got {fraction}, {count}, {n})")
    size = round(fraction * n)
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, n), dtype=bool)
    for s in range(count):
        masks[s, rng.choice(n, size=size, replace=False)] = True
    return masks


def group_subsets(groups: np.ndarray, count: int, fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """(count, n) boolean masks over the n training images that keep or drop whole groups: each mask keeps
    round(fraction x G) of the G groups (`groups`: each image's group, any labels), drawn without replacement,
    seeded. Group-level LDS (the datamodel over groups, as GUDA's) correlates with these."""
    keys, group_of = np.unique(np.asarray(groups), return_inverse=True)
    if len(keys) < 2:
        raise ValueError(f"group subsets need at least 2 groups, got {len(keys)}")
    return random_subsets(len(keys), count, fraction, seed)[:, group_of]


def random_groups(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Each of n training images' group: a seeded random partition into groups of `size` (the last may be
    smaller)."""
    if not 1 <= size < n:
        raise ValueError(f"random groups need 1 <= size < n, got size {size} for n = {n}")
    order = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[order] = np.arange(n) // size
    return out


def columnwise_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(m,) Spearman correlation of each column of `a` with the same column of `b` (both S x m): the Pearson
    correlation of their average ranks, as scipy's spearmanr; NaN where either column is constant."""
    from scipy import stats  # loaded where used: scipy.stats is 0.6 s of every `gmv run`'s launch

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"columnwise Spearman needs two S x m arrays of one shape, got {a.shape} and {b.shape}")
    ra, rb = stats.rankdata(a, axis=0), stats.rankdata(b, axis=0)
    ra, rb = ra - ra.mean(0), rb - rb.mean(0)
    scale = np.sqrt((ra * ra).sum(0) * (rb * rb).sum(0))  # ranks are half-integers: 0 exactly when constant
    out = np.full(a.shape[1], np.nan)
    ok = scale > 0
    out[ok] = (ra * rb).sum(0)[ok] / scale[ok]
    return out


def _summarise(per_sample: np.ndarray, n_bootstrap: int, seed: int) -> LdsResult:
    """Mean over the samples with a defined correlation, with a bootstrap 95% interval over those samples."""
    ok = per_sample[np.isfinite(per_sample)]
    if not len(ok):
        return LdsResult(float("nan"), float("nan"), float("nan"), per_sample, 0)
    rng = np.random.default_rng(seed)
    means = ok[rng.integers(0, len(ok), size=(n_bootstrap, len(ok)))].mean(1)
    low, high = np.quantile(means, [0.025, 0.975])
    return LdsResult(float(ok.mean()), float(low), float(high), per_sample, len(ok))


def linear_datamodeling_score(
    attributions: np.ndarray, subsets: np.ndarray, outputs: np.ndarray, n_bootstrap: int = 1000, seed: int = 0
) -> LdsResult:
    """LDS of `attributions` (m generated x n training) against `outputs` (S subsets x m) of models retrained on
    `subsets` (S x n masks). A sample whose predicted sums are constant over the subsets (all attribution on
    images in every subset or none, e.g. all zero) has no correlation: NaN, left out of the mean and counted."""
    a, masks, y = np.asarray(attributions, np.float64), np.asarray(subsets, bool), np.asarray(outputs, np.float64)
    if a.ndim != 2 or masks.ndim != 2 or y.shape != (masks.shape[0], a.shape[0]) or masks.shape[1] != a.shape[1]:
        raise ValueError(
            f"shapes do not fit: attributions {a.shape} (m x n), subsets {masks.shape} (S x n), "
            f"outputs {y.shape} (S x m)"
        )
    predicted = masks.astype(np.float64) @ a.T  # (S, m): each subset's summed attribution per sample
    return _summarise(columnwise_spearman(predicted, y), n_bootstrap, seed)


@dataclass(frozen=True)
class SeedNoise:
    """How much of what LDS correlates with is the retrain's seed: the same subsets retrained with `seeds` seeds.

    `agreement` is the mean over samples of the Spearman correlation, over the subsets, of two seeds' outputs (the
    retrain's reliability r; averaged over the pairs of seeds). An attribution that predicted the outputs' mean over
    all seeds exactly would correlate with one seed's output at most sqrt(r), and with the mean of R seeds' at most
    sqrt(R r / (1 + (R - 1) r)) (Spearman-Brown); as the square root is concave, these bounds computed from the mean
    r also bound the mean over samples."""

    agreement: float
    per_sample: np.ndarray  # (m,) each sample's r, NaN where a seed's outputs are constant
    seeds: int

    def ceiling(self, averaged: int = 1) -> float:
        """The LDS that seed noise permits against the mean of `averaged` seeds' outputs."""
        r = max(self.agreement, 0.0)
        return float(np.sqrt(averaged * r / (1 + (averaged - 1) * r)))


def seed_noise(outputs: np.ndarray) -> SeedNoise:
    """SeedNoise of `outputs` (R seeds x S subsets x m samples), R >= 2."""
    y = np.asarray(outputs, np.float64)
    if y.ndim != 3 or y.shape[0] < 2:
        raise ValueError(f"seed noise needs outputs of at least 2 seeds (R x S x m), got shape {y.shape}")
    pairs = [columnwise_spearman(y[i], y[j]) for i in range(len(y)) for j in range(i + 1, len(y))]
    per_sample = np.mean(pairs, axis=0)
    ok = per_sample[np.isfinite(per_sample)]
    return SeedNoise(float(ok.mean()) if len(ok) else float("nan"), per_sample, len(y))


RIDGE_PENALTIES = np.logspace(-3, 3, 13)  # times the mean eigenvalue of the training subsets' Gram matrix


def ridge_datamodel_lds(
    subsets: np.ndarray,
    outputs: np.ndarray,
    features: np.ndarray | None = None,
    folds: int = 4,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> LdsResult:
    """The LDS that a linear datamodel fitted to these retrains reaches on subsets it was not fitted on (the
    datamodels of Ilyas et al. 2022, with the retrains at hand): per sample, a ridge regression of the outputs on
    the subset masks (or on `features`, S x d, e.g. each subset's count per class), fitted on all folds but one of
    the subsets; one penalty per fold for every sample, chosen from RIDGE_PENALTIES by leave-one-out error on the
    fold's training subsets (each sample's outputs standardised). The fitted weights per training image are an
    attribution, scored as LDS scores one: the Spearman correlation over the held-out fold's subsets of its predicted
    and observed outputs, averaged over the folds (not pooled: each fold's model has its own offset, and pooling
    them correlates the held-out outputs negatively with the means they were left out of). This is what a linear
    attribution learned from S - S/folds retrains reaches: a floor under the best linear attribution, which more
    retrains raise."""
    masks, y = np.asarray(subsets, bool), np.asarray(outputs, np.float64)
    x = masks.astype(np.float64) if features is None else np.asarray(features, np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or len(y) < 2 * folds or folds < 2:
        raise ValueError(
            f"a cross-fitted datamodel needs S x d inputs and S x m outputs with S >= 2 x folds (folds >= 2), got "
            f"{x.shape}, {y.shape}, folds {folds}"
        )
    order = np.random.default_rng(seed).permutation(len(y))
    per_fold = []
    for fold in np.array_split(order, folds):
        train = np.setdiff1d(order, fold)
        centre, offset = x[train].mean(0), y[train].mean(0)
        xt, xf = x[train] - centre, x[fold] - centre
        spread = y[train].std(0)
        yt = (y[train] - offset) / np.where(spread > 0, spread, 1.0)
        values, vectors = np.linalg.eigh(xt @ xt.T)
        values = np.clip(values, 0, None)
        rotated = vectors.T @ yt
        best, best_error = None, np.inf
        for penalty in RIDGE_PENALTIES * max(values.mean(), 1e-12):
            shrink = values / (values + penalty)
            fitted = vectors @ (shrink[:, None] * rotated)
            leverage = (vectors**2) @ shrink
            error = float((((yt - fitted) / (1 - leverage)[:, None]) ** 2).sum())
            if error < best_error:
                best, best_error = penalty, error
        dual = vectors @ (rotated / (values + best)[:, None])
        per_fold.append(columnwise_spearman((xf @ xt.T) @ dual, y[fold]))
    stacked = np.stack(per_fold)
    defined = np.isfinite(stacked).sum(0)
    total = np.where(np.isfinite(stacked), stacked, 0.0).sum(0)
    return _summarise(np.where(defined > 0, total / np.maximum(defined, 1), np.nan), n_bootstrap, seed)


def attribution_matrix(contributors: pl.DataFrame, gen_ids: Sequence[str], train_ids: Sequence[str]) -> np.ndarray:
    """(m, n) float32 attributions from a method's listed contributors (gen_id, train_id, score); a training image
    not listed for a generated image gets 0 (exact for GMValuator, whose credit stops at the top k; a truncation
    for dense methods such as TracIn)."""
    gen_row = {g: j for j, g in enumerate(gen_ids)}
    train_col = {t: i for i, t in enumerate(train_ids)}
    unknown = [g for g in contributors["gen_id"].unique().to_list() if g not in gen_row]
    if unknown:
        raise ValueError(
            f"contributors name {len(unknown)} generated image(s) not in the generated set, e.g. {unknown[0]!r}"
        )
    out = np.zeros((len(gen_ids), len(train_ids)), dtype=np.float32)
    rows = np.fromiter((gen_row[g] for g in contributors["gen_id"]), dtype=np.int64, count=contributors.height)
    cols = np.fromiter((train_col[t] for t in contributors["train_id"]), dtype=np.int64, count=contributors.height)
    np.add.at(out, (rows, cols), contributors["score"].to_numpy().astype(np.float32))
    return out


def vae_log_likelihoods(
    model, classes: Sequence[str], images: Sequence[np.ndarray], labels: Sequence[str], batch_size: int = 512
) -> np.ndarray:
    """The model output of LDS for the demo VAE: minus the negative ELBO of each image (z = mu: no sampling noise,
    so a retrained model's output depends only on its weights). Higher = the model explains the image better."""
    position = {c: i for i, c in enumerate(classes)}
    missing = sorted({str(label) for label in labels} - set(position))
    if missing:
        raise ValueError(f"labels {missing} are not classes of the generator ({', '.join(classes)})")
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), batch_size):
            x = to_tensor_batch(list(images[s : s + batch_size]), IMAGE_SIZE, 1).flatten(1)
            y = torch.tensor([position[str(label)] for label in labels[s : s + batch_size]], dtype=torch.int64)
            out.append(-vae_losses(model.eval(), x, y).double().numpy())
    return np.concatenate(out) if out else np.empty(0)


def ddpm_log_likelihoods(
    model,
    classes: Sequence[str],
    images: Sequence[np.ndarray],
    labels: Sequence[str],
    timesteps: int,
    points: int = 10,
    seed: int = 0,
    batch_size: int = 256,
) -> np.ndarray:
    """The model output of LDS for the demo DDPM (D-TRAK's): minus its denoising loss on each image, the mean squared
    error of the predicted noise over `points` timesteps spread evenly over [0, timesteps) with seeded noise. The
    timesteps and the noise depend only on the seed and the image's position, never on the model, so the outputs of
    two retrained models differ only by their weights. Higher = the model explains the image better."""
    position = {c: i for i, c in enumerate(classes)}
    missing = sorted({str(label) for label in labels} - set(position))
    if missing:
        raise ValueError(f"labels {missing} are not classes of the generator ({', '.join(classes)})")
    alpha_bar = cosine_alpha_bar(timesteps).float()
    times = torch.linspace(0, timesteps - 1, points).round().long()
    gen = torch.Generator().manual_seed(seed)
    noise_all = torch.randn(len(images), points, 1, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
    out = []
    with torch.inference_mode():
        model = model.eval()
        for s in range(0, len(images), batch_size):
            x0 = to_tensor_batch(list(images[s : s + batch_size]), IMAGE_SIZE, 1) * 2 - 1
            y = torch.tensor([position[str(label)] for label in labels[s : s + batch_size]], dtype=torch.int64)
            loss = torch.zeros(len(x0), dtype=torch.float64)
            for i, t in enumerate(times.tolist()):
                noise = noise_all[s : s + batch_size, i]
                a = alpha_bar[t]
                x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
                eps = model(x_t, torch.full((len(x0),), t), y)
                loss += ((eps - noise) ** 2).flatten(1).mean(1).double()
            out.append(-(loss / points).numpy())
    return np.concatenate(out) if out else np.empty(0)


def marginal_vae_outputs(generator: DemoGenerator, images: Sequence[np.ndarray]) -> np.ndarray:
    """Group LDS's model output for a retrained demo VAE, whose classes may lack the sample's: log of the mean over
    the classes it was trained on of exp(minus the negative ELBO under that class), the ELBO of a uniform mixture of
    its classes. Defined whichever classes a subset kept; higher = the model explains the image better."""
    if generator.spec.family != "vae":
        raise ValueError("the marginal output is the demo VAE's (a class-free DDPM output is not defined here)")
    per_class = np.stack(
        [vae_log_likelihoods(generator.model, generator.classes, images, [c] * len(images)) for c in generator.classes]
    )
    top = per_class.max(axis=0)
    return top + np.log(np.exp(per_class - top).mean(axis=0))


def model_outputs(
    generator: DemoGenerator, images: Sequence[np.ndarray], labels: Sequence[str], seed: int = 0
) -> np.ndarray:
    """LDS's model output of a (retrained) demo generator for each image: the VAE's ELBO or the DDPM's negative
    denoising loss (both: higher = the model explains the image better)."""
    if generator.spec.family == "vae":
        return vae_log_likelihoods(generator.model, generator.classes, images, labels)
    return ddpm_log_likelihoods(
        generator.model, generator.classes, images, labels, generator.spec.diffusion.timesteps, seed=seed
    )
