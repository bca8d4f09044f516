"""LDS on data with a known answer: outputs that are an exact linear datamodel give LDS 1, their negation -1,
attributions unrelated to the outputs about 0; undefined samples are left out and counted."""

import numpy as np
import pytest

from gmv_dagster.evaluation.lds import linear_datamodeling_score, random_subsets


def test_random_subsets_are_seeded_halves():
    masks = random_subsets(100, 32, 0.5, seed=3)
    assert masks.shape == (32, 100) and (masks.sum(1) == 50).all()
    assert np.array_equal(masks, random_subsets(100, 32, 0.5, seed=3))
    assert not np.array_equal(masks, random_subsets(100, 32, 0.5, seed=4))
    assert len({m.tobytes() for m in masks}) == 32
    with pytest.raises(ValueError, match="0 < fraction < 1"):
        random_subsets(100, 32, 1.0)


def test_an_exact_linear_datamodel_scores_one_its_negation_minus_one_and_noise_about_zero():
    rng = np.random.default_rng(0)
    m, n = 20, 60
    true = rng.exponential(size=(m, n))
    masks = random_subsets(n, 40, seed=1)
    outputs = masks.astype(float) @ true.T  # each model's output is exactly the sum of its images' effects
    exact = linear_datamodeling_score(true, masks, outputs)
    assert exact.mean == pytest.approx(1.0) and exact.defined == m and exact.low == pytest.approx(1.0)
    assert linear_datamodeling_score(true, masks, -outputs).mean == pytest.approx(-1.0)
    unrelated = linear_datamodeling_score(rng.exponential(size=(m, n)), masks, outputs)
    assert abs(unrelated.mean) < 0.2 and unrelated.low < unrelated.mean < unrelated.high


def test_a_sample_with_constant_predictions_is_left_out_and_counted():
    masks = random_subsets(10, 8, seed=0)
    a = np.zeros((2, 10))
    a[1, 3] = 1.0
    outputs = np.stack([np.arange(8.0), masks[:, 3].astype(float)], 1)
    result = linear_datamodeling_score(a, masks, outputs)
    assert np.isnan(result.per_sample[0]) and result.defined == 1 and result.mean == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shapes do not fit"):
        linear_datamodeling_score(a, masks, outputs.T)
