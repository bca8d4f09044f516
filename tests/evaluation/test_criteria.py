"""Each criterion's computation on tiny inputs with a known answer."""

import math

import numpy as np
import polars as pl
import pytest

from gmv_dagster.evaluation.criteria import (
    agreement_at_k,
    attribute_keys,
    auc_lower_value,
    cosine_rows,
    coverage,
    frechet_distance,
    gini,
    mean_interval,
    nearest_distance,
    normalised_entropy,
    precision_at_bottom,
    rank_auc,
    rank_correlations,
    value_share_by_key,
    wilson_interval,
)
from gmv_dagster.evaluation.experiments import fidelity_measures, removal_sets
from gmv_dagster.method.credit import compute_credits, training_values


def _contributors(rows):
    return pl.DataFrame(rows, schema={"gen_id": pl.String, "train_id": pl.String, "rank": pl.Int32}, orient="row")


def _keys(mapping):
    return pl.DataFrame({"id": list(mapping), "key": list(mapping.values())})


def test_agreement_at_k_counts_matching_contributors_per_generated_image():
    contributors = _contributors([("g1", "a", 1), ("g1", "b", 2), ("g1", "c", 3), ("g2", "c", 1), ("g2", "a", 2)])
    train = _keys({"a": "cat", "b": "dog", "c": "dog"})
    gen = _keys({"g1": "cat", "g2": "dog"})
    assert agreement_at_k(contributors, gen, train, 1).value == pytest.approx((1 + 1) / 2)
    # g1: 1 of 2; g2: 1 of 2
    assert agreement_at_k(contributors, gen, train, 2).value == pytest.approx(0.5)
    # g1 has 3 contributors (1 of 3 agree), g2 only 2 (1 of 2)
    m = agreement_at_k(contributors, gen, train, 3)
    assert m.value == pytest.approx((1 / 3 + 1 / 2) / 2) and m.n == 2 and m.ci_low < m.value < m.ci_high


def test_attribute_keys_parse_the_manifest_json():
    manifest = pl.DataFrame({"id": ["x", "y"], "attributes": ['{"hat": "1", "glasses": "0"}', "{}"]})
    keys = attribute_keys(manifest)
    assert sorted(keys) == ["glasses", "hat"] and keys["hat"].rows() == [("x", "1")]


def test_c3_auc_is_one_when_the_polluted_images_are_the_only_unmatched_ones():
    # Three generated images matched only to clean images; polluted p1, p2 are never matched.
    matches = pl.DataFrame(
        {
            "gen_id": ["g1", "g1", "g2", "g2", "g3", "g3"],
            "train_id": ["c1", "c2", "c2", "c3", "c3", "c4"],
            "rank": [1, 2, 1, 2, 1, 2],
            "distance": [0.1, 0.2, 0.1, 0.3, 0.2, 0.2],
        },
        schema_overrides={"rank": pl.Int32},
    )
    quality = pl.DataFrame({"gen_id": ["g1", "g2", "g3"], "q": [1.0, 0.5, 0.8]})
    ids = ["c1", "c2", "c3", "c4", "p1", "p2"]
    values = training_values(compute_credits(matches, quality, 0.1), pl.Series(ids))
    v = values.sort("train_id")
    is_ood = v["train_id"].str.starts_with("p").to_numpy()
    auc = auc_lower_value(v["value"].to_numpy(), is_ood)
    assert auc.value == 1.0 and auc.ci_high == 1.0
    assert precision_at_bottom(v["value"].to_numpy(), is_ood, 2).value == 1.0


def test_auc_ties_count_half_and_reversed_order_gives_zero():
    ood = np.array([True, True, False, False])
    assert auc_lower_value(np.zeros(4), ood).value == 0.5
    assert auc_lower_value(np.array([5.0, 4.0, 1.0, 0.0]), ood).value == 0.0
    assert auc_lower_value(np.ones(3), np.zeros(3, bool)).value is None


def test_precision_at_bottom_is_the_expectation_over_random_tie_breaking():
    values = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 2.0])
    ood = np.array([True, False, False, False, False, False])
    # bottom 2 are drawn from four tied zeros, one of them OOD: expected 2 * 1/4 OOD among 2
    assert precision_at_bottom(values, ood, 2).value == pytest.approx(0.25)
    assert precision_at_bottom(values, ood, 4).value == pytest.approx(0.25)


