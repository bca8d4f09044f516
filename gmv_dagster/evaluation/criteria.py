"""Evaluation criteria (docs/DESIGN.md, "Evaluation"): pure functions from values and contributors to numbers.

Every function returns plain floats or `Measure`s; the report assets turn them into the long
`criterion_report` table. Intervals are 95% and only given where the number is a sample statistic.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Measure:
    value: float | None
    n: int
    ci_low: float | None = None
    ci_high: float | None = None
    note: str | None = None


def mean_interval(samples: np.ndarray) -> Measure:
    """Mean with a normal-approximation 95% interval (per-image shares are bounded, n is large)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return Measure(None, 0, note="no samples")
    mean = float(x.mean())
    half = Z95 * float(x.std(ddof=1)) / math.sqrt(x.size) if x.size > 1 else 0.0
    return Measure(mean, int(x.size), mean - half, mean + half)


def wilson_interval(successes: float, n: int) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return (min(centre - half, p), max(centre + half, p))  # exact arithmetic contains p; floats may not


# --- C1 / C2: do the contributors share the generated image's class / attributes? -------------


def agreement_at_k(contributors: pl.DataFrame, gen_keys: pl.DataFrame, train_keys: pl.DataFrame, k: int) -> Measure:
    """Mean over generated images of the share of their top-k contributors whose key equals theirs.

    `contributors`: gen_id, train_id, rank (1 = strongest). `gen_keys` / `train_keys`: id, key.
    Generated images with fewer than k contributors count over the ones they have; images whose own
    key is null are left out (nothing to agree with).
    """
    return mean_interval(agreement_per_image(contributors, gen_keys, train_keys, k)["share"].to_numpy())


def agreement_per_image(
    contributors: pl.DataFrame, gen_keys: pl.DataFrame, train_keys: pl.DataFrame, k: int
) -> pl.DataFrame:
    """gen_id, share: agreement_at_k's share for each generated image, in no set order."""
    top = contributors.filter(pl.col("rank") <= k).select("gen_id", "train_id")
    joined = (
        top.join(gen_keys.rename({"id": "gen_id", "key": "gen_key"}), on="gen_id", how="inner")
        .join(train_keys.rename({"id": "train_id", "key": "train_key"}), on="train_id", how="left")
        .filter(pl.col("gen_key").is_not_null())
    )
    return joined.group_by("gen_id").agg(share=(pl.col("gen_key") == pl.col("train_key")).fill_null(False).mean())


def attribute_keys(manifest: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Per attribute name, a table (id, key) from the manifest's JSON `attributes` column."""
    parsed: dict[str, dict[str, str]] = {}
    for image_id, raw in manifest.select("id", "attributes").iter_rows():
        for name, value in (json.loads(raw) if raw else {}).items():
            parsed.setdefault(name, {})[image_id] = str(value)
    return {
        name: pl.DataFrame({"id": list(by_id), "key": list(by_id.values())}, schema={"id": pl.String, "key": pl.String})
        for name, by_id in sorted(parsed.items())
    }


# --- C3: do out-of-distribution training images get low value? ------------------------------------


def rank_auc(above: np.ndarray, below: np.ndarray) -> float:
    """P(a > b) for a drawn from `above` and b from `below`, ties counting half (the Mann-Whitney AUC, from ranks:
    no len(above) x len(below) matrix); non-finite values are dropped. NaN when either side is empty."""
    a, b = np.asarray(above, np.float64), np.asarray(below, np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not len(a) or not len(b):
        return float("nan")
    from scipy import stats  # loaded where used: scipy.stats is 0.6 s of every `gmv run`'s launch

    ranks = stats.rankdata(np.concatenate([a, b]))  # ascending, ties averaged
    return float((ranks[: len(a)].sum() - len(a) * (len(a) + 1) / 2) / (len(a) * len(b)))


def auc_lower_value(values: np.ndarray, is_ood: np.ndarray) -> Measure:
    """P(value of a clean image > value of an OOD image), ties counted half; Hanley-McNeil interval."""
    v, ood = np.asarray(values, dtype=np.float64), np.asarray(is_ood, dtype=bool)
    n_ood, n_clean = int(ood.sum()), int((~ood).sum())
    if n_ood == 0 or n_clean == 0:
        return Measure(None, len(v), note="needs both clean and OOD images")
    auc = rank_auc(v[~ood], v[ood])
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_clean - 1) * (q1 - auc * auc) + (n_ood - 1) * (q2 - auc * auc)) / (n_clean * n_ood)
    half = Z95 * math.sqrt(max(var, 0.0))
    return Measure(float(auc), len(v), max(0.0, auc - half), min(1.0, auc + half))


