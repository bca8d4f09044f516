"""The credit temperature follows the similarity's distance scale (core.fit_temperature)."""

import gzip

import numpy as np
import polars as pl
import pytest

from gmv_dagster.common.sampling import seeded_rows
from gmv_dagster.evaluation.near_copies import photo_crops
from gmv_dagster.method import (
    MatchParams,
    ValuationConfig,
    fit_temperature,
    match,
    value,
    value_training_set,
)
from gmv_dagster.method.matching import IndexShard, matches_table
from gmv_dagster.method.rerank import l2_distance


def _unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_temperature_is_the_median_gap_to_the_kth_other_neighbour_over_four():
    train = _unit_rows(300, 16, 0)
    fit = fit_temperature(train, MatchParams(k=10), [IndexShard(0, len(train))], sample=60, seed=3)
    # Brute force in float64: each sampled image's distances to every *other* training image.
    rows = seeded_rows(len(train), 60, 3)
    d = 1.0 - train[rows].astype(np.float64) @ train.astype(np.float64).T
    d[np.arange(len(rows)), rows] = np.inf
    nearest = np.sort(d, axis=1)[:, :10]
    expected = np.median(nearest[:, 9] - nearest[:, 0])
    assert fit.median_spread == pytest.approx(expected, rel=1e-6)  # cosine of float32 rows
    assert fit.temperature == pytest.approx(expected / 4, rel=1e-6)
    assert (fit.queries, fit.k, fit.divisor) == (60, 10, 4.0)


def test_weights_do_not_depend_on_the_distance_scale():
    # The same geometry at three times the length: squared-L2 distances x 9, and so tau x 9, weights equal.
    train, queries = _unit_rows(200, 8, 1), _unit_rows(20, 8, 2)
    params, shards = MatchParams(k=10, metric="l2sq"), [IndexShard(0, 200)]
    quality = pl.DataFrame({"gen_id": [f"g{j}" for j in range(20)], "q": [1.0] * 20})
    weights, taus = [], []
    for scale in (1.0, 3.0):
        t, g = train * scale, queries * scale
        tau = fit_temperature(t, params, shards).temperature
        idx, dist = match(t, g, params, shards)
        credits, _ = value(
            matches_table(quality["gen_id"], [f"t{i}" for i in range(200)], idx, dist, 10),
            quality,
            pl.Series([f"t{i}" for i in range(200)]),
            tau,
        )
        weights.append(credits["weight"].to_numpy())
        taus.append(tau)
    assert taus[1] == pytest.approx(9 * taus[0], rel=1e-5)
    np.testing.assert_allclose(weights[1], weights[0], atol=1e-6)


def test_a_rerank_fits_the_temperature_to_its_own_distances():
    images = [np.random.default_rng(i).integers(0, 256, (16, 16), dtype=np.uint8) for i in range(40)]
    train = _unit_rows(40, 8, 4)  # embeddings unrelated to the pixels: the re-rank decides the distances
    params = MatchParams(k=5, candidates=39)
    load = lambda rows: [images[i] for i in rows]  # noqa: E731
    fit = fit_temperature(train, params, [IndexShard(0, 40)], pair_distance=l2_distance(), load_train=load, sample=10)
    rows = seeded_rows(40, 10, 0)
    spreads = []
    for row in rows:  # every other image is a candidate (K' = n - 1), so the re-rank sees all of them
        others = [i for i in range(40) if i != row]
        d = np.sort(l2_distance()(images[row], load(others)))
        spreads.append(d[4] - d[0])
    assert fit.temperature == pytest.approx(np.median(spreads) / 4, rel=1e-9)


def _fashion_mnist(folder, n: int) -> np.ndarray:
    with gzip.open(folder / "train-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    return images[np.random.default_rng(0).choice(len(images), n, replace=False)]


@pytest.mark.parametrize("domain", ["fashion_mnist_grey_28px", "photo_crops_colour_32px"])
def test_with_the_fitted_temperature_a_near_copy_takes_nearly_all_its_credit(domain, fashion_mnist_dir):
    train = _fashion_mnist(fashion_mnist_dir, 2000) if domain.startswith("fashion") else np.stack(photo_crops(1000, 32))
    rng = np.random.default_rng(1)
    sources = rng.choice(len(train), 40, replace=False)
    copies = np.clip(train[sources] + rng.normal(0, 6, train[sources].shape), 0, 255).astype(np.uint8)
    result = value_training_set(train, copies, ValuationConfig(backbone="pixels", quality_metric="none"))
    top1 = result.credits.filter(pl.col("rank") == 1).sort("gen_id")
    assert top1["train_id"].to_list() == [f"train:{s:06d}" for s in sources]
    assert top1["weight"].median() > 0.95, (result.temperature, top1["weight"].describe())


def test_a_set_without_a_distance_scale_is_refused_with_the_setting_to_use():
    with pytest.raises(
        ValueError, match=r"at least 3 training images.*MethodSettings.temperature; in the pipeline, resources.method's"
    ):
        fit_temperature(_unit_rows(2, 4, 0), MatchParams(k=1, candidates=1), [IndexShard(0, 2)])
    same = np.ones((10, 4), dtype=np.float32) / 2
    with pytest.raises(
        ValueError, match=r"one distance.*MethodSettings.temperature; in the pipeline, resources.method's"
    ):
        fit_temperature(same, MatchParams(k=3, candidates=5), [IndexShard(0, 10)])