def test_diversity_measures_on_equal_and_concentrated_values():
    equal, one = np.ones(4), np.array([0.0, 0.0, 0.0, 2.0])
    assert gini(equal) == pytest.approx(0.0) and gini(one) == pytest.approx(0.75)
    assert normalised_entropy(equal) == pytest.approx(1.0) and normalised_entropy(one) == pytest.approx(0.0)
    assert coverage(one) == 0.25
    assert math.isnan(gini(np.zeros(3)))
    shares = value_share_by_key(
        pl.DataFrame({"train_id": ["a", "b", "c"], "value": [1.0, 3.0, -2.0]}), _keys({"a": "x", "b": "y", "c": "y"})
    )
    assert dict(shares.select("key", "share").iter_rows()) == {"x": 0.25, "y": 0.75}


def test_rank_correlations_known_answers():
    a = pl.DataFrame({"train_id": ["a", "b", "c", "d"], "value": [1.0, 2.0, 3.0, 4.0]})
    same_order = a.with_columns(value=pl.col("value") ** 2)
    reversed_ = a.with_columns(value=-pl.col("value"))
    assert rank_correlations(a, same_order)["spearman"].value == pytest.approx(1.0)
    assert rank_correlations(a, reversed_)["kendall"].value == pytest.approx(-1.0)
    constant = rank_correlations(a, a.with_columns(value=pl.lit(1.0)))
    assert constant["spearman"].value is None and "constant" in constant["spearman"].note


def test_frechet_distance_is_zero_on_the_same_set_and_the_squared_shift_of_the_mean():
    x = np.random.default_rng(0).normal(size=(500, 3))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(x, x + np.array([1.0, 2.0, 0.0])) == pytest.approx(5.0, rel=1e-6)


def test_nearest_and_paired_cosine_distances():
    pool = np.array([[1.0, 0.0], [0.0, 1.0]])
    q = np.array([[2.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(nearest_distance(q, pool), [0.0, 1 - 1 / np.sqrt(2)])
    np.testing.assert_allclose(cosine_rows(pool, pool[::-1]), [1.0, 1.0])


def test_removal_sets_take_the_extremes_and_a_random_set_independent_of_row_order():
    values = pl.DataFrame({"train_id": [f"t{i}" for i in range(20)], "value": [float(i) for i in range(20)]})
    sets = removal_sets(values, 0.1, seed=3)
    assert sets["top"] == ["t18", "t19"] and sets["bottom"] == ["t0", "t1"]
    assert removal_sets(values.reverse(), 0.1, seed=3)["random"] == sets["random"]
    with pytest.raises(ValueError, match="share"):
        removal_sets(values, 1.5, 0)


def test_fidelity_measures_are_zero_when_nothing_moves():
    rng = np.random.default_rng(1)
    train, gen = rng.normal(size=(200, 4)), rng.normal(size=(50, 4))
    m = fidelity_measures(gen, gen, train[:10], train)
    assert m["displacement"] == pytest.approx(0.0, abs=1e-12)
    assert m["distance_to_removed_gain"] == 0.0 and m["frechet_gain"] == pytest.approx(0.0, abs=1e-9)
    # generations moved onto the removed images: negative gain (closer), positive displacement
    moved = fidelity_measures(gen[:10], train[:10], train[:10], train)
    assert moved["distance_to_removed_gain"] < 0 and moved["displacement"] > 0


def test_wilson_interval_contains_the_proportion_even_at_the_ends():
    for hits, n in [(0, 200), (200, 200), (37, 200)]:
        lo, hi = wilson_interval(hits, n)
        assert 0 <= lo <= hits / n <= hi <= 1


def test_mean_interval_covers_the_mean():
    m = mean_interval(np.array([0.0, 1.0, 1.0, 0.0]))
    assert m.value == 0.5 and m.ci_low < 0.5 < m.ci_high and m.n == 4


def test_rank_auc_counts_ties_half_and_drops_undefined_scores():
    assert rank_auc([3.0, 2.0], [1.0, 2.0]) == 0.875  # pairs: 3>1, 3>2, 2>1, 2=2 (half)
    assert rank_auc([1.0, np.nan], [0.0, np.inf]) == 1.0
    assert np.isnan(rank_auc([np.nan], [1.0]))
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 40).astype(float), rng.integers(0, 5, 30).astype(float)  # many ties
    pairs = np.mean(a[:, None] > b[None, :]) + 0.5 * np.mean(a[:, None] == b[None, :])
    assert abs(rank_auc(a, b) - pairs) < 1e-12
