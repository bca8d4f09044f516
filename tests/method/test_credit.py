import numpy as np
import polars as pl
import pytest

from gmv_dagster.method.credit import compute_credits, softmax_weights, training_values


def _matches(dist: np.ndarray) -> pl.DataFrame:
    m, k = dist.shape
    return pl.DataFrame(
        {
            "gen_id": [f"g{j}" for j in range(m) for _ in range(k)],
            "train_id": [f"t{(j + r) % 7}" for j in range(m) for r in range(k)],
            "rank": [r + 1 for _ in range(m) for r in range(k)],
            "distance": dist.reshape(-1),
        },
        schema={"gen_id": pl.String, "train_id": pl.String, "rank": pl.Int32, "distance": pl.Float64},
    )


def test_weights_are_a_softmax_of_negative_distance():
    d = np.array([[0.1, 0.2, 0.4]])
    w = softmax_weights(d, 0.1)
    expected = np.exp(-d / 0.1) / np.exp(-d / 0.1).sum()
    np.testing.assert_allclose(w, expected, rtol=1e-12)
    assert w[0, 0] > w[0, 1] > w[0, 2]


def test_temperature_limits_one_hot_and_uniform():
    d = np.array([[0.30, 0.31, 0.5, 0.9]])
    np.testing.assert_allclose(softmax_weights(d, 1e-6), [[1, 0, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(softmax_weights(d, 1e6), [[0.25] * 4], atol=1e-6)


def test_bad_temperature_and_distances_are_refused():
    with pytest.raises(ValueError, match="temperature"):
        softmax_weights(np.zeros((1, 2)), 0.0)
    with pytest.raises(ValueError, match="NaN or Inf"):
        softmax_weights(np.array([[0.1, np.nan]]), 1.0)


def test_sum_of_values_equals_sum_of_quality_and_unmatched_get_zero():
    rng = np.random.default_rng(0)
    dist = np.sort(rng.uniform(0, 1, (5, 3)), axis=1)
    q = pl.DataFrame({"gen_id": [f"g{j}" for j in range(5)], "q": rng.uniform(0, 1, 5)})
    credits = compute_credits(_matches(dist), q, 0.1)
    ids = pl.Series([f"t{i}" for i in range(7)] + ["never_matched"])
    values = training_values(credits, ids)
    assert values["value"].sum() == pytest.approx(q["q"].sum(), rel=1e-12)
    assert values.filter(pl.col("train_id") == "never_matched")["value"][0] == 0.0
    assert values.height == 8 and values["rank"].to_list() == list(range(1, 9))
    assert (values["value"].diff().drop_nulls() <= 0).all()
    # each generated image hands out exactly its q
    per_gen = credits.group_by("gen_id").agg(pl.col("credit").sum()).join(q, on="gen_id")
    np.testing.assert_allclose(per_gen["credit"], per_gen["q"], rtol=1e-12)


def test_credit_to_an_unknown_training_id_is_an_error():
    dist = np.array([[0.1, 0.2]])
    credits = compute_credits(_matches(dist), pl.DataFrame({"gen_id": ["g0"], "q": [1.0]}), 1.0)
    with pytest.raises(ValueError, match="not in the training set"):
        training_values(credits, pl.Series(["t0"]))


def test_missing_quality_is_an_error():
    with pytest.raises(ValueError, match="no quality score"):
        compute_credits(_matches(np.array([[0.1]])), pl.DataFrame({"gen_id": ["other"], "q": [1.0]}), 1.0)


def test_values_are_ordered_by_value_then_id_with_zero_credits_and_unsorted_ids():
    """Rank order is (value descending, train_id): images credited exactly 0 (q = 0) sit among the unvalued ones
    in id order and keep their n_generated; the training ids need not come sorted."""
    credits = pl.DataFrame(
        {
            "train_id": ["t5", "t2", "t2", "t9", "t7"],
            "gen_id": ["g1", "g1", "g2", "g3", "g3"],
            "credit": [0.25, 0.5, 0.25, 0.0, 0.0],
        }
    )
    ids = pl.Series(["t9", "t1", "t7", "t5", "t3", "t2"])
    got = training_values(credits, ids)
    expected = pl.DataFrame(
        {
            "train_id": ["t2", "t5", "t1", "t3", "t7", "t9"],
            "value": [0.75, 0.25, 0.0, 0.0, 0.0, 0.0],
            "n_generated": [2, 1, 0, 0, 1, 1],
            "rank": [1, 2, 3, 4, 5, 6],
        }
    )
    assert got.to_dicts() == expected.to_dicts()