def precision_at_bottom(values: np.ndarray, is_ood: np.ndarray, k: int) -> Measure:
    """Share of OOD images among the k lowest-valued, in expectation over random tie-breaking.

    Many images share value 0; ordering them by id would make the number depend on naming.
    """
    v, ood = np.asarray(values, dtype=np.float64), np.asarray(is_ood, dtype=bool)
    k = min(k, len(v))
    if k == 0:
        return Measure(None, 0, note="no images")
    order = np.argsort(v, kind="stable")
    threshold = v[order[k - 1]]
    below = v < threshold
    tied = v == threshold
    slots = k - int(below.sum())  # places left for the tied group
    expected = float(ood[below].sum()) + slots * float(ood[tied].mean())
    lo, hi = wilson_interval(expected, k)
    return Measure(expected / k, k, lo, hi)


# --- Diversity: how widely does credit spread? -----------------------------------------------------


def coverage(values: np.ndarray) -> float:
    return float((np.asarray(values) > 0).mean())


def normalised_entropy(values: np.ndarray) -> float:
    """Entropy of the value distribution over images divided by log n (1 = every image equal)."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, None)
    total = v.sum()
    if total <= 0 or len(v) < 2:
        return float("nan")
    p = v[v > 0] / total
    return float(-(p * np.log(p)).sum() / math.log(len(v)))


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 = equal, (n-1)/n = all value on one image."""
    v = np.sort(np.clip(np.asarray(values, dtype=np.float64), 0.0, None))
    n, total = len(v), v.sum()
    if n == 0 or total <= 0:
        return float("nan")
    return float((2 * np.arange(1, n + 1) - n - 1).dot(v) / (n * total))


def value_share_by_key(values: pl.DataFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """Share of the total (non-negative) value held by each key, e.g. each class: key, share, n."""
    joined = values.select("train_id", "value").join(keys.rename({"id": "train_id"}), on="train_id", how="left")
    joined = joined.with_columns(pl.col("value").clip(lower_bound=0.0))
    total = float(joined["value"].sum()) or 1.0
    return (
        joined.group_by("key")
        .agg(share=pl.col("value").sum() / total, n=pl.len().cast(pl.Int64))
        .sort("key", nulls_last=True)
    )


# --- Consistency: do two valuations rank the training images alike? -------------------------------


def rank_correlations(a: pl.DataFrame, b: pl.DataFrame) -> dict[str, Measure]:
    """Spearman and Kendall (tau-b) of two value tables (train_id, value) over their common ids."""
    joined = a.select("train_id", "value").join(b.select("train_id", "value"), on="train_id", suffix="_b")
    x, y = joined["value"].to_numpy(), joined["value_b"].to_numpy()
    n = len(x)
    if n < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        note = "undefined: one ranking is constant"
        return {"spearman": Measure(None, n, note=note), "kendall": Measure(None, n, note=note)}
    from scipy import stats

    return {
        "spearman": Measure(float(stats.spearmanr(x, y).statistic), n),
        "kendall": Measure(float(stats.kendalltau(x, y).statistic), n),
    }


# --- Fidelity: how far do generations move when data is removed? ----------------------------------


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of vectors (FID's formula)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(A B) = sum sqrt(eig(A^1/2 B A^1/2)): symmetric, so it stays real and defined when A or B
    # is singular (fewer samples than dimensions), where sqrtm(A B) is not.
    from scipy import linalg

    w, v = linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    trace_root = np.sqrt(np.clip(linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine distance between row i of a and row i of b (paired samples from the same noise)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return 1.0 - (a * b).sum(1) / np.maximum(na * nb, 1e-12)


def nearest_distance(queries: np.ndarray, pool: np.ndarray, block: int = 1024) -> np.ndarray:
    """Cosine distance from each query to its nearest row of `pool` (blocked; memory O(block x pool))."""
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    p = pool / np.maximum(np.linalg.norm(pool, axis=1, keepdims=True), 1e-12)
    out = np.empty(len(q))
    for s in range(0, len(q), block):
        out[s : s + block] = 1.0 - (q[s : s + block] @ p.T).max(axis=1)
    return out
